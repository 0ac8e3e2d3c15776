/**
 * Relay benchmark (issue 10): ncbnet's relay path against raw JetStream doing the same two hops,
 * both measured in the same run (rounds alternate ours / baseline), so machine noise cancels in
 * the ratio.
 *
 * Ours: the real hub daemon (`ncbnet hub run`: nats-server with mTLS and JetStream, router with
 * signature checks and the hash-chained audit) and two real agent daemons (FR sends, DE
 * receives), each its own process on loopback, no tunnel. FR's application POSTs `/v1/messages`
 * (1 KiB body) to FR's local API; DE's application holds DE's inbox open as server-sent events.
 * Latency is POST start → the event for that id at DE (the item is fsynced before it is
 * announced); throughput is the first POST → the last event, with K concurrent HTTP clients.
 * Receipts (delivered, read) flow back to FR as they do in service.
 *
 * Baseline: a plain nats-server of the same build, file storage; stream A → router process → B →
 * recipient, every hop awaiting JetStream's ack (`lib/relay-jetstream.ts`).
 *
 * Also: RSS of both agents, the hub and its nats-server (idle and peak under load); and the
 * latency a wireguard-go tunnel adds over a plain veth between two network namespaces (root only).
 *
 * Run: `node_modules/.bin/tsx bench/relay.ts` (from the repository root).
 * Settings (environment): BENCH_QUICK=1 (about a minute: 1 round, N=100, M=300), RELAY_ROUNDS (3),
 * RELAY_WARMUP (50), RELAY_N latency samples per round (500), RELAY_M throughput messages per round
 * (2000), RELAY_K concurrent clients (32), RELAY_BODY_BYTES (1024), RELAY_IDLE_MS (10000),
 * RELAY_TUNNEL_N (1000), RELAY_LATENCY_SETTLE=0 (do not wait for the read receipt between latency
 * samples), RELAY_PARTS=latency,throughput,memory,tunnel, RELAY_CPU_PROF=DIR (the daemons write
 * `--cpu-prof` profiles there; summarise with `tsx bench/lib/relay-cpuprof.ts DIR`), RELAY_STAGES=1
 * (daemons at debug level; prints where the latency goes, from their logs), RELAY_RUNTIME=tsx (run
 * the daemons from source through tsx, test/helpers/daemon-process.ts, instead of compiled: the
 * default compiles with tsconfig.build.json into a temp dir and runs plain node, as deployed),
 * RELAY_NODE_FLAGS='--trace-gc …' (node flags for the hub and agent processes, after the ones their
 * systemd units give in `ExecStart`: the compiled daemons always run with the units' flags, read from
 * deploy/systemd/*.service, so what is measured is what is deployed).
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { initHubState } from '../hub/state-init.js';
import { enroll } from '../node-agent/enroll/enroll.js';
import { readToken } from '../node-agent/local-api/tokens.js';
import { formatTable } from '../protocol/text-table.js';
import { DELIVER_STREAM, SUBMIT_STREAM, deliverConsumer } from '../protocol/subjects.js';
import { startAgentProcess, startHubProcess, type DaemonProcess } from '../test/helpers/daemon-process.js';
import { httpsCall } from '../test/helpers/https.js';
import { closedPort } from '../test/helpers/ports.js';
import { cpuMs, fsyncLatencies, log, machineInfo, median, Owner, percentile, round, rssMiB, RssSampler, settings } from './lib/relay-common.js';
import { LocalApi } from './lib/relay-http.js';
import { compileDaemons, compiledRun, unitNodeFlags, UNITS } from './lib/relay-daemons.js';
import { JetStreamBaseline } from './lib/relay-jetstream.js';
import { InboxStream } from './lib/relay-sse.js';
import { stageTimeline, type Sample } from './lib/relay-stages.js';
import { measureTunnel, tunnelSkipReason, type TunnelRtts } from './lib/relay-tunnel.js';
import { machine } from './lib/report.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** The router's per-country rate for the benchmark: far above what two agents on one machine send. */
const ROUTER_RATE_PER_SECOND = 100_000;
process.chdir(ROOT);
const S = settings();
const started = performance.now();
const progress = (text: string): void => log(`[${((performance.now() - started) / 1000).toFixed(0).padStart(4)} s] ${text}`);
const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** CPU ms used so far by each named pid. */
async function cpuOf(pids: Record<string, number | undefined>): Promise<Record<string, number | undefined>> {
  const out: Record<string, number | undefined> = {};
  for (const [name, pid] of Object.entries(pids)) out[name] = await cpuMs(pid);
  return out;
}

async function waitUntil(what: string, check: () => Promise<boolean>, ms: number, everyMs: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await delay(everyMs);
  }
}

