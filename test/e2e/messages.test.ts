// The I-24/7 message model end to end, with nothing mocked: the real hub daemon (nats-server with
// per-country permissions, router with signature checks, hash-chained audit, CA, member
// directory) and four real agent daemons (FR, DE, IT, BR), enrolled with single-use tokens and
// driven through their local APIs as an NCB application would. Loopback only, no tunnels
// (test/e2e/agent.test.ts covers tunnels and firewalls in network namespaces). The test reads the
// hub's JetStream store and streams itself, as the hub's operator could, to prove what the hub
// cannot see and where copies went.
import t from 'tap';
import { randomBytes, X509Certificate } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { agentPaths } from '../../node-agent/state.js';
import { importP256PrivateKey } from '../../pki/keys.js';
import { newUlid, parseEnvelope, type Envelope } from '../../protocol/envelope.js';
import { signEnvelope } from '../../protocol/signature.js';
import { DELIVER_STREAM, subjects } from '../../protocol/subjects.js';
import { startAgentProcess } from '../helpers/daemon-process.js';
import { waitFor } from '../helpers/wait.js';
import { startLoopbackNetwork } from '../helpers/loopback-network.js';
import { localApiCall } from '../helpers/local-api-call.js';

interface Json {
  [k: string]: unknown;
}

t.setTimeout(300_000);
const root = t;

const COUNTRIES = ['FR', 'DE', 'IT', 'BR'] as const;
type Cc = (typeof COUNTRIES)[number];

// Enrollment as an operator and an NCB do it (the CLIs wrap these same calls; agent.test.ts runs them).
const { hubState, hub, rootPem, states, agents, tokens, admin } = await startLoopbackNetwork(t, {
  prefix: 'messages',
  countries: COUNTRIES,
  agentConfig: () => ({ metrics: { port: 0 }, heartbeatIntervalMs: 1000 }),
  waitReady: false,
});

/** One call to a country's local API, as its NCB application makes it. */
async function local(cc: Cc, method: string, path: string, body?: unknown): Promise<{ status: number; json: Json }> {
  const answer = await localApiCall(`${agents[cc].endpoints.localApiUrl}${path}`, tokens[cc], method, body);
  return { status: answer.status, json: answer.json as Json };
}

async function send(cc: Cc, draft: Json): Promise<string> {
  const answer = await local(cc, 'POST', '/v1/messages', draft);
  if (answer.status !== 202) throw new Error(`${cc} send refused: ${answer.status} ${JSON.stringify(answer.json)}`);
  return answer.json['id'] as string;
}

interface Item {
  id: string;
  envelope: Envelope;
  plaintext?: string;
}

async function inbox(cc: Cc): Promise<Item[]> {
  return (await local(cc, 'GET', '/v1/inbox?limit=1000')).json['items'] as Item[];
}

async function receipts(cc: Cc, id: string): Promise<Record<string, { state: string; reason?: string }>> {
  const status = await local(cc, 'GET', `/v1/messages/${id}`);
  return (status.json['recipients'] ?? {}) as Record<string, { state: string; reason?: string }>;
}

async function auditOf(id: string): Promise<Json[]> {
  return (await admin('GET', `/audit/messages/${id}`)).json as Json[];
}

for (const cc of COUNTRIES) await waitFor(`${cc} connected`, async () => (await local(cc, 'GET', '/readyz')).status === 200, 60_000, 200);

// The hub operator's own view of the broker: the hub identity, as the daemon connects.
const hubNc: NatsConnection = await connect({
  servers: hub.endpoints.natsUrl,
  tls: { ca: rootPem, cert: await readFile(join(hubState, 'hub', 'hub.crt'), 'utf8'), key: await readFile(join(hubState, 'hub', 'hub.key'), 'utf8') },
});
t.teardown(() => hubNc.close());
const jsm = await jetstreamManager(hubNc);

/** Every envelope stored for `cc` in DELIVER, read with a throwaway ordered consumer. */
async function storedFor(cc: Cc): Promise<Envelope[]> {
  const subject = subjects.deliver(cc);
  const info = await jsm.streams.info(DELIVER_STREAM, { subjects_filter: subject });
  const count = info.state.subjects?.[subject] ?? 0;
  if (count === 0) return [];
  // One subject as a string: a list would need nats-server 2.10's filter_subjects.
  const consumer = await jetstream(hubNc).consumers.get(DELIVER_STREAM, { filter_subjects: subject, deliver_policy: DeliverPolicy.All });
  const out: Envelope[] = [];
  for await (const m of await consumer.fetch({ max_messages: count, expires: 5_000 })) {
    out.push(parseEnvelope(m.data));
    if (out.length === count) break;
  }
  return out;
}

