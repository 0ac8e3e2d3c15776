// The agent's relay against the real hub broker (nats-server 2.9.10 under BrokerSupervisor, with
// per-country permissions and a throwaway CA) and the real Router: FR and DE each run a Relay
// connected as their own country (NL joins for broadcasts). Proves end-to-end delivery exactly
// once, through broker outages, relay restarts, a crash between inbox write and ack, and router
// rejections; that receipts (delivered, read) come back into the sender's status; and that the
// concurrent delivery loop keeps its promises: a burst arrives exactly once, the inbox keeps
// DELIVER's order even when checks finish out of order, and a pull holding a duplicate, or an
// original and its deletion, is handled as one at a time would.
// Every wait polls with a deadline; nothing sleeps for a fixed time.
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';
import t from 'tap';
import { renderBrokerConfig } from '../../hub/broker/config-render.js';
import { ensureCountryConsumer, ensureStreams } from '../../hub/broker/streams.js';
import { BrokerSupervisor } from '../../hub/broker/supervisor.js';
import { Router, type RecipientDirectory } from '../../hub/router/router.js';
import { Inbox } from '../../node-agent/relay/inbox.js';
import { Relay } from '../../node-agent/relay/relay.js';
import type { MessageDraft } from '../../node-agent/relay/types.js';
import { initCa } from '../../pki/ca-init.js';
import { CertificateAuthority } from '../../pki/ca.js';
import { createCsr } from '../../pki/csr-create.js';
import { generateP256, privateKeyToPem } from '../../pki/keys.js';
import { newUlid, parseEnvelope } from '../../protocol/envelope.js';
import type { IdentityKind } from '../../protocol/identity.js';
import { DELIVER_STREAM, deliverConsumer, subjects } from '../../protocol/subjects.js';
import { tempDir } from '../helpers/tmpdir.js';
import { waitFor } from '../helpers/wait.js';

interface Identity {
  cert: string;
  key: string;
}

async function issue(ca: CertificateAuthority, kind: IdentityKind, name: string, ips: string[] = [], dns: string[] = []): Promise<Identity> {
  const keys = await generateP256();
  const issued = await ca.issue({ kind, name, csr: await createCsr(kind, name, keys), ipAddresses: ips, dnsNames: dns });
  return { cert: issued.pem + ca.issuer.toString('pem') + '\n', key: await privateKeyToPem(keys.privateKey) };
}

const state = await tempDir(t, 'ncbnet-agent-relay-');
await initCa(join(state, 'ca'));
const ca = await CertificateAuthority.load(join(state, 'ca'));
const rootPem = ca.root.toString('pem');
const ids = {
  hub: await issue(ca, 'hub', 'hub-1', ['127.0.0.1'], ['localhost']),
  FR: await issue(ca, 'country', 'FR'),
  DE: await issue(ca, 'country', 'DE'),
  NL: await issue(ca, 'country', 'NL'),
};
const tlsDir = join(state, 'tls');
await mkdir(tlsDir, { mode: 0o700 });
const tls = { certFile: join(tlsDir, 'hub.crt'), keyFile: join(tlsDir, 'hub.key'), caFile: join(tlsDir, 'root.crt') };
await writeFile(tls.certFile, ids.hub.cert);
await writeFile(tls.keyFile, ids.hub.key, { mode: 0o600 });
await writeFile(tls.caFile, rootPem);

const logs: string[] = [];
const log = pino({ level: 'debug' }, { write: (line: string) => void logs.push(line) });
const brokerDir = join(state, 'broker');
const ports = { client: 0, monitor: 0 };

/** A supervisor on the one broker dir (a stopped supervisor cannot start again, so a restart is a new one). */
function newSupervisor(): BrokerSupervisor {
  return new BrokerSupervisor({
    dir: brokerDir,
    logger: log.child({ component: 'broker' }),
    backoff: { initialMs: 50, maxMs: 500 },
    render: () =>
      renderBrokerConfig({
        serverName: 'relay-test',
        host: '127.0.0.1',
        port: ports.client,
        monitorPort: ports.monitor,
        portsFileDir: brokerDir,
        jetstream: { storeDir: join(brokerDir, 'jetstream'), maxMemoryBytes: 64 * 1024 * 1024, maxFileBytes: 256 * 1024 * 1024 },
        tls,
        hubUser: 'CN=hub-1,OU=hub,O=ncbnet',
        countries: ['FR', 'DE', 'NL'],
        maxPayloadBytes: 1024 * 1024,
      }),
  });
}