interface Ncbnet {
  hub: DaemonProcess<{ natsUrl: string }>;
  fr: DaemonProcess<{ localApiUrl: string }>;
  de: DaemonProcess<{ localApiUrl: string }>;
  frApi: LocalApi;
  deApi: LocalApi;
  deToken: string;
  natsPid: number | undefined;
  hubNc: NatsConnection;
}

/** How the daemons run: compiled into `outDir` with node flags per kind, or from source (undefined). */
interface Compiled {
  outDir: string;
  argv: { hub: string[]; agent: string[] };
}

/** The hub and the FR and DE agents as processes, enrolled the way an operator and the NCBs do it. */
async function startNcbnet(owner: Owner, compiled: Compiled | undefined): Promise<Ncbnet> {
  const hubState = await mkdtemp(join(tmpdir(), 'ncbnet-bench-relay-hub-'));
  owner.teardown(() => rm(hubState, { recursive: true, force: true }));
  await initHubState({ state: hubState, hubName: 'hub-1', sans: ['127.0.0.1', 'localhost'], operator: 'admin' });
  const [apiPort, natsPort] = [await closedPort(), await closedPort()];
  const logLevel = S.stages ? { log: { level: 'debug' } } : {};
  const hubConfig = {
    api: { host: '127.0.0.1', port: apiPort, publicUrl: `https://127.0.0.1:${apiPort}` },
    broker: { host: '127.0.0.1', port: natsPort, monitorPort: 0, natsUrlForAgents: `tls://127.0.0.1:${natsPort}` },
    metrics: { port: 0 },
    // The router holds each country to a rate (a policy against floods, default 50/s, burst 200);
    // lifted here, or the throughput figure would measure the policy rather than the path.
    router: { ratePerCountry: { perSecond: ROUTER_RATE_PER_SECOND, burst: ROUTER_RATE_PER_SECOND } },
    ...logLevel,
  };
  const hub = await startHubProcess(owner, hubState, hubConfig, compiled === undefined ? {} : compiledRun(compiled.outDir, compiled.argv.hub));
  progress(`hub running (pid ${hub.child.pid}), API ${hub.endpoints.apiUrl}, broker ${hub.endpoints.natsUrl}`);
  const rootPem = await readFile(join(hubState, 'pki', 'root.crt'), 'utf8');
  const operator = { ca: rootPem, cert: await readFile(join(hubState, 'operator', 'operator.crt'), 'utf8'), key: await readFile(join(hubState, 'operator', 'operator.key'), 'utf8') };
  const agents: Record<string, DaemonProcess<{ localApiUrl: string }>> = {};
  const tokens: Record<string, string> = {};
  for (const cc of ['FR', 'DE']) {
    const added = await httpsCall(`${hub.endpoints.apiUrl}/v1/admin/countries`, { ...operator, method: 'POST', body: { code: cc, name: `Country ${cc}` } });
    if (added.status !== 201) throw new Error(`country add ${cc}: ${added.status} ${added.text}`);
    const token = ((await httpsCall(`${hub.endpoints.apiUrl}/v1/admin/tokens`, { ...operator, method: 'POST', body: { country: cc } })).json as { token: string }).token;
    const state = await mkdtemp(join(tmpdir(), `ncbnet-bench-relay-${cc.toLowerCase()}-`));
    owner.teardown(() => rm(state, { recursive: true, force: true }));
    await enroll({ hubUrl: hub.endpoints.apiUrl, token, stateDir: state, country: cc });
    const agentConfig = { localApi: { host: '127.0.0.1', port: 0 }, metrics: { port: 0 }, ...logLevel };
    agents[cc] = await startAgentProcess(owner, state, agentConfig, compiled === undefined ? {} : compiledRun(compiled.outDir, compiled.argv.agent));
    tokens[cc] = await readToken(join(state, 'local-api.tokens'));
    progress(`${cc} enrolled and its agent running (pid ${agents[cc].child.pid}), local API ${agents[cc].endpoints.localApiUrl}`);
  }
  const fr = agents['FR'] as DaemonProcess<{ localApiUrl: string }>;
  const de = agents['DE'] as DaemonProcess<{ localApiUrl: string }>;
  const frApi = new LocalApi(fr.endpoints.localApiUrl, tokens['FR'] as string, S.concurrency + 4);
  const deApi = new LocalApi(de.endpoints.localApiUrl, tokens['DE'] as string, 16);
  owner.teardown(() => {
    frApi.close();
    deApi.close();
  });
  for (const [cc, api] of [['FR', frApi], ['DE', deApi]] as const) {
    await waitUntil(`${cc} connected to the broker`, async () => (await api.call('GET', '/readyz')).status === 200, 60_000, 200);
  }
  const natsPid = Number((await readFile(join(hubState, 'broker', 'nats-server.pid'), 'utf8').catch(() => '')).trim()) || undefined;
  const hubNc = await connect({
    servers: hub.endpoints.natsUrl,
    tls: { ca: rootPem, cert: await readFile(join(hubState, 'hub', 'hub.crt'), 'utf8'), key: await readFile(join(hubState, 'hub', 'hub.key'), 'utf8') },
  });
  owner.teardown(() => hubNc.close());
  return { hub, fr, de, frApi, deApi, deToken: tokens['DE'] as string, natsPid, hubNc };
}