/** Every file under the hub's JetStream store, concatenated: what a disk image of the hub holds. */
async function hubStoreBytes(): Promise<Buffer> {
  const root = join(hubState, 'broker', 'jetstream');
  const files = (await readdir(root, { recursive: true })).map((f) => join(root, f));
  const chunks: Buffer[] = [];
  for (const f of files) if ((await stat(f)).isFile()) chunks.push(await readFile(f));
  return Buffer.concat(chunks);
}

t.test('a Red Notice from FR reaches every active country signed, and each sends its receipts back', async (t) => {
  const id = await send('FR', { kind: 'notice', notice: { colour: 'red' }, to: '*', priority: 'urgent', subject: 'Wanted: J. Doe', body: 'Locate and provisionally arrest for extradition.' });
  for (const cc of ['DE', 'IT', 'BR'] as const) {
    await waitFor(`${cc} has the notice`, async () => (await inbox(cc)).some((i) => i.id === id), 20_000, 100);
    const item = (await inbox(cc)).find((i) => i.id === id) as Item;
    t.match(item.envelope, { from: 'FR', kind: 'notice', notice: { colour: 'red' }, to: '*', sig: String, sigCert: String }, `${cc} got it signed`);
    t.equal(new X509Certificate(Buffer.from(item.envelope.sigCert as string, 'base64')).subject.includes('CN=FR'), true, 'signed with FR certificate');
  }
  t.same((await inbox('FR')).filter((i) => i.id === id), [], 'not back to the sender');
  await waitFor('a delivered receipt from each', async () => Object.keys(await receipts('FR', id)).length === 3, 20_000, 100);
  t.match(await receipts('FR', id), { DE: { state: 'delivered' }, IT: { state: 'delivered' }, BR: { state: 'delivered' } });
  t.equal((await local('DE', 'POST', `/v1/inbox/${id}/ack`)).status, 200);
  await waitFor('DE read receipt', async () => (await receipts('FR', id))['DE']?.state === 'read', 20_000, 100);
  t.match(await auditOf(id), [{ event: 'routed', from: 'FR', to: ['BR', 'DE', 'IT'].sort() }]);
});

t.test('a broadcast skips a suspended country; a country whose agent was away gets it when it returns', async (t) => {
  t.equal((await admin('POST', '/countries/IT/suspend', { reason: 'maintenance of the NCB' })).status, 200);
  t.equal(await agents.BR.stop(), 0, "BR's agent stops cleanly (SIGTERM)");
  const id = await send('FR', { kind: 'notice', notice: { colour: 'yellow' }, to: '*', body: 'Missing person.' });
  await waitFor('DE has it', async () => (await inbox('DE')).some((i) => i.id === id), 20_000, 100);
  t.match(await auditOf(id), [{ event: 'routed', to: ['BR', 'DE'] }], 'expanded at routing time to the active countries');
  t.same((await storedFor('IT')).filter((e) => e.id === id), [], 'nothing stored for the suspended IT');
  // Owned by the file's test, not this subtest: a subtest's teardown would stop it at its end.
  agents.BR = await startAgentProcess(root, states.BR, { localApi: { host: '127.0.0.1', port: 0 }, metrics: { port: 0 }, heartbeatIntervalMs: 1000 });
  await waitFor('BR gets it on its return', async () => (await inbox('BR')).some((i) => i.id === id), 30_000, 200);
  t.equal((await admin('POST', '/countries/IT/resume')).status, 200);
  await waitFor('IT back', async () => (await local('IT', 'GET', '/readyz')).status === 200, 30_000, 200);
  t.same((await inbox('IT')).filter((i) => i.id === id), [], 'and IT does not get it after its return either');
});

