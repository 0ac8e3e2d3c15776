/**
 * The hub's router (ARCHITECTURE, "Messages"): reads SUBMIT through the durable work-queue
 * consumer `router` and hands each submission to `submission.ts` (check, one copy per recipient
 * in DELIVER, audit record, then ack). Several submissions are in flight at once
 * (`maxInFlight`, default 32): each costs two JetStream round trips (the copies, then the audit
 * record), and one at a time let a Red Notice's 194 receipts queue behind each other.
 *
 * Which submission goes next is `fair-queue.ts`: a lane per sending country served round-robin,
 * urgent before routine, each country limited to `ratePerCountry` (a token bucket for its
 * messages, another for its receipts). A country over its rate is held back, never refused or
 * dropped: a police message must not be lost because it came in a burst.
 *
 * Why one consumer and a reorder in memory, not a consumer per country: SUBMIT is a work queue,
 * and nats-server 2.9 allows several consumers on one only with filters that do not overlap, so
 * per-country consumers would mean 249 pull loops (one per ISO code, members or not, or a revoked
 * country's last submissions would never be read), made and removed with the membership. Instead
 * the router pulls a window of SUBMIT (consume batch `batchSize`) and sorts it into lanes. A lane
 * holds at most `laneCapacity` submissions; the rest of a flooding country's backlog is left in
 * SUBMIT with `nak(delay)`, the delay being when its tokens allow it, so it does not sit in memory
 * and, more important, does not sit in front of other countries' submissions: redeliveries come
 * back when due, and meanwhile the consumer hands out what others submitted after it. A message
 * nak'ed with a delay still counts against the consumer's max_ack_pending (nats-server keeps it
 * pending), so the router's consumer is made with `maxAckPending` 50 000: a flood must reach that
 * many held-back submissions before other countries' messages wait for it.
 *
 * Order: one country's submissions may be routed in another order than submitted (they run
 * concurrently, and held-back ones come back later). What depends on order is kept: a deletion
 * starts only when everything its sender submitted before it (as received) has finished, so the
 * original's `routed` record exists, and a deletion whose original is unknown while some of its
 * sender's submissions are held back is retried rather than refused; two submissions with one
 * envelope id never run at once, and the second, a replay, finds its copies stored (DELIVER
 * dedups `Nats-Msg-Id`) and writes no second `routed` record.
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { ConsumerMessages, JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { AuditFields } from '../../protocol/audit.js';
import type { Envelope } from '../../protocol/envelope.js';
import { CodedError } from '../../protocol/errors.js';
import { SUBMIT_STREAM, countryOfSubject } from '../../protocol/subjects.js';
import { ROUTER_CONSUMER, ensureRouterConsumer } from '../broker/streams.js';
import type { RecipientDirectory } from './decide.js';
import type { MessageHistory } from './deletion.js';
import { ROUTER_START_FAILED, RouterError } from './errors.js';
import { FairQueue, type QueueItem } from './fair-queue.js';
import { SubmissionHandler, type RouterStats } from './submission.js';
import type { RateLimit } from './token-bucket.js';
import type { UrgentWatch } from './urgent-watch.js';

export * from './decide.js';
export * from './errors.js';
export type { MessageHistory } from './deletion.js';
export type { RejectionEvent, RouterStats } from './submission.js';
export type { RateLimit } from './token-bucket.js';

/**
 * 50 a second, 200 at once: a country's own traffic is a few messages a second at its busiest,
 * and its receipts (own bucket) come in bursts of at most what it was sent; a diffusion to all
 * from every member at once makes 194 receipts per country, which the burst takes whole. Four
 * times the benchmark's 195-country fan-out still fits, while a flood (a looping application, a
 * compromised NCB) is held to a rate the hub sustains for every country at once.
 */
export const DEFAULT_RATE_PER_COUNTRY: RateLimit = Object.freeze({ perSecond: 50, burst: 200 });
/** Submissions in flight at once: enough to cover the two round trips of each, bounded for memory. */
export const DEFAULT_MAX_IN_FLIGHT = 32;
/** The router consumer's max_ack_pending (see the module comment). */
export const ROUTER_MAX_ACK_PENDING = 50_000;

