/**
 * The 195-country simulation (issue 10): the real hub daemon as a process of its own (with its
 * supervised nats-server: mTLS, per-country users and pins, JetStream), every country enrolled
 * through the real enrollment API with its own keys and certificate, and each running the agent's
 * real relay over its own TLS connection to the broker (no WireGuard: see below).
 *
 * Figures (targets are for 195 countries and are reported, never asserted):
 * - Red Notice to all: time until the last country stored it, and until the last `delivered`
 *   receipt was back in the sender's status store; baseline: raw JetStream fan-out to as many
 *   consumers on as many connections (plain nats-server, same build);
 * - enrollment of every country from tokens (keys, CSR, signature, registry, broker reload);
 * - revocation: command → the country's connection dropped (WireGuard is off: connection part only);
 * - broker reloads while traffic flows: messages lost or duplicated, latency p99 against no reloads;
 * - certificates signed per second against `openssl x509 -req` on the same CSRs;
 * - RSS of the hub process and, apart, of nats-server.
 *
 * Run: `make bench`, or `node_modules/.bin/tsx bench/scale.ts [--countries 195] [--runs 20]
 * [--traffic-seconds 20] [--rate 20] [--concurrency 8]` (traffic seconds of each kind, quiet and with
 * reloads, interleaved in 5-s windows). `BENCH_QUICK=1` for a short run
 * (20 countries, 5 runs, 5 s of traffic). When a fan-out or reload target is missed, a profile pass
 * follows (hub restarted under `--cpu-prof`, this process under the inspector); `BENCH_PROFILE=1`
 * always runs it, `BENCH_PROFILE=0` never. `BENCH_KEEP=1` keeps the temp dirs (hub log, profiles).
 * Writes bench/results/scale-latest.json and bench/results/scale-latest.md.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { pino } from 'pino';
import { initHubState } from '../hub/state-init.js';
import { countryCodes } from '../protocol/country.js';
import { rawFanout } from './lib/scale-baseline.js';
import { connectFleet, enrollFleet, type Fleet } from './lib/scale-fleet.js';
import { processMemory, startHub, type HubProcess } from './lib/scale-hub.js';
import { fanout, p50p99, revokeOne, steadyTraffic, type FanoutRun, type FanoutTimeline, type RevokeResult, type TrafficPhase } from './lib/scale-phases.js';
import { monotonicUs, profileInProcess, readProfile, summarize, type CpuProfile, type Window } from './lib/scale-profile.js';
import { fmtMs, machine, writeScaleReport, type ScaleRow } from './lib/scale-report.js';
import { signVsOpenssl, type SignResult } from './lib/scale-sign.js';

const QUICK = process.env['BENCH_QUICK'] === '1';

function flag(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  const value = at >= 0 ? Number(process.argv[at + 1]) : fallback;
  if (!Number.isInteger(value) || value <= 0) throw new Error(`--${name}: a positive integer (got ${process.argv[at + 1]})`);
  return value;
}

const N = Math.min(flag('countries', QUICK ? 20 : 195), countryCodes().length);
const RUNS = flag('runs', QUICK ? 5 : 20);
const TRAFFIC_S = flag('traffic-seconds', QUICK ? 5 : 20);
const RATE = flag('rate', 20);
const CONCURRENCY = flag('concurrency', 8);
const HEARTBEAT_MS = 10_000;
/** How often the sender's status is read for receipts (it copies the whole status: not free). */
const POLL_MS = 10;
/** `1`: always run the profile pass; `0`: never; unset: when a fan-out or reload target is missed. */
const PROFILE = process.env['BENCH_PROFILE'];
const PROFILE_RUNS = Math.min(RUNS, 5);
const KEEP = process.env['BENCH_KEEP'] === '1';
const LOG_LEVEL = process.env['BENCH_LOG_LEVEL'] ?? 'warn';
const TARGET = { storedP99: 250, receiptsP99: 500, enrollS: 60, enrollStretchS: 20, revokeMs: 500, reloadRatio: 2, signRatio: 1, hubRssMiB: 250 };

