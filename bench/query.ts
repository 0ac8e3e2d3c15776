/**
 * Database query benchmark (issue 8): SLTD lookups through ncbnet against a direct JetStream KV
 * get of the same keys, both measured in the same run on the same broker, so machine noise
 * cancels in the ratio.
 *
 * Ours: the real hub daemon (`ncbnet hub run`: nats-server with mTLS, the database services in
 * their queue group, signature checks against its CA) and one real agent daemon (FR), each its
 * own process on loopback, no tunnel. `QUERY_BENCH_RECORDS` synthetic SLTD records (default
 * 1 000 000) are seeded straight into the bucket as `ncbnet db seed` does (timed: the seed rate
 * is a figure too). Then, for random seeded keys:
 * - "agent": an NCB application's `POST /v1/query/sltd` to FR's local API (HTTP → sign → NATS
 *   request → hub: parse, inbox check, signature and chain check, KV direct get → answer);
 * - "service": the same signed request straight on NATS from FR's identity (no agent, no HTTP);
 * - "direct KV get" (baseline): `kv.get()` of the same key on the hub's own connection.
 * Latency is one request at a time (median and p99); throughput is `QUERY_BENCH_K` concurrent
 * clients for `QUERY_BENCH_M` lookups. Target: p99 through the agent under 100 ms (judged in the
 * note under the table: the table's own target column judges medians). The daemons run compiled,
 * with their systemd units' node flags, as deployed (`bench/lib/relay-daemons.ts`).
 *
 * Run: `node_modules/.bin/tsx bench/query.ts` (from the repository root). Settings (environment):
 * BENCH_QUICK=1 (100 000 records, N=300, M=1000), QUERY_BENCH_RECORDS, QUERY_BENCH_N latency
 * samples per figure (2000), QUERY_BENCH_M throughput lookups (5000), QUERY_BENCH_K (16),
 * QUERY_BENCH_RUNTIME=tsx (daemons from source).
 * Writes bench/results/query-latest.{json,md}.
 */
