// Database queries end to end, nothing mocked: the real hub daemon (its own nats-server with
// per-country permissions, the database services in their queue group, signature checks against
// its CA) and two real agent daemons (FR, DE) enrolled with tokens, driven through their local
// APIs and the `ncbnet-agent query` CLI as an NCB would. SLTD is seeded with synthetic records
// (`QUERY_E2E_RECORDS`, default 1 000 000 as issue 8 asks: about 10-20 s of seeding here;
// `bench/query.ts` measures lookups on the million) and a record is looked up agent → hub →
// service → agent. A misbehaving country, holding its own key, tries to attribute a query to another and
// to read another's answers: the hub and the broker refuse.
import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { seedRecords, syntheticRecord } from '../../hub/db/seed.js';
import { DbStore } from '../../hub/db/store.js';
import { agentPaths } from '../../node-agent/state.js';
import { importP256PrivateKey } from '../../pki/keys.js';
import { newUlid, type Envelope } from '../../protocol/envelope.js';
import type { QueryAnswer, SltdRecord } from '../../protocol/query.js';
import { signEnvelope } from '../../protocol/signature.js';
import { subjects } from '../../protocol/subjects.js';
import { runCli } from '../helpers/cli.js';
import { scrape, valueOf } from '../helpers/prometheus-text.js';
import { waitFor } from '../helpers/wait.js';
import { startLoopbackNetwork } from '../helpers/loopback-network.js';
import { localApiCall } from '../helpers/local-api-call.js';

t.setTimeout(600_000);
const RECORDS = Number(process.env["QUERY_E2E_RECORDS"] ?? 1_000_000);
const SEED = 42;

const COUNTRIES = ['FR', 'DE'] as const;
type Cc = (typeof COUNTRIES)[number];
const net = await startLoopbackNetwork(t, { prefix: 'query', countries: COUNTRIES });
const { hubState, hub, rootPem, states, agents, tokens } = net;

interface Answer {
  status: number;
  json: Record<string, unknown>;
}
async function query(cc: Cc, service: string, body: unknown): Promise<Answer> {
  const answer = await localApiCall(`${agents[cc].endpoints.localApiUrl}/v1/query/${service}`, tokens[cc], 'POST', body);
  return { status: answer.status, json: answer.json as Record<string, unknown> };
}

// The hub operator's seeding, as `ncbnet db seed` does it (the CLI is run below on a small count).
const hubNc: NatsConnection = await connect({
  servers: hub.endpoints.natsUrl,
  tls: { ca: rootPem, cert: await readFile(join(hubState, 'hub', 'hub.crt'), 'utf8'), key: await readFile(join(hubState, 'hub', 'hub.key'), 'utf8') },
});
t.teardown(() => hubNc.close());

t.test(`query: ${RECORDS} SLTD records seeded, one looked up FR agent → hub → service → agent`, async (t) => {
  const summary = await seedRecords({ store: await DbStore.open({ nc: hubNc }), service: 'sltd', count: RECORDS, owner: 'DE', seed: SEED });
  t.equal(summary.count, RECORDS);
  t.comment(`seeded ${RECORDS} in ${summary.elapsedMs} ms (${summary.recordsPerSecond} records/s)`);
  const wanted = syntheticRecord('sltd', SEED, RECORDS - 17) as SltdRecord;
  const started = performance.now();
  const hit = await query('FR', 'sltd', { key: { number: `${wanted.number.slice(0, 4)} ${wanted.number.slice(4)}`, country: wanted.country.toLowerCase() } });
  t.comment(`lookup through the agent: ${(performance.now() - started).toFixed(1)} ms`);
  t.equal(hit.status, 200);
  t.match(hit.json, { ok: true, service: 'sltd', op: 'get', hit: true, result: { owner: 'DE', record: wanted } });
  const miss = await query('FR', 'sltd', { key: { number: 'ZZ999999999', country: 'FR' } });
  t.same([miss.status, miss.json['hit']], [200, false], 'no hit is an answer, not an error');

  // The record is DE's: DE is told of the hit by a message from FR, encrypted to DE.
  let notices: { envelope: { from: string; kind: string; handling?: string; subject?: string }; plaintext?: string }[] = [];
  await waitFor("DE's hit notice", async () => {
    const res = await fetch(`${agents.DE.endpoints.localApiUrl}/v1/inbox?limit=100`, { headers: { authorization: `Bearer ${tokens.DE}` } });
    const items = ((await res.json()) as { items: typeof notices }).items;
    notices = items.filter((i) => i.envelope.from === 'FR' && i.plaintext?.includes('ncbnet-db-hit') === true);
    return notices.length > 0;
  }, 30_000, 200);
  t.match(notices[0]?.envelope, { kind: 'message', handling: 'restricted' }, 'an ordinary message, encrypted end to end');
  t.equal(notices[0]?.envelope.subject, undefined, 'nothing the hub can read says what was found');
  t.match(JSON.parse(notices[0]?.plaintext ?? '{}'), { type: 'ncbnet-db-hit', service: 'sltd', key: { number: wanted.number, country: wanted.country }, by: 'FR' });
  t.equal(notices.length, 1, 'one notice for one hit (none for the miss)');
});