const started = performance.now();
const log = (text: string) => process.stderr.write(`${text}\n`);
const elapsed = () => `${((performance.now() - started) / 1000).toFixed(0)} s`;
if (N < 8) throw new Error('--countries: at least 8 (sender, traffic pairs, churn and revoke need their own)');

// The sender is FR as in the demo; the rest in ISO order.
const codes = ['FR', ...countryCodes().filter((c) => c !== 'FR')].slice(0, N);
const SENDER = 'FR';
// Roles apart from each other and from the sender, so each phase counts only its own traffic.
const pairs = Math.min(4, Math.floor((N - 4) / 2));
const TRAFFIC_SENDERS = codes.slice(1, 1 + pairs);
const TRAFFIC_RECIPIENTS = codes.slice(1 + pairs, 1 + 2 * pairs);
const CHURN = codes.slice(1 + 2 * pairs, 1 + 2 * pairs + 2);
const REVOKED = codes[codes.length - 1] as string;

const work = await mkdtemp(join(tmpdir(), 'ncbnet-bench-scale-'));
const hubState = join(work, 'hub');
const agentsDir = join(work, 'agents');
let hub: HubProcess | undefined;
let fleet: Fleet | undefined;
const windows: Record<string, Window[]> = {};
const WINDOW_MS = Math.min(5, TRAFFIC_S) * 1000;
const trafficOpts = { senders: TRAFFIC_SENDERS, recipients: TRAFFIC_RECIPIENTS, churn: CHURN, ratePerS: RATE, seconds: 2 * TRAFFIC_S, windowMs: WINDOW_MS, changeEveryMs: 1000, drainTimeoutMs: 30_000, progress: log };
const agentLog = pino({ level: LOG_LEVEL }, pino.destination({ dest: join(work, 'agents.log'), sync: false }));
const mark = (name: string, w: Window) => (windows[name] ??= []).push(w);

let sign: SignResult | undefined;
let baseline: { lastMs: number[]; incomplete: number } | undefined;
let enrollResult: Awaited<ReturnType<typeof enrollFleet>> | undefined;
let runs: FanoutRun[] = [];
let hubMem: { rssMiB: number; hwmMiB: number } | undefined;
let natsMem: { rssMiB: number; hwmMiB: number } | undefined;
let traffic: TrafficPhase | undefined;
let revoked: RevokeResult | undefined;
let benchProfile: CpuProfile | undefined;
let hubProfilePath: string | undefined;
const failures: string[] = [];

/** Runs one phase; a failure is recorded and the run goes on with what does not depend on it. */
async function phase(name: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    const text = err instanceof Error ? (err.stack ?? err.message) : String(err);
    failures.push(`${name}: ${text.split('\n')[0] ?? ''}`);
    log(`  FAILED ${name}: ${text}`);
    if (hub) log(`  hub log tail:\n${await hub.logTail(3000)}`);
  }
}

/** Waits until `count` countries have a recorded last heartbeat (their first heartbeats write the registry). */
async function settle(h: HubProcess, count: number, ms: number): Promise<void> {
  for (const deadline = Date.now() + ms; ; ) {
    const list = (await h.admin('GET', '/countries')).json as { code: string; lastSeen?: string }[];
    const seen = list.filter((c) => c.lastSeen !== undefined).length;
    if (seen >= count) return;
    if (Date.now() > deadline) {
      log(`  only ${seen}/${count} heartbeats recorded after ${ms / 1000} s; going on`);
      return;
    }
    await delay(500);
  }
}