let sup = newSupervisor();
await sup.start();
// Keep the ports so a restarted server comes back where the clients reconnect.
ports.client = Number(new URL(sup.url).port);
ports.monitor = Number(new URL(sup.monitorUrl).port);
const url = sup.url;

const connections: NatsConnection[] = [];
const relays: Relay[] = [];

/** Connects as the daemon will: TLS with the identity, the country's inbox prefix, reconnect forever. */
async function connectAs(id: Identity, country?: string): Promise<NatsConnection> {
  const nc = await connect({
    servers: url,
    tls: { cert: id.cert, key: id.key, ca: rootPem },
    timeout: 3_000,
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 50,
    ...(country === undefined ? {} : { inboxPrefix: subjects.inboxPrefix(country) }),
  });
  connections.push(nc);
  return nc;
}

const hubNc = await connectAs(ids.hub);
const jsm: JetStreamManager = await jetstreamManager(hubNc);
await ensureStreams(jsm);
for (const cc of ['FR', 'DE', 'NL']) await ensureCountryConsumer(jsm, cc);
const active = new Set(['FR', 'DE', 'NL']);
const directory: RecipientDirectory = { isActive: (cc) => active.has(cc), activeCountries: () => [...active] };
const router = new Router({ nc: hubNc, directory, log, retryDelayMs: 100 });
await router.start();

const stateDirs = { FR: join(state, 'agent-FR'), DE: join(state, 'agent-DE'), NL: join(state, 'agent-NL') };
/** Times each id was announced by DE's relay (onInbox), across DE relay restarts. */
const announced = new Map<string, number>();

async function openRelay(country: 'FR' | 'DE' | 'NL', attach = true): Promise<Relay> {
  const relay = await Relay.open({ country, stateDir: stateDirs[country], log, publishTimeoutMs: 2_000, retry: { initialMs: 50, maxMs: 500 } });
  relays.push(relay);
  if (country === 'DE') relay.onInbox((item) => announced.set(item.id, (announced.get(item.id) ?? 0) + 1));
  if (attach) await relay.attach(await connectAs(ids[country], country));
  return relay;
}

async function stopRelay(relay: Relay): Promise<void> {
  await relay.stop();
}

t.teardown(async () => {
  // RELAY_TEST_LOGS=FILE keeps every log line of the run for reading afterwards.
  const keep = process.env['RELAY_TEST_LOGS'];
  if (keep !== undefined) await writeFile(keep, logs.join(''));
  if (!t.passing()) t.comment(`nats-server output:\n${sup.output()}\nlogs:\n${logs.slice(-300).join('')}`);
  for (const relay of relays) await relay.stop();
  await router.stop();
  await Promise.all(connections.map((nc) => nc.close().catch(() => undefined)));
  await sup.stop();
});

let fr = await openRelay('FR');
let de = await openRelay('DE');

// Built as the local API receives it (JSON). The cast is needed because types.ts's MessageDraft
// has `kind: never` (its TypeBox union is built with .map(), which loses the literal types).
const draft = (body: string, over: Record<string, unknown> = {}): MessageDraft => ({ kind: 'message', to: ['DE'], body, ...over }) as unknown as MessageDraft;

/** Copies for `cc` not yet acked by its relay, as the hub sees them (DE's by default). */
async function deBacklog(cc = 'DE'): Promise<number> {
  const info = await jsm.consumers.info(DELIVER_STREAM, deliverConsumer(cc));
  return info.num_pending + info.num_ack_pending;
}

