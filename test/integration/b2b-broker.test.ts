// B2B national databases against the real nats-server (2.9.10) through BrokerSupervisor, with the
// permissions rendered from a sharing policy: FR publishes `vehicles` to DE only. The real
// responder (FR) and client (DE, IT) sign with certificates of a throwaway CA. DE gets a hit with
// only the fields the policy gives it; IT is refused by the broker itself (publish permission),
// and cannot listen to FR's requests either; FR keeps a notice of every enquiry. A reload with a
// wider policy lets IT in, with IT's own fields.
import { X509Certificate } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';
import t from 'tap';
import { renderBrokerConfig } from '../../hub/broker/config-render.js';
import { BrokerSupervisor } from '../../hub/broker/supervisor.js';
import { B2bClient } from '../../node-agent/b2b/client.js';
import { EnquiryJournal } from '../../node-agent/b2b/enquiry-journal.js';
import { JsonLinesDatabase } from '../../node-agent/b2b/national-db.js';
import { B2bResponder } from '../../node-agent/b2b/responder.js';
import { pemCertificates } from '../../node-agent/signing.js';
import { initCa } from '../../pki/ca-init.js';
import { CertificateAuthority } from '../../pki/ca.js';
import { importP256PrivateKey } from '../../pki/keys.js';
import { b2bGrants, B2bError, type B2bGrant, type B2bPolicy } from '../../protocol/b2b.js';
import { newUlid, type Envelope } from '../../protocol/envelope.js';
import { signEnvelope, verifyEnvelopeSignature } from '../../protocol/signature.js';
import { subjects } from '../../protocol/subjects.js';
import { issueIdentity, type TlsIdentity } from '../helpers/identities.js';
import { tempDir } from '../helpers/tmpdir.js';
import { waitFor } from '../helpers/wait.js';

const state = await tempDir(t, 'ncbnet-b2b-broker-');
await initCa(join(state, 'ca'));
const ca = await CertificateAuthority.load(join(state, 'ca'));
const rootPem = ca.root.toString('pem');
const issuerPem = ca.issuer.toString('pem');
const hub = await issueIdentity(ca, 'hub', 'hub-1', { ips: ['127.0.0.1'], dns: ['localhost'] });
const ids = { FR: await issueIdentity(ca, 'country', 'FR'), DE: await issueIdentity(ca, 'country', 'DE'), IT: await issueIdentity(ca, 'country', 'IT') };
type Cc = keyof typeof ids;
const tlsDir = join(state, 'tls');
await mkdir(tlsDir, { mode: 0o700 });
const tls = { certFile: join(tlsDir, 'hub.crt'), keyFile: join(tlsDir, 'hub.key'), caFile: join(tlsDir, 'root.crt') };
await writeFile(tls.certFile, hub.cert);
await writeFile(tls.keyFile, hub.key, { mode: 0o600 });
await writeFile(tls.caFile, rootPem);

const logs: string[] = [];
const log = pino({ level: 'debug' }, { write: (line: string) => void logs.push(line) });

const policy: B2bPolicy = { db: 'vehicles', allow: ['DE'], fields: { default: ['vin', 'status'], perCountry: { DE: ['vin', 'status', 'make'] } }, notifyEnquiries: true };
// `forged`: granted to DE, but served by nobody FR runs; the hub's own user answers it below.
let grants: B2bGrant[] = b2bGrants([{ code: 'FR', b2b: [policy, { ...policy, db: 'forged' }] }], ['FR', 'DE', 'IT']);
const dir = join(state, 'broker');
const sup = new BrokerSupervisor({
  dir,
  logger: log.child({ component: 'broker' }),
  render: () =>
    renderBrokerConfig({
      serverName: 'test-b2b',
      host: '127.0.0.1',
      port: 0,
      monitorPort: 0,
      portsFileDir: dir,
      jetstream: { storeDir: join(dir, 'jetstream'), maxMemoryBytes: 64 * 1024 * 1024, maxFileBytes: 64 * 1024 * 1024 },
      tls,
      hubUser: 'CN=hub-1,OU=hub,O=ncbnet',
      countries: ['FR', 'DE', 'IT'],
      maxPayloadBytes: 1024 * 1024,
      b2b: grants,
    }),
});
await sup.start();
t.teardown(async () => {
  if (!t.passing()) t.comment(`nats-server output:\n${sup.output()}\nlogs:\n${logs.join('')}`);
  await sup.stop();
});

const connections: NatsConnection[] = [];
t.teardown(() => Promise.all(connections.map((nc) => nc.close().catch(() => undefined))));
async function connectAs(cc: Cc): Promise<NatsConnection> {
  const id: TlsIdentity = ids[cc];
  const nc = await connect({ servers: sup.url, tls: { cert: id.cert, key: id.key, ca: rootPem }, timeout: 3000, inboxPrefix: subjects.inboxPrefix(cc) });
  connections.push(nc);
  return nc;
}
async function signer(cc: Cc): Promise<(e: Envelope) => Promise<Envelope>> {
  const key = await importP256PrivateKey(ids[cc].key, `${cc} key`);
  const der = new Uint8Array(new X509Certificate(pemCertificates(ids[cc].cert)[0] ?? '').raw);
  return (e) => signEnvelope(e, key, der);
}
const verify = async (e: Envelope): Promise<void> => {
  await verifyEnvelopeSignature(e, { trustedRoots: [rootPem], intermediates: [issuerPem] });
};

