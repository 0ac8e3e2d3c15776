// The hub's database services (hub/db) against a real nats-server 2.9 with JetStream: real KV
// buckets, real queue group, envelopes signed with country keys issued by a throwaway CA and
// checked by the real verifier. The broker here has no permissions (test/e2e/query.test.ts runs
// the hub's own broker, where inbox prefixes are enforced); clients set their country's
// `inboxPrefix` as agents do.
import t from 'tap';
import { X509Certificate, createHash } from 'node:crypto';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { AuditLog } from '../../hub/audit/audit-log.js';
import { DbMetrics } from '../../hub/db/metrics.js';
import { seedRecords, syntheticName, syntheticRecord } from '../../hub/db/seed.js';
import { DbService } from '../../hub/db/service.js';
import { DbStore } from '../../hub/db/store.js';
import { initHubState } from '../../hub/state-init.js';
import { CertificateAuthority } from '../../pki/ca.js';
import { importP256PrivateKey } from '../../pki/keys.js';
import { newUlid, type Envelope } from '../../protocol/envelope.js';
import { kvKey, type QueryAnswer, type QueryRequestInput, type SltdRecord } from '../../protocol/query.js';
import { signEnvelope, verifyEnvelopeSignature } from '../../protocol/signature.js';
import { subjects } from '../../protocol/subjects.js';
import { issueIdentity } from '../helpers/identities.js';
import { startNatsServerForTest } from '../helpers/nats-server.js';
import { tempDir } from '../helpers/tmpdir.js';
import { parseExposition, valueOf } from '../helpers/prometheus-text.js';

t.setTimeout(120_000);

const dir = await tempDir(t, 'ncbnet-db-service-');
await initHubState({ state: dir, hubName: 'hub-1', sans: ['127.0.0.1'], operator: 'admin' });
const ca = await CertificateAuthority.load(dir);
const trust = { trustedRoots: [ca.root.toString('pem')], intermediates: [ca.issuer.toString('pem')] };

interface Country {
  code: string;
  key: CryptoKey;
  certDer: Uint8Array;
  nc: NatsConnection;
}

const server = await startNatsServerForTest(t);
const hubNc = await connect({ servers: server.url });
t.teardown(() => hubNc.close());

async function country(code: string): Promise<Country> {
  const id = await issueIdentity(ca, 'country', code);
  const leaf = id.cert.slice(0, id.cert.indexOf('-----END CERTIFICATE-----') + 25);
  const nc = await connect({ servers: server.url, inboxPrefix: subjects.inboxPrefix(code) });
  t.teardown(() => nc.close());
  return { code, key: await importP256PrivateKey(id.key, code), certDer: new Uint8Array(new X509Certificate(leaf).raw), nc };
}
const FR = await country('FR');
const DE = await country('DE');

const store = await DbStore.open({ nc: hubNc });
const register = new Registry();
/** Every service the file started (they all answer in the one queue group until stopped). */
const running: DbService[] = [];
async function startService(log = pino({ level: 'silent' }), metrics?: DbMetrics): Promise<DbService> {
  const service = new DbService({ nc: hubNc, store, log, ...(metrics ? { metrics } : {}), verify: async (e) => void (await verifyEnvelopeSignature(e, trust)) });
  service.start();
  running.push(service);
  t.teardown(() => service.stop());
  await hubNc.flush(); // the server has the queue subscription before anyone asks
  return service;
}
await startService(pino({ level: 'silent' }), new DbMetrics(register));

function envelopeFor(from: string, body: string, over: Partial<Envelope> = {}): Envelope {
  return { v: 1, id: newUlid(), kind: 'query', from, to: [from], priority: 'routine', created: new Date().toISOString(), body, ...over };
}

/** Signs as `signer` (default the sender) and asks on `signer`'s connection (its inbox). */
async function ask(sender: Country, request: QueryRequestInput, opts: { signer?: Country; via?: Country; over?: Partial<Envelope>; subject?: string } = {}): Promise<QueryAnswer> {
  const signer = opts.signer ?? sender;
  const env = await signEnvelope(envelopeFor(sender.code, JSON.stringify(request), opts.over), signer.key, signer.certDer);
  const nc = (opts.via ?? sender).nc;
  const msg = await nc.request(opts.subject ?? subjects.query(request.service), JSON.stringify(env), { timeout: 5000 });
  return msg.json<QueryAnswer>();
}

const passport: SltdRecord = { number: 'ab-123 456', country: 'FR', type: 'passport', status: 'stolen', reportedOn: '2026-11-01' };

