/**
 * Urgent messages not delivered in time. An urgent message (a red notice, a request that cannot
 * wait) that some recipient has not confirmed within the deadline is worth a human's attention:
 * the recipient's agent may be down, its tunnel cut, or its inbox stuck. The hub sees both halves
 * because receipts travel through the router like any message: the urgent message going out, and
 * later each recipient's `receipt` (`delivered`, `read` or `deleted`) coming back.
 *
 * The deadline counts from when the hub routed the message, not from its `created` time: that is
 * the sender's clock, and time spent in the sender's outbox is not the recipients' delay.
 *
 * Kept across hub restarts when given a store (`urgent-store.ts`, a KV bucket written behind, at
 * most a second late): {@link UrgentWatch.restore} at start brings back what was watched, with
 * the recipients already reported overdue, so nobody is reported twice. Without a store a restart
 * forgets (the alert is an aid; the audit log is the record). Memory is bounded: a message is forgotten once every recipient
 * confirmed, once it is deleted, after {@link UrgentWatchOptions.forgetAfterMs} (default 24 h, at
 * least twice the deadline), and the oldest is dropped when more than
 * {@link UrgentWatchOptions.maxTracked} (default 10 000) are watched.
 */
import type { Logger } from 'pino';
import { receiptItems, type Envelope } from '../../protocol/envelope.js';
import type { UrgentWatchStore, WatchedRecord } from './urgent-store.js';

/** Metric callbacks; the metrics module turns them into series (no prom-client here yet). */
export interface UrgentWatchStats {
  /** Recipient `to` had not confirmed `from`'s urgent message by the deadline (once per pair). */
  onUrgentOverdue(from: string, to: string): void;
  /** An overdue recipient confirmed after all, `ms` after the message was routed. */
  onUrgentDeliveredLate?(from: string, to: string, ms: number): void;
}

/** Options of {@link UrgentWatch}. */
export interface UrgentWatchOptions {
  /** How long after routing every recipient must have confirmed (default 10 min). */
  deadlineMs?: number;
  log: Logger;
  stats?: UrgentWatchStats;
  /** Current time in ms (default Date.now); tests pass a fake clock and call {@link UrgentWatch.check}. */
  now?: () => number;
  /** How often the timer checks (default deadline/10, within 1 s … 30 s). */
  checkIntervalMs?: number;
  /** Messages watched at most; past it the oldest is forgotten (default 10 000). */
  maxTracked?: number;
  /** A message is forgotten this long after routing (default 24 h, at least twice the deadline). */
  forgetAfterMs?: number;
  /** Where the watch is kept across restarts (default: nowhere). */
  store?: UrgentWatchStore;
}

/** Receipt statuses that mean the recipient has the message (`rejected` does not). */
const CONFIRMING = new Set(['delivered', 'read', 'deleted']);

const DEFAULT_DEADLINE_MS = 10 * 60_000;
const DAY_MS = 24 * 3600_000;

interface Watched {
  id: string;
  from: string;
  routedAtMs: number;
  /** Recipients that have not confirmed yet, and whether each is already reported overdue. */
  pending: Map<string, { isOverdue: boolean }>;
}

/**
 * Watches routed urgent messages until every recipient confirms. The router calls
 * {@link UrgentWatch.routed} for every envelope it routed; `start()` runs the periodic check.
 * For each (message, recipient) past the deadline it logs one warning and calls
 * `stats.onUrgentOverdue` once; {@link UrgentWatch.overdue} is the gauge of pairs overdue now.
 */