/** The ids among `ids` in DELIVER for `cc`, in stream order (read backwards from the end until all are found). */
async function deliverOrder(cc: string, ids: ReadonlySet<string>): Promise<string[]> {
  const { state: s } = await jsm.streams.info(DELIVER_STREAM);
  const out: string[] = [];
  for (let seq = s.last_seq; seq >= s.first_seq && out.length < ids.size; seq--) {
    const m = await jsm.streams.getMessage(DELIVER_STREAM, { seq }).catch(() => null);
    if (m === null || m.subject !== subjects.deliver(cc)) continue;
    const id = parseEnvelope(m.data).id;
    if (ids.has(id) && !out.includes(id)) out.unshift(id);
  }
  return out;
}

function inboxCount(relay: Relay, id: string): number {
  return relay.inbox({ includeAcked: true }).filter((i) => i.id === id).length;
}

t.test('relay: FR submit reaches DE inbox exactly once; the app acks it', async (t) => {
  const started = Date.now();
  const status = await fr.submit(draft('hello DE'));
  t.match(status, { state: 'queued', to: ['DE'] });
  await waitFor('DE to receive', () => inboxCount(de, status.id) === 1);
  t.comment(`FR submit → DE inbox in ${Date.now() - started} ms`);
  await waitFor('FR status submitted', () => fr.status(status.id)?.state === 'submitted');
  await waitFor('DE backlog empty', async () => (await deBacklog()) === 0);
  t.equal(fr.outboxDepth(), 0);
  t.ok(fr.isConnected() && de.isConnected());
  const [item] = de.inbox();
  t.match(item?.envelope, { id: status.id, from: 'FR', to: ['DE'], priority: 'routine', body: 'hello DE', v: 1 });
  t.equal(announced.get(status.id), 1, 'announced once');
  await de.ack(status.id);
  t.equal(de.inbox().length, 0, 'acked items leave the pending list');
});

t.test('relay: 20 messages submitted while the broker is down are all delivered once, in order', async (t) => {
  await sup.stop();
  await waitFor('FR to see the outage', () => !fr.isConnected());
  const sent: string[] = [];
  for (let i = 0; i < 20; i++) {
    const status = await fr.submit(draft(`offline ${i}`));
    t.equal(status.state, 'queued');
    sent.push(status.id);
  }
  t.equal(fr.outboxDepth(), 20, 'all 20 wait on disk');
  t.same((await outboxOnDisk(join(stateDirs.FR, 'relay', 'outbox'))).sort(), [...sent].sort(), 'all 20 in the outbox segments on disk');
  sup = newSupervisor();
  const restarted = Date.now();
  await sup.start();
  await waitFor('all 20 in DE inbox', () => sent.every((id) => inboxCount(de, id) === 1), 30_000);
  t.comment(`20 messages delivered ${Date.now() - restarted} ms after the broker restart`);
  await waitFor('FR outbox drained', () => fr.outboxDepth() === 0);
  await waitFor('DE backlog empty', async () => (await deBacklog()) === 0);
  t.same(sent.map((id) => fr.status(id)?.state), sent.map(() => 'submitted'));
  t.same(sent.map((id) => announced.get(id)), sent.map(() => 1), 'each announced exactly once');
  t.same([...de.inbox().map((i) => i.id)].sort(), sent, 'DE has all of them');
  // The router may route one country's submissions concurrently; DE keeps the order DELIVER gave.
  t.same(de.inbox().map((i) => i.id), await deliverOrder('DE', new Set(sent)), 'DE sees them in DELIVER order');
  for (const id of sent) await de.ack(id);
});

t.test('relay: DE stopped while messages arrive gets them once when it starts again', async (t) => {
  await stopRelay(de);
  const sent: string[] = [];
  for (let i = 0; i < 5; i++) sent.push((await fr.submit(draft(`while DE is away ${i}`))).id);
  await waitFor('5 copies waiting for DE in DELIVER', async () => (await deBacklog()) === 5);
  t.same(sent.map((id) => inboxCount(de, id)), [0, 0, 0, 0, 0], 'nothing reached the stopped relay');
  de = await openRelay('DE');
  await waitFor('DE to receive the backlog', () => sent.every((id) => inboxCount(de, id) === 1));
  await waitFor('DE backlog empty', async () => (await deBacklog()) === 0);
  t.same(sent.map((id) => announced.get(id)), [1, 1, 1, 1, 1]);
  t.equal(de.inbox({ includeAcked: true }).length, 1 + 20 + 5, 'everything received so far survived the restart, once');
});