/** Nothing in flight anywhere: both outboxes empty, SUBMIT empty, both countries' consumers caught up. */
async function ncbnetQuiet(n: Ncbnet): Promise<boolean> {
  for (const api of [n.frApi, n.deApi]) if (((await api.call('GET', '/v1/status')).json['outboxDepth'] as number) !== 0) return false;
  const jsm = await jetstreamManager(n.hubNc);
  if ((await jsm.streams.info(SUBMIT_STREAM)).state.messages !== 0) return false;
  for (const cc of ['FR', 'DE']) {
    const info = await jsm.consumers.info(DELIVER_STREAM, deliverConsumer(cc));
    if (info.num_pending !== 0 || info.num_ack_pending !== 0) return false;
  }
  return true;
}

const BODY = 'x'.repeat(S.bodyBytes);
const draft = { kind: 'message', to: ['DE'], body: BODY };

/** One message at a time, FR's POST → DE's event; ms each. Each is acked at DE (and, when settling, its read receipt reaches FR before the next). */
async function ncbnetLatency(n: Ncbnet, sse: InboxStream, count: number, label: string, samples?: Sample[]): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    const id = await n.frApi.send(draft);
    const at = await sse.arrival(id, 30_000);
    out.push(at - t0);
    samples?.push({ id, postAt: performance.timeOrigin + t0, arrivedAt: performance.timeOrigin + at });
    await n.deApi.ack(id);
    sse.forget([id]);
    if (S.latencySettle) {
      await waitUntil(`read receipt of ${id} at FR`, async () => {
        const recipients = (await n.frApi.call('GET', `/v1/messages/${id}`)).json['recipients'] as Record<string, { state: string }> | undefined;
        return recipients?.['DE']?.state === 'read';
      }, 30_000, 2);
    }
    if ((i + 1) % 100 === 0) progress(`  ${label}: ${i + 1}/${count}`);
  }
  return out;
}

/** Queue depths along the path: where messages wait shows which stage is the slowest. */
interface Depths {
  frOutbox: number;
  submit: number;
  deliverDE: number;
  deOutbox: number;
  deliverFR: number;
}

async function depths(n: Ncbnet): Promise<Depths> {
  const jsm = await jetstreamManager(n.hubNc);
  const pending = async (cc: string) => {
    const info = await jsm.consumers.info(DELIVER_STREAM, deliverConsumer(cc));
    return info.num_pending + info.num_ack_pending;
  };
  return {
    frOutbox: (await n.frApi.call('GET', '/v1/status')).json['outboxDepth'] as number,
    submit: (await jsm.streams.info(SUBMIT_STREAM)).state.messages,
    deliverDE: await pending('DE'),
    deOutbox: (await n.deApi.call('GET', '/v1/status')).json['outboxDepth'] as number,
    deliverFR: await pending('FR'),
  };
}

const queueMax: Depths = { frOutbox: 0, submit: 0, deliverDE: 0, deOutbox: 0, deliverFR: 0 };

/** Samples {@link depths} every second until `done` settles; prints each sample, keeps the maxima. */
async function traceDepths(n: Ncbnet, done: Promise<unknown>): Promise<void> {
  let isDone = false;
  void done.finally(() => (isDone = true));
  const t0 = performance.now();
  while (!isDone) {
    await Promise.race([delay(1_000), done.catch(() => undefined)]);
    if (isDone) break;
    const d = await depths(n);
    for (const k of Object.keys(queueMax) as (keyof Depths)[]) queueMax[k] = Math.max(queueMax[k], d[k]);
    progress(
      `    t+${((performance.now() - t0) / 1000).toFixed(0)} s waiting: FR outbox ${d.frOutbox} → SUBMIT (router) ${d.submit} → deliver-DE ${d.deliverDE} | receipts: DE outbox ${d.deOutbox} → deliver-FR ${d.deliverFR}`,
    );
  }
}