export class UrgentWatch {
  readonly #log: Logger;
  readonly #stats: UrgentWatchStats | undefined;
  readonly #now: () => number;
  readonly #deadlineMs: number;
  readonly #intervalMs: number;
  readonly #maxTracked: number;
  readonly #forgetAfterMs: number;
  readonly #store: UrgentWatchStore | undefined;
  /** By `<from>/<id>`: ids are chosen by senders, so two countries could use one id. Insertion (routing) order. */
  readonly #watched = new Map<string, Watched>();
  #overdue = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(opts: UrgentWatchOptions) {
    this.#log = opts.log.child({ component: 'urgent-watch' });
    this.#stats = opts.stats;
    this.#now = opts.now ?? Date.now;
    this.#deadlineMs = opts.deadlineMs ?? DEFAULT_DEADLINE_MS;
    this.#intervalMs = opts.checkIntervalMs ?? Math.min(30_000, Math.max(1_000, Math.round(this.#deadlineMs / 10)));
    this.#maxTracked = opts.maxTracked ?? 10_000;
    this.#forgetAfterMs = urgentForgetAfterMs(this.#deadlineMs, opts.forgetAfterMs);
    this.#store = opts.store;
  }

  /**
   * Brings back what the store kept (call before routing starts): messages in routing order, each
   * recipient not confirmed yet, the overdue ones counted as overdue and not reported again.
   * Resolves with the number of messages restored.
   */
  async restore(): Promise<number> {
    if (this.#store === undefined) return 0;
    const records = [...(await this.#store.load())].sort(([, a], [, b]) => a.routedAtMs - b.routedAtMs);
    for (const [key, r] of records) {
      if (this.#watched.has(key) || Object.keys(r.pending).length === 0) continue;
      const pending = new Map(Object.entries(r.pending).map(([cc, isOverdue]) => [cc, { isOverdue }]));
      for (const state of pending.values()) if (state.isOverdue) this.#overdue++;
      this.#watched.set(key, { id: r.id, from: r.from, routedAtMs: r.routedAtMs, pending });
    }
    if (records.length > 0) this.#log.info({ watched: this.#watched.size, overdue: this.#overdue }, 'urgent watch restored');
    return records.length;
  }

  /** The deadline in ms. */
  get deadlineMs(): number {
    return this.#deadlineMs;
  }

  /** (message, recipient) pairs past the deadline and not confirmed, now: a gauge. */
  overdue(): number {
    return this.#overdue;
  }

  /** Messages being watched now. */
  tracked(): number {
    return this.#watched.size;
  }

  /** Starts the periodic check; the timer never keeps the process alive. Idempotent. */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => this.check(), this.#intervalMs);
    this.#timer.unref();
  }

  /** Stops the periodic check; what is watched is kept (a later start goes on). */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /**
   * Tells the watch about an envelope the router has just routed to `recipients`: an urgent
   * message (other than a receipt or deletion) starts being watched; a receipt confirms its
   * sender's copy of the message it names; a deletion forgets the message it deletes (its
   * recipients purge it, so no receipt will come).
   */
  routed(envelope: Envelope, recipients: readonly string[]): void {
    if (envelope.kind === 'receipt') {
      this.#receipt(envelope);
      return;
    }
    if (envelope.kind === 'deletion') {
      if (envelope.deletes !== undefined) this.#forget(keyOf(envelope.from, envelope.deletes));
      return;
    }
    if (envelope.priority !== 'urgent' || recipients.length === 0) return;
    const key = keyOf(envelope.from, envelope.id);
    // A submission routed again (redelivery, resubmission) keeps its first routing time.
    if (this.#watched.has(key)) return;
    while (this.#watched.size >= this.#maxTracked) {
      const oldest = this.#watched.keys().next().value;
      if (oldest === undefined) break;
      this.#log.warn({ id: this.#watched.get(oldest)?.id, max: this.#maxTracked }, 'urgent watch full; forgetting the oldest message');
      this.#forget(oldest);
    }
    this.#watched.set(key, {
      id: envelope.id,
      from: envelope.from,
      routedAtMs: this.#now(),
      pending: new Map(recipients.map((cc) => [cc, { isOverdue: false }])),
    });
    this.#save(key);
  }

  /** Tells the store the state of `key` now (forgotten when it is no longer watched). */
  #save(key: string): void {
    if (this.#store === undefined) return;
    const w = this.#watched.get(key);
    this.#store.save(key, w === undefined ? undefined : recordOf(w));
  }

  /**
   * Reports every (message, recipient) newly past the deadline and forgets messages older than
   * the forget age. The timer calls it; tests with a fake clock call it directly. Never throws.
   */
  check(): void {
    const now = this.#now();
    for (const [key, w] of this.#watched) {
      const ageMs = now - w.routedAtMs;
      if (ageMs >= this.#forgetAfterMs) {
        this.#log.info({ id: w.id, from: w.from, to: [...w.pending.keys()], ageMs }, 'urgent message no longer watched: never confirmed');
        this.#forget(key);
        continue;
      }
      if (ageMs < this.#deadlineMs) continue;
      let changed = false;
      for (const [to, state] of w.pending) {
        if (state.isOverdue) continue;
        state.isOverdue = true;
        changed = true;
        this.#overdue++;
        this.#log.warn({ id: w.id, from: w.from, to, ageMs }, 'urgent message not delivered within deadline');
        try {
          this.#stats?.onUrgentOverdue(w.from, to);
        } catch (err) {
          this.#log.error({ err }, 'urgent stats callback failed');
        }
      }
      if (changed) this.#save(key);
    }
  }

  #receipt(receipt: Envelope): void {
    // A receipt goes to exactly one country: the original's sender (protocol/envelope.ts).
    const originalFrom = Array.isArray(receipt.to) ? receipt.to[0] : undefined;
    if (originalFrom === undefined) return;
    for (const { of, status } of receiptItems(receipt)) if (CONFIRMING.has(status)) this.#confirm(receipt.from, keyOf(originalFrom, of), status);
  }

  /** `to` confirmed the watched message `key` with a receipt saying `status`. */
  #confirm(to: string, key: string, status: string): void {
    const w = this.#watched.get(key);
    const state = w?.pending.get(to);
    if (w === undefined || state === undefined) return;
    w.pending.delete(to);
    if (state.isOverdue) {
      this.#overdue--;
      const ageMs = this.#now() - w.routedAtMs;
      this.#log.info({ id: w.id, from: w.from, to: to, ageMs, status }, 'urgent message delivered after deadline');
      try {
        this.#stats?.onUrgentDeliveredLate?.(w.from, to, ageMs);
      } catch (err) {
        this.#log.error({ err }, 'urgent stats callback failed');
      }
    }
    if (w.pending.size === 0) this.#watched.delete(key);
    this.#save(key);
  }

  #forget(key: string): void {
    const w = this.#watched.get(key);
    if (w === undefined) return;
    for (const state of w.pending.values()) if (state.isOverdue) this.#overdue--;
    this.#watched.delete(key);
    this.#save(key);
  }
}

/**
 * How long after routing a watched message is forgotten: `forgetAfterMs` (default 24 h), at least
 * twice the deadline. The hub sizes the store's entry lifetime from it.
 */
export function urgentForgetAfterMs(deadlineMs: number = DEFAULT_DEADLINE_MS, forgetAfterMs: number = DAY_MS): number {
  return Math.max(forgetAfterMs, 2 * deadlineMs);
}

function recordOf(w: Watched): WatchedRecord {
  return { id: w.id, from: w.from, routedAtMs: w.routedAtMs, pending: Object.fromEntries([...w.pending].map(([cc, s]) => [cc, s.isOverdue])) };
}

function keyOf(from: string, id: string): string {
  return `${from}/${id}`;
}