/** Options of {@link Router}. */
export interface RouterOptions {
  /** The hub's own connection (its user may read SUBMIT and write DELIVER and events). */
  nc: NatsConnection;
  directory: RecipientDirectory;
  log: Logger;
  stats?: RouterStats;
  /**
   * Where every routing decision is recorded (hash-chained AUDIT stream). A decision is acked or
   * terminated only once its record is stored: an audit outage stops routing rather than routing
   * unrecorded.
   */
  audit?: { append(fields: AuditFields): Promise<unknown> };
  /**
   * The records of what was routed (the audit log), to check a deletion against its original:
   * only the originator may delete, recipients are the original's, and its stored copies are
   * found by the DELIVER sequences in its `routed` record. Without it a deletion is routed like a
   * message, to the countries it names, unchecked, and no stored copy is erased (tests, tools).
   */
  history?: MessageHistory;
  /** Told about every envelope routed, to raise urgent messages not confirmed in time. */
  urgent?: Pick<UrgentWatch, 'routed'>;
  /**
   * Checks the envelope's signature (sender certificate chain, revocation, `from` = certificate's
   * country). A coded failure rejects the submission with that code; it is never delivered.
   */
  verify?: (envelope: Envelope) => Promise<void>;
  /** Largest envelope accepted (default {@link MAX_ENVELOPE_BYTES}). */
  maxEnvelopeBytes?: number;
  /** Delay before a submission whose copies could not all be stored is retried (default 2 s). */
  retryDelayMs?: number;
  /** How long to wait for JetStream to ack one copy (default 5 s). */
  publishTimeoutMs?: number;
  /**
   * The `router` consumer's ack wait (default 30 s). Keep it well under DELIVER's duplicate window
   * (2 min): a submission redelivered after a lost ack must fall inside the window to be deduped.
   */
  ackWaitMs?: number;
  /** Messages the consumer pulls at a time (default 128): the window sorted into lanes. */
  batchSize?: number;
  /** Submissions handled at once (default {@link DEFAULT_MAX_IN_FLIGHT}). */
  maxInFlight?: number;
  /** Each country's rate (default {@link DEFAULT_RATE_PER_COUNTRY}). */
  ratePerCountry?: RateLimit;
  /** Submissions of one country waiting in memory; more are left in SUBMIT (default 64). */
  laneCapacity?: number;
}

const NO_STATS: RouterStats = { onRouted: () => undefined, onRejected: () => undefined };
/** Shortest time a submission left in SUBMIT for lack of room waits before it comes back. */
const MIN_HOLD_MS = 250;
/** A submission left in SUBMIT is forgotten this long after it was due back (another router took it). */
const HELD_GRACE_MS = 60_000;

// Consumer notifications worth a warning; the rest (heartbeats, next requests) are routine.
const WARN_STATUSES = new Set(['heartbeats_missed', 'consumer_not_found', 'stream_not_found', 'consumer_deleted', 'no_responders', 'exceeded_limits']);

/** A submission taken from SUBMIT, as the fair queue sees it. */
interface Job extends QueueItem {
  m: JsMsg;
  /** performance.now() of the last sign of life sent for it (arrival, or `working()`). */
  touchedMs: number;
}

/**
 * The routing service. `start()` binds to (creating if needed) the `router` consumer on SUBMIT and
 * routes until `stop()`. Several routers (one per hub of a cluster) share the same consumer.
 */
export class Router {
  readonly #opts: RouterOptions;
  readonly #log: Logger;
  readonly #stats: RouterStats;
  readonly #maxInFlight: number;
  readonly #ackWaitMs: number;
  #queue: FairQueue<Job> | undefined;
  #handler: SubmissionHandler | undefined;
  #messages: ConsumerMessages | undefined;
  #loop: Promise<void> | undefined;
  /** Submissions queued or in flight, by stream sequence. */
  readonly #tracked = new Map<number, Job>();
  readonly #running = new Set<Promise<void>>();
  /** Submissions left in SUBMIT by country: stream sequence → when they are due back. */
  readonly #held = new Map<string, Map<number, number>>();
  #wakeTimer: NodeJS.Timeout | undefined;
  #touchTimer: NodeJS.Timeout | undefined;
  #isStopping = false;
  #hasEnded = false;

  constructor(opts: RouterOptions) {
    this.#opts = opts;
    this.#log = opts.log.child({ component: 'router' });
    this.#stats = opts.stats ?? NO_STATS;
    this.#maxInFlight = opts.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
    this.#ackWaitMs = opts.ackWaitMs ?? 30_000;
  }