/** M messages from K concurrent clients; ms from the first POST to the last event at DE. Acks them all afterwards (not timed) and waits for quiet. */
async function ncbnetThroughput(n: Ncbnet, sse: InboxStream, m: number, k: number): Promise<number> {
  let finish: () => void = () => undefined;
  const finished = new Promise<void>((r) => (finish = r));
  const tracing = traceDepths(n, finished);
  try {
    return await ncbnetThroughputRun(n, sse, m, k, finish);
  } finally {
    finish();
    await tracing;
  }
}

async function ncbnetThroughputRun(n: Ncbnet, sse: InboxStream, m: number, k: number, measured: () => void): Promise<number> {
  const ids: string[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(k, m) }, async () => {
      for (let i = next++; i < m; i = next++) ids.push(await n.frApi.send(draft));
    }),
  );
  const posted = performance.now() - t0;
  const timeoutMs = Math.max(120_000, m * 200);
  const arrivals = await Promise.all(ids.map((id) => sse.arrival(id, timeoutMs)));
  const ms = Math.max(...arrivals) - t0;
  measured();
  progress(`  ours: ${m} accepted by FR in ${(posted / 1000).toFixed(2)} s (${((m * 1000) / posted).toFixed(0)}/s), all at DE after ${(ms / 1000).toFixed(2)} s`);
  next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let i = next++; i < ids.length; i = next++) await n.deApi.ack(ids[i] as string);
    }),
  );
  sse.forget(ids);
  await waitUntil('receipts settled', () => ncbnetQuiet(n), Math.max(120_000, m * 200), 250);
  return ms;
}

interface Figures {
  latency?: { ours: number[][]; base: number[][] };
  throughput?: { ours: number[]; base: number[]; cpuMsPerMessage: Record<string, number[]> };
  memory?: { idle: Record<string, number | undefined>; peak: Record<string, number>; end: Record<string, number | undefined> };
  tunnel?: TunnelRtts | { skipped: string };
  envelopeBytes?: number;
  stages?: string[][];
  fsync?: number[];
  /** Node flags the compiled daemons ran with (their systemd units', then RELAY_NODE_FLAGS). */
  nodeFlags?: { hub: string[]; agent: string[] };
}

const owner = new Owner();
let isInterrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    isInterrupted = true;
    log(`${signal}: stopping every process and removing every file this run made…`);
    owner.fail();
    void owner.close().then(() => process.exit(130));
  });
}