t.test('a diffusion FR → DE, IT reaches only DE and IT; nothing for BR is ever stored', async (t) => {
  const id = await send('FR', { kind: 'diffusion', to: ['DE', 'IT'], subject: 'Diffusion', body: 'Request for information, DE and IT only.' });
  for (const cc of ['DE', 'IT'] as const) await waitFor(`${cc} has it`, async () => (await inbox(cc)).some((i) => i.id === id), 20_000, 100);
  await waitFor('both receipts', async () => Object.keys(await receipts('FR', id)).length === 2, 20_000, 100);
  t.same(Object.keys(await receipts('FR', id)).sort(), ['DE', 'IT']);
  const forBr = await storedFor('BR');
  t.ok(forBr.length > 0, 'BR does have copies of other messages on its subject (the notice)');
  t.same(forBr.filter((e) => e.id === id), [], "no copy on BR's consumer subject");
  t.same((await inbox('BR')).filter((i) => i.id === id), [], 'nor in its inbox');
  t.same((await storedFor('DE')).filter((e) => e.id === id).length, 1, 'one copy for DE');
});

t.test('a confidential message is ciphertext at the hub and plaintext at the recipient only', async (t) => {
  const marker = `CONFIDENTIAL-${randomBytes(8).toString('hex')}`;
  const refused = await local('FR', 'POST', '/v1/messages', { kind: 'message', to: ['DE'], handling: 'confidential', subject: 'leaks', body: marker });
  t.match(refused, { status: 400, json: { code: 'RELAY_BAD_DRAFT', problems: [/^subject: not allowed when handling is confidential/] } }, 'a subject the hub could read is refused');
  const unknown = await local('FR', 'POST', '/v1/messages', { kind: 'message', to: ['ES'], handling: 'restricted', body: marker });
  t.match(unknown, { status: 422, json: { code: 'RELAY_RECIPIENT_KEY_UNKNOWN', problems: [/^to\[0\]: no valid certificate/] } }, 'a country with no certificate cannot be encrypted to');

  const id = await send('FR', { kind: 'message', to: ['DE'], handling: 'confidential', body: marker });
  await waitFor('DE has it', async () => (await inbox('DE')).some((i) => i.id === id), 20_000, 100);
  const item = (await inbox('DE')).find((i) => i.id === id) as Item;
  t.equal(item.plaintext, marker, 'DE reads the plaintext');
  t.equal(item.envelope.body, undefined, 'the envelope carries no plaintext body');
  t.match(item.envelope, { handling: 'confidential', encrypted: String, sig: String });

  const stored = (await storedFor('DE')).find((e) => e.id === id);
  t.ok(stored?.encrypted, "the hub's copy is the CMS ciphertext");
  const store = await hubStoreBytes();
  t.ok(store.includes(Buffer.from(id)), 'the JetStream store on disk does hold the message (its id is readable)');
  t.notOk(store.includes(Buffer.from(marker)), 'but never its content');
  await waitFor('DE delivered receipt', async () => (await receipts('FR', id))['DE']?.state === 'delivered', 20_000, 100);
});

/** FR's signing identity, as a misbehaving FR application with FR's own key could use it. */
async function frSigner(): Promise<{ sign: (e: Envelope) => Promise<Envelope>; nc: NatsConnection }> {
  const paths = agentPaths(states.FR);
  const [certPem, keyPem, chain] = await Promise.all([readFile(paths.countryCert, 'utf8'), readFile(paths.countryKey, 'utf8'), readFile(paths.chain, 'utf8')]);
  const key = await importP256PrivateKey(keyPem, paths.countryKey);
  const der = new Uint8Array(new X509Certificate(certPem).raw);
  const nc = await connect({ servers: hub.endpoints.natsUrl, tls: { ca: rootPem, cert: certPem + chain, key: keyPem }, inboxPrefix: subjects.inboxPrefix('FR') });
  return { sign: (e) => signEnvelope(e, key, der), nc };
}

t.test('a tampered envelope and an impersonation are rejected by the router, audited, and never delivered', async (t) => {
  const fr = await frSigner();
  t.teardown(() => fr.nc.close());
  const js = jetstream(fr.nc);
  const base: Envelope = { v: 1, id: newUlid(), kind: 'message', from: 'FR', to: ['DE'], priority: 'routine', handling: 'public', created: new Date().toISOString(), body: 'original text' };
  const signed = await fr.sign(base);
  const bytes = Buffer.from(JSON.stringify(signed));
  const at = bytes.indexOf('original text');
  bytes[at] = 'O'.charCodeAt(0); // one byte changed after signing
  await js.publish(subjects.submit('FR'), bytes, { msgID: signed.id });

  const impersonated = await fr.sign({ ...base, id: newUlid(), from: 'FR' });
  const asDe = { ...impersonated, from: 'DE' };
  await js.publish(subjects.submit('FR'), JSON.stringify(asDe), { msgID: asDe.id });

  await waitFor('both decisions audited', async () => (await auditOf(signed.id)).length > 0 && (await auditOf(asDe.id)).length > 0, 20_000, 100);
  t.match(await auditOf(signed.id), [{ event: 'rejected', from: 'FR', code: 'ENVELOPE_BAD_SIGNATURE' }]);
  t.match(await auditOf(asDe.id), [{ event: 'rejected', from: 'FR', code: 'ROUTER_SENDER_MISMATCH' }]);
  const forDe = await storedFor('DE');
  t.same(forDe.filter((e) => e.id === signed.id || e.id === asDe.id), [], 'nothing of either reached DE');
});

