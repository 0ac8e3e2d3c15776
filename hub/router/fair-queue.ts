/**
 * The order in which the router works on submissions it has taken from SUBMIT (pure: no I/O, the
 * clock is passed in). One lane per sending country; the router asks {@link FairQueue.next} for
 * work whenever it has room for one more submission in flight.
 *
 * - **Fair between countries**: lanes are served round-robin, so one country's backlog costs any
 *   other country at most one turn per round, however long the backlog is.
 * - **Urgent first**: every lane's urgent submissions are served (round-robin) before any lane's
 *   routine ones; receipts are routine.
 * - **Rate per country**: each lane has a {@link TokenBucket} for its messages and another for its
 *   receipts (a country that is sent a flood answers with a flood of receipts; that must not hold
 *   back its own messages). A lane without a token is skipped, not emptied: its submissions wait.
 * - **Bounded**: a lane holds at most `laneCapacity` submissions; {@link FairQueue.push} refuses
 *   more, and the router leaves those in SUBMIT (nak with a delay) rather than in memory.
 * - **Order where it matters**: a deletion starts only once everything its country submitted
 *   before it (as this queue received them) is finished, so its original's `routed` record exists;
 *   and two submissions with one envelope id never run at once (a replay waits for the first, and
 *   then finds its copies already stored). Otherwise submissions of one country run concurrently.
 */
import { TokenBucket, type RateLimit } from './token-bucket.js';

/** What the queue needs to know about a submission (the router reads it from the envelope). */
export interface QueueItem {
  /** The sending country (from the SUBMIT subject). */
  country: string;
  /** The envelope's id when it could be read; two submissions with one id never run at once. */
  id: string | undefined;
  isUrgent: boolean;
  isDeletion: boolean;
  isReceipt: boolean;
}

/** Options of {@link FairQueue}. */
export interface FairQueueOptions {
  /** Each country's rate, for its messages and, apart, for its receipts. */
  rate: RateLimit;
  /** Submissions one country may have waiting here (in flight not counted). */
  laneCapacity: number;
  /** A submission had to wait because its country had no token left (once per submission). */
  onHeldBack?: (country: string) => void;
}

interface Entry<T> {
  item: T;
  /** Arrival order across the whole queue. */
  order: number;
  wasHeldBack: boolean;
}

interface Lane<T> {
  urgent: Entry<T>[];
  routine: Entry<T>[];
  inFlight: Map<T, Entry<T>>;
  /** Envelope ids in flight, with their count. */
  ids: Map<string, number>;
  messages: TokenBucket;
  receipts: TokenBucket;
}

type Verdict = 'go' | 'blocked' | 'no-token';

/** Per-country lanes with round-robin, urgent-first, rate-limited dispatch. */
export class FairQueue<T extends QueueItem> {
  readonly #opts: FairQueueOptions;
  readonly #lanes = new Map<string, Lane<T>>();
  /** Countries in the order their lane was made; the round-robin walks it. */
  readonly #countries: string[] = [];
  /** Where the next round-robin walk starts, per class (0 urgent, 1 routine). */
  readonly #cursor = [0, 0];
  #order = 0;
  #queued = 0;
  #inFlight = 0;
  /** After a {@link next} that found nothing: the soonest a head waiting for a token gets one. */
  #tokenWaitMs: number | undefined;

  constructor(opts: FairQueueOptions) {
    this.#opts = opts;
  }

  /** Submissions waiting (not in flight). */
  get queued(): number {
    return this.#queued;
  }

  /** Submissions handed out by {@link next} and not yet {@link done}. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Submissions `country` has waiting here. */
  queuedFor(country: string): number {
    const lane = this.#lanes.get(country);
    return lane === undefined ? 0 : lane.urgent.length + lane.routine.length;
  }