const figures: Figures = {};
try {
  progress(`relay bench (${S.quick ? 'quick' : 'full'}): rounds ${S.rounds}, warm-up ${S.warmup}, latency N=${S.latencyN}, throughput M=${S.throughputM} K=${S.concurrency}, body ${S.bodyBytes} B, parts ${[...S.parts].join(',')}`);
  let compiled: Compiled | undefined;
  if (S.runtime === 'dist') {
    progress('compiling the daemons (tsconfig.build.json) into a temp dir, to run them as deployed');
    const outDir = await compileDaemons(owner);
    const extra = [...S.nodeFlags];
    if (S.cpuProfDir !== undefined) {
      const dir = resolve(S.cpuProfDir);
      await mkdir(dir, { recursive: true });
      extra.push('--cpu-prof', `--cpu-prof-dir=${dir}`);
      progress(`daemons write CPU profiles to ${dir} when they stop`);
    }
    compiled = { outDir, argv: { hub: [...(await unitNodeFlags(UNITS.hub)), ...extra], agent: [...(await unitNodeFlags(UNITS.agent)), ...extra] } };
    figures.nodeFlags = compiled.argv;
    progress(`node flags (systemd units, then RELAY_NODE_FLAGS): hub [${compiled.argv.hub.join(' ')}], agents [${compiled.argv.agent.join(' ')}]`);
  } else if (S.cpuProfDir !== undefined || S.nodeFlags.length > 0) {
    throw new Error('RELAY_CPU_PROF and RELAY_NODE_FLAGS need RELAY_RUNTIME=dist (node refuses --cpu-prof in NODE_OPTIONS, and the tsx helper takes no node flags)');
  }
  const n = await startNcbnet(owner, compiled);
  const readyAt = performance.now();
  const base = await JetStreamBaseline.start(owner);
  progress(`baseline: nats-server ${base.server.url} (pid ${base.server.pid}), router process pid ${base.routerPid}`);
  const pids = { agentFR: n.fr.child.pid, agentDE: n.de.child.pid, hub: n.hub.child.pid, natsServer: n.natsPid };

  if (S.parts.has('memory')) {
    const wait = S.idleMs - (performance.now() - readyAt);
    progress(`memory: idle RSS ${S.idleMs / 1000} s after start (waiting ${Math.max(0, wait / 1000).toFixed(1)} s)`);
    if (wait > 0) await delay(wait);
    const idle: Record<string, number | undefined> = {};
    for (const [name, pid] of Object.entries(pids)) idle[name] = await rssMiB(pid);
    idle['baselineNatsServer'] = await rssMiB(base.server.pid);
    figures.memory = { idle, peak: {}, end: {} };
    progress(`  idle RSS MiB: ${Object.entries(idle).map(([k, v]) => `${k} ${v?.toFixed(1)}`).join(', ')}`);
  }

  const sse = await InboxStream.open(n.de.endpoints.localApiUrl, n.deToken);
  owner.teardown(() => sse.close());

  if (S.warmup > 0 && (S.parts.has('latency') || S.parts.has('throughput'))) {
    progress(`warm-up: ${S.warmup} messages each way`);
    await ncbnetLatency(n, sse, S.warmup, 'warm-up');
    await base.latency('warm', S.warmup, S.bodyBytes);
  }
  figures.envelopeBytes = sse.envelopeBytes;

  if (S.parts.has('latency')) {
    figures.fsync = await fsyncLatencies(200, S.bodyBytes);
    progress(`reference: ${S.bodyBytes} B append + fsync in ${tmpdir()} p50 ${median(figures.fsync).toFixed(2)} ms, p99 ${percentile(figures.fsync, 0.99).toFixed(2)} ms`);
    const lat = { ours: [] as number[][], base: [] as number[][] };
    const samples: Sample[] = [];
    for (let r = 1; r <= S.rounds; r++) {
      progress(`latency round ${r}/${S.rounds}: ours, ${S.latencyN} messages one at a time${S.latencySettle ? ' (each read receipt back at FR before the next)' : ''}`);
      lat.ours.push(await ncbnetLatency(n, sse, S.latencyN, 'ours', samples));
      progress(`latency round ${r}/${S.rounds}: baseline, ${S.latencyN} messages one at a time`);
      lat.base.push(await base.latency(`lat${r}`, S.latencyN, S.bodyBytes));
      progress(`  p50 ours ${median(lat.ours[r - 1] ?? []).toFixed(2)} ms, baseline ${median(lat.base[r - 1] ?? []).toFixed(2)} ms`);
    }
    figures.latency = lat;
    if (S.stages) {
      figures.stages = stageTimeline(samples, { fr: n.fr.output(), hub: n.hub.output() });
      console.log(`\nwhere the latency goes (debug logs; ms after the POST started):\n${formatTable(['mark', 'median ms', 'p90 ms'], figures.stages)}\n`);
    }
  }

  if (S.parts.has('throughput')) {
    const tp = { ours: [] as number[], base: [] as number[], cpuMsPerMessage: {} as Record<string, number[]> };
    const sampler = new RssSampler(pids, 200);
    for (let r = 1; r <= S.rounds; r++) {
      progress(`throughput round ${r}/${S.rounds}: ours, ${S.throughputM} messages, ${S.concurrency} concurrent clients`);
      const cpuBefore = await cpuOf(pids);
      const ms = await ncbnetThroughput(n, sse, S.throughputM, S.concurrency);
      // The whole round: submissions, deliveries, delivered receipts, the acks and read receipts.
      const cpuAfter = await cpuOf(pids);
      for (const [name, after] of Object.entries(cpuAfter)) {
        const before = cpuBefore[name];
        if (after !== undefined && before !== undefined) (tp.cpuMsPerMessage[name] ??= []).push((after - before) / S.throughputM);
      }
      progress(`  CPU ms per message (whole cycle): ${Object.entries(tp.cpuMsPerMessage).map(([k, v]) => `${k} ${v.at(-1)?.toFixed(2)}`).join(', ')}`);
      tp.ours.push((S.throughputM * 1000) / ms);
      progress(`throughput round ${r}/${S.rounds}: baseline`);
      const bms = await base.throughput(`tp${r}`, S.throughputM, S.concurrency, S.bodyBytes);
      tp.base.push((S.throughputM * 1000) / bms);
      await waitUntil('baseline quiet', () => base.isQuiet(), 60_000, 100);
      progress(`  ours ${tp.ours[r - 1]?.toFixed(0)} msg/s, baseline ${tp.base[r - 1]?.toFixed(0)} msg/s`);
    }
    const peak = await sampler.stop();
    if (figures.memory) {
      figures.memory.peak = peak;
      for (const [name, pid] of Object.entries(pids)) figures.memory.end[name] = await rssMiB(pid);
      progress(`  peak RSS MiB under load: ${Object.entries(peak).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ')}`);
    }
    figures.throughput = tp;
  }

  if (S.parts.has('tunnel')) {
    const reason = tunnelSkipReason();
    if (reason !== undefined) {
      progress(`tunnel: skipped, ${reason}`);
      figures.tunnel = { skipped: reason };
    } else {
      progress(`tunnel: ${S.tunnelN} TCP round trips of ${S.bodyBytes} B each over the veth and over wireguard-go, interleaved`);
      figures.tunnel = await measureTunnel(S.tunnelN, S.bodyBytes, progress);
    }
  }
} catch (err) {
  owner.fail();
  throw err;
} finally {
  if (!isInterrupted) {
    progress('stopping daemons and removing temp files');
    await owner.close();
  }
}

