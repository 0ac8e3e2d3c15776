/**
 * A flooding country (issue 9): one NCB submits at 10x its normal rate (a looping application, a
 * compromised agent) while four others send their normal urgent traffic to each other. The
 * hub's per-country rate limit (`router.ratePerCountry`) must hold the flood back without losing
 * or refusing any of it, and the others' urgent messages must keep their latency: their p99 with
 * the flood within 2x of their p99 without it, plus slack for a shared 2-core machine.
 *
 * The real hub daemon (its own process, nats-server with mTLS and per-country users, router with
 * signature checks and audit) with six countries enrolled through the real API, each running the
 * agent's real relay in this process (signed envelopes, fsynced outbox and inbox, receipts), as
 * the 195-country benchmark does (`bench/lib/scale-fleet.ts`). Normal is 5 urgent messages a
 * second per country; the flood is 50 a second, over the hub's rate, which this scenario sets to
 * 20 a second with a burst of 40 (the default, 50 with a burst of 200, sits at 10x such a normal
 * rate). Every loop is bounded and stops by itself; every message is checked to arrive exactly
 * once at its recipient.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { connect } from '@nats-io/transport-node';
import { pino } from 'pino';
import { enrollFleet, connectFleet, type Agent } from '../../bench/lib/scale-fleet.js';
import { startHub } from '../../bench/lib/scale-hub.js';
import { quantile } from '../../bench/lib/scale-report.js';
import { identityPaths, initHubState } from '../../hub/state-init.js';
import { subjects } from '../../protocol/subjects.js';
import { tempDir } from '../../test/helpers/tmpdir.js';
import type { FaultContext } from '../lib/context.js';
import type { RowInput } from '../lib/report.js';

const FLOODER = 'FR';
/** Where the flood goes: not one of the measured countries, so only the router is shared. */
const SINK = 'ES';
/** Each sends to the next, urgent, at the normal rate. */
const STEADY = ['DE', 'IT', 'NL', 'BE'] as const;
const NORMAL_PER_S = 5;
const FLOOD_PER_S = 10 * NORMAL_PER_S;
const RATE = { perSecond: 20, burst: 40 };
/** Each phase (without, then with the flood). */
const PHASE_S = 10;
/**
 * The others' p99 with the flood may be 2x their p99 without, plus this: the six relays run in
 * this process, so the flood's fsyncs and signatures load the measuring side too, on a 2-core
 * machine (the same slack as the partition row).
 */
const SLACK_MS = 500;

interface Sent {
  from: string;
  to: string;
  atMs: number;
  phase: 'quiet' | 'flood';
  isFlood: boolean;
}

/** Sends `count` urgent messages from `agent` to `to`, one every `1000 / perS` ms (not waiting for each). */
async function pace(agent: Agent, to: string, perS: number, count: number, phase: Sent['phase'], isFlood: boolean, sent: Map<string, Sent>, errors: string[]): Promise<void> {
  const t0 = performance.now();
  const pending: Promise<void>[] = [];
  for (let i = 0; i < count; i++) {
    const wait = t0 + (i * 1000) / perS - performance.now();
    if (wait > 0) await delay(wait);
    const atMs = performance.now();
    pending.push(
      agent.relay
        .submit({ kind: 'message', to: [to], priority: 'urgent', subject: `${phase} ${i}`, body: `${isFlood ? 'flood' : 'normal'} traffic ${i}` })
        .then((status) => void sent.set(status.id, { from: agent.cc, to, atMs, phase, isFlood }))
        .catch((err: unknown) => void errors.push(`${agent.cc}: ${err instanceof Error ? err.message : String(err)}`)),
    );
  }
  await Promise.all(pending);
}