  /**
   * Queues `item`; false when its country's lane is full (the caller leaves it in the broker).
   */
  push(item: T, nowMs: number): boolean {
    const lane = this.#lane(item.country, nowMs);
    if (lane.urgent.length + lane.routine.length >= this.#opts.laneCapacity) return false;
    (item.isUrgent ? lane.urgent : lane.routine).push({ item, order: this.#order++, wasHeldBack: false });
    this.#queued++;
    return true;
  }

  /**
   * The next submission to work on, or undefined when none may start now (nothing queued, or
   * every queued one waits for a token or for an earlier submission of its country).
   */
  next(nowMs: number): T | undefined {
    this.#tokenWaitMs = undefined;
    for (const cls of [0, 1] as const) {
      const n = this.#countries.length;
      for (let k = 0; k < n; k++) {
        const i = ((this.#cursor[cls] ?? 0) + k) % n;
        const country = this.#countries[i] as string;
        const lane = this.#lanes.get(country) as Lane<T>;
        const list = cls === 0 ? lane.urgent : lane.routine;
        const head = list[0];
        if (head === undefined || this.#verdict(lane, head, nowMs) !== 'go') continue;
        list.shift();
        this.#queued--;
        this.#inFlight++;
        lane.inFlight.set(head.item, head);
        const id = head.item.id;
        if (id !== undefined) lane.ids.set(id, (lane.ids.get(id) ?? 0) + 1);
        this.#cursor[cls] = (i + 1) % n;
        return head.item;
      }
    }
    return undefined;
  }

  /** `item` (from {@link next}) is finished, whatever the outcome. */
  done(item: T): void {
    const lane = this.#lanes.get(item.country);
    if (lane === undefined || !lane.inFlight.delete(item)) return;
    this.#inFlight--;
    const id = item.id;
    if (id === undefined) return;
    const left = (lane.ids.get(id) ?? 1) - 1;
    if (left > 0) lane.ids.set(id, left);
    else lane.ids.delete(id);
  }

  /**
   * Milliseconds until `country` has `n` more tokens for this kind of submission: how long the
   * n-th submission it has waiting would wait for the rate alone.
   */
  tokenWaitMs(country: string, n: number, isReceipt: boolean, nowMs: number): number {
    const lane = this.#lane(country, nowMs);
    return (isReceipt ? lane.receipts : lane.messages).waitMs(n, nowMs);
  }

  /**
   * When the last {@link next} returned undefined: in how many ms a submission held back only by
   * its country's rate may start, or undefined when none is (the others start as earlier ones
   * finish, which wakes the router anyway). Found during that scan, so it costs nothing more.
   */
  get soonestTokenMs(): number | undefined {
    return this.#tokenWaitMs;
  }

  /** Removes and returns everything waiting (the router gives it back to the broker on stop). */
  drain(): T[] {
    const out: T[] = [];
    for (const lane of this.#lanes.values()) {
      for (const e of [...lane.urgent, ...lane.routine].sort((a, b) => a.order - b.order)) out.push(e.item);
      lane.urgent = [];
      lane.routine = [];
    }
    this.#queued = 0;
    return out;
  }

  #lane(country: string, nowMs: number): Lane<T> {
    let lane = this.#lanes.get(country);
    if (lane === undefined) {
      const rate = this.#opts.rate;
      lane = { urgent: [], routine: [], inFlight: new Map(), ids: new Map(), messages: new TokenBucket(rate, nowMs), receipts: new TokenBucket(rate, nowMs) };
      this.#lanes.set(country, lane);
      this.#countries.push(country);
    }
    return lane;
  }

  /** Whether `head` may start now; takes its token when it may. */
  #verdict(lane: Lane<T>, head: Entry<T>, nowMs: number): Verdict {
    const { id, isDeletion, isReceipt } = head.item;
    if (id !== undefined && lane.ids.has(id)) return 'blocked';
    if (isDeletion && this.#earliestPending(lane) < head.order) return 'blocked';
    const bucket = isReceipt ? lane.receipts : lane.messages;
    if (!bucket.take(nowMs)) {
      const wait = bucket.waitMs(1, nowMs);
      if (this.#tokenWaitMs === undefined || wait < this.#tokenWaitMs) this.#tokenWaitMs = wait;
      if (!head.wasHeldBack) {
        head.wasHeldBack = true;
        this.#opts.onHeldBack?.(head.item.country);
      }
      return 'no-token';
    }
    return 'go';
  }

  /** The arrival order of the earliest submission of this lane not finished (queued or in flight). */
  #earliestPending(lane: Lane<T>): number {
    let min = Math.min(lane.urgent[0]?.order ?? Infinity, lane.routine[0]?.order ?? Infinity);
    for (const e of lane.inFlight.values()) if (e.order < min) min = e.order;
    return min;
  }
}