t.test('relay: a crash after the inbox write but before the ack does not duplicate', async (t) => {
  await stopRelay(de);
  const { id } = await fr.submit(draft('crash window'));
  await waitFor('the copy waiting in DELIVER', async () => (await deBacklog()) === 1);
  // What the crashed run did: the copy is in the inbox (fsynced), the ack never reached the hub.
  const stored = await jsm.streams.getMessage(DELIVER_STREAM, { last_by_subj: subjects.deliver('DE') });
  const envelope = parseEnvelope(stored?.data ?? new Uint8Array());
  t.equal(envelope.id, id);
  const crashed = await Inbox.open({ dir: join(stateDirs.DE, 'relay'), log });
  t.equal(await crashed.put(envelope), 'stored');
  announced.set(id, 1);
  de = await openRelay('DE');
  await waitFor('the redelivery acked', async () => (await deBacklog()) === 0);
  t.equal(inboxCount(de, id), 1, 'one copy in the inbox');
  t.equal(announced.get(id), 1, 'not announced again to the app');
  t.match(logs.join(''), new RegExp(`"id":"${id}".*"outcome":"duplicate".*duplicate delivery dropped`));
});

t.test('relay: a submission to an inactive country ends as rejected with the router code', async (t) => {
  const { id } = await fr.submit(draft('to nobody', { to: ['IT'] }));
  await waitFor('the rejection', () => fr.status(id)?.state === 'rejected');
  t.match(fr.status(id), { state: 'rejected', to: ['IT'], rejection: { code: 'ROUTER_UNKNOWN_RECIPIENT', problems: ['to[0]: not an active member country (got "IT")'] } });
  t.type(fr.status(id)?.rejectedAt, 'string');
});

t.test('relay: odd events on ncb.event.FR are logged and ignored; the next rejection still counts', async (t) => {
  const before = logs.length;
  for (const event of ['not json', '{"type":"policy","hash":"x"}', '{"type":"rejected","id":5}', '{"type":"rejected","id":null,"code":"ENVELOPE_MALFORMED_JSON","problems":[]}', `{"type":"rejected","id":"${newUlid()}","code":"X","problems":[]}`]) {
    hubNc.publish(subjects.event('FR'), event);
  }
  const { id } = await fr.submit(draft('to Spain', { to: ['DE', 'ES'] }));
  await waitFor('the rejection', () => fr.status(id)?.state === 'rejected');
  t.match(fr.status(id)?.rejection, { code: 'ROUTER_UNKNOWN_RECIPIENT', problems: ['to[1]: not an active member country (got "ES")'] });
  const msgs = logs.slice(before).map((l) => (JSON.parse(l) as { msg: string }).msg);
  for (const msg of ['event is not JSON, ignored', 'event ignored', 'malformed rejection event ignored', 'the hub rejected a submission without a readable id', 'rejection for an unknown message ignored']) {
    t.ok(msgs.includes(msg), msg);
  }
});

t.test('relay: a malformed delivery is terminated and the next one still arrives', async (t) => {
  const hubJs = jetstream(hubNc);
  await hubJs.publish(subjects.deliver('DE'), '{"v":1, not json');
  const { id } = await fr.submit(draft('after the bad one'));
  await waitFor('the good one', () => inboxCount(de, id) === 1);
  await waitFor('nothing left for DE', async () => (await deBacklog()) === 0);
  t.match(logs.join(''), /"code":"ENVELOPE_MALFORMED_JSON".*malformed delivery terminated/);
});