// FR's national database: a JSON-lines export, one field the policy never shares (the keeper).
const recordsFile = join(state, 'vehicles.jsonl');
const stolen = { vin: 'VF1AB000000000001', status: 'stolen', make: 'Renault', plate: 'AB-123-CD', keeper: 'Jean Dupont', notes: 'secret' };
await writeFile(recordsFile, `${JSON.stringify(stolen)}\n${JSON.stringify({ vin: 'VF1AB000000000002', status: 'recovered', keeper: 'X' })}\n`);
const journal = await EnquiryJournal.open({ path: join(state, 'enquiries.jsonl'), log });
let served = [{ policy, source: await JsonLinesDatabase.open(recordsFile, 'vin') }];
const frNc = await connectAs('FR');
const makeResponder = () => new B2bResponder({ country: 'FR', databases: served, verify, sign: signFr, notify: (n) => journal.add(n), log });
const signFr = await signer('FR');
let responder = makeResponder();
responder.attach(frNc);
t.teardown(() => responder.stop());

async function client(cc: Cc): Promise<B2bClient> {
  const nc = await connectAs(cc);
  return new B2bClient({ country: cc, sign: await signer(cc), verify, connection: () => nc, timeoutMs: 3000 });
}
async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'answered';
  } catch (err) {
    return err instanceof B2bError ? err.code : `uncoded: ${String(err)}`;
  }
}

const de = await client('DE');
const it = await client('IT');
// FR's subscription reaches the server asynchronously; the first answer proves it is in place.
await waitFor('FR serves vehicles', async () => (await codeOf(de.query('FR', 'vehicles', 'VF1AB000000000002'))) === 'answered', 10_000, 100);

t.test('b2b broker: DE, allowed, gets a hit with only the fields the policy gives DE', async (t) => {
  const hit = await de.query('FR', 'vehicles', 'vf1ab-0000 0000 0001');
  t.same(hit, { v: 1, ok: true, owner: 'FR', db: 'vehicles', key: 'VF1AB000000000001', hit: true, record: { vin: stolen.vin, status: 'stolen', make: 'Renault' } });
  const miss = await de.query('FR', 'vehicles', 'VF1AB999999999999');
  t.same([miss.hit, 'record' in miss], [false, false], 'no hit is an answer, not an error');
  t.equal(await codeOf(de.query('FR', 'vehicles', '#?')), 'B2B_BAD_KEY', 'a bad key never leaves the agent');
  t.equal(await codeOf(de.query('FR', 'boats', 'X1')), 'B2B_NOT_ALLOWED', 'a database DE was not granted is a broker refusal too');
});

t.test('b2b broker: IT, not allowed, is refused by the broker itself; it cannot listen either', async (t) => {
  const started = performance.now();
  t.equal(await codeOf(it.query('FR', 'vehicles', stolen.vin)), 'B2B_NOT_ALLOWED');
  t.ok(performance.now() - started < 2500, 'refused at once, not after the request timeout');
  // FR records an enquiry after answering it; a DE enquiry made after IT's, once recorded, shows
  // FR has handled everything that reached it by then.
  const barrier = 'VF1AB000000000777';
  await de.query('FR', 'vehicles', barrier);
  await waitFor('the barrier enquiry recorded', () => journal.list().some((n) => n.key === barrier), 5_000, 20);
  t.notOk(journal.list().some((n) => n.from === 'IT'), 'the request never reached FR');
  const itNc = connections.at(-1) as NatsConnection;
  const errors: string[] = [];
  void (async () => {
    for await (const s of itNc.status()) if (s.type === 'error') errors.push(String(s.error));
  })();
  itNc.subscribe(subjects.b2b('FR', 'vehicles'), { queue: 'ncbnet-b2b-FR' });
  await waitFor('the subscription refusal', () => errors.some((e) => /Permissions Violation for Subscription to "ncb\.b2b\.FR\.vehicles"/.test(e)), 5_000);
  t.pass('IT cannot subscribe to FR\'s requests');
  // DE may ask but not answer in FR's place: a subscription to FR's database is refused to it too.
  const deNc = await connectAs('DE');
  const deErrors: string[] = [];
  void (async () => {
    for await (const s of deNc.status()) if (s.type === 'error') deErrors.push(String(s.error));
  })();
  deNc.subscribe(subjects.b2b('FR', 'vehicles'));
  await waitFor('the subscription refusal', () => deErrors.some((e) => /Permissions Violation for Subscription/.test(e)), 5_000);
  t.pass('DE cannot serve FR\'s database');
});