// ---- report -------------------------------------------------------------------------------------

const f2 = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '–' : x >= 100 ? x.toFixed(0) : x.toFixed(2));
const rows: string[][] = [];
const json: Record<string, unknown> = {};
const met = (ok: boolean) => (ok ? 'met' : 'NOT met');

if (figures.latency) {
  const ours = figures.latency.ours.flat();
  const baseAll = figures.latency.base.flat();
  const p50 = median(ours);
  const p99 = percentile(ours, 0.99);
  const b50 = median(baseAll);
  const b99 = percentile(baseAll, 0.99);
  const ok = p50 <= 3 * b50 && p50 < 5;
  const roundsP50 = figures.latency.ours.map((r) => median(r));
  const baseRoundsP50 = figures.latency.base.map((r) => median(r));
  rows.push(['relay latency p50, 1 KiB, FR API → DE inbox (ms)', f2(p50), f2(b50), `${(p50 / b50).toFixed(2)}×`, '≤ 3× baseline and < 5 ms', met(ok)]);
  rows.push(['relay latency p99 (ms)', f2(p99), f2(b99), `${(p99 / b99).toFixed(2)}×`, 'reported', '']);
  rows.push([`  p50 per round (${roundsP50.length} rounds × ${S.latencyN})`, roundsP50.map(f2).join(' / '), baseRoundsP50.map(f2).join(' / '), '', '', '']);
  if (figures.fsync) {
    rows.push([`  reference: ${S.bodyBytes} B append + fsync on this disk, p50 / p99 (ms)`, `${f2(median(figures.fsync))} / ${f2(percentile(figures.fsync, 0.99))}`, '', '', 'context', '']);
    Object.assign(json, { fsync_p50_ms: round(median(figures.fsync)), fsync_p99_ms: round(percentile(figures.fsync, 0.99)) });
  }
  Object.assign(json, {
    relay_p50_ms: round(p50),
    relay_p99_ms: round(p99),
    relay_baseline_p50_ms: round(b50),
    relay_baseline_p99_ms: round(b99),
    relay_p50_ratio: round(p50 / b50),
    relay_p99_ratio: round(p99 / b99),
    relay_latency_rounds: figures.latency.ours.length,
    relay_latency_samples_per_round: S.latencyN,
    relay_latency_round_p50_ms: roundsP50.map((x) => round(x)),
    relay_baseline_latency_round_p50_ms: baseRoundsP50.map((x) => round(x)),
    relay_latency_settled: S.latencySettle,
    relay_latency_target_met: ok,
  });
}
if (figures.throughput) {
  const ours = median(figures.throughput.ours);
  const b = median(figures.throughput.base);
  const ratio = ours / b;
  rows.push([`relay throughput, 1 KiB, FR → DE, K=${S.concurrency} (msg/s, median of ${figures.throughput.ours.length})`, f2(ours), f2(b), `${(ratio * 100).toFixed(1)} %`, '≥ 50 % of baseline', met(ratio >= 0.5)]);
  rows.push(['  per round (msg/s)', figures.throughput.ours.map(f2).join(' / '), figures.throughput.base.map(f2).join(' / '), '', '', '']);
  const cpu = figures.throughput.cpuMsPerMessage;
  const cpuMedian = (name: string): number => median(cpu[name] ?? []);
  rows.push([
    '  CPU per message, whole cycle (submit, deliver, delivered + read receipts), agent FR / DE / hub / its nats-server (ms, median of rounds)',
    ['agentFR', 'agentDE', 'hub', 'natsServer'].map((k) => f2(cpuMedian(k))).join(' / '),
    '',
    '',
    'reported',
    '',
  ]);
  Object.assign(json, {
    relay_throughput_msgs: round(ours, 1),
    relay_baseline_throughput_msgs: round(b, 1),
    relay_throughput_ratio: round(ratio),
    relay_throughput_rounds: figures.throughput.ours.length,
    relay_throughput_messages_per_round: S.throughputM,
    relay_throughput_concurrency: S.concurrency,
    relay_throughput_round_msgs: figures.throughput.ours.map((x) => round(x, 1)),
    relay_baseline_throughput_round_msgs: figures.throughput.base.map((x) => round(x, 1)),
    relay_throughput_target_met: ratio >= 0.5,
    relay_throughput_max_queue_depths: queueMax,
    relay_cpu_ms_per_message: Object.fromEntries(Object.entries(figures.throughput.cpuMsPerMessage).map(([k, v]): [string, number] => [k, round(median(v))])),
  });
}
if (figures.memory) {
  const { idle, peak, end } = figures.memory;
  const agentIdle = Math.max(idle['agentFR'] ?? NaN, idle['agentDE'] ?? NaN);
  const hasPeak = Object.keys(peak).length > 0;
  const agentPeak = Math.max(peak['agentFR'] ?? NaN, peak['agentDE'] ?? NaN);
  rows.push(['agent RSS idle, FR / DE (MiB)', `${f2(idle['agentFR'])} / ${f2(idle['agentDE'])}`, '', '', '< 100 MiB', met(agentIdle < 100)]);
  if (hasPeak) rows.push(['agent RSS peak under load, FR / DE (MiB)', `${f2(peak['agentFR'])} / ${f2(peak['agentDE'])}`, '', '', '< 100 MiB', met(agentPeak < 100)]);
  rows.push(['hub RSS idle / peak under load (MiB)', `${f2(idle['hub'])} / ${f2(peak['hub'])}`, '', '', 'reported', '']);
  rows.push(["hub's nats-server RSS idle / peak (MiB); baseline's idle", `${f2(idle['natsServer'])} / ${f2(peak['natsServer'])}`, f2(idle['baselineNatsServer']), '', 'reported', '']);
  Object.assign(json, {
    agent_rss_idle_mib: round(agentIdle, 1),
    agent_rss_mib: hasPeak ? round(agentPeak, 1) : null,
    agent_rss_idle_by_country_mib: { FR: round(idle['agentFR'] ?? NaN, 1), DE: round(idle['agentDE'] ?? NaN, 1) },
    agent_rss_peak_by_country_mib: hasPeak ? { FR: round(peak['agentFR'] ?? NaN, 1), DE: round(peak['agentDE'] ?? NaN, 1) } : null,
    agent_rss_end_of_load_mib: hasPeak ? { FR: round(end['agentFR'] ?? NaN, 1), DE: round(end['agentDE'] ?? NaN, 1) } : null,
    hub_rss_idle_mib: round(idle['hub'] ?? NaN, 1),
    hub_rss_relay_mib: hasPeak ? round(peak['hub'] ?? NaN, 1) : round(idle['hub'] ?? NaN, 1),
    nats_server_rss_idle_mib: round(idle['natsServer'] ?? NaN, 1),
    nats_server_rss_mib: hasPeak ? round(peak['natsServer'] ?? NaN, 1) : round(idle['natsServer'] ?? NaN, 1),
    baseline_nats_server_rss_idle_mib: round(idle['baselineNatsServer'] ?? NaN, 1),
    memory_idle_after_ms: S.idleMs,
    agent_rss_target_met: agentIdle < 100 && (!hasPeak || agentPeak < 100),
  });
}
if (figures.tunnel) {
  if ('skipped' in figures.tunnel) {
    rows.push(['tunnel cost (TCP RTT, wireguard-go vs veth)', 'skipped', '', '', 'reported', figures.tunnel.skipped]);
    Object.assign(json, { tunnel_p50_ms: null, veth_p50_ms: null, tunnel_added_p50_ms: null, tunnel_skipped: figures.tunnel.skipped });
  } else {
    const t50 = median(figures.tunnel.tunnel);
    const v50 = median(figures.tunnel.veth);
    const t99 = percentile(figures.tunnel.tunnel, 0.99);
    const v99 = percentile(figures.tunnel.veth, 0.99);
    rows.push([`TCP RTT ${S.bodyBytes} B p50, ${figures.tunnel.implementation} tunnel vs plain veth (ms, N=${figures.tunnel.tunnel.length})`, f2(t50), f2(v50), `${(t50 / v50).toFixed(2)}×`, 'reported', `+${(t50 - v50).toFixed(3)} ms`]);
    rows.push(['TCP RTT p99, tunnel vs veth (ms)', f2(t99), f2(v99), `${(t99 / v99).toFixed(2)}×`, 'reported', `+${(t99 - v99).toFixed(3)} ms`]);
    Object.assign(json, {
      tunnel_p50_ms: round(t50, 4),
      tunnel_p99_ms: round(t99, 4),
      veth_p50_ms: round(v50, 4),
      veth_p99_ms: round(v99, 4),
      tunnel_added_p50_ms: round(t50 - v50, 4),
      tunnel_added_p99_ms: round(t99 - v99, 4),
      tunnel_samples: figures.tunnel.tunnel.length,
      tunnel_implementation: figures.tunnel.implementation,
    });
  }
}

