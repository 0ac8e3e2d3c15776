// The agent's query client (node-agent/query/query-client.ts) against a real nats-server and the
// real database service: what an application's query turns into when the hub answers, refuses,
// is silent, is absent, or answers nonsense. Each case asserts the code the local API maps to a
// status (400, 403, 502, 503, 504).
import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { connect } from '@nats-io/transport-node';
import { pino } from 'pino';
import { DbService } from '../../hub/db/service.js';
import { DbStore } from '../../hub/db/store.js';
import { initHubState } from '../../hub/state-init.js';
import { HubRefusal, QueryClient } from '../../node-agent/query/query-client.js';
import { CertificateAuthority } from '../../pki/ca.js';
import { importP256PrivateKey } from '../../pki/keys.js';
import { QueryError, queryHttpStatus } from '../../protocol/query.js';
import { signEnvelope, verifyEnvelopeSignature } from '../../protocol/signature.js';
import { subjects } from '../../protocol/subjects.js';
import { issueIdentity } from '../helpers/identities.js';
import { startNatsServerForTest } from '../helpers/nats-server.js';
import { tempDir } from '../helpers/tmpdir.js';

t.setTimeout(120_000);

async function caIn(prefix: string): Promise<CertificateAuthority> {
  const dir = await tempDir(t, prefix);
  await initHubState({ state: dir, hubName: 'hub-1', sans: ['127.0.0.1'], operator: 'admin' });
  return CertificateAuthority.load(dir);
}
const ca = await caIn('ncbnet-db-agent-');
const server = await startNatsServerForTest(t);
const hubNc = await connect({ servers: server.url });
t.teardown(() => hubNc.close());
const service = new DbService({
  nc: hubNc,
  store: await DbStore.open({ nc: hubNc }),
  log: pino({ level: 'silent' }),
  verify: async (e) => void (await verifyEnvelopeSignature(e, { trustedRoots: [ca.root.toString('pem')], intermediates: [ca.issuer.toString('pem')] })),
});
service.start();
t.teardown(() => service.stop());

async function client(code: string, opts: { from?: CertificateAuthority; timeoutMs?: number; isConnected?: () => boolean } = {}): Promise<QueryClient> {
  const id = await issueIdentity(opts.from ?? ca, 'country', code);
  const leaf = id.cert.slice(0, id.cert.indexOf('-----END CERTIFICATE-----') + 25);
  const key = await importP256PrivateKey(id.key, code);
  const der = new Uint8Array(new X509Certificate(leaf).raw);
  const nc = await connect({ servers: server.url, inboxPrefix: subjects.inboxPrefix(code) });
  t.teardown(() => nc.close());
  return new QueryClient({ country: code, sign: (e) => signEnvelope(e, key, der), connection: () => nc, ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}), ...(opts.isConnected ? { isConnected: opts.isConnected } : {}) });
}
const fr = await client('FR');
const de = await client('DE');

async function failure(p: Promise<unknown>): Promise<{ code: string; status: number | undefined; isHub: boolean }> {
  try {
    await p;
  } catch (err) {
    if (err instanceof QueryError || err instanceof HubRefusal) return { code: err.code, status: queryHttpStatus(err.code), isHub: err instanceof HubRefusal };
    throw err;
  }
  throw new Error('resolved');
}

t.test('agent query: a put and a get go through, a miss is hit: false, the owner check comes back as 403', async (t) => {
  const put = await fr.query({ v: 1, service: 'firearms', op: 'put', record: { serial: 'x-99', make: 'Bérétta', status: 'stolen' } });
  t.match(put, { ok: true, result: { owner: 'FR', record: { serial: 'X99', make: 'BERETTA' } } });
  t.match(await de.query({ v: 1, service: 'firearms', op: 'get', key: { serial: 'X 99', make: 'beretta' } }), { ok: true, hit: true });
  t.match(await de.query({ v: 1, service: 'firearms', op: 'get', key: { serial: 'X100', make: 'beretta' } }), { ok: true, hit: false });
  t.same(await failure(de.query({ v: 1, service: 'firearms', op: 'delete', key: { serial: 'X99', make: 'Beretta' } })), { code: 'QUERY_NOT_OWNER', status: 403, isHub: false });
});

t.test('agent query: a malformed key is refused before anything is sent', async (t) => {
  let seen = 0;
  const sub = hubNc.subscribe('ncb.query.>', { callback: () => void seen++ });
  t.teardown(() => sub.unsubscribe());
  await hubNc.flush();
  t.same(await failure(fr.query({ v: 1, service: 'sltd', op: 'get', key: { number: '', country: 'FR' } })), { code: 'QUERY_BAD_KEY', status: 400, isHub: false });
  t.same(await failure(fr.query({ v: 1, service: 'dna', op: 'get', key: {} })), { code: 'QUERY_UNKNOWN_SERVICE', status: 404, isHub: false });
  await hubNc.flush();
  t.equal(seen, 0, 'nothing reached the broker');
});

t.test('agent query: a certificate of another network is refused by the hub, and that is the agent\'s fault (502)', async (t) => {
  const stranger = await client('IT', { from: await caIn('ncbnet-db-agent-other-') });
  const refused = await failure(stranger.query({ v: 1, service: 'sltd', op: 'get', key: { number: 'A1', country: 'IT' } }));
  t.same([refused.code, refused.isHub], ['ENVELOPE_BAD_CERTIFICATE', true]);
});

t.test('agent query: no connection (503), a silent hub (504), an absent one (503), nonsense (502)', async (t) => {
  const offline = await client('ES', { isConnected: () => false });
  t.same(await failure(offline.query({ v: 1, service: 'sltd', op: 'get', key: { number: 'A1', country: 'ES' } })), { code: 'QUERY_HUB_UNREACHABLE', status: 503, isHub: false });

  await service.stop();
  t.teardown(() => service.start());
  const absent = await failure(fr.query({ v: 1, service: 'sltd', op: 'get', key: { number: 'A1', country: 'FR' } }));
  t.same(absent, { code: 'QUERY_HUB_UNREACHABLE', status: 503, isHub: false }, 'no responders: no hub serves the database');

  const silent = hubNc.subscribe(subjects.query('smv'), { callback: () => undefined });
  const garbled = hubNc.subscribe(subjects.query('woa'), { callback: (_e, m) => void m.respond('<html>') });
  t.teardown(() => {
    silent.unsubscribe();
    garbled.unsubscribe();
  });
  await hubNc.flush();
  const slow = await client('PT', { timeoutMs: 300 });
  t.same(await failure(slow.query({ v: 1, service: 'smv', op: 'get', key: { vin: 'ABCDE' } })), { code: 'QUERY_TIMEOUT', status: 504, isHub: false });
  t.same(await failure(fr.query({ v: 1, service: 'woa', op: 'get', key: { objectId: 'A1' } })), { code: 'QUERY_BAD_ANSWER', status: 502, isHub: false });
});
