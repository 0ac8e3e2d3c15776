// Deletions at the hub against a real nats-server 2.9 with JetStream and the real audit log (one
// server per test: the stream names are fixed): only the originator may delete, the deletion goes
// to the original's recipients, and the hub's stored copies of the original are erased.
import t from 'tap';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';
import { AuditLog } from '../../hub/audit/audit-log.js';
import { ensureCountryConsumer, ensureStreams } from '../../hub/broker/streams.js';
import { eraseCopies } from '../../hub/router/deletion.js';
import { Router, type RecipientDirectory, type RejectionEvent } from '../../hub/router/router.js';
import type { AuditRecord } from '../../protocol/audit.js';
import { encodeEnvelope, newUlid, type Envelope } from '../../protocol/envelope.js';
import { DELIVER_STREAM, SUBMIT_STREAM, subjects } from '../../protocol/subjects.js';
import { startNatsServerForTest, type TestLike } from '../helpers/nats-server.js';
import { waitFor } from '../helpers/wait.js';
import { readDelivered } from '../helpers/deliver.js';

const silent = pino({ level: 'silent' });

function message(over: Partial<Envelope> = {}): Envelope {
  return { v: 1, id: newUlid(), kind: 'message', from: 'FR', to: ['DE', 'IT'], priority: 'routine', created: new Date().toISOString(), body: 'the suspect lives at…', ...over };
}

function deletion(of: Envelope, over: Partial<Envelope> = {}): Envelope {
  return message({ kind: 'deletion', from: of.from, to: of.to, deletes: of.id, reason: 'DATA_INCORRECT', body: 'wrong person', ...over });
}

interface Hub {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  audit: AuditLog;
  active: Set<string>;
  suspended: Set<string>;
  routed: { from: string; to: readonly string[] }[];
  rejected: { from: string | undefined; code: string }[];
  /** Rejection events by country. */
  events: Record<string, RejectionEvent[]>;
  submit(env: Envelope): Promise<void>;
  deliverCounts(): Promise<Record<string, number>>;
  submitEmpty(): Promise<boolean>;
}

async function hub(t: TestLike): Promise<Hub> {
  const server = await startNatsServerForTest(t);
  const nc = await connect({ servers: server.url });
  t.teardown(() => nc.close());
  const jsm = await jetstreamManager(nc);
  await ensureStreams(jsm);
  const countries = ['FR', 'DE', 'IT', 'ES'];
  for (const cc of countries) await ensureCountryConsumer(jsm, cc);
  const audit = await AuditLog.open({ nc, log: silent });
  const active = new Set(countries);
  const suspended = new Set<string>();
  const directory: RecipientDirectory = { isActive: (cc) => active.has(cc), activeCountries: () => [...active], isSuspended: (cc) => suspended.has(cc) };
  const events: Hub['events'] = {};
  for (const cc of countries) {
    const list: RejectionEvent[] = (events[cc] = []);
    const sub = nc.subscribe(subjects.event(cc), { callback: (_err, msg) => void list.push(msg.json<RejectionEvent>()) });
    t.teardown(() => sub.unsubscribe());
  }
  const routed: Hub['routed'] = [];
  const rejected: Hub['rejected'] = [];
  const stats = { onRouted: (from: string, to: readonly string[]) => void routed.push({ from, to }), onRejected: (from: string | undefined, code: string) => void rejected.push({ from, code }) };
  const router = new Router({ nc, directory, log: silent, stats, audit, history: audit, retryDelayMs: 100 });
  t.teardown(() => router.stop());
  await router.start();
  const js = jetstream(nc);
  return {
    nc,
    js,
    jsm,
    audit,
    active,
    suspended,
    routed,
    rejected,
    events,
    submit: async (env) => void (await js.publish(subjects.submit(env.from), encodeEnvelope(env))),
    deliverCounts: async () => (await jsm.streams.info(DELIVER_STREAM, { subjects_filter: subjects.deliverAll })).state.subjects ?? {},
    submitEmpty: async () => (await jsm.streams.info(SUBMIT_STREAM)).state.messages === 0,
  };
}