t.test('db: put, get (key normalized), delete, and a miss is hit: false, not an error', async (t) => {
  const put = await ask(FR, { v: 1, service: 'sltd', op: 'put', record: passport });
  t.match(put, { ok: true, op: 'put', hit: false, result: { owner: 'FR', record: { number: 'AB123456', country: 'FR' } } });
  const got = await ask(DE, { v: 1, service: 'sltd', op: 'get', key: { number: 'AB 123-456', country: 'fr' } });
  t.match(got, { ok: true, hit: true, result: { owner: 'FR', service: 'sltd', record: { number: 'AB123456', status: 'stolen' } } });
  const other = await ask(DE, { v: 1, service: 'sltd', op: 'get', key: { number: 'AB123456', country: 'DE' } });
  t.same(other, { v: 1, ok: true, service: 'sltd', op: 'get', hit: false });
  const deleted = await ask(FR, { v: 1, service: 'sltd', op: 'delete', key: { number: 'AB123456', country: 'FR' } });
  t.match(deleted, { ok: true, hit: true });
  t.match(await ask(DE, { v: 1, service: 'sltd', op: 'get', key: { number: 'AB123456', country: 'FR' } }), { ok: true, hit: false });
  t.match(await ask(FR, { v: 1, service: 'sltd', op: 'delete', key: { number: 'AB123456', country: 'FR' } }), { ok: true, hit: false }, 'deleting nothing is a miss');
});

t.test('db: only the owner may update or delete a record (QUERY_NOT_OWNER)', async (t) => {
  const record = { vin: 'WVWZZZ1JZXW000001', make: 'Vw', colour: 'blue' };
  t.match(await ask(FR, { v: 1, service: 'smv', op: 'put', record }), { ok: true });
  t.match(await ask(DE, { v: 1, service: 'smv', op: 'put', record: { ...record, colour: 'red' } }), { ok: false, code: 'QUERY_NOT_OWNER' });
  t.match(await ask(DE, { v: 1, service: 'smv', op: 'delete', key: { vin: record.vin } }), { ok: false, code: 'QUERY_NOT_OWNER' });
  const after = await ask(DE, { v: 1, service: 'smv', op: 'get', key: { vin: 'wvwzzz1jzxw000001' } });
  t.match(after, { ok: true, hit: true, result: { owner: 'FR', record: { colour: 'blue' } } }, 'the refused writes changed nothing');
  const updated = await ask(FR, { v: 1, service: 'smv', op: 'put', record: { ...record, colour: 'green' } });
  t.match(updated, { ok: true, hit: true, result: { record: { colour: 'green' } } }, 'the owner may update');
});

t.test('db: nominal search by normalized name, order and accents ignored; renames move the index', async (t) => {
  const notice = newUlid();
  t.match(await ask(FR, { v: 1, service: 'nominal', op: 'put', record: { id: 'p-1', name: 'José Müller', birthDate: '1980-02-03', notices: [notice] } }), { ok: true });
  t.match(await ask(DE, { v: 1, service: 'nominal', op: 'put', record: { id: 'p-2', name: 'MULLER, Jose', notices: [] } }), { ok: true });
  const found = await ask(DE, { v: 1, service: 'nominal', op: 'search', name: 'muller  jose' });
  if (!found.ok) throw new Error(found.code);
  t.same(found.results?.map((r) => [r.record, r.owner]), [
    [{ id: 'P1', name: 'José Müller', birthDate: '1980-02-03', notices: [notice] }, 'FR'],
    [{ id: 'P2', name: 'MULLER, Jose', notices: [] }, 'DE'],
  ]);
  t.match(await ask(FR, { v: 1, service: 'nominal', op: 'put', record: { id: 'P1', name: 'Jose Mueller', notices: [] } }), { ok: true });
  const after = await ask(DE, { v: 1, service: 'nominal', op: 'search', name: 'Jose Muller' });
  t.same(after.ok && after.results?.map((r) => r.owner), ['DE'], 'the renamed person left the old name');
  t.match(await ask(DE, { v: 1, service: 'nominal', op: 'search', name: 'mueller jose' }), { ok: true, hit: true });
  t.match(await ask(DE, { v: 1, service: 'nominal', op: 'delete', key: { id: 'P2' } }), { ok: true, hit: true });
  t.match(await ask(DE, { v: 1, service: 'nominal', op: 'search', name: 'Jose Muller' }), { ok: true, hit: false, results: [] });
});