const m = machine();
const info = await machineInfo();
Object.assign(json, {
  date: new Date().toISOString(),
  machine: { cpu: info.cpu, cores: info.cores, memoryGiB: m.memoryGiB, node: m.node },
  quick: S.quick,
  rounds: S.rounds,
  warmup: S.warmup,
  body_bytes: S.bodyBytes,
  envelope_bytes: figures.envelopeBytes ?? null,
  daemons_runtime: S.runtime,
  daemons_node_flags: figures.nodeFlags ?? null,
  ...(figures.stages ? { latency_stages_ms: Object.fromEntries(figures.stages.map((r): [string, { p50: number; p90: number }] => [r[0] ?? '', { p50: Number(r[1]), p90: Number(r[2]) }])) } : {}),
});

/** ` (hub: …; agents: …)` for the report, or nothing when no daemon had flags. */
function describeFlags(flags: Figures['nodeFlags']): string {
  if (flags === undefined || (flags.hub.length === 0 && flags.agent.length === 0)) return ' (none)';
  return ` (hub: ${flags.hub.join(' ') || 'none'}; agents: ${flags.agent.join(' ') || 'none'})`;
}

const headers = ['figure', 'ours', 'baseline (same run)', 'ratio', 'target', 'met?'];
console.log(`\n${formatTable(headers, rows)}`);
const note =
  `${S.quick ? 'Quick run (BENCH_QUICK=1)' : 'Full run'}; ${S.rounds} round(s) per figure, ours and baseline alternating; warm-up ${S.warmup}. ` +
  `Latency: ${S.latencyN} messages per round one at a time (${S.bodyBytes} B body${figures.envelopeBytes ? `, ${figures.envelopeBytes} B signed envelope` : ''}), POST to FR's local API → server-sent event at DE, each acked at DE` +
  `${S.latencySettle ? ' and its read receipt back at FR before the next' : ''}; baseline: publish to A → recipient has it from B. ` +
  `Throughput: ${S.throughputM} messages per round from ${S.concurrency} concurrent clients, first POST → last event at DE (delivered receipts flow back meanwhile); baseline the same with ${S.concurrency} publishers. ` +
  `Ours: real hub daemon (nats-server 2.9 with mTLS and JetStream, router with signature checks and audit, its per-country rate limit lifted to ${ROUTER_RATE_PER_SECOND}/s) and two agent daemons on loopback, no tunnel, ${S.runtime === 'dist' ? `compiled (tsconfig.build.json) and run with plain node as deployed, with the node flags of their systemd units${describeFlags(figures.nodeFlags)}` : 'run from source through tsx (adds about 60 MiB RSS per process)'}, log level ${S.stages ? 'debug' : 'info'}. ` +
  'Baseline: plain nats-server of the same build, no TLS, file storage, router as its own process. RSS from /proc VmRSS; peak sampled every 200 ms during the throughput rounds.';