t.test('query: the CLI prints a table and exits 0 on a hit, 2 on no hit, coded errors otherwise', async (t) => {
  const wanted = syntheticRecord('sltd', SEED, 3) as SltdRecord;
  const hit = await runCli('ncbnet-agent', ['query', 'sltd', '--number', wanted.number, '--country', wanted.country, '--state', states.FR]);
  t.equal(hit.code, 0, hit.stderr);
  t.match(hit.stdout, new RegExp(`number\\s+country\\s+type\\s+status.*owner[\\s\\S]*${wanted.number}\\s+${wanted.country}`));
  const json = await runCli('ncbnet-agent', ['query', 'sltd', '--number', wanted.number, '--country', wanted.country, '--state', states.FR, '--json']);
  t.match(JSON.parse(json.stdout), { hit: true, result: { record: wanted } });
  const none = await runCli('ncbnet-agent', ['query', 'sltd', '--number', 'NOPE1', '--country', 'FR', '--state', states.FR]);
  t.same([none.code, none.stdout.trim()], [2, 'no hit']);
  const bad = await runCli('ncbnet-agent', ['query', 'sltd', '--number', '#?', '--country', 'FR', '--state', states.FR]);
  t.equal(bad.code, 65);
  t.match(bad.stderr, /QUERY_BAD_KEY: .*\n\s+key\.number: .*\(got "#\?"\)/);
  const seeded = await runCli('ncbnet', ['db', 'seed', '--state', hubState, '--service', 'woa', '--count', '500', '--owner', 'FR', '--json']);
  t.equal(seeded.code, 0, seeded.stderr);
  t.match(JSON.parse(seeded.stdout), { service: 'woa', count: 500, owner: 'FR', bucket: 'ncbnet-db-woa', bucketRecords: 500 });
  const woa = syntheticRecord('woa', 1, 499) as { objectId: string };
  const found = await runCli('ncbnet-agent', ['query', 'woa', '--object-id', woa.objectId, '--state', states.DE]);
  t.equal(found.code, 0, found.stderr);
});

t.test('query: bad requests through the local API are coded (404 unknown service, 400 bad key, 403 not owner)', async (t) => {
  t.match(await query('FR', 'dna', { key: { profile: 'x' } }), { status: 404, json: { code: 'QUERY_UNKNOWN_SERVICE' } });
  t.match(await query('FR', 'sltd', { key: { number: 'A1' } }), { status: 400, json: { code: 'QUERY_BAD_KEY', problems: ['key.country: required'] } });
  t.match(await query('FR', 'sltd', { key: { number: 'A1', country: 'FR' }, extra: 1 }), { status: 400, json: { code: 'LOCAL_BAD_REQUEST' } });
  t.match(await query('FR', 'smv', { name: 'x' }), { status: 400, json: { code: 'QUERY_UNSUPPORTED_OP' } });
  t.match(await query('FR', 'nominal', { op: 'search', name: 'x'.repeat(300) }), { status: 400 });
  const vehicle = { vin: 'VF1AB000000000001', make: 'Synthetic', colour: 'grey' };
  t.match(await query('FR', 'smv', { op: 'put', record: vehicle }), { status: 200, json: { ok: true, result: { owner: 'FR' } } });
  t.match(await query('DE', 'smv', { op: 'delete', key: { vin: vehicle.vin } }), { status: 403, json: { code: 'QUERY_NOT_OWNER' } });
  t.match(await query('DE', 'smv', { key: { vin: vehicle.vin } }), { status: 200, json: { hit: true, result: { owner: 'FR' } } });
  t.match(await query('FR', 'smv', { op: 'delete', key: { vin: vehicle.vin } }), { status: 200, json: { hit: true } });
  const exp = await scrape(hub.endpoints.metricsUrl ?? '');
  t.ok((valueOf(exp, 'ncbnet_db_queries_total', { service: 'smv', result: 'refused' }) ?? 0) >= 1, 'the hub counted the refusal');
  t.ok((valueOf(exp, 'ncbnet_db_queries_total', { service: 'sltd', result: 'hit' }) ?? 0) >= 1, 'and the hits');
});