t.test('db: bad requests are refused with codes and every problem', async (t) => {
  t.match(await ask(FR, { v: 1, service: 'sltd', op: 'get', key: { number: '!!', country: 'ZZ' } }), {
    ok: false,
    code: 'QUERY_BAD_KEY',
    problems: [/^key\.number: .* \(got "!!"\)$/, /^key\.country: .* \(got "ZZ"\)$/],
  });
  t.match(await ask(FR, { v: 1, service: 'sltd', op: 'search', name: 'x' }), { ok: false, code: 'QUERY_UNSUPPORTED_OP' });
  t.match(await ask(FR, { v: 1, service: 'woa', op: 'put', record: { objectId: 'X1' } }), { ok: false, code: 'QUERY_BAD_RECORD', problems: ['record.title: required'] });
  t.match(await ask(FR, { v: 1, service: 'sltd', op: 'get', key: { number: 'A1', country: 'FR' } }, { subject: 'ncb.query.dna' }), { ok: false, code: 'QUERY_UNKNOWN_SERVICE' });
  t.match(await ask(FR, { v: 1, service: 'smv', op: 'get', key: { vin: 'ABCDE' } }, { subject: subjects.query('sltd') }), { ok: false, code: 'QUERY_INVALID' });
  const big = await ask(FR, { v: 1, service: 'nominal', op: 'search', name: 'x'.repeat(256) }, { over: { subject: 'y'.repeat(512) } });
  t.match(big, { ok: true }, 'a request under the limits is served');
  const huge = await FR.nc.request(subjects.query('sltd'), new Uint8Array(40 * 1024), { timeout: 5000 });
  t.match(huge.json(), { ok: false, code: 'QUERY_TOO_LARGE' });
  const unsigned = envelopeFor('FR', JSON.stringify({ v: 1, service: 'sltd', op: 'get', key: { number: 'A1', country: 'FR' } }));
  t.match((await FR.nc.request(subjects.query('sltd'), JSON.stringify(unsigned), { timeout: 5000 })).json(), { ok: false, code: 'ENVELOPE_UNSIGNED' });
  const stale = await ask(FR, { v: 1, service: 'sltd', op: 'get', key: { number: 'A1', country: 'FR' } }, { over: { created: new Date(Date.now() - 3_600_000).toISOString() } });
  t.match(stale, { ok: false, code: 'QUERY_STALE' });
});

t.test('db: a country cannot attribute a query to another, nor read the answer to another country\'s query', async (t) => {
  await ask(FR, { v: 1, service: 'sltd', op: 'put', record: { ...passport, number: 'FR0001' } });
  // DE signs with its own key an envelope that says it comes from FR, and listens on FR's inbox.
  const forged = await ask(FR, { v: 1, service: 'sltd', op: 'delete', key: { number: 'FR0001', country: 'FR' } }, { signer: DE });
  t.match(forged, { ok: false, code: 'ENVELOPE_SENDER_MISMATCH' });
  // DE replays an envelope FR really signed, with DE's inbox as the reply subject.
  const replayed = await ask(FR, { v: 1, service: 'sltd', op: 'get', key: { number: 'FR0001', country: 'FR' } }, { via: DE });
  t.match(replayed, { ok: false, code: 'QUERY_INBOX_MISMATCH' });
  t.notMatch(JSON.stringify(replayed), /FR0001.*stolen/, 'the refusal carries no record');
  t.match(await ask(DE, { v: 1, service: 'sltd', op: 'get', key: { number: 'FR0001', country: 'FR' } }), { ok: true, hit: true }, 'still there');
});

t.test('db: the queue group spreads requests over several services, each answered once', async (t) => {
  const seen: string[] = [];
  const spy = (name: string) => pino({ level: 'info' }, { write: (line: string) => void (line.includes('record stored') && seen.push(name)) });
  await startService(spy('b'));
  await startService(spy('c'));
  const answers = await Promise.all(Array.from({ length: 60 }, (_, i) => ask(FR, { v: 1, service: 'woa', op: 'put', record: { objectId: `Q${i}`, title: 'Still life' } })));
  t.equal(answers.filter((a) => a.ok).length, 60, 'every request answered');
  t.ok(seen.includes('b') && seen.includes('c'), `both extra members served some (${seen.length} of 60 went to them)`);
});

t.test('db: seeded records are found by key and by name, and the metrics count results', async (t) => {
  const summary = await seedRecords({ store, service: 'sltd', count: 2000, owner: 'IT', seed: 7, window: 200 });
  t.equal(summary.count, 2000);
  const r = syntheticRecord('sltd', 7, 1234) as SltdRecord;
  t.match(await ask(DE, { v: 1, service: 'sltd', op: 'get', key: { number: r.number, country: r.country } }), { ok: true, hit: true, result: { owner: 'IT', record: r } });
  await seedRecords({ store, service: 'nominal', count: 300, owner: 'IT', seed: 7 });
  const byName = await ask(DE, { v: 1, service: 'nominal', op: 'search', name: syntheticName(7, 42) });
  t.ok(byName.ok && byName.results?.some((p) => (p.record as { id: string }).id === 'P000000042'), 'person 42 found by name');
  const exp = parseExposition(await register.metrics());
  t.ok((valueOf(exp, 'ncbnet_db_queries_total', { service: 'sltd', result: 'hit' }) ?? 0) >= 2, 'sltd hits counted');
  t.ok((valueOf(exp, 'ncbnet_db_queries_total', { service: 'sltd', result: 'refused' }) ?? 0) >= 1, 'refusals counted');
  t.ok((valueOf(exp, 'ncbnet_db_query_duration_seconds_count', { service: 'sltd' }) ?? 0) >= 5, 'latency observed');
});