/** The hub's `ncbnet_router_throttled_total` for `country`, from /metrics (undefined when unreadable). */
async function throttledCount(metricsUrl: string | undefined, country: string): Promise<number | undefined> {
  if (metricsUrl === undefined) return undefined;
  try {
    const text = await (await fetch(`${metricsUrl.replace(/\/metrics$/, '')}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`ncbnet_router_throttled_total{country="${country}"}`));
    return line === undefined ? undefined : Number(line.split(' ').pop());
  } catch {
    return undefined;
  }
}

const fmt = (values: number[]): string => (values.length === 0 ? 'none' : `p50 ${quantile(values, 0.5).toFixed(0)} ms, p99 ${quantile(values, 0.99).toFixed(0)} ms (n=${values.length})`);

/** The flood row: lost, duplicated, the others' p99 without and with the flood, the flood held back. */
export async function floodOneCountry(ctx: FaultContext): Promise<RowInput[]> {
  const started = performance.now();
  const work = await tempDir(ctx.owner, 'ncbnet-faults-flood-');
  const stateDir = join(work, 'hub');
  await initHubState({ state: stateDir, hubName: 'hub-1', sans: ['127.0.0.1', 'localhost'], operator: 'admin' });
  const hub = await startHub({ stateDir, workDir: work, logLevel: 'warn', cpuProfile: false, config: { router: { ratePerCountry: RATE } } });
  ctx.owner.teardown(() => hub.stop());
  const codes = [FLOODER, SINK, ...STEADY];
  const agentsDir = join(work, 'agents');
  await enrollFleet(hub, codes, agentsDir, 3, () => undefined);
  const fleet = await connectFleet(hub, codes, agentsDir, pino({ level: 'silent' }), 3, 10_000);
  ctx.owner.teardown(() => fleet.stop());
  ctx.progress(`      hub and ${codes.length} countries up in ${((performance.now() - started) / 1000).toFixed(1)} s; hub rate ${RATE.perSecond}/s, burst ${RATE.burst}`);

  // A tap with the hub's identity: when each submission reached the broker and when its copy
  // was stored in DELIVER, to tell the router's share of the latency from the agents'.
  const ids = identityPaths(stateDir);
  const tap = await connect({ servers: hub.endpoints.natsUrl, tls: { ca: hub.rootPem, cert: await readFile(ids.hubCert, 'utf8'), key: await readFile(ids.hubKey, 'utf8') } });
  ctx.owner.teardown(() => tap.close());
  const atBroker = new Map<string, number>();
  const routedAt = new Map<string, number>();
  const idOf = (data: Uint8Array): string | undefined => {
    try {
      const v = JSON.parse(new TextDecoder().decode(data)) as { id?: unknown };
      return typeof v.id === 'string' ? v.id : undefined;
    } catch {
      return undefined;
    }
  };
  for (const [subject, seen] of [[subjects.submitAll, atBroker], [subjects.deliverAll, routedAt]] as const) {
    tap.subscribe(subject, {
      callback: (_err, m) => {
        const id = idOf(m.data);
        if (id !== undefined && !seen.has(id)) seen.set(id, performance.now());
      },
    });
  }
  await tap.flush();
  const sent = new Map<string, Sent>();
  /** id → arrival times at its recipient (more than one is a duplicate). */
  const arrivals = new Map<string, { cc: string; at: number[] }>();
  fleet.onArrival = (cc, item, at) => {
    const a = arrivals.get(item.id) ?? { cc, at: [] };
    a.at.push(at);
    arrivals.set(item.id, a);
  };
  const errors: string[] = [];
  const agent = (cc: string): Agent => {
    const a = fleet.agents.get(cc);
    if (a === undefined) throw new Error(`no agent ${cc}`);
    return a;
  };
  const steady = (phase: Sent['phase']): Promise<void>[] =>
    STEADY.map((cc, i) => pace(agent(cc), STEADY[(i + 1) % STEADY.length] as string, NORMAL_PER_S, NORMAL_PER_S * PHASE_S, phase, false, sent, errors));

  await Promise.all(steady('quiet'));
  const floodStart = performance.now();
  await Promise.all([...steady('flood'), pace(agent(FLOODER), SINK, FLOOD_PER_S, FLOOD_PER_S * PHASE_S, 'flood', true, sent, errors)]);
  const floodSent = [...sent.values()].filter((s) => s.isFlood).length;
  // The flood drains at the hub's rate; everything must arrive, however late.
  const drainMs = (floodSent / RATE.perSecond) * 1000 + 30_000;
  const deadline = performance.now() + drainMs;
  while (performance.now() < deadline && [...sent.keys()].some((id) => !arrivals.has(id))) await delay(100);
  const floodDoneMs = Math.max(0, ...[...sent].filter(([, s]) => s.isFlood).map(([id]) => arrivals.get(id)?.at[0] ?? 0)) - floodStart;
  // Late duplicates (a redelivery) would come within a moment of the last arrival.
  await delay(1_000);

  let delivered = 0;
  let lost = 0;
  let duplicated = 0;
  let misrouted = 0;
  const latency = { quiet: [] as number[], flood: [] as number[] };
  const hubLatency = { quiet: [] as number[], flood: [] as number[] };
  for (const [id, s] of sent) {
    const a = arrivals.get(id);
    if (a === undefined) {
      lost++;
      continue;
    }
    delivered++;
    duplicated += a.at.length - 1;
    if (a.cc !== s.to) misrouted++;
    if (s.isFlood) continue;
    latency[s.phase].push((a.at[0] as number) - s.atMs);
    const [b, r] = [atBroker.get(id), routedAt.get(id)];
    if (b !== undefined && r !== undefined) hubLatency[s.phase].push(r - b);
  }
  for (const l of [...Object.values(latency), ...Object.values(hubLatency)]) l.sort((x, y) => x - y);
  const quietP99 = quantile(latency.quiet, 0.99);
  const floodP99 = quantile(latency.flood, 0.99);
  const throttled = await throttledCount(hub.endpoints.metricsUrl, FLOODER);
  const othersThrottled = await Promise.all(STEADY.map((cc) => throttledCount(hub.endpoints.metricsUrl, cc)));

  const failures: Record<string, number> = {};
  if (latency.flood.length === 0 || floodP99 > 2 * quietP99 + SLACK_MS) failures["the others' urgent p99 moved with the flood"] = 1;
  if (!(throttled !== undefined && throttled > 0)) failures['the flood was not held back by the rate limit'] = 1;
  if (othersThrottled.some((n) => n === undefined || n > 0)) failures['a country at its normal rate was held back'] = 1;
  if (misrouted > 0) failures['delivered to the wrong country'] = misrouted;
  if (errors.length > 0) failures['refused by the sending agent'] = errors.length;
  ctx.progress(`      others' urgent latency without the flood ${fmt(latency.quiet)}; with it ${fmt(latency.flood)}; hub's part ${fmt(hubLatency.quiet)} → ${fmt(hubLatency.flood)}; flood of ${floodSent} drained ${(floodDoneMs / 1000).toFixed(1)} s after it began`);
  return [
    {
      scenario: `flood: ${FLOODER} at ${FLOOD_PER_S} msg/s (10x normal) while ${STEADY.join(', ')} send ${NORMAL_PER_S}/s urgent`,
      kind: 'fault',
      attempts: sent.size,
      refused: delivered,
      leaked: lost,
      duplicated,
      failures,
      notes: [
        `others' urgent latency (submit → recipient's inbox) without the flood: ${fmt(latency.quiet)}; with it: ${fmt(latency.flood)} (pass: p99 within 2x + ${SLACK_MS} ms)`,
        `of which the hub (submission at the broker → copy stored in DELIVER): without ${fmt(hubLatency.quiet)}; with ${fmt(hubLatency.flood)}`,
        `flood: ${floodSent} messages to ${SINK}, held back ${throttled ?? '?'} times (ncbnet_router_throttled_total{country="${FLOODER}"}) at ${RATE.perSecond}/s burst ${RATE.burst}; the last arrived ${(floodDoneMs / 1000).toFixed(1)} s after the flood began`,
        `each message checked at its recipient: ${delivered} delivered once or more, ${lost} lost, ${duplicated} extra copies${errors.length > 0 ? `; agent errors: ${errors.slice(0, 3).join('; ')}` : ''}`,
      ],
      ms: performance.now() - started,
    },
  ];
}