import { X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { seedRecords, syntheticRecord } from '../hub/db/seed.js';
import { DbStore, bucketName } from '../hub/db/store.js';
import { initHubState } from '../hub/state-init.js';
import { enroll } from '../node-agent/enroll/enroll.js';
import { readToken } from '../node-agent/local-api/tokens.js';
import { agentPaths } from '../node-agent/state.js';
import { importP256PrivateKey } from '../pki/keys.js';
import { newUlid } from '../protocol/envelope.js';
import { kvKey, type QueryAnswer, type SltdRecord } from '../protocol/query.js';
import { signEnvelope } from '../protocol/signature.js';
import { subjects } from '../protocol/subjects.js';
import { formatTable } from '../protocol/text-table.js';
import { startAgentProcess, startHubProcess, type DaemonRunOptions } from '../test/helpers/daemon-process.js';
import { httpsCall } from '../test/helpers/https.js';
import { closedPort } from '../test/helpers/ports.js';
import { tempDir } from '../test/helpers/tmpdir.js';
import { waitFor } from '../test/helpers/wait.js';
import { log, Owner } from './lib/relay-common.js';
import { compileDaemons, compiledRun, unitNodeFlags, UNITS } from './lib/relay-daemons.js';
import { machine, machineLine, markdownTable, quantile, reportLatency, type LatencyRow } from './lib/report.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
process.chdir(ROOT);
const QUICK = process.env['BENCH_QUICK'] === '1';
const num = (name: string, fallback: number): number => {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : fallback;
};
const RECORDS = num('QUERY_BENCH_RECORDS', QUICK ? 100_000 : 1_000_000);
const N = num('QUERY_BENCH_N', QUICK ? 300 : 2000);
const M = num('QUERY_BENCH_M', QUICK ? 1000 : 5000);
const K = num('QUERY_BENCH_K', 16);
const SEED = 8;
const RESULTS = join(ROOT, 'bench', 'results');

const owner = new Owner();
let compiled: string | undefined;
/** As deployed (compiled, plain node with the systemd units' flags), or from source with QUERY_BENCH_RUNTIME=tsx. */
async function runtime(daemon: 'hub' | 'agent'): Promise<DaemonRunOptions> {
  if (process.env['QUERY_BENCH_RUNTIME'] === 'tsx') return { timeoutMs: 60_000 };
  compiled ??= await compileDaemons(owner);
  return compiledRun(compiled, await unitNodeFlags(UNITS[daemon]));
}
process.on('SIGINT', () => void owner.close().then(() => process.exit(130)));

try {
  // tempDir wants a teardown owner, as tests give it.
  const hubState = await tempDir(owner, 'ncbnet-bench-query-hub-');
  await initHubState({ state: hubState, hubName: 'hub-1', sans: ['127.0.0.1', 'localhost'], operator: 'admin' });
  const [apiPort, natsPort] = [await closedPort(), await closedPort()];
  const hub = await startHubProcess(owner, hubState, {
    api: { host: '127.0.0.1', port: apiPort, publicUrl: `https://127.0.0.1:${apiPort}` },
    broker: { host: '127.0.0.1', port: natsPort, monitorPort: 0, natsUrlForAgents: `tls://127.0.0.1:${natsPort}` },
    metrics: { port: 0 },
    log: { level: 'warn' },
  }, await runtime('hub'));
  const rootPem = await readFile(join(hubState, 'pki', 'root.crt'), 'utf8');
  const operator = { ca: rootPem, cert: await readFile(join(hubState, 'operator', 'operator.crt'), 'utf8'), key: await readFile(join(hubState, 'operator', 'operator.key'), 'utf8') };
  const apiUrl = hub.endpoints.apiUrl;
  await httpsCall(`${apiUrl}/v1/admin/countries`, { ...operator, method: 'POST', body: { code: 'FR', name: 'France' } });
  const token = ((await httpsCall(`${apiUrl}/v1/admin/tokens`, { ...operator, method: 'POST', body: { country: 'FR' } })).json as { token: string }).token;
  const frState = await tempDir(owner, 'ncbnet-bench-query-fr-');
  await enroll({ hubUrl: apiUrl, token, stateDir: frState, country: 'FR' });
  const agent = await startAgentProcess(owner, frState, { localApi: { host: '127.0.0.1', port: 0 }, metrics: { enabled: false }, log: { level: 'warn' } }, await runtime('agent'));
  const bearer = await readToken(join(frState, 'local-api.tokens'));
  const agentUrl = `${agent.endpoints.localApiUrl}/v1/query/sltd`;
  await waitFor('FR agent connected', async () => (await fetch(`${agent.endpoints.localApiUrl}/readyz`)).status === 200, 60_000, 200);

  const hubNc: NatsConnection = await connect({
    servers: hub.endpoints.natsUrl,
    tls: { ca: rootPem, cert: await readFile(join(hubState, 'hub', 'hub.crt'), 'utf8'), key: await readFile(join(hubState, 'hub', 'hub.key'), 'utf8') },
  });
  owner.teardown(() => hubNc.close());

  log(`seeding ${RECORDS} SLTD records`);
  const seeded = await seedRecords({ store: await DbStore.open({ nc: hubNc }), service: 'sltd', count: RECORDS, owner: 'DE', seed: SEED, onProgress: (p) => log(`  ${p.written}/${p.count}`) });
  log(`seeded in ${seeded.elapsedMs} ms (${seeded.recordsPerSecond} records/s)`);

  // FR's own identity on NATS, as its agent has it (for the "service" figure).
  const paths = agentPaths(frState);
  const [certPem, keyPem, chain] = await Promise.all([readFile(paths.countryCert, 'utf8'), readFile(paths.countryKey, 'utf8'), readFile(paths.chain, 'utf8')]);
  const frKey = await importP256PrivateKey(keyPem, paths.countryKey);
  const frDer = new Uint8Array(new X509Certificate(certPem).raw);
  const frNc = await connect({ servers: hub.endpoints.natsUrl, tls: { ca: rootPem, cert: certPem + chain, key: keyPem }, inboxPrefix: subjects.inboxPrefix('FR') });
  owner.teardown(() => frNc.close());
  const kv = await new Kvm(hubNc).open(bucketName('sltd'));

  const keyAt = (): SltdRecord => syntheticRecord('sltd', SEED, Math.floor(Math.random() * RECORDS)) as SltdRecord;
  const viaAgent = async (r: SltdRecord): Promise<boolean> => {
    const res = await fetch(agentUrl, { method: 'POST', headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' }, body: JSON.stringify({ key: { number: r.number, country: r.country } }) });
    const body = (await res.json()) as { hit?: boolean };
    return res.status === 200 && body.hit === true;
  };
  const viaService = async (r: SltdRecord): Promise<boolean> => {
    const created = new Date();
    const env = await signEnvelope(
      { v: 1, id: newUlid(created.getTime()), kind: 'query', from: 'FR', to: ['FR'], priority: 'routine', created: created.toISOString(), body: JSON.stringify({ v: 1, service: 'sltd', op: 'get', key: { number: r.number, country: r.country } }) },
      frKey,
      frDer,
    );
    const answer = (await frNc.request(subjects.query('sltd'), JSON.stringify(env), { timeout: 5000 })).json<QueryAnswer>();
    return answer.ok && answer.hit;
  };
  const direct = async (r: SltdRecord): Promise<boolean> => (await kv.get(kvKey('sltd', { number: r.number, country: r.country })))?.operation === 'PUT';
  const figures: [string, (r: SltdRecord) => Promise<boolean>][] = [
    ['lookup through the agent (HTTP → signed NATS request → hub)', viaAgent],
    ['signed NATS request to the service (no agent)', viaService],
    ['direct KV get (baseline)', direct],
  ];

  let misses = 0;
  const latency = async (fn: (r: SltdRecord) => Promise<boolean>): Promise<number[]> => {
    for (let i = 0; i < 50; i++) await fn(keyAt()); // warm-up
    const out: number[] = [];
    for (let i = 0; i < N; i++) {
      const r = keyAt();
      const t0 = performance.now();
      if (!(await fn(r))) misses++;
      out.push(performance.now() - t0);
    }
    return out;
  };
  const throughput = async (fn: (r: SltdRecord) => Promise<boolean>): Promise<number> => {
    let next = 0;
    const t0 = performance.now();
    await Promise.all(Array.from({ length: K }, async () => {
      while (next++ < M) if (!(await fn(keyAt()))) misses++;
    }));
    return Math.round(M / ((performance.now() - t0) / 1000));
  };

  const rows: LatencyRow[] = [];
  const rates: string[][] = [];
  for (const [figure, fn] of figures) {
    log(`measuring: ${figure}`);
    const lat = await latency(fn);
    rows.push({ figure, latencies: lat, ...(figure.startsWith('direct') ? {} : { baseline: 'direct KV get (baseline)' }), });
    rates.push([figure, String(await throughput(fn))]);
  }
  if (misses > 0) throw new Error(`${misses} lookups of seeded keys found nothing`);

  const agentRow = rows[0] as LatencyRow;
  const p99 = quantile([...agentRow.latencies].sort((a, b) => a - b), 0.99);
  const note = `${RECORDS} SLTD records (seeded in ${(seeded.elapsedMs / 1000).toFixed(1)} s, ${seeded.recordsPerSecond} records/s); ${N} sequential lookups of random keys per figure; p99 through the agent ${p99.toFixed(1)} ms: target p99 < 100 ms ${p99 < 100 ? 'met' : 'NOT met'}.`;
  const md = await reportLatency('Database lookups (SLTD)', rows, join(RESULTS, 'query-latest.json'), note);
  console.log(formatTable(['figure', `lookups/s, ${K} concurrent clients`], rates));
  const m = machine();
  const ratesMd = markdownTable(`Database lookups/s (${K} concurrent clients, ${M} lookups)`, machineLine(m), ['figure', 'lookups/s'], rates);
  const json = JSON.parse(await readFile(join(RESULTS, 'query-latest.json'), 'utf8')) as Record<string, unknown>;
  await writeFile(join(RESULTS, 'query-latest.json'), JSON.stringify({ ...json, records: RECORDS, seed: { ms: seeded.elapsedMs, recordsPerSecond: seeded.recordsPerSecond }, lookupsPerSecond: Object.fromEntries(rates.map(([f, r]) => [f, Number(r)])) as Record<string, number>, agentP99Ms: p99, concurrency: K }, null, 2));
  await writeFile(join(RESULTS, 'query-latest.md'), `${md}\n\n${ratesMd}\n`);
} catch (err) {
  owner.fail();
  console.error(err);
  process.exitCode = 1;
} finally {
  await owner.close();
}