t.test('db: writes are audited by key hash (never the key), reads are not; an audit outage refuses the write', async (t) => {
  // From here on the services started above leave the queue group, so each test's own answers all.
  await Promise.all(running.map((s) => s.stop()));
  const audit = await AuditLog.open({ nc: hubNc, log: pino({ level: 'silent' }) });
  const audited = new DbService({ nc: hubNc, store, log: pino({ level: 'silent' }), audit, verify: async (e) => void (await verifyEnvelopeSignature(e, trust)) });
  audited.start();
  await hubNc.flush(); // the server has the subscription before the first request
  const record = { serial: 'sn-77 001', make: 'Heckler & Koch', model: 'P7', status: 'stolen' as const };
  t.match(await ask(FR, { v: 1, service: 'firearms', op: 'put', record }), { ok: true });
  const keySha256 = createHash('sha256').update(kvKey('firearms', { serial: 'SN77001', make: 'HECKLERKOCH' })).digest('hex');
  t.match((await audit.forCountry('FR')).filter((r) => r.event === 'db-stored'), [{ event: 'db-stored', country: 'FR', actor: 'FR', service: 'firearms', keySha256 }], 'the put is recorded');
  t.notMatch(JSON.stringify(await audit.forCountry('FR')), /SN77001|HECKLER|P7/, 'neither the key nor the record is in the audit log');
  await ask(DE, { v: 1, service: 'firearms', op: 'get', key: { serial: 'SN77001', make: 'Heckler & Koch' } });
  t.match(await ask(FR, { v: 1, service: 'firearms', op: 'delete', key: { serial: 'SN77001', make: 'Heckler & Koch' } }), { ok: true, hit: true });
  t.same((await audit.forCountry('FR')).map((r) => r.event), ['db-stored', 'db-deleted'], 'the delete is recorded, the lookup is not');
  await audited.stop();

  const failing = new DbService({
    nc: hubNc, store, log: pino({ level: 'silent' }),
    audit: { append: () => Promise.reject(new Error('AUDIT stream unavailable')) },
    verify: async (e) => void (await verifyEnvelopeSignature(e, trust)),
  });
  failing.start();
  await hubNc.flush();
  t.teardown(() => failing.stop());
  t.match(await ask(FR, { v: 1, service: 'firearms', op: 'put', record }), { ok: false, code: 'QUERY_UNAVAILABLE' }, 'an unaudited write is answered as failed');
});

t.test("db: a hit on another country's record asks for its owner to be told, when the service is configured so", async (t) => {
  const notifying = new DbService({ nc: hubNc, store, log: pino({ level: 'silent' }), notifyOwnerOnHit: new Set(['sltd'] as const), verify: async (e) => void (await verifyEnvelopeSignature(e, trust)) });
  notifying.start();
  await hubNc.flush();
  t.teardown(() => notifying.stop());
  const record = { ...passport, number: 'HN-000 001' };
  t.match(await ask(FR, { v: 1, service: 'sltd', op: 'put', record }), { ok: true });
  const key = { number: 'HN000001', country: 'FR' };
  t.match(await ask(DE, { v: 1, service: 'sltd', op: 'get', key }), { ok: true, hit: true, notifyOwner: true }, "DE found FR's record: FR is to be told");
  t.notOk((await ask(FR, { v: 1, service: 'sltd', op: 'get', key }) as { notifyOwner?: boolean }).notifyOwner, 'FR looking at its own record: nobody to tell');
  t.notOk((await ask(DE, { v: 1, service: 'sltd', op: 'get', key: { number: 'HN000002', country: 'FR' } }) as { notifyOwner?: boolean }).notifyOwner, 'a miss: nobody to tell');
  await ask(FR, { v: 1, service: 'smv', op: 'put', record: { vin: 'WVWZZZ1JZXW000777', make: 'Vw', colour: 'grey' } });
  t.notOk((await ask(DE, { v: 1, service: 'smv', op: 'get', key: { vin: 'WVWZZZ1JZXW000777' } }) as { notifyOwner?: boolean }).notifyOwner, 'smv is not configured to notify');
});