/** The `routed` record of `id` (the router writes it before acking the submission). */
async function routedRecord(h: Hub, id: string): Promise<AuditRecord> {
  const record = (await h.audit.forMessage(id)).find((r) => r.event === 'routed');
  if (record === undefined) throw new Error(`no routed record for ${id}`);
  return record;
}

t.test('router deletion: the originator deletes FR→DE,IT: both get the deletion, the stored copies are erased, the audit keeps the fact', async (t) => {
  const h = await hub(t);
  const original = message();
  await h.submit(original);
  await waitFor('the original routed', () => h.routed.length === 1);
  const record = await routedRecord(h, original.id);
  t.match(record, { from: 'FR', to: ['DE', 'IT'] });
  t.equal(record.seqs?.length, 2, 'the routed record holds the DELIVER sequence of each copy');
  const seqs = record.seqs ?? [];
  for (const [i, cc] of ['DE', 'IT'].entries()) {
    const stored = await h.jsm.streams.getMessage(DELIVER_STREAM, { seq: seqs[i] ?? 0 });
    t.equal(stored?.header.get('Nats-Msg-Id'), `${original.id}.${cc}`, `seqs[${i}] is ${cc}'s copy`);
  }
  // IT fetched its copy before the deletion; DE had not yet.
  t.same((await readDelivered(h.js, 'IT')).map((m) => m.json<Envelope>().id), [original.id]);

  const del = deletion(original);
  await h.submit(del);
  await waitFor('the deletion routed', async () => h.routed.length === 2 && (await h.submitEmpty()));
  t.same(h.routed[1], { from: 'FR', to: ['DE', 'IT'] });
  for (const seq of seqs) t.equal(await h.jsm.streams.getMessage(DELIVER_STREAM, { seq }), null, `copy at ${seq} is gone from DELIVER`);
  t.same(await h.deliverCounts(), { 'ncb.deliver.DE': 1, 'ncb.deliver.IT': 1 }, 'only the deletion copies are left');
  const de = await readDelivered(h.js, 'DE');
  t.same(de.map((m) => m.json<Envelope>()), [del], 'DE gets the deletion and never the original');
  t.equal(de[0]?.headers?.get('Nats-Msg-Id'), `${del.id}.DE`);
  t.same((await readDelivered(h.js, 'IT')).map((m) => m.json<Envelope>()), [del], 'IT, which has the original, is told to purge it');

  const history = await h.audit.forMessage(original.id);
  t.match(history, [{ event: 'routed' }, { event: 'deleted', messageId: original.id, from: 'FR', to: ['DE', 'IT'], code: 'DATA_INCORRECT' }]);
  t.notOk('envelopeSha256' in (history[1] ?? {}), 'the deleted record names the fact, nothing of the content');
  const deletionRecord = await routedRecord(h, del.id);
  t.match(deletionRecord, { from: 'FR', to: ['DE', 'IT'] });
  t.equal(deletionRecord.seqs?.length, 2, 'the deletion itself is routed and recorded like any message');
  t.same(await h.audit.verify(), { ok: true, count: 3 }, 'routed, routed (the deletion), deleted: the chain holds');

  // The agent resends the deletion (lost ack): no second copy, nothing fails on copies already gone.
  await h.submit(del);
  await waitFor('the resent deletion routed', async () => h.routed.length === 3 && (await h.submitEmpty()));
  t.same(await h.deliverCounts(), { 'ncb.deliver.DE': 1, 'ncb.deliver.IT': 1 }, 'DELIVER dropped the duplicate copies');
  t.same(h.rejected, []);
  t.same(h.events['FR'], [], 'an accepted deletion sends no event');
});