  /** True from a successful start() until stop() or until the consume loop gave up (for /readyz). */
  get isRunning(): boolean {
    return this.#loop !== undefined && !this.#hasEnded;
  }

  /**
   * Ensures the consumer and starts routing in the background; resolves once bound. The streams
   * must exist ({@link ensureStreams}). Throws `STREAM_*` codes or `ROUTER_START_FAILED`.
   */
  async start(): Promise<void> {
    if (this.#loop !== undefined) return;
    this.#isStopping = false;
    this.#hasEnded = false;
    const o = this.#opts;
    let messages: ConsumerMessages;
    try {
      const jsm = await jetstreamManager(o.nc);
      await ensureRouterConsumer(jsm, { ackWaitMs: this.#ackWaitMs, maxAckPending: ROUTER_MAX_ACK_PENDING });
      const js = jetstream(o.nc);
      this.#handler = new SubmissionHandler({
        nc: o.nc,
        js,
        jsm,
        directory: o.directory,
        log: this.#log,
        stats: this.#stats,
        audit: o.audit,
        history: o.history,
        urgent: o.urgent,
        verify: o.verify,
        maxEnvelopeBytes: o.maxEnvelopeBytes,
        retryDelayMs: o.retryDelayMs ?? 2_000,
        publishTimeoutMs: o.publishTimeoutMs ?? 5_000,
        hasHeldBack: (country) => this.#hasHeldBack(country),
        replayWindowMs: 2 * 60_000,
      });
      const consumer = await js.consumers.get(SUBMIT_STREAM, ROUTER_CONSUMER);
      messages = await consumer.consume({ max_messages: o.batchSize ?? 128 });
    } catch (err) {
      if (err instanceof CodedError) throw err;
      throw new RouterError(ROUTER_START_FAILED, `router: cannot bind to ${SUBMIT_STREAM}/${ROUTER_CONSUMER}: ${String(err)}`, { cause: err });
    }
    this.#queue = new FairQueue<Job>({
      rate: o.ratePerCountry ?? DEFAULT_RATE_PER_COUNTRY,
      laneCapacity: o.laneCapacity ?? 64,
      onHeldBack: (country) => this.#stats.onThrottled?.(country),
    });
    this.#messages = messages;
    void this.#watch(messages);
    // Keep what waits or runs from being redelivered to another router (ack wait) while it is ours.
    this.#touchTimer = setInterval(() => this.#touch(), Math.max(50, Math.floor(this.#ackWaitMs / 3)));
    this.#touchTimer.unref();
    this.#loop = this.#run(messages);
    this.#log.info({ stream: SUBMIT_STREAM, consumer: ROUTER_CONSUMER, maxInFlight: this.#maxInFlight }, 'router started');
  }

  /**
   * Stops taking messages and waits for those in flight to finish. Messages taken but not started
   * are nak'ed so another router (or the next start) gets them without waiting for ack_wait.
   */
  async stop(): Promise<void> {
    const loop = this.#loop;
    if (loop === undefined) return;
    this.#isStopping = true;
    clearTimeout(this.#wakeTimer);
    clearInterval(this.#touchTimer);
    this.#wakeTimer = undefined;
    await this.#messages?.close();
    await loop;
    for (const job of this.#queue?.drain() ?? []) {
      this.#tracked.delete(job.m.seq);
      job.m.nak();
    }
    await Promise.allSettled([...this.#running]);
    this.#tracked.clear();
    this.#held.clear();
    this.#loop = undefined;
    this.#messages = undefined;
    this.#log.info('router stopped');
  }

  async #run(messages: ConsumerMessages): Promise<void> {
    try {
      for await (const m of messages) {
        if (this.#isStopping) {
          m.nak();
          continue;
        }
        this.#admit(m);
      }
    } catch (err) {
      // consume() recovers from server restarts itself; reaching here means it gave up.
      this.#log.error({ err }, 'router consume loop ended');
    } finally {
      this.#hasEnded = true;
    }
  }

  async #watch(messages: ConsumerMessages): Promise<void> {
    try {
      for await (const status of messages.status()) {
        if (WARN_STATUSES.has(status.type)) this.#log.warn({ status }, 'router consumer status');
      }
    } catch (err) {
      this.#log.warn({ err }, 'router consumer status watch ended');
    }
  }

  /** Queues one message from SUBMIT, or leaves it there for later when its country's lane is full. */
  #admit(m: JsMsg): void {
    const queue = this.#queue;
    if (queue === undefined) return;
    // Already ours (a redelivery that crossed our working()): the first copy's outcome settles it.
    if (this.#tracked.has(m.seq)) return;
    const now = performance.now();
    const country = countryOfSubject(m.subject, 'submit');
    if (country === undefined) {
      // Terminated at once by the handler; nothing to be fair about.
      this.#start({ m, country: '', id: undefined, isUrgent: false, isDeletion: false, isReceipt: false, touchedMs: now }, undefined);
      return;
    }
    this.#held.get(country)?.delete(m.seq);
    const job: Job = { m, country, ...peek(m.data), touchedMs: now };
    if (queue.push(job, now)) {
      this.#tracked.set(m.seq, job);
      this.#pump();
      return;
    }
    // The lane is full: back to SUBMIT until the country's tokens (or the router) allow it.
    let held = this.#held.get(country);
    if (held === undefined) this.#held.set(country, (held = new Map<number, number>()));
    const position = queue.queuedFor(country) + held.size + 1;
    const tokenWaitMs = queue.tokenWaitMs(country, position, job.isReceipt, now);
    const delayMs = Math.max(MIN_HOLD_MS, tokenWaitMs);
    if (tokenWaitMs > 0) this.#stats.onThrottled?.(country);
    held.set(m.seq, now + delayMs);
    m.nak(delayMs);
  }

  /** Starts as many queued submissions as there is room for; sets a timer for those waiting on a token. */
  #pump(): void {
    const queue = this.#queue;
    if (queue === undefined || this.#isStopping) return;
    const now = performance.now();
    while (queue.inFlight < this.#maxInFlight) {
      const job = queue.next(now);
      if (job === undefined) {
        // Nothing may start: if some wait for a token, come back when the first gets one.
        const waitMs = queue.soonestTokenMs;
        if (waitMs !== undefined && this.#wakeTimer === undefined) {
          this.#wakeTimer = setTimeout(() => {
            this.#wakeTimer = undefined;
            this.#pump();
          }, waitMs);
        }
        break;
      }
      this.#start(job, queue);
    }
  }

  #start(job: Job, queue: FairQueue<Job> | undefined): void {
    const handler = this.#handler;
    if (handler === undefined) return;
    const run: Promise<void> = handler
      .handle(job.m)
      .catch((err: unknown) => this.#log.error({ err, seq: job.m.seq }, 'submission handler failed'))
      .finally(() => {
        queue?.done(job);
        this.#tracked.delete(job.m.seq);
        this.#running.delete(run);
        this.#pump();
      });
    this.#running.add(run);
  }

  /**
   * `working()` for what has been ours a third of the ack wait, so it is not handed to anyone
   * else; and forgets held-back submissions long overdue (another router of a cluster took them).
   */
  #touch(): void {
    const now = performance.now();
    const every = this.#ackWaitMs / 3;
    for (const job of this.#tracked.values()) {
      if (now - job.touchedMs < every) continue;
      job.touchedMs = now;
      job.m.working();
    }
    for (const country of this.#held.keys()) this.#hasHeldBack(country, now);
  }

  /** True while some of `country`'s submissions are left in SUBMIT by this router and not back yet. */
  #hasHeldBack(country: string, now = performance.now()): boolean {
    const held = this.#held.get(country);
    if (held === undefined) return false;
    for (const [seq, dueMs] of held) if (now - dueMs > HELD_GRACE_MS) held.delete(seq);
    if (held.size > 0) return true;
    this.#held.delete(country);
    return false;
  }
}

const UTF8 = new TextDecoder();

/** What the fair queue needs from an envelope, read without validating it (the handler does). */
function peek(data: Uint8Array): Omit<QueueItem, 'country'> {
  let value: unknown;
  try {
    value = JSON.parse(UTF8.decode(data));
  } catch {
    value = undefined;
  }
  const v = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
  const id = typeof v['id'] === 'string' && v['id'].length <= 64 ? v['id'] : undefined;
  return { id, isUrgent: v['priority'] === 'urgent', isDeletion: v['kind'] === 'deletion', isReceipt: v['kind'] === 'receipt' };
}