/**
 * A country's own key and broker connection, as a misbehaving application holding them could use
 * them: it signs with `signer`'s key, connects with `creds`' certificate, and asks for answers on
 * `inbox`'s prefix.
 */
async function identity(signer: Cc, creds: Cc, inbox: string = creds): Promise<{ sign: (e: Envelope) => Promise<Envelope>; nc: NatsConnection }> {
  const read = async (cc: Cc) => {
    const paths = agentPaths(states[cc]);
    const [certPem, keyPem, chain] = await Promise.all([readFile(paths.countryCert, 'utf8'), readFile(paths.countryKey, 'utf8'), readFile(paths.chain, 'utf8')]);
    return { certPem, keyPem, chain, keyPath: paths.countryKey };
  };
  const s = await read(signer);
  const c = await read(creds);
  const key = await importP256PrivateKey(s.keyPem, s.keyPath);
  const der = new Uint8Array(new X509Certificate(s.certPem).raw);
  const nc = await connect({ servers: hub.endpoints.natsUrl, tls: { ca: rootPem, cert: c.certPem + c.chain, key: c.keyPem }, inboxPrefix: subjects.inboxPrefix(inbox) });
  t.teardown(() => nc.close());
  return { sign: (e) => signEnvelope(e, key, der), nc };
}

function queryEnvelope(from: string, body: unknown): Envelope {
  return { v: 1, id: newUlid(), kind: 'query', from, to: [from], priority: 'routine', created: new Date().toISOString(), body: JSON.stringify(body) };
}

t.test('query: a country can neither attribute a query to another nor read the answers to another', async (t) => {
  const wanted = syntheticRecord('sltd', SEED, 5) as SltdRecord;
  const get = { v: 1, service: 'sltd', op: 'get', key: { number: wanted.number, country: wanted.country } };
  const ask = async (nc: NatsConnection, envelope: Envelope): Promise<QueryAnswer> => (await nc.request(subjects.query('sltd'), JSON.stringify(envelope), { timeout: 5000 })).json<QueryAnswer>();
  const de = await identity('DE', 'DE');
  t.match(await ask(de.nc, await de.sign(queryEnvelope('DE', get))), { ok: true, hit: true }, 'DE asking as DE is answered');

  // DE signs a query that says it comes from FR: the answer would go to DE's inbox, not FR's.
  t.match(await ask(de.nc, await de.sign(queryEnvelope('FR', get))), { ok: false, code: 'QUERY_INBOX_MISMATCH' }, 'a query "from FR" sent by DE is refused');
  // DE replays a query FR really signed (say, captured by FR's application): refused the same way.
  const frSigned = await (await identity('FR', 'DE')).sign(queryEnvelope('FR', get));
  const replayed = await ask(de.nc, frSigned);
  t.match(replayed, { ok: false, code: 'QUERY_INBOX_MISMATCH' }, "FR's genuine query replayed by DE is refused");
  t.notOk('result' in replayed, 'and carries no record');

  // To get FR's answers DE would have to listen on FR's inbox: the broker refuses the subscription.
  const spy = await identity('FR', 'DE', 'FR');
  const failed = await spy.nc.request(subjects.query('sltd'), JSON.stringify(frSigned), { timeout: 3000 }).then(
    () => 'answered',
    (err: unknown) => (err instanceof Error ? `${err.name}: ${err.message}` : String(err)),
  );
  t.match(failed, /Permissions Violation for Subscription to "_INBOX_FR\./, `no answer reaches DE on FR's inbox (${failed})`);
});

t.test('query: with the hub gone the agent answers 503 at once, not after a timeout', async (t) => {
  t.equal(await hub.stop(), 0, 'the hub stopped cleanly, database services included');
  await waitFor('FR sees the broker gone', async () => (await fetch(`${agents.FR.endpoints.localApiUrl}/readyz`)).status === 503, 30_000, 100);
  const started = performance.now();
  const answer = await query('FR', 'sltd', { key: { number: 'AB1', country: 'FR' } });
  t.match(answer, { status: 503, json: { code: 'QUERY_HUB_UNREACHABLE' } });
  t.ok(performance.now() - started < 1000, 'without waiting for the request timeout');
});