t.test("router deletion: to '*' means the original's recipients; an inactive recipient gets nothing but its stored copy is erased", async (t) => {
  const h = await hub(t);
  const original = message({ to: ['DE', 'IT', 'ES'] });
  await h.submit(original);
  await waitFor('the original routed', () => h.routed.length === 1);
  h.active.delete('IT'); // suspended since
  h.active.add('JP'); // never had the original
  await h.submit(deletion(original, { to: '*' }));
  await waitFor('the deletion routed', async () => h.routed.length === 2 && (await h.submitEmpty()));
  t.same(h.routed[1], { from: 'FR', to: ['DE', 'ES'] });
  t.same(await h.deliverCounts(), { 'ncb.deliver.DE': 1, 'ncb.deliver.ES': 1 }, "IT's copy erased too: it will not get the original if it comes back");
  t.match(await h.audit.forMessage(original.id), [{ event: 'routed' }, { event: 'deleted', to: ['DE', 'ES'] }]);

  // A list is intersected with the original's recipients; nobody left still erases and is audited.
  const second = message({ to: ['IT'] });
  h.active.add('IT');
  await h.submit(second);
  await waitFor('the second routed', () => h.routed.length === 3);
  h.active.delete('IT');
  await h.submit(deletion(second, { to: ['IT', 'DE'] }));
  await waitFor('the second deletion handled', async () => h.routed.length === 4 && (await h.submitEmpty()));
  t.same(h.routed[3], { from: 'FR', to: [] }, 'nothing to deliver: IT is inactive and DE never had it');
  t.same(await h.deliverCounts(), { 'ncb.deliver.DE': 1, 'ncb.deliver.ES': 1 }, "IT's copy of the second message is erased");
  t.match(await h.audit.forMessage(second.id), [{ event: 'routed' }, { event: 'deleted', from: 'FR', to: [] }]);
  t.same(h.events['FR'], []);
});

t.test('router deletion: a suspended recipient gets the deletion in its kept backlog, not the original', async (t) => {
  const h = await hub(t);
  const original = message({ to: ['DE', 'IT'] });
  await h.submit(original);
  await waitFor('the original routed', () => h.routed.length === 1);
  h.active.delete('IT');
  h.suspended.add('IT'); // it may have fetched the original before its suspension
  await h.submit(deletion(original, { to: '*' }));
  await waitFor('the deletion routed', async () => h.routed.length === 2 && (await h.submitEmpty()));
  t.same(h.routed[1], { from: 'FR', to: ['DE', 'IT'] }, 'IT is told too');
  t.same(await h.deliverCounts(), { 'ncb.deliver.DE': 1, 'ncb.deliver.IT': 1 }, 'each holds the deletion only: the copies of the original are erased');
  t.match(await h.audit.forMessage(original.id), [{ event: 'routed' }, { event: 'deleted', to: ['DE', 'IT'] }]);
});

t.test('router deletion: only the originator may delete; an unknown id is refused; nothing is delivered or erased', async (t) => {
  const h = await hub(t);
  const original = message();
  await h.submit(original);
  await waitFor('the original routed', () => h.routed.length === 1);

  const byDe = deletion(original, { from: 'DE', to: ['IT'] });
  await h.submit(byDe);
  await waitFor('the refusal', () => (h.events['DE'] ?? []).length === 1);
  t.match(h.events['DE'], [{ type: 'rejected', id: byDe.id, code: 'ROUTER_DELETION_NOT_ORIGINATOR', problems: [/^deletes: message was not sent by DE; only its sender may delete it/] }]);
  // \b: a ULID is 26 letters and digits and may well contain "FR".
  t.notMatch(JSON.stringify(h.events['DE']), /\bFR\b/, 'the refusal does not say who the sender is');

  const unknown = deletion(message({ id: newUlid() }));
  await h.submit(unknown);
  await waitFor('the second refusal', () => (h.events['FR'] ?? []).length === 1);
  t.match(h.events['FR'], [{ type: 'rejected', id: unknown.id, code: 'ROUTER_DELETION_UNKNOWN_MESSAGE', problems: [/^deletes: no message with this id was routed/] }]);

  await waitFor('SUBMIT drained', () => h.submitEmpty());
  t.same(h.rejected, [
    { from: 'DE', code: 'ROUTER_DELETION_NOT_ORIGINATOR' },
    { from: 'FR', code: 'ROUTER_DELETION_UNKNOWN_MESSAGE' },
  ]);
  t.same(await h.deliverCounts(), { 'ncb.deliver.DE': 1, 'ncb.deliver.IT': 1 }, 'the original copies stay, no deletion was delivered');
  t.match(await h.audit.forMessage(byDe.id), [{ event: 'rejected', from: 'DE', code: 'ROUTER_DELETION_NOT_ORIGINATOR' }]);
  t.match(await h.audit.forMessage(unknown.id), [{ event: 'rejected', from: 'FR', code: 'ROUTER_DELETION_UNKNOWN_MESSAGE' }]);
  t.same((await h.audit.forMessage(original.id)).map((r) => r.event), ['routed'], 'no deleted record');
});