t.test('relay: outbox files survive a relay restart and drain once it is attached', async (t) => {
  await stopRelay(fr);
  const offline = await openRelay('FR', false);
  const queued: string[] = [];
  for (let i = 0; i < 3; i++) queued.push((await offline.submit(draft(`restart ${i}`))).id);
  t.notOk(offline.isConnected());
  // "Crash": the relay object is dropped without stop(); a new one finds the files.
  fr = await openRelay('FR', false);
  t.equal(fr.outboxDepth(), 3);
  t.same(fr.outboxIds(), queued);
  t.same(queued.map((id) => fr.status(id)?.state), ['queued', 'queued', 'queued']);
  await fr.attach(await connectAs(ids.FR, 'FR'));
  await waitFor('drained and delivered', () => fr.outboxDepth() === 0 && queued.every((id) => inboxCount(de, id) === 1));
  t.same(queued.map((id) => fr.status(id)?.state), ['submitted', 'submitted', 'submitted']);
  t.same(await outboxOnDisk(join(stateDirs.FR, 'relay', 'outbox')), [], 'every line on disk retired in removed.log');
  await offline.stop();
  await t.rejects(offline.submit(draft('too late')), { code: 'RELAY_STOPPED' });
});

/** Log records (parsed) with message `msg` and the given fields. */
function logged(msg: string, fields: Record<string, unknown>): Record<string, unknown>[] {
  return logs
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((r) => r['msg'] === msg && Object.entries(fields).every(([k, v]) => r[k] === v));
}

t.test('receipts: DE delivered, then read once its app acks, land in FR status; never in FR inbox', async (t) => {
  const started = Date.now();
  const { id } = await fr.submit(draft('tell me when you have read it'));
  await waitFor('FR to hear DE delivered it', () => fr.status(id)?.recipients?.['DE'] !== undefined);
  t.comment(`FR submit → DE delivered receipt in FR status in ${Date.now() - started} ms`);
  t.match(fr.status(id), { state: 'submitted', to: ['DE'], recipients: { DE: { state: 'delivered', at: String } } });
  t.equal(inboxCount(de, id), 1);
  await de.ack(id);
  await waitFor('FR to hear DE read it', () => fr.status(id)?.recipients?.['DE']?.state === 'read');
  t.same(Object.keys(fr.status(id)?.recipients ?? {}), ['DE'], 'one entry, for the one recipient');
  await de.ack(id); // a second ack by the app sends nothing more
  await waitFor('DE receipts drained', () => de.outboxDepth() === 0);
  t.equal(logged('receipt queued', { country: 'DE', of: id, state: 'read' }).length, 1, 'one read receipt');
  // A stray late `delivered` receipt (as a redelivery would be) does not take FR back from read.
  const late = { v: 1, id: newUlid(), kind: 'receipt', from: 'DE', to: ['FR'], priority: 'routine', handling: 'public', created: new Date().toISOString(), receipt: { of: id, status: 'delivered' } };
  await jetstream(hubNc).publish(subjects.deliver('FR'), JSON.stringify(late));
  await waitFor('FR to take it', () => logged('receipt recorded', { country: 'FR', of: id, state: 'delivered' }).length === 2);
  await waitFor('FR backlog empty', async () => (await deBacklog('FR')) === 0);
  t.equal(fr.status(id)?.recipients?.['DE']?.state, 'read', 'read stays read');
  // Every message so far has sent FR receipts; none of them is an inbox item.
  t.same(fr.inbox({ includeAcked: true }), [], 'receipts never reach the inbox');
  t.ok(logged('receipt recorded', { country: 'FR' }).length > 30, 'while FR did record many receipts');
  t.same(logged('receipt queued', { country: 'FR' }), [], 'and sent none back: never a receipt about a receipt');
});

