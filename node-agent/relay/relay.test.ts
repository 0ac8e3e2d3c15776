// The relay without a broker: what submit accepts and refuses, what it writes, and how open()
// reconciles the stores after a crash. The NATS side is proven in test/integration/agent-relay.test.ts.
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { pino } from 'pino';
import t from 'tap';
import { newUlid, parseEnvelope, receiptItems, type Envelope } from '../../protocol/envelope.js';
import { startNatsServerForTest } from '../../test/helpers/nats-server.js';
import { tempDir } from '../../test/helpers/tmpdir.js';
import { waitFor } from '../../test/helpers/wait.js';
import { Inbox } from './inbox.js';
import { Outbox } from './outbox.js';
import { STATUS_FILE } from './status.js';
import { Relay } from './relay.js';
import type { MessageDraft } from './types.js';

const log = pino({ level: 'silent' });

// Built as the local API receives it (JSON); types.ts's MessageDraft has `kind: never` (its TypeBox
// union is built with .map(), which loses the literal types), hence the cast.
function draft(over: Record<string, unknown> = {}): MessageDraft {
  return { kind: 'message', to: ['DE'], body: 'hello', ...over } as unknown as MessageDraft;
}

t.test('relay: submit builds the envelope (id, from, created, default priority) and queues it on disk', async (t) => {
  const stateDir = await tempDir(t);
  const relay = await Relay.open({ country: 'FR', stateDir, log });
  const before = Date.now();
  const a = await relay.submit(draft({ subject: 'S', handling: 'public' }));
  const b = await relay.submit(draft({ kind: 'notice', notice: { colour: 'red' }, to: '*', priority: 'urgent' }));
  t.match(a, { state: 'queued', to: ['DE'] });
  t.ok(Date.parse(a.acceptedAt) >= before - 1);
  t.ok(b.id > a.id, 'ids increase with submission order');
  t.same(relay.outboxIds(), [a.id, b.id]);
  t.equal(relay.outboxDepth(), 2);
  t.notOk(relay.isConnected(), 'not attached');
  t.same(relay.status(b.id)?.to, '*');
  t.equal(relay.status('01ARZ3NDEKTSV4RRFFQ69G5FAV'), undefined);
  const reopened = await Relay.open({ country: 'FR', stateDir, log });
  t.same(reopened.outboxIds(), [a.id, b.id]);
  t.equal(reopened.status(a.id)?.state, 'queued');
  t.same(reopened.inbox(), []);
  await relay.stop();
  await reopened.stop();
});

/** The relay's outbox on disk, opened again as the next run would. */
function openOutbox(stateDir: string): Promise<Outbox> {
  return Outbox.open({ dir: join(stateDir, 'relay', 'outbox'), quarantineDir: join(stateDir, 'relay', 'quarantine'), log });
}

t.test('relay: bad drafts are refused with a code and change nothing', async (t) => {
  const stateDir = await tempDir(t);
  const relay = await Relay.open({ country: 'FR', stateDir, log, maxEnvelopeBytes: 2048 });
  await t.rejects(relay.submit(draft({ from: 'DE' })), { code: 'RELAY_BAD_DRAFT', problems: ['from: unknown key'] });
  await t.rejects(relay.submit(draft({ to: [] })), { code: 'RELAY_BAD_DRAFT' });
  await t.rejects(relay.submit(draft({ kind: 'receipt' })), { code: 'RELAY_BAD_DRAFT' }, 'receipts are made by agents, not apps');
  await t.rejects(relay.submit(draft({ to: ['XX'] })), { code: 'ENVELOPE_INVALID', problems: ['to[0]: not an assigned ISO 3166-1 code (got "XX")'] });
  await t.rejects(relay.submit(draft({ kind: 'notice' })), { code: 'ENVELOPE_INVALID', problems: ['notice: required when kind is notice'] });
  await t.rejects(relay.submit(draft({ body: 'x'.repeat(4096) })), { code: 'ENVELOPE_TOO_LARGE' });
  await t.rejects(relay.submit(draft({ expires: '2000-01-01T00:00:00Z' })), { code: 'ENVELOPE_INVALID', problems: [/expires: must be after created/] });
  t.equal(relay.outboxDepth(), 0);
  await relay.stop();
  t.equal((await openOutbox(stateDir)).size, 0, 'nothing reached the outbox on disk');
  await relay.stop(); // idempotent
  await t.rejects(relay.submit(draft()), { code: 'RELAY_STOPPED' });
  await t.rejects(relay.ack('01ARZ3NDEKTSV4RRFFQ69G5FAV'), { code: 'RELAY_STOPPED' });
  await relay.waitForInbox(10_000); // released at once after stop
  await t.rejects(Relay.open({ country: 'fr', stateDir, log }), { code: 'RELAY_BAD_OPTIONS' });
});