t.test('b2b broker: FR keeps a notice of every enquiry (who, when, key, hit)', async (t) => {
  const notices = journal.list({ from: 'DE' });
  t.ok(notices.some((n) => n.key === 'VF1AB000000000001' && n.hit && n.db === 'vehicles'), 'the hit');
  t.ok(notices.some((n) => n.key === 'VF1AB999999999999' && !n.hit), 'the miss');
  t.notOk(journal.list().some((n) => n.from === 'IT'), 'nothing from IT, who was refused before FR heard of it');
  for (const n of notices) t.ok(Date.now() - Date.parse(n.at) < 60_000, `notice ${n.id} dated`);
});

t.test('b2b broker: a forged or replayed request is refused by FR, and nothing leaks', async (t) => {
  const deNc = await connectAs('DE');
  const signDe = await signer('DE');
  const ask = async (envelope: Envelope): Promise<Record<string, unknown>> => JSON.parse((await deNc.request(subjects.b2b('FR', 'vehicles'), JSON.stringify(envelope), { timeout: 3000 })).string()) as Record<string, unknown>;
  const request = (from: string, body: unknown): Envelope => ({ v: 1, id: newUlid(), kind: 'query', from, to: ['FR'], priority: 'routine', created: new Date().toISOString(), body: JSON.stringify(body) });
  // DE signs a request that says it comes from IT: the answer would go to DE's inbox, not IT's.
  const forged = await ask(await signDe(request('IT', { v: 1, db: 'vehicles', key: stolen.vin })));
  t.match(forged, { ok: false, code: 'B2B_INBOX_MISMATCH' });
  // Unsigned, "from DE": refused on the signature.
  const unsigned = await ask(request('DE', { v: 1, db: 'vehicles', key: stolen.vin }));
  t.match(unsigned, { ok: false, code: 'ENVELOPE_UNSIGNED' });
  for (const answer of [forged, unsigned]) t.notMatch(JSON.stringify(answer), /Renault|Dupont|secret|stolen/, 'a refusal says nothing of the record');
});

t.test("b2b broker: an answer that is not FR's signed reply to this request is refused (B2B_BAD_ANSWER)", async (t) => {
  // The broker is the hub's: its user may subscribe anywhere. Without FR's signature it cannot
  // pass a record off as FR's.
  const hubNc = await connect({ servers: sup.url, tls: { cert: hub.cert, key: hub.key, ca: rootPem }, timeout: 3000 });
  connections.push(hubNc);
  const signDe = await signer('DE');
  let mode: 'plain' | 'wrong-signer' | 'other-request' = 'plain';
  const fake = { v: 1, ok: true, owner: 'FR', db: 'forged', key: 'X1', hit: true, record: { planted: true } };
  hubNc.subscribe(subjects.b2b('FR', 'forged'), {
    callback: (_err, msg) => {
      void (async () => {
        if (mode === 'plain') return msg.respond(JSON.stringify(fake));
        const asked = JSON.parse(msg.string()) as Envelope;
        const from = mode === 'wrong-signer' ? 'DE' : 'FR';
        const reply: Envelope = { v: 1, id: newUlid(), kind: 'reply', from, to: [asked.from], priority: 'routine', created: new Date().toISOString(), inReplyTo: mode === 'other-request' ? newUlid() : asked.id, body: JSON.stringify(fake) };
        msg.respond(JSON.stringify(mode === 'wrong-signer' ? await signDe(reply) : await signFr(reply)));
      })();
    },
  });
  await hubNc.flush();
  t.equal(await codeOf(de.query('FR', 'forged', 'X1')), 'B2B_BAD_ANSWER', 'an unsigned hit');
  mode = 'wrong-signer';
  t.equal(await codeOf(de.query('FR', 'forged', 'X1')), 'B2B_BAD_ANSWER', "a reply signed by another country than the owner");
  mode = 'other-request';
  t.equal(await codeOf(de.query('FR', 'forged', 'X1')), 'B2B_BAD_ANSWER', "FR's genuine signature on a reply to another request (a replay)");
});

t.test('b2b broker: a wider policy, rendered and reloaded, lets IT in with its own fields', async (t) => {
  const wider: B2bPolicy = { ...policy, allow: ['DE', 'IT'], fields: { default: ['vin', 'status'], perCountry: { DE: ['vin', 'status', 'make'] } } };
  grants = b2bGrants([{ code: 'FR', b2b: [wider] }], ['FR', 'DE', 'IT']);
  await sup.reload();
  await responder.stop();
  served = [{ policy: wider, source: served[0]?.source as JsonLinesDatabase }];
  responder = makeResponder();
  responder.attach(frNc);
  const it2 = await client('IT');
  let answer: unknown;
  await waitFor('IT answered', async () => {
    try {
      answer = await it2.query('FR', 'vehicles', stolen.vin);
      return true;
    } catch {
      return false;
    }
  }, 10_000, 100);
  t.same(answer, { v: 1, ok: true, owner: 'FR', db: 'vehicles', key: stolen.vin, hit: true, record: { vin: stolen.vin, status: 'stolen' } }, 'IT sees the default fields only');
});