t.test('receipts: a message to DE and NL, and a broadcast, get one entry per recipient', async (t) => {
  const nl = await openRelay('NL');
  const listed = await fr.submit(draft('to two', { to: ['DE', 'NL'] }));
  const everyone = await fr.submit(draft('to all', { kind: 'notice', notice: { colour: 'yellow' }, to: '*' }));
  for (const { id } of [listed, everyone]) {
    await waitFor(`both delivered receipts for ${id}`, () => fr.status(id)?.recipients?.['DE'] !== undefined && fr.status(id)?.recipients?.['NL'] !== undefined);
    t.same(Object.keys(fr.status(id)?.recipients ?? {}).sort(), ['DE', 'NL'], 'one entry per recipient, not the sender');
    t.match(fr.status(id)?.recipients, { DE: { state: 'delivered' }, NL: { state: 'delivered' } });
  }
  await nl.ack(everyone.id);
  await waitFor('NL read the broadcast', () => fr.status(everyone.id)?.recipients?.['NL']?.state === 'read');
  t.equal(fr.status(everyone.id)?.recipients?.['DE']?.state, 'delivered', 'DE has not read it yet');
  await nl.stop();
});

t.test('receipts: a duplicate delivery produces no second delivered receipt', async (t) => {
  const { id } = await fr.submit(draft('say it once'));
  await waitFor('delivered receipt at FR', () => fr.status(id)?.recipients?.['DE']?.state === 'delivered');
  // The same envelope again on DE's subject, as a lost ack or a replayed consumer would bring it.
  const stored = await jsm.streams.getMessage(DELIVER_STREAM, { last_by_subj: subjects.deliver('DE') });
  t.equal(parseEnvelope(stored?.data ?? new Uint8Array()).id, id);
  await jetstream(hubNc).publish(subjects.deliver('DE'), stored?.data ?? new Uint8Array());
  await waitFor('the duplicate dropped', () => logged('duplicate delivery dropped', { country: 'DE', id }).length === 1);
  await waitFor('DE backlog empty', async () => (await deBacklog()) === 0);
  await waitFor('DE outbox drained', () => de.outboxDepth() === 0);
  t.equal(logged('receipt queued', { country: 'DE', of: id, state: 'delivered' }).length, 1, 'one delivered receipt');
  t.equal(logged('receipt recorded', { country: 'FR', of: id }).length, 1, 'FR got one receipt');
  t.equal(inboxCount(de, id), 1);
});

t.test('relay: 100 messages submitted at once all arrive exactly once, in DELIVER order, each with one delivered receipt', async (t) => {
  const sent = (await Promise.all(Array.from({ length: 100 }, (_, i) => fr.submit(draft(`burst ${i}`))))).map((s) => s.id);
  t.equal(new Set(sent).size, 100, 'distinct ids');
  await waitFor('all 100 at DE', () => sent.every((id) => inboxCount(de, id) === 1), 30_000);
  await waitFor('every delivered receipt back at FR', () => sent.every((id) => fr.status(id)?.recipients?.['DE']?.state === 'delivered'), 30_000);
  await waitFor('DE backlog empty', async () => (await deBacklog()) === 0);
  await waitFor('DE outbox drained', () => de.outboxDepth() === 0);
  t.same(sent.map((id) => announced.get(id)), sent.map(() => 1), 'each announced once');
  const inBurst = new Set(sent);
  // The router may route one country's submissions concurrently; DE keeps the order DELIVER gave.
  t.same(de.inbox().map((i) => i.id).filter((id) => inBurst.has(id)), await deliverOrder('DE', inBurst), 'DE inbox in DELIVER order');
  const receipts = logged('receipt queued', { country: 'DE', state: 'delivered' }).filter((r) => inBurst.has(r['of'] as string));
  t.equal(receipts.length, 100, 'one delivered receipt each');
  const envelopes = new Set(receipts.map((r) => r['id']));
  t.ok(envelopes.size < 100, `batched: the 100 receipts left in ${envelopes.size} envelopes`);
  for (const id of sent) await de.ack(id);
});