t.test('deletion on the originator’s order purges every recipient copy, one receipt each; the audit keeps the fact', async (t) => {
  const marker = `WRONG-DATA-${randomBytes(6).toString('hex')}`;
  const id = await send('FR', { kind: 'diffusion', to: ['DE', 'IT'], body: `Wanted: ${marker}` });
  await waitFor('both delivered', async () => Object.keys(await receipts('FR', id)).length === 2, 20_000, 100);
  const byItaly = await local('IT', 'POST', '/v1/messages', { kind: 'deletion', to: ['DE'], deletes: id, reason: 'NOT_MINE', body: 'delete it' });
  t.equal(byItaly.status, 202, 'IT may ask (the router decides)');

  const deletion = await send('FR', { kind: 'deletion', to: ['DE', 'IT'], deletes: id, reason: 'CCF_ORDER', body: 'Deleted on the order of the Commission for the Control of Files.' });
  await waitFor('a deleted receipt from each', async () => {
    const r = await receipts('FR', id);
    return r['DE']?.state === 'deleted' && r['IT']?.state === 'deleted';
  }, 20_000, 100);
  for (const cc of ['DE', 'IT'] as const) {
    const items = await inbox(cc);
    t.same(items.filter((i) => i.id === id), [], `${cc} no longer lists the message`);
    t.match(items.find((i) => i.id === deletion), { envelope: { kind: 'deletion', deletes: id, reason: 'CCF_ORDER' } }, `${cc} is told of the deletion`);
    const journal = await readFile(join(states[cc], 'relay', 'inbox.jsonl'), 'utf8');
    t.notOk(journal.includes(marker), `${cc}'s inbox file no longer holds the content`);
  }
  t.same(Object.keys(await receipts('FR', id)).sort(), ['DE', 'IT'], 'one receipt entry per recipient');
  const forDe = await storedFor('DE');
  t.same(forDe.filter((e) => e.id === id), [], "the hub's own copies were erased from DELIVER");
  const trail = await auditOf(id);
  t.match(trail, [{ event: 'routed' }, { event: 'deleted', from: 'FR' }], 'the audit keeps the fact');
  t.notOk(JSON.stringify(trail).includes(marker), 'not the content');
  const refused = (await local('IT', 'GET', `/v1/messages/${byItaly.json['id'] as string}`)).json;
  t.match(refused, { state: 'rejected', rejection: { code: 'ROUTER_DELETION_NOT_ORIGINATOR' } }, "IT's attempt on FR's message was refused by the hub");
});

t.test('the audit chain of this whole run verifies; a forged record is named by its seq', async (t) => {
  const verdict = (await admin('GET', '/audit/verify')).json as { ok: boolean; count?: number; seq?: number };
  t.match(verdict, { ok: true });
  t.ok((verdict.count ?? 0) >= 8, `every decision recorded (${verdict.count ?? 0} records)`);
  const membership = (await admin('GET', '/audit/countries/FR')).json as Json[];
  t.match(membership, [
    { event: 'country-added', actor: 'operator:admin' },
    { event: 'token-created', actor: 'operator:admin' },
    { event: 'enrolled', actor: 'country:FR' },
  ], "FR's membership is on record too");
  const last = await jsm.streams.getMessage('AUDIT', { last_by_subj: 'ncb.audit' });
  const record = last?.json<Json>() as Json;
  const forged = { ...record, seq: (record['seq'] as number) + 1, prev: record['hash'], from: 'BR' };
  const ack = await jetstream(hubNc).publish('ncb.audit', JSON.stringify(forged));
  t.match((await admin('GET', '/audit/verify')).json, { ok: false, seq: ack.seq, reason: /bad hash/ });
});