t.test('relay: a crash between the outbox write and the status record is repaired at open', async (t) => {
  const stateDir = await tempDir(t);
  const relay = await Relay.open({ country: 'FR', stateDir, log });
  const { id } = await relay.submit(draft());
  // As if the process died after the outbox fsync but before the status append.
  await unlink(join(stateDir, 'relay', STATUS_FILE));
  const reopened = await Relay.open({ country: 'FR', stateDir, log });
  t.match(reopened.status(id), { id, state: 'queued', to: ['DE'] });
  t.same(reopened.outboxIds(), [id]);
});

t.test('relay: publish failures are retried with back-off and lose nothing; a closed connection is refused', async (t) => {
  const stateDir = await tempDir(t);
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const relay = await Relay.open({ country: 'FR', stateDir, log, publishTimeoutMs: 200, retry: { initialMs: 20, maxMs: 50 } });
  // A server without JetStream: every publish fails (no responders), every bind fails.
  const server = await startNatsServerForTest(t, { jetstream: false });
  const nc = await connect({ servers: server.url });
  t.teardown(() => nc.close());
  await relay.attach(nc);
  t.ok(relay.isConnected());
  const { id } = await relay.submit(draft());
  await waitFor('a few retries', () => lines.filter((l) => l['msg'] === 'submit failed, will retry').length >= 3);
  await waitFor('the consumer bind retried', () => lines.some((l) => l['msg'] === 'inbox consumer not bound, will retry'));
  await relay.attach(nc); // re-attach replaces the previous attachment
  await relay.stop();
  t.same(relay.outboxIds(), [id], 'still queued');
  t.equal(relay.status(id)?.state, 'queued');
  t.match(lines.find((l) => l['msg'] === 'submit failed, will retry'), { level: 40, id, failures: 1 });
  const other = await Relay.open({ country: 'FR', stateDir: await tempDir(t), log });
  await nc.close();
  await t.rejects(other.attach(nc), { code: 'RELAY_CONNECTION_CLOSED' });
  await other.stop();
  await t.rejects(other.attach(nc), { code: 'RELAY_STOPPED' });
});

t.test('relay: read receipts of acks made together share envelopes, one sender each, every receipt once', async (t) => {
  const stateDir = await tempDir(t);
  const originals: Envelope[] = ['FR', 'FR', 'FR', 'FR', 'IT'].map((from) => ({ v: 1, id: newUlid(), kind: 'message', from, to: ['DE'], priority: 'routine', created: new Date().toISOString(), body: 'hello' }));
  const inbox = await Inbox.open({ dir: join(stateDir, 'relay'), log });
  for (const o of originals) await inbox.put(o);
  inbox.close();
  const relay = await Relay.open({ country: 'DE', stateDir, log });
  await Promise.all(originals.map((o) => relay.ack(o.id)));
  // The first ack's journal write runs alone; the others wait for it and share the next fsync,
  // so their receipts are queued in one turn: FR's first alone, then FR's three in one envelope.
  t.ok(relay.outboxDepth() <= 3, `${relay.outboxDepth()} envelopes for five receipts`);
  const outbox = await openOutbox(stateDir);
  const envelopes = (await Promise.all(relay.outboxIds().map(async (id) => (await outbox.read(id))?.envelope))).filter((e) => e !== undefined);
  const carried = envelopes.flatMap((e) => receiptItems(e).map((r) => [e.to[0], r.of, r.status]));
  t.same(
    carried.sort(),
    originals.map((o) => [o.from, o.id, 'read']).sort(),
    'each receipt once, in an envelope to its sender',
  );
  await relay.stop();
});

t.test('relay: the first ack of an inbox item queues one signed read receipt to its sender', async (t) => {
  const stateDir = await tempDir(t);
  // A message DE's relay stored earlier (as the delivery loop does).
  const original: Envelope = { v: 1, id: newUlid(), kind: 'message', from: 'FR', to: ['DE'], priority: 'urgent', created: new Date().toISOString(), body: 'hello' };
  const inbox = await Inbox.open({ dir: join(stateDir, 'relay'), log });
  t.equal(await inbox.put(original), 'stored');
  inbox.close();
  const sig = `${'A'.repeat(85)}A`;
  const relay = await Relay.open({ country: 'DE', stateDir, log, sign: async (e) => ({ ...e, sig }) });
  t.same(relay.outboxIds(), []);
  const [item] = await Promise.all([relay.ack(original.id), relay.ack(original.id)]);
  t.type(item?.ackedAt, 'string');
  await relay.ack(original.id);
  t.equal(relay.outboxDepth(), 1, 'one receipt, however many acks');
  const [receiptId] = relay.outboxIds();
  const receipt = parseEnvelope((await (await openOutbox(stateDir)).read(receiptId ?? ''))?.bytes ?? '');
  t.same(receipt, { v: 1, id: receiptId, kind: 'receipt', from: 'DE', to: ['FR'], priority: 'routine', handling: 'public', created: receipt.created, receipt: { of: original.id, status: 'read' }, sig });
  t.equal(relay.status(receiptId ?? ''), undefined, 'receipts keep no status record');
  await relay.stop();
});