t.test('router deletion: a sequence holding another message is left alone; one already gone is fine', async (t) => {
  const h = await hub(t);
  const id = newUlid();
  const other = await h.js.publish(subjects.deliver('DE'), 'someone else', { msgID: `${newUlid()}.DE` });
  const mine = await h.js.publish(subjects.deliver('IT'), 'mine', { msgID: `${id}.IT` });
  const copies = [
    { to: 'DE', seq: other.seq },
    { to: 'IT', seq: mine.seq },
    { to: 'ES', seq: 999 },
  ];
  t.same(await eraseCopies(h.jsm, id, copies, silent), { erased: 1, gone: 1, foreign: 1 });
  t.same(await h.deliverCounts(), { 'ncb.deliver.DE': 1 }, 'only the copy of this message was erased');
  t.same(await eraseCopies(h.jsm, id, copies, silent), { erased: 0, gone: 2, foreign: 1 }, 'again: idempotent');
});

t.test('router deletion: deletions submitted right behind their originals, amid other traffic, find them routed', async (t) => {
  const h = await hub(t);
  const rounds = 10;
  const sends: Promise<void>[] = [];
  for (let i = 0; i < rounds; i++) {
    // Sent without waiting, in this order: SUBMIT holds each deletion right after its original,
    // and the router takes them in the same window, with other countries' traffic around them.
    for (let k = 0; k < 5; k++) sends.push(h.submit(message({ from: 'IT', to: ['ES'] })));
    const original = message({ to: ['DE', 'IT'], priority: 'routine' });
    sends.push(h.submit(original));
    sends.push(h.submit(deletion(original, { priority: 'urgent' })));
  }
  await Promise.all(sends);
  await waitFor('everything routed', async () => h.routed.length === rounds * 7 && (await h.submitEmpty()), 20_000);
  t.same(h.rejected, [], 'no deletion was refused as naming an unknown message');
  t.same(h.events['FR'], []);
  t.same(await h.deliverCounts(), { 'ncb.deliver.DE': rounds, 'ncb.deliver.IT': rounds, 'ncb.deliver.ES': rounds * 5 }, "DE and IT hold the deletions only: every original's copies were erased");
  t.same(await h.audit.verify(), { ok: true, count: rounds * 8 }, 'routed ×7 and deleted per round: the chain holds');
});

t.test('router: one envelope submitted twice at once is delivered once and recorded routed once', async (t) => {
  const h = await hub(t);
  const env = message({ to: ['DE'] });
  // No Nats-Msg-Id on SUBMIT here, so both reach the router, in the same window.
  await Promise.all([h.submit(env), h.submit(env)]);
  await waitFor('both handled', async () => (await h.submitEmpty()) && (await h.jsm.consumers.info(SUBMIT_STREAM, 'router')).num_ack_pending === 0);
  t.same(await h.deliverCounts(), { 'ncb.deliver.DE': 1 }, 'one copy');
  t.same((await h.audit.forMessage(env.id)).map((r) => r.event), ['routed'], 'one routed record: the replay found its copy stored');
  t.equal(h.routed.length, 1);
});