try {
  log(`scale benchmark: ${N} countries, ${RUNS} fan-out runs, ${TRAFFIC_S} s of traffic without and ${TRAFFIC_S} s with reloads at ${RATE} msg/s${QUICK ? ' (BENCH_QUICK)' : ''}; work dir ${work}`);

  log(`[1/8] certificates signed per second vs openssl x509 -req, ${N} CSRs (${elapsed()})`);
  await phase('sign', async () => {
    sign = await signVsOpenssl(codes, 2, log);
  });

  log(`[2/8] baseline: raw JetStream fan-out to ${N - 1} consumers on ${N - 1} connections (${elapsed()})`);
  await phase('baseline', async () => {
    baseline = await rawFanout(N - 1, RUNS, log);
  });

  log(`[3/8] hub: init, then \`ncbnet hub run\` as a process (${elapsed()})`);
  await initHubState({ state: hubState, hubName: 'hub-1', sans: ['127.0.0.1', 'localhost'], operator: 'admin' });
  await mkdir(agentsDir, { recursive: true });
  hub = await startHub({ stateDir: hubState, workDir: work, logLevel: LOG_LEVEL, cpuProfile: false });
  const h = hub;
  log(`  hub pid ${h.pid}, API ${h.endpoints.apiUrl}, broker ${h.endpoints.natsUrl}`);

  log(`[4/8] enrollment of ${N} countries through POST /v1/enroll, ${CONCURRENCY} at a time (${elapsed()})`);
  const enrollFrom = monotonicUs();
  enrollResult = await enrollFleet(h, codes, agentsDir, CONCURRENCY, log);
  mark('enroll', { fromUs: enrollFrom, toUs: monotonicUs() });

  log(`[5/8] fleet: ${N} relays, each on its own TLS connection with its own certificate (${elapsed()})`);
  const t5 = performance.now();
  fleet = await connectFleet(h, codes, agentsDir, agentLog, 20, HEARTBEAT_MS);
  const f = fleet;
  log(`  ${f.agents.size} connected in ${((performance.now() - t5) / 1000).toFixed(1)} s; waiting for the first heartbeats' registry writes…`);
  await settle(h, N, 120_000);

  log(`[6/8] Red Notice from ${SENDER} to '*' (${N - 1} recipients), ${RUNS} runs after a warm-up (${elapsed()})`);
  await phase('fan-out', async () => {
    runs = await fanout(h, f, SENDER, RUNS, { warmup: true, timeoutMs: 30_000, pollMs: POLL_MS, progress: log });
    for (const r of runs) mark('fanout', r.window);
  });
  hubMem = await processMemory(h.pid);
  natsMem = await processMemory(await h.natsPid());
  log(`  memory with the fleet connected: hub RSS ${hubMem?.rssMiB.toFixed(0) ?? '?'} MiB (peak ${hubMem?.hwmMiB.toFixed(0) ?? '?'}), nats-server RSS ${natsMem?.rssMiB.toFixed(0) ?? '?'} MiB`);

  log(`[7/8] steady traffic ${TRAFFIC_SENDERS.join(',')} → ${TRAFFIC_RECIPIENTS.join(',')} at ${RATE} msg/s for ${2 * TRAFFIC_S} s, ${WINDOW_MS / 1000}-s windows alternately quiet and with broker reloads (${elapsed()})`);
  await phase('traffic', async () => {
    // Warm-up, not counted: the first messages of each pair (consumer pulls, files) cost more.
    await steadyTraffic(h, f, { ...trafficOpts, seconds: 2, churn: [] });
    traffic = await steadyTraffic(h, f, trafficOpts);
    mark('traffic', traffic.window);
    const t = traffic;
    log(`  quiet windows: ${t.quiet.accepted} accepted, ${t.quiet.delivered} delivered, p99 ${fmtMs(p50p99(t.quiet.latencies).p99)}`);
    log(`  windows with ${t.reloads} reloads (suspend/resume ${CHURN.join(',')}): ${t.reload.accepted} accepted, ${t.reload.delivered} delivered, p99 ${fmtMs(p50p99(t.reload.latencies).p99)}`);
  });

  log(`[8/8] revoke ${REVOKED} with the fleet connected (${elapsed()})`);
  await phase('revoke', async () => {
    const w0 = monotonicUs();
    revoked = await revokeOne(h, f, REVOKED, 10_000);
    mark('revoke', { fromUs: w0, toUs: monotonicUs() });
    log(`  connection dropped ${fmtMs(revoked.dropMs)} after the command (event ${revoked.event ?? 'none'}; API answered after ${fmtMs(revoked.answerMs)})`);
  });

  const fanoutMissed = runs.length === 0 || p50p99(runs.map((r) => r.storedMs ?? Infinity)).p99 >= TARGET.storedP99 || p50p99(runs.map((r) => r.receiptsMs ?? Infinity)).p99 >= TARGET.receiptsP99;
  const reloadMissed = !traffic || traffic.reload.lost > 0 || p50p99(traffic.reload.latencies).p99 >= TARGET.reloadRatio * p50p99(traffic.quiet.latencies).p99;
  if (PROFILE === '1' || (PROFILE !== '0' && (fanoutMissed || reloadMissed))) {
    // Measured figures come from an unprofiled hub (a profiler costs CPU and memory). To see where
    // the time goes, the hub is restarted on the same state under --cpu-prof, the fleet reconnects,
    // and a few fan-out runs and a few seconds of reload traffic run again with this process under
    // the inspector's profiler too; both profiles are cut to those runs' time windows.
    log(`[+] profile pass: hub restarted under --cpu-prof, fleet reconnected; ${PROFILE_RUNS} fan-out runs and 5 s of traffic with reloads, this process profiled too (${elapsed()})`);
    await phase('profile pass', async () => {
      await fleet?.stop();
      fleet = undefined;
      await hub?.stop();
      hub = undefined;
      const workDir = join(work, 'profiled');
      await mkdir(workDir, { recursive: true });
      hub = await startHub({ stateDir: hubState, workDir, logLevel: LOG_LEVEL, cpuProfile: true });
      const ph = hub;
      fleet = await connectFleet(ph, codes.filter((c) => c !== REVOKED), agentsDir, agentLog, 20, HEARTBEAT_MS);
      const pf = fleet;
      await settle(ph, pf.agents.size, 30_000);
      const { result, profile } = await profileInProcess(async () => {
        const fr = await fanout(ph, pf, SENDER, PROFILE_RUNS, { warmup: true, timeoutMs: 30_000, pollMs: POLL_MS, progress: log });
        // One window of each kind; the profile is cut to the second (the one with reloads).
        const tr = await steadyTraffic(ph, pf, { ...trafficOpts, seconds: 10, windowMs: 5000 });
        return { fr, tr };
      });
      for (const r of result.fr) mark('profiled-fanout', r.window);
      mark('profiled-reload', { fromUs: result.tr.window.fromUs + 5_000_000, toUs: result.tr.window.fromUs + 10_000_000 });
      benchProfile = profile;
    });
  }
} catch (err) {
  failures.push(`setup: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
  log(`FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  if (hub) log(`hub log tail:\n${await hub.logTail(3000)}`);
} finally {
  log(`stopping the fleet and the hub (${elapsed()})`);
  await fleet?.stop();
  hubProfilePath = await hub?.stop();
}

// ---- report ----
/** Profile summaries, each cut to the windows of the profile pass's runs. */
const profileSections: string[] = [];
const profiles: [string, CpuProfile | undefined][] = [
  ['hub process', hubProfilePath ? await readProfile(hubProfilePath) : undefined],
  [`bench process (the ${N - 1} relays)`, benchProfile],
];
for (const [who, profile] of profiles) {
  if (!profile) continue;
  for (const [name, label] of [
    ['profiled-fanout', `${PROFILE_RUNS} fan-out runs`],
    ['profiled-reload', '5 s of traffic with broker reloads'],
  ] as const) {
    const w = windows[name];
    if (!w) continue;
    const s = summarize(profile, w, 10);
    profileSections.push([`${who}, ${label}: busy ${s.busyMs.toFixed(0)} ms, idle ${s.idleMs.toFixed(0)} ms`, ...s.lines].join('\n'));
  }
}

const stored = p50p99(runs.flatMap((r) => (r.storedMs === undefined ? [] : [r.storedMs])));
const receipts = p50p99(runs.flatMap((r) => (r.receiptsMs === undefined ? [] : [r.receiptsMs])));
const incompleteRuns = runs.filter((r) => r.storedMs === undefined || r.receiptsMs === undefined).length;
const base = baseline ? p50p99(baseline.lastMs) : undefined;
const quiet = traffic?.quiet;
const reloading = traffic?.reload;
const quietP = quiet ? p50p99(quiet.latencies) : undefined;
const reloadP = reloading ? p50p99(reloading.latencies) : undefined;
const reloadRatio = quietP && reloadP ? reloadP.p99 / quietP.p99 : undefined;
const perRecipient = p50p99(runs.flatMap((r) => r.perRecipientMs));
const TIMELINE_STEPS: readonly (readonly [keyof FanoutTimeline, string])[] = [
  ['accepted', "sender's relay accepted it (signed, fsynced in the outbox)"],
  ['atBroker', 'submission reached the broker (SUBMIT)'],
  ['lastCopyRouted', 'router stored the last copy (DELIVER)'],
  ['lastStored', 'last recipient stored it (inbox fsynced)'],
  ['lastReceiptAtBroker', "last recipient's receipt reached the broker"],
  ['lastReceiptRouted', 'router stored the last receipt for the sender'],
  ['lastReceiptRecorded', "sender's status store held every receipt"],
];
const timeline: Partial<Record<keyof FanoutTimeline, number | null>> = {};
for (const [key] of TIMELINE_STEPS) {
  const values = runs.flatMap((r) => (r.timeline[key] === undefined ? [] : [r.timeline[key]]));
  timeline[key] = values.length === runs.length && values.length > 0 ? Number(p50p99(values).p50.toFixed(1)) : null;
}
/** The longest gap between two consecutive steps of the median timeline. */
let slowest: { from: string; to: string; ms: number } | undefined;
for (let i = 1; i < TIMELINE_STEPS.length; i++) {
  const [a, labelA] = TIMELINE_STEPS[i - 1] as (typeof TIMELINE_STEPS)[number];
  const [b, labelB] = TIMELINE_STEPS[i] as (typeof TIMELINE_STEPS)[number];
  const ta = timeline[a];
  const tb = timeline[b];
  if (ta === null || ta === undefined || tb === null || tb === undefined) continue;
  if (!slowest || tb - ta > slowest.ms) slowest = { from: labelA, to: labelB, ms: tb - ta };
}
const round = (n: number | undefined, d = 1) => (n === undefined || !Number.isFinite(n) ? null : Number(n.toFixed(d)));
const m = machine();
const recipients = N - 1;
const ok = (v: number | undefined, pass: (x: number) => boolean) => (v === undefined || !Number.isFinite(v) ? undefined : pass(v));

const json = {
  fanout_195_p50_ms: round(runs.length > 0 ? stored.p50 : undefined),
  fanout_195_p99_ms: round(runs.length > 0 ? stored.p99 : undefined),
  fanout_baseline_p50_ms: round(base?.p50),
  fanout_baseline_p99_ms: round(base?.p99),
  receipts_195_p50_ms: round(runs.length > 0 ? receipts.p50 : undefined),
  receipts_195_p99_ms: round(runs.length > 0 ? receipts.p99 : undefined),
  fanout_incomplete_runs: incompleteRuns,
  fanout_timeline_p50_ms: timeline,
  enroll_195_s: round(enrollResult?.totalS, 2),
  enroll_each_p50_ms: round(enrollResult ? p50p99(enrollResult.latencies).p50 : undefined, 0),
  enroll_operator_setup_s: round(enrollResult?.setupS, 2),
  revoke_propagation_ms: round(revoked?.dropMs),
  revoke_api_answer_ms: round(revoked?.answerMs),
  revoke_wireguard_measured: false,
  reload_lost_messages: reloading ? reloading.lost : null,
  reload_duplicates: reloading ? reloading.appDuplicates : null,
  reload_hub_extra_copies: traffic ? traffic.hubExtraCopies : null,
  reload_submit_failures: traffic ? traffic.submitFailures : null,
  reload_count: traffic?.reloads ?? null,
  reload_during_change_p99_ms: round(traffic && traffic.duringChange.length > 0 ? p50p99(traffic.duringChange).p99 : undefined),
  reload_outside_change_p99_ms: round(traffic && traffic.outsideChange.length > 0 ? p50p99(traffic.outsideChange).p99 : undefined),
  reload_change_p50_ms: round(traffic && traffic.changeMs.length > 0 ? p50p99(traffic.changeMs).p50 : undefined, 0),
  reload_p99_ms: round(reloadP?.p99),
  no_reload_p99_ms: round(quietP?.p99),
  no_reload_lost_messages: quiet ? quiet.lost : null,
  reload_p99_ratio: round(reloadRatio, 2),
  sign_per_s: round(sign?.oursPerS, 0),
  openssl_sign_per_s: round(sign?.opensslPerS, 0),
  sign_ratio_vs_openssl: round(sign?.ratio, 2),
  hub_rss_mib: round(hubMem?.rssMiB),
  hub_rss_peak_mib: round(hubMem?.hwmMiB),
  nats_server_rss_mib: round(natsMem?.rssMiB),
  countries: N,
  runs: runs.length,
  traffic_seconds_each: TRAFFIC_S,
  traffic_rate_per_s: RATE,
  quick: QUICK,
  failures,
  date: new Date().toISOString(),
  machine: m,
};

const rows: ScaleRow[] = [
  {
    figure: `Red Notice to all ${recipients}: last stored (p50 / p99 of ${runs.length} runs)`,
    ours: runs.length > 0 ? `${fmtMs(stored.p50)} / ${fmtMs(stored.p99)}` : 'n/a',
    baseline: base ? `raw JetStream, ${recipients} consumers: ${fmtMs(base.p50)} / ${fmtMs(base.p99)}` : 'n/a',
    ratio: base && runs.length > 0 ? `${(stored.p99 / base.p99).toFixed(1)}× (p99)` : '',
    target: `p99 < ${TARGET.storedP99} ms`,
    met: runs.length > 0 && incompleteRuns === 0 ? stored.p99 < TARGET.storedP99 : runs.length > 0 ? false : undefined,
    ...(incompleteRuns > 0 ? { note: `${incompleteRuns} runs did not complete within 30 s` } : {}),
  },
  {
    figure: `Red Notice to all ${recipients}: last receipt back at the sender (p50 / p99)`,
    ours: runs.length > 0 ? `${fmtMs(receipts.p50)} / ${fmtMs(receipts.p99)}` : 'n/a',
    baseline: '—',
    ratio: '',
    target: `p99 < ${TARGET.receiptsP99} ms`,
    met: runs.length > 0 && incompleteRuns === 0 ? receipts.p99 < TARGET.receiptsP99 : runs.length > 0 ? false : undefined,
  },
  {
    figure: `enroll ${N} countries from tokens (${CONCURRENCY} at a time)`,
    ours: enrollResult ? `${enrollResult.totalS.toFixed(1)} s` : 'n/a',
    baseline: '—',
    ratio: '',
    target: `< ${TARGET.enrollS} s (stretch ${TARGET.enrollStretchS} s)`,
    met: ok(enrollResult?.totalS, (v) => v < TARGET.enrollS),
    ...(enrollResult ? { note: `${enrollResult.totalS < TARGET.enrollStretchS ? 'stretch met' : 'stretch not met'}; each enrollment p50 ${fmtMs(p50p99(enrollResult.latencies).p50)}, p99 ${fmtMs(p50p99(enrollResult.latencies).p99)}` } : {}),
  },
  {
    figure: 'revoke one country: command → its connection dropped',
    ours: fmtMs(revoked?.dropMs),
    baseline: '—',
    ratio: '',
    target: `< ${TARGET.revokeMs} ms`,
    met: ok(revoked?.dropMs, (v) => v < TARGET.revokeMs),
    note: `connection part only: WireGuard is off in this benchmark (no netns), so the peer removal is not measured${revoked ? `; event \`${revoked.event ?? 'none'}\`, API answered after ${fmtMs(revoked.answerMs)}${revoked.stillListed ? ', STILL listed in /connz afterwards' : ', gone from /connz'}` : ''}`,
  },
  {
    figure: `broker reloads under traffic: messages lost / duplicated (${traffic?.reloads ?? 0} reloads)`,
    ours: reloading ? `${reloading.lost} lost / ${reloading.appDuplicates} dup of ${reloading.accepted}` : 'n/a',
    baseline: quiet ? `no reload: ${quiet.lost} lost / ${quiet.appDuplicates} dup of ${quiet.accepted}` : 'n/a',
    ratio: '',
    target: 'no message lost',
    met: traffic ? traffic.reload.lost === 0 && traffic.reload.appDuplicates === 0 && traffic.submitFailures === 0 && traffic.hubExtraCopies === 0 : undefined,
    ...(traffic ? { note: `hub copies beyond one per message: ${traffic.hubExtraCopies}; submit failures ${traffic.submitFailures}; each operator change (registry write + checked reload) p50 ${fmtMs(p50p99(traffic.changeMs).p50)}, p99 ${fmtMs(p50p99(traffic.changeMs).p99)}` } : {}),
  },
  {
    figure: 'broker reloads under traffic: latency p99',
    ours: reloadP ? `${fmtMs(reloadP.p99)} (p50 ${fmtMs(reloadP.p50)})` : 'n/a',
    baseline: quietP ? `no reload: ${fmtMs(quietP.p99)} (p50 ${fmtMs(quietP.p50)})` : 'n/a',
    ratio: reloadRatio === undefined ? '' : `${reloadRatio.toFixed(2)}×`,
    target: `< ${TARGET.reloadRatio}×`,
    met: ok(reloadRatio, (v) => v < TARGET.reloadRatio),
  },
  {
    figure: `certificates signed per second (${N} CSRs)`,
    ours: sign ? `${sign.oursPerS.toFixed(0)} certs/s` : 'n/a',
    baseline: sign ? `openssl x509 -req loop: ${sign.opensslPerS.toFixed(0)} certs/s` : 'n/a',
    ratio: sign ? `${sign.ratio.toFixed(2)}×` : '',
    target: `≥ ${TARGET.signRatio}×`,
    met: ok(sign?.ratio, (v) => v >= TARGET.signRatio),
    note: 'ours is CertificateAuthority.issue in process (CSR check, sign, ledger fsync); openssl is one process per certificate, same CA key and extensions',
  },
  {
    figure: `hub process RSS, ${N} countries connected`,
    ours: hubMem ? `${hubMem.rssMiB.toFixed(0)} MiB (peak ${hubMem.hwmMiB.toFixed(0)})` : 'n/a',
    baseline: natsMem ? `nats-server apart: ${natsMem.rssMiB.toFixed(0)} MiB` : 'n/a',
    ratio: '',
    target: `hub < ${TARGET.hubRssMiB} MiB`,
    met: ok(hubMem?.rssMiB, (v) => v < TARGET.hubRssMiB),
    note: 'the hub runs from TypeScript through tsx (as `make demo` and the tests do), whose loader is part of the RSS',
  },
];

const note = [
  `${N} countries${N !== 195 ? ' (targets are for 195)' : ''}, all on loopback: the hub daemon (\`ncbnet hub run\`, its own process) with its nats-server 2.9 (mTLS, per-country users and pins, JetStream on disk), and in this process ${N} agent relays (\`Relay.open\` + \`attach\`, envelopes signed and verified, heartbeats every ${HEARTBEAT_MS / 1000} s), each on its own TLS connection with its own enrolled certificate.`,
  `Fan-out: ${RUNS} Red Notices from ${SENDER} to \`*\`, one at a time, timed from the relay's submit; each recipient relay verifies, fsyncs it in its inbox and sends a signed \`delivered\` receipt back through the hub. Baseline: a plain nats-server (no TLS) with one stream and ${recipients} durable pull consumers on ${recipients} connections, one 1 KiB publish per run.`,
  `Traffic: ${RATE} msg/s for ${2 * TRAFFIC_S} s (${TRAFFIC_SENDERS.join(',')} → ${TRAFFIC_RECIPIENTS.join(',')}) in alternating ${WINDOW_MS / 1000}-s windows, quiet ones and ones with an operator suspend or resume of ${CHURN.join(',')} every second (each re-renders ${N} users and reloads nats-server); a message counts in the window it was submitted in; latency is submit → recipient's inbox; duplicates are second inbox arrivals of an id, hub copies are DELIVER's.`,
  `Logs at level ${LOG_LEVEL}. Each figure is one run of this script; ${failures.length > 0 ? `phases that FAILED: ${failures.join('; ')}` : 'every phase completed'}.`,
].join(' ');

const sections: string[] = [];
if (runs.length > 0) {
  sections.push(`Fan-out detail: per-recipient stored time over all runs p50 ${fmtMs(perRecipient.p50)}, p99 ${fmtMs(perRecipient.p99)}; baseline runs ${baseline?.lastMs.length ?? 0}${baseline && baseline.incomplete > 0 ? `, ${baseline.incomplete} incomplete` : ''}.`);
  sections.push(
    [
      `Where a fan-out run's time goes (median over ${runs.length} runs, ms after the submit call; the broker steps are seen by a subscription of the hub's identity in this process):`,
      '',
      '| step | median ms |',
      '|---|---|',
      ...TIMELINE_STEPS.map(([key, label]) => `| ${label} | ${fmtMs(timeline[key] ?? undefined)} |`),
      ...(slowest ? ['', `Longest stretch: ${slowest.from} → ${slowest.to}, ${fmtMs(slowest.ms)} of the median run.`] : []),
    ].join('\n'),
  );
}
if (traffic) {
  const during = p50p99(traffic.duringChange);
  const outside = p50p99(traffic.outsideChange);
  sections.push(
    `Reload detail: of the ${traffic.reload.delivered} messages of the windows with reloads, ${traffic.duringChange.length} were in flight while an operator change ran (p50 ${fmtMs(during.p50)}, p99 ${fmtMs(during.p99)}), the other ${traffic.outsideChange.length} not (p50 ${fmtMs(outside.p50)}, p99 ${fmtMs(outside.p99)}). Each change: p50 ${fmtMs(p50p99(traffic.changeMs).p50)}, p99 ${fmtMs(p50p99(traffic.changeMs).p99)}.`,
  );
}
if (profileSections.length > 0) {
  sections.push('#### Profiles (top frames by self time, profile pass on a restarted hub; measured figures above are unprofiled)');
  for (const s of profileSections) sections.push('```\n' + s + '\n```');
}

await writeScaleReport({
  title: `Scale: ${N} countries`,
  note,
  rows,
  json,
  jsonPath: 'bench/results/scale-latest.json',
  mdPath: 'bench/results/scale-latest.md',
  sections,
});
for (const s of profileSections) log(`\n${s}`);
console.log(`\nwritten: bench/results/scale-latest.json, bench/results/scale-latest.md (${elapsed()})`);
if (!KEEP) await rm(work, { recursive: true, force: true });
else log(`kept ${work}`);
