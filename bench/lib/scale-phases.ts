/**
 * The measured scenarios of the 195-country benchmark, on a running hub and a connected fleet:
 * Red Notice fan-out with receipts, broker reloads under steady traffic, and revocation.
 */
import { readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { identityPaths } from '../../hub/state-init.js';
import { DELIVER_STREAM, subjects } from '../../protocol/subjects.js';
import type { Fleet } from './scale-fleet.js';
import type { HubProcess } from './scale-hub.js';
import { monotonicUs, type Window } from './scale-profile.js';
import { quantile, sortedCopy } from './scale-report.js';

const NOTICE_BODY = `Locate and provisionally arrest for extradition. ${'Identity particulars, judicial data, photographs withheld. '.repeat(16)}`.slice(0, 1024);

/**
 * Where the time of one fan-out run goes, ms after the submit call (median over runs in the
 * report). `broker…` and `routed…` come from a tap: a core NATS subscription of the hub's identity
 * on `ncb.submit.*` and `ncb.deliver.*`, timed when this process receives the message.
 */
export interface FanoutTimeline {
  /** The sender's relay accepted it (signed, fsynced in its outbox). */
  accepted: number;
  /** The submission reached the broker (`ncb.submit.<SENDER>`). */
  atBroker: number | undefined;
  /** The router stored the last copy for a recipient (`ncb.deliver.<CC>`). */
  lastCopyRouted: number | undefined;
  /** The last recipient stored it in its inbox (fsynced). */
  lastStored: number | undefined;
  /** The last recipient's receipt reached the broker (`ncb.submit.<CC>`). */
  lastReceiptAtBroker: number | undefined;
  /** The router stored the last receipt for the sender (`ncb.deliver.<SENDER>`). */
  lastReceiptRouted: number | undefined;
  /** The sender's status store held every receipt. */
  lastReceiptRecorded: number | undefined;
}

export interface FanoutRun {
  /** ms from the submit call until the last recipient stored it (undefined: not all did in time). */
  storedMs: number | undefined;
  /** ms from the submit call until the sender's status held a `delivered` receipt from every recipient. */
  receiptsMs: number | undefined;
  stored: number;
  receipts: number;
  /** Each recipient's stored time (ms after submit). */
  perRecipientMs: number[];
  timeline: FanoutTimeline;
  window: Window;
}

/**
 * `runs` Red Notices from `sender` to `*`, one at a time (plus one warm-up run first, not returned
 * when `warmup`). Each waits for every recipient's inbox and every receipt, `timeoutMs` at most.
 */
export async function fanout(hub: HubProcess, fleet: Fleet, sender: string, runs: number, opts: { warmup: boolean; timeoutMs: number; pollMs: number; progress: (text: string) => void }): Promise<FanoutRun[]> {
  const from = fleet.agents.get(sender);
  if (!from) throw new Error(`fan-out: no agent ${sender}`);
  const expected = fleet.agents.size - 1;
  // The tap: nothing else submits or delivers during these runs (no app acks, so no read receipts).
  const tap = await hubConnection(hub);
  const seen = { submitSender: NaN, submitOthers: [] as number[], deliverSender: [] as number[], deliverOthers: [] as number[] };
  const ownSubmit = subjects.submit(sender);
  const ownDeliver = subjects.deliver(sender);
  tap.subscribe(subjects.submitAll, {
    callback: (_e, m) => {
      if (m.subject === ownSubmit) seen.submitSender = performance.now();
      else seen.submitOthers.push(performance.now());
    },
  });
  tap.subscribe(subjects.deliverAll, {
    callback: (_e, m) => {
      (m.subject === ownDeliver ? seen.deliverSender : seen.deliverOthers).push(performance.now());
    },
  });
  await tap.flush();
  const arrivals = new Map<string, Map<string, number>>();
  fleet.onArrival = (cc, item, at) => {
    const m = arrivals.get(item.id) ?? new Map<string, number>();
    if (!m.has(cc)) m.set(cc, at);
    arrivals.set(item.id, m);
  };
  const out: FanoutRun[] = [];
  try {
    for (let r = opts.warmup ? -1 : 0; r < runs; r++) {
      seen.submitSender = NaN;
      seen.submitOthers = [];
      seen.deliverSender = [];
      seen.deliverOthers = [];
      const fromUs = monotonicUs();
      const t0 = performance.now();
      const { id } = await from.relay.submit({ kind: 'notice', notice: { colour: 'red' }, to: '*', priority: 'urgent', subject: `Red notice ${r + 1}: wanted person`, body: NOTICE_BODY });
      const acceptedAt = performance.now();
      let receiptsAt: number | undefined;
      const deadline = t0 + opts.timeoutMs;
      for (;;) {
        const stored = arrivals.get(id)?.size ?? 0;
        const recipients = from.relay.status(id)?.recipients ?? {};
        const receipts = Object.values(recipients).filter((x) => x.state === 'delivered' || x.state === 'read').length;
        if (receiptsAt === undefined && receipts >= expected) receiptsAt = performance.now();
        if ((stored >= expected && receiptsAt !== undefined) || performance.now() > deadline) break;
        // status() copies the whole status (every recipient): polled, not spun on, to stay cheap.
        await delay(opts.pollMs);
      }
      const got = arrivals.get(id) ?? new Map<string, number>();
      const perRecipientMs = sortedCopy([...got.values()].map((t) => t - t0));
      const recipients = from.relay.status(id)?.recipients ?? {};
      const run: FanoutRun = {
        storedMs: got.size >= expected ? perRecipientMs[perRecipientMs.length - 1] : undefined,
        receiptsMs: receiptsAt === undefined ? undefined : receiptsAt - t0,
        stored: got.size,
        receipts: Object.values(recipients).filter((x) => x.state === 'delivered' || x.state === 'read').length,
        perRecipientMs,
        timeline: {
          accepted: acceptedAt - t0,
          atBroker: Number.isNaN(seen.submitSender) ? undefined : seen.submitSender - t0,
          lastCopyRouted: seen.deliverOthers.length >= expected ? Math.max(...seen.deliverOthers) - t0 : undefined,
          lastStored: got.size >= expected ? perRecipientMs[perRecipientMs.length - 1] : undefined,
          lastReceiptAtBroker: seen.submitOthers.length >= expected ? Math.max(...seen.submitOthers) - t0 : undefined,
          lastReceiptRouted: seen.deliverSender.length >= expected ? Math.max(...seen.deliverSender) - t0 : undefined,
          lastReceiptRecorded: receiptsAt === undefined ? undefined : receiptsAt - t0,
        },
        window: { fromUs, toUs: monotonicUs() },
      };
      arrivals.delete(id);
      const label = r < 0 ? 'warm-up' : `run ${r + 1}/${runs}`;
      opts.progress(`  ${label}: last stored ${run.storedMs?.toFixed(0) ?? `— (${run.stored}/${expected})`} ms, last receipt ${run.receiptsMs?.toFixed(0) ?? `— (${run.receipts}/${expected})`} ms`);
      if (r >= 0) out.push(run);
      // Let the tail (acks, audit, heartbeats) settle so runs do not overlap.
      await delay(250);
    }
  } finally {
    fleet.onArrival = undefined;
    await tap.close();
  }
  return out;
}

/** The hub's own identity on its broker (as the operator could), to read DELIVER's counts. */
async function hubConnection(hub: HubProcess): Promise<NatsConnection> {
  const ids = identityPaths(hub.stateDir);
  return connect({ servers: hub.endpoints.natsUrl, tls: { ca: hub.rootPem, cert: await readFile(ids.hubCert, 'utf8'), key: await readFile(ids.hubKey, 'utf8') } });
}

async function deliverCount(jsm: JetStreamManager, cc: string): Promise<number> {
  const subject = subjects.deliver(cc);
  const info = await jsm.streams.info(DELIVER_STREAM, { subjects_filter: subject });
  return info.state.subjects?.[subject] ?? 0;
}

/** What happened to the messages submitted in one kind of window. */
export interface TrafficClass {
  accepted: number;
  /** Accepted messages that reached their recipient's inbox (once or more). */
  delivered: number;
  lost: number;
  /** Extra inbox arrivals of an id already there (what an NCB application would see twice). */
  appDuplicates: number;
  /** Submit → recipient's inbox, ms, sorted. */
  latencies: number[];
}

export interface TrafficPhase {
  /** Messages submitted in windows without operator changes. */
  quiet: TrafficClass;
  /** Messages submitted in windows with operator changes (each a broker reload). */
  reload: TrafficClass;
  /** Copies stored in DELIVER for the recipients beyond one per accepted message (whole phase). */
  hubExtraCopies: number;
  submitFailures: number;
  reloads: number;
  /** Each operator change's time (registry write + re-render + checked reload), ms. */
  changeMs: number[];
  /** Of the reload windows' messages: latencies of those in flight while a change ran, and of the others. */
  duringChange: number[];
  outsideChange: number[];
  window: Window;
}

export interface TrafficOptions {
  senders: readonly string[];
  recipients: readonly string[];
  /** Countries suspended and resumed in turn to make the broker reload (empty: no reloads at all). */
  churn: readonly string[];
  ratePerS: number;
  seconds: number;
  /**
   * Length of the alternating windows, quiet first, then with changes (every `changeEveryMs`,
   * the last one starting at least 1 s before the window ends), and so on. Alternating, rather
   * than one quiet phase then one reload phase, gives both the same background (the machine's
   * other load, the stores' growth).
   */
  windowMs: number;
  changeEveryMs: number;
  drainTimeoutMs: number;
  progress: (text: string) => void;
}

/**
 * Steady traffic: `ratePerS` messages a second in total for `seconds`, sender i → recipient i in
 * turn; with `churn`, operator suspends and resumes in every other window (see
 * {@link TrafficOptions.windowMs}), each of which re-renders the broker's users and reloads
 * nats-server; every window with changes ends with every churn country resumed. Then waits for
 * every accepted message to arrive (at most `drainTimeoutMs`).
 */
export async function steadyTraffic(hub: HubProcess, fleet: Fleet, opts: TrafficOptions): Promise<TrafficPhase> {
  const hubNc = await hubConnection(hub);
  try {
    const jsm = await jetstreamManager(hubNc);
    const before = new Map<string, number>();
    for (const cc of opts.recipients) before.set(cc, await deliverCount(jsm, cc));
    const sent = new Map<string, { t0: number; to: string; inReloadWindow: boolean }>();
    const arrivals = new Map<string, { cc: string; at: number }[]>();
    fleet.onArrival = (cc, item, at) => {
      const list = arrivals.get(item.id) ?? [];
      list.push({ cc, at });
      arrivals.set(item.id, list);
    };
    const fromUs = monotonicUs();
    let submitFailures = 0;
    const pending: Promise<void>[] = [];
    const total = Math.round(opts.ratePerS * opts.seconds);
    const intervalMs = 1000 / opts.ratePerS;
    const changeMs: number[] = [];
    const changes: { from: number; to: number }[] = [];
    const start = performance.now();
    const isReloadWindow = (t: number) => opts.churn.length > 0 && Math.floor((t - start) / opts.windowMs) % 2 === 1;
    const change = async (cc: string, action: 'suspend' | 'resume') => {
      const t = performance.now();
      await hub.admin('POST', `/countries/${cc}/${action}`, action === 'suspend' ? { reason: 'benchmark: broker reload under traffic' } : undefined);
      changeMs.push(performance.now() - t);
      changes.push({ from: t, to: performance.now() });
    };
    // Its failure is kept and thrown after the traffic (a rejection nobody awaits yet would end the process).
    let churnError: Error | undefined;
    const churn = (async () => {
      if (opts.churn.length === 0) return;
      const windows = Math.ceil(opts.seconds * 1000 / opts.windowMs);
      let k = 0;
      for (let w = 1; w < windows; w += 2) {
        const windowStart = start + w * opts.windowMs;
        const suspended = new Set<string>();
        for (let at = windowStart + opts.changeEveryMs / 2; at <= windowStart + opts.windowMs - 1000; at += opts.changeEveryMs, k++) {
          const wait = at - performance.now();
          if (wait > 0) await delay(wait);
          const cc = opts.churn[Math.floor(k / 2) % opts.churn.length] as string;
          const action = suspended.has(cc) ? 'resume' : 'suspend';
          await change(cc, action);
          if (action === 'suspend') suspended.add(cc);
          else suspended.delete(cc);
        }
        for (const cc of suspended) await change(cc, 'resume');
      }
    })().catch((err: unknown) => {
      churnError = err instanceof Error ? err : new Error(`operator change failed: ${JSON.stringify(err)}`);
    });
    for (let k = 0; k < total; k++) {
      const wait = start + k * intervalMs - performance.now();
      if (wait > 0) await delay(wait);
      const i = k % opts.senders.length;
      const from = fleet.agents.get(opts.senders[i] as string);
      const to = opts.recipients[i % opts.recipients.length] as string;
      if (!from) throw new Error(`traffic: no agent ${opts.senders[i]}`);
      const t0 = performance.now();
      const inReloadWindow = isReloadWindow(t0);
      pending.push(
        from.relay.submit({ kind: 'message', to: [to], subject: `steady ${k}`, body: `message ${k} from ${from.cc} to ${to}` }).then(
          (s) => void sent.set(s.id, { t0, to, inReloadWindow }),
          () => void submitFailures++,
        ),
      );
    }
    await Promise.all(pending);
    await churn;
    if (churnError !== undefined) throw churnError;
    const drainDeadline = performance.now() + opts.drainTimeoutMs;
    const arrivedCount = () => [...sent.entries()].filter(([id, s]) => (arrivals.get(id) ?? []).some((a) => a.cc === s.to)).length;
    while (arrivedCount() < sent.size && performance.now() < drainDeadline) await delay(50);
    const toUs = monotonicUs();
    fleet.onArrival = undefined;

    const empty = (): TrafficClass => ({ accepted: 0, delivered: 0, lost: 0, appDuplicates: 0, latencies: [] });
    const quiet = empty();
    const reload = empty();
    const duringChange: number[] = [];
    const outsideChange: number[] = [];
    for (const [id, s] of sent) {
      const c = s.inReloadWindow ? reload : quiet;
      c.accepted++;
      const got = (arrivals.get(id) ?? []).filter((a) => a.cc === s.to);
      if (got.length === 0) {
        c.lost++;
        continue;
      }
      c.delivered++;
      c.appDuplicates += got.length - 1;
      const at = (got[0] as { at: number }).at;
      c.latencies.push(at - s.t0);
      if (s.inReloadWindow) (changes.some((x) => x.from <= at && x.to >= s.t0) ? duringChange : outsideChange).push(at - s.t0);
    }
    quiet.latencies.sort((a, b) => a - b);
    reload.latencies.sort((a, b) => a - b);
    const perRecipient = new Map<string, number>();
    for (const s of sent.values()) perRecipient.set(s.to, (perRecipient.get(s.to) ?? 0) + 1);
    let hubExtraCopies = 0;
    for (const cc of opts.recipients) hubExtraCopies += (await deliverCount(jsm, cc)) - (before.get(cc) ?? 0) - (perRecipient.get(cc) ?? 0);
    return {
      quiet,
      reload,
      hubExtraCopies,
      submitFailures,
      reloads: changeMs.length,
      changeMs: sortedCopy(changeMs),
      duringChange: sortedCopy(duringChange),
      outsideChange: sortedCopy(outsideChange),
      window: { fromUs, toUs },
    };
  } finally {
    fleet.onArrival = undefined;
    await hubNc.close();
  }
}

export interface RevokeResult {
  /** ms from the revoke request until the country's connection reported it was dropped. */
  dropMs: number | undefined;
  /** The status event that told it. */
  event: string | undefined;
  /** ms until the API answered. */
  answerMs: number;
  /** Whether nats-server's /connz still listed a connection of the country afterwards. */
  stillListed: boolean;
}

/** `POST /v1/admin/countries/{cc}/revoke` with the fleet connected; times until `cc`'s connection drops. */
export async function revokeOne(hub: HubProcess, fleet: Fleet, cc: string, timeoutMs: number): Promise<RevokeResult> {
  const agent = fleet.agents.get(cc);
  if (!agent) throw new Error(`revoke: no agent ${cc}`);
  let dropAt: number | undefined;
  let event: string | undefined;
  agent.onStatus = (type, at) => {
    if (dropAt === undefined && (type === 'disconnect' || type === 'error' || type === 'close' || type === 'staleConnection')) {
      dropAt = at;
      event = type;
    }
  };
  const t0 = performance.now();
  await hub.admin('POST', `/countries/${cc}/revoke`, { reason: 'keyCompromise', note: 'benchmark' });
  const answerMs = performance.now() - t0;
  for (const deadline = t0 + timeoutMs; dropAt === undefined && performance.now() < deadline; ) await delay(2);
  agent.onStatus = undefined;
  const connz = (await (await fetch(`${hub.endpoints.monitorUrl}/connz?auth=true&limit=1024`)).json()) as { connections?: { authorized_user?: string }[] };
  const stillListed = (connz.connections ?? []).some((c) => c.authorized_user === `CN=${cc},OU=ncb,O=ncbnet`);
  // The revoked agent would retry forever (refused by its pin): stop it.
  agent.heartbeat.stop();
  await Promise.race([agent.relay.stop().catch(() => undefined), delay(5_000)]);
  await agent.nc.close().catch(() => undefined);
  fleet.agents.delete(cc);
  return { dropMs: dropAt === undefined ? undefined : dropAt - t0, event, answerMs, stillListed };
}

/** Median and p99 of `values` (sorted inside). */
export function p50p99(values: readonly number[]): { p50: number; p99: number } {
  const s = sortedCopy(values);
  return { p50: quantile(s, 0.5), p99: quantile(s, 0.99) };
}