const md = [
  '### Relay',
  '',
  `${m.date}, ${info.cpu}, ${info.cores} cores, ${m.memoryGiB} GiB, Node ${m.node}. ${note}`,
  '',
  `| ${headers.join(' | ')} |`,
  `|${headers.map(() => '---').join('|')}|`,
  ...rows.map((r) => `| ${r.join(' | ')} |`),
  ...(figures.throughput
    ? [
        '',
        `Largest backlogs seen during the throughput rounds (sampled every second; messages wait upstream of the slowest stage): FR outbox ${queueMax.frOutbox}, ` +
          `SUBMIT (router) ${queueMax.submit}, deliver-DE (DE's inbound loop) ${queueMax.deliverDE}; receipts: DE outbox ${queueMax.deOutbox}, deliver-FR ${queueMax.deliverFR}.`,
      ]
    : []),
  ...(figures.stages
    ? ['', 'Where the latency goes (RELAY_STAGES=1: daemons at debug level; marks from their logs, ms after the POST started):', '', '| mark | median ms | p90 ms |', '|---|---|---|', ...figures.stages.map((r) => `| ${r.join(' | ')} |`)]
    : []),
].join('\n');
await mkdir('bench/results', { recursive: true });
await writeFile('bench/results/relay-latest.json', `${JSON.stringify(json, null, 2)}\n`);
await writeFile('bench/results/relay-latest.md', `${md}\n`);
console.log('\nwritten: bench/results/relay-latest.json, bench/results/relay-latest.md');