t.test('relay: one pull with a duplicate stores it once; an original and its deletion in one pull purge in order', async (t) => {
  await stopRelay(de);
  const envelope = (over: Record<string, unknown>) => ({ v: 1, id: newUlid(), kind: 'message', from: 'FR', to: ['DE'], priority: 'routine', created: new Date().toISOString(), body: 'x', ...over });
  const twice = envelope({ body: 'sent twice' });
  const original = envelope({ body: 'to be deleted' });
  const deletion = envelope({ kind: 'deletion', deletes: original.id, reason: 'CCF_ORDER', body: 'deleted' });
  const hubJs = jetstream(hubNc);
  // Hub copies without Nats-Msg-Id, so DELIVER keeps both copies of `twice` (as a replay would).
  for (const e of [twice, twice, original, deletion]) await hubJs.publish(subjects.deliver('DE'), JSON.stringify(e));
  await waitFor('4 copies waiting for DE', async () => (await deBacklog()) === 4);
  de = await openRelay('DE');
  await waitFor('DE backlog empty', async () => (await deBacklog()) === 0);
  t.equal(inboxCount(de, twice.id), 1, 'stored once');
  t.equal(announced.get(twice.id), 1, 'announced once');
  t.equal(logged('duplicate delivery dropped', { country: 'DE', id: twice.id }).length, 1);
  t.equal(logged('receipt queued', { country: 'DE', of: twice.id, state: 'delivered' }).length, 1, 'one delivered receipt');
  t.equal(inboxCount(de, original.id), 0, 'the original is gone');
  t.equal(inboxCount(de, deletion.id), 1, 'the deletion is kept for the app');
  t.equal(logged('message deleted on its originator\'s order', { country: 'DE', id: deletion.id, outcome: 'purged' }).length, 1, 'purged after it was stored');
  t.equal(logged('receipt queued', { country: 'DE', of: original.id, state: 'deleted' }).length, 1, 'one deleted receipt');
});

t.test('relay: the inbox keeps DELIVER order when the checks of a pull finish out of order', async (t) => {
  // A signature check that is slow for some envelopes (a long chain, a busy CPU): later deliveries
  // are checked meanwhile, but may not be stored ahead of the slow one.
  const verify = async (e: { body?: string }): Promise<void> => {
    if (e.body?.startsWith('slow') === true) await new Promise((resolve) => setTimeout(resolve, 100));
  };
  const nl = await Relay.open({ country: 'NL', stateDir: stateDirs.NL, log, publishTimeoutMs: 2_000, retry: { initialMs: 50, maxMs: 500 }, verify });
  relays.push(nl);
  const envelope = (body: string) => ({ v: 1, id: newUlid(), kind: 'message', from: 'FR', to: ['NL'], priority: 'routine', created: new Date().toISOString(), body });
  const sent = [envelope('slow first'), envelope('fast second'), envelope('slow third'), envelope('fast fourth')];
  const hubJs = jetstream(hubNc);
  for (const e of sent) await hubJs.publish(subjects.deliver('NL'), JSON.stringify(e));
  await nl.attach(await connectAs(ids.NL, 'NL'));
  await waitFor('all four in NL inbox', () => sent.every((e) => inboxCount(nl, e.id) === 1));
  const ids4 = new Set(sent.map((e) => e.id));
  t.same(nl.inbox().map((i) => i.id).filter((id) => ids4.has(id)), sent.map((e) => e.id), 'stored in DELIVER order');
  await waitFor('NL backlog empty', async () => (await deBacklog('NL')) === 0);
  await nl.stop();
});

/**
 * Ids the outbox holds on disk, read straight from its files (see node-agent/relay/outbox.ts):
 * lines of the `seg-*.log` segments minus those named by a `{seg, off}` record in `removed.log`.
 */
async function outboxOnDisk(dir: string): Promise<string[]> {
  const removed = new Set(
    (await readFile(join(dir, 'removed.log'), 'utf8').catch(() => ''))
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => {
        const r = JSON.parse(l) as { seg: number; off: number };
        return `${r.seg}:${r.off}`;
      }),
  );
  const ids: string[] = [];
  for (const name of (await readdir(dir)).filter((n) => /^seg-\d{16}\.log$/.test(n)).sort()) {
    const seg = Number(name.slice(4, 20));
    const data = await readFile(join(dir, name));
    for (let off = 0, end = data.indexOf(0x0a); end !== -1; off = end + 1, end = data.indexOf(0x0a, off)) {
      if (!removed.has(`${seg}:${off}`)) ids.push(parseEnvelope(data.subarray(off, end)).id);
    }
  }
  return ids;
}
