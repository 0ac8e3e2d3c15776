/**
 * The durable inbox (ARCHITECTURE, "Messages"): envelopes delivered to this country, kept until
 * the NCB's application acks them, and the ids of everything ever received for long enough to
 * drop redeliveries (DELIVER redelivers when our ack is lost; a recreated consumer replays).
 *
 * A journal of `put` / `ack` / `seen` records ({@link RecordLog}): arrival order is file order,
 * `put` costs one fsynced append, and an ack is a small record instead of a rewrite of the item.
 * Compaction keeps the file proportional to what is live: acked items are kept whole for
 * `ackedRetentionMs` (so `includeAcked` can show them), then only their id for
 * `dedupRetentionMs`, which must exceed DELIVER's max age (30 days) so a replay is still caught.
 *
 * Concurrent puts and acks share one fdatasync (group commit, {@link RecordLog}); each resolves
 * only after the fsync that covers its record, so acking to JetStream after `put` stays safe.
 *
 * Damaged records are skipped at load, copied aside and reported ({@link RecordLog}). What that
 * costs, honestly: a lost `ack` shows its item as unacked again, so the application sees it a
 * second time (a duplicate, which it must tolerate anyway); a lost `seen` lets a redelivery of
 * that id through once more (a duplicate too); a lost `put` is an item gone from this agent for
 * good — the hub had our ack for it, so it will not redeliver, and only the copy in
 * `inbox.jsonl.damaged-*` (if its bytes are readable) or the sender can bring it back.
 */
import { join } from 'node:path';
import Type, { type Static } from 'typebox';
import type { Logger } from 'pino';
import { EnvelopeSchema, type Envelope } from '../../protocol/envelope.js';
import { RELAY_STOPPED, RELAY_UNKNOWN_MESSAGE, RelayError } from './errors.js';
import { RecordLog } from './record-log.js';
import type { InboxItem, InboxListOptions, RelayStats } from './types.js';
import { Wakeup } from './wakeup.js';

const RecordSchema = Type.Union([
  Type.Object({ op: Type.Literal('put'), id: Type.String(), receivedAt: Type.String(), envelope: EnvelopeSchema, plaintext: Type.Optional(Type.String()) }),
  Type.Object({ op: Type.Literal('ack'), id: Type.String(), at: Type.String() }),
  // Compaction's trace of a forgotten item: enough to recognise a redelivery, nothing more.
  Type.Object({ op: Type.Literal('seen'), id: Type.String(), receivedAt: Type.String() }),
]);

type InboxRecord = Static<typeof RecordSchema>;

/** File name of the inbox journal inside the relay's state dir. */
export const INBOX_FILE = 'inbox.jsonl';

const DAY_MS = 24 * 3600 * 1000;

/** Options of {@link Inbox.open}. */
export interface InboxOptions {
  dir: string;
  log: Logger;
  /** How long an acked item stays listable (default 7 days). */
  ackedRetentionMs?: number;
  /** How long a received id is remembered to drop redeliveries (default 35 days, above DELIVER's 30). */
  dedupRetentionMs?: number;
  /** Longest time between compactions while running, so expired items leave the file (default 1 h). */
  compactIntervalMs?: number;
  /** Current time (tests). */
  now?: () => number;
  /** Told of damaged records and full-disk refusals (the agent's metrics). */
  stats?: RelayStats;
}

/** What {@link Inbox.put} did: stored a new item, or recognised one it already had. */
export type PutOutcome = 'stored' | 'duplicate';

/** What {@link Inbox.purge} did. */
export type PurgeOutcome = 'purged' | 'absent' | 'not-originator';

function itemOf(record: { id: string; receivedAt: string; envelope: Envelope; plaintext?: string }): InboxItem {
  return { id: record.id, envelope: record.envelope, receivedAt: record.receivedAt, ...(record.plaintext === undefined ? {} : { plaintext: record.plaintext }) };
}

/** See the module comment. Use {@link Inbox.open}. */
export class Inbox {
  readonly #file: RecordLog<typeof RecordSchema>;
  readonly #log: Logger;
  readonly #ackedRetentionMs: number;
  readonly #dedupRetentionMs: number;
  readonly #now: () => number;
  readonly #compactIntervalMs: number;
  #lastCompactMs = 0;
  /** Items in arrival order (Map keeps insertion order). */
  readonly #items = new Map<string, InboxItem>();
  /** Ids of forgotten items → receivedAt, for dedup only. */
  readonly #seen = new Map<string, string>();
  /** Puts in progress: a redelivery of the same id waits for the first write before saying "duplicate". */
  readonly #writing = new Map<string, Promise<PutOutcome>>();
  readonly #arrival = new Wakeup();
  readonly #listeners = new Set<(item: InboxItem) => void>();
  #isClosed = false;

  private constructor(opts: InboxOptions) {
    this.#file = new RecordLog({ path: join(opts.dir, INBOX_FILE), schema: RecordSchema, store: 'inbox', log: opts.log, stats: opts.stats });
    this.#log = opts.log;
    this.#ackedRetentionMs = opts.ackedRetentionMs ?? 7 * DAY_MS;
    this.#dedupRetentionMs = opts.dedupRetentionMs ?? 35 * DAY_MS;
    this.#now = opts.now ?? Date.now;
    this.#compactIntervalMs = opts.compactIntervalMs ?? 3600 * 1000;
  }

  /** Loads the journal (damaged records are skipped, see the module comment) and compacts it. */
  static async open(opts: InboxOptions): Promise<Inbox> {
    const inbox = new Inbox(opts);
    for (const record of await inbox.#file.load()) {
      if (record.op === 'put') inbox.#items.set(record.id, itemOf(record));
      else if (record.op === 'seen') inbox.#seen.set(record.id, record.receivedAt);
      else {
        const item = inbox.#items.get(record.id);
        if (item !== undefined) item.ackedAt ??= record.at;
      }
    }
    // Not fatal: the journal as loaded is valid, only longer than it needs to be (and, after
    // damage, still holding the damaged lines). A full disk must not stop the agent from starting.
    await inbox.compact().catch((err: unknown) => opts.log.warn({ err }, 'inbox: compaction at open failed, will retry'));
    return inbox;
  }

  /** Unacked items waiting for the application. */
  get pendingCount(): number {
    let n = 0;
    for (const item of this.#items.values()) if (item.ackedAt === undefined) n++;
    return n;
  }

  /** Whether `id` was ever received (within the dedup retention). */
  has(id: string): boolean {
    return this.#items.has(id) || this.#seen.has(id) || this.#writing.has(id);
  }

  /**
   * Stores a delivered envelope; resolves once it is fsynced, so the caller may then ack it to
   * JetStream. `duplicate` when the id is already here (also acked, also across restarts) — and
   * only after the first copy's write has finished, so acking a redelivery can never outrun the
   * write it duplicates. Throws `RELAY_STORAGE_FULL` (disk full) or `RELAY_STORE_FAILED` (then
   * nothing is stored: do not ack).
   */
  put(envelope: Envelope, plaintext?: string): Promise<PutOutcome> {
    if (this.#isClosed) return Promise.reject(new RelayError(RELAY_STOPPED, 'inbox: closed'));
    const id = envelope.id;
    const inFlight = this.#writing.get(id);
    if (inFlight !== undefined) return inFlight.then(() => 'duplicate' as const, () => this.put(envelope, plaintext));
    if (this.#items.has(id) || this.#seen.has(id)) return Promise.resolve('duplicate');
    const record = { op: 'put' as const, id, receivedAt: new Date(this.#now()).toISOString(), envelope, ...(plaintext === undefined ? {} : { plaintext }) };
    const item = itemOf(record);
    const write = this.#file
      .append(record, () => this.#items.set(id, item))
      .then(async () => {
        this.#notify(item);
        await this.#maybeCompact();
        return 'stored' as const;
      });
    this.#writing.set(id, write);
    const done = (): void => void this.#writing.delete(id);
    write.then(done, done);
    return write;
  }

  /**
   * Marks an item read by the application (idempotent). Throws `RELAY_UNKNOWN_MESSAGE` for an
   * id not held (never received, or forgotten after `ackedRetentionMs`).
   */
  async ack(id: string): Promise<InboxItem> {
    return (await this.acknowledge(id)).item;
  }

  /**
   * {@link ack}, also saying whether this call is the one that acked the item (`isNew`): exactly
   * one call per item sees `true`, even when several race.
   */
  async acknowledge(id: string): Promise<{ item: InboxItem; isNew: boolean }> {
    if (this.#isClosed) throw new RelayError(RELAY_STOPPED, 'inbox: closed');
    const item = this.#items.get(id);
    if (item === undefined) throw new RelayError(RELAY_UNKNOWN_MESSAGE, `inbox: no message ${JSON.stringify(id)}`);
    let isNew = false;
    if (item.ackedAt === undefined) {
      const at = new Date(this.#now()).toISOString();
      await this.#file.append({ op: 'ack', id, at }, () => {
        isNew = item.ackedAt === undefined;
        item.ackedAt ??= at;
      });
      await this.#maybeCompact();
    }
    return { item: { ...item }, isNew };
  }

  /**
   * Erases message `id` on the order of its originator (a `deletion` envelope from `requester`):
   * the item leaves memory and the journal is rewritten without it, so its content is no longer
   * in the file; its id stays as `seen`, so a late redelivery is dropped. A message never received
   * gets the same `seen` tombstone. `not-originator` (nothing changed) when the item was sent by
   * another country than `requester`. Throws `RELAY_STORAGE_FULL` or `RELAY_STORE_FAILED`.
   */
  async purge(id: string, requester: string): Promise<PurgeOutcome> {
    if (this.#isClosed) throw new RelayError(RELAY_STOPPED, 'inbox: closed');
    // A write of this very message in progress must land first, or the purge would miss it.
    await this.#writing.get(id)?.catch(() => undefined);
    const item = this.#items.get(id);
    if (item === undefined) {
      if (this.#seen.has(id)) return 'absent';
      const at = new Date(this.#now()).toISOString();
      // Marked before the write, so a put of this id arriving meanwhile is already a duplicate.
      this.#seen.set(id, at);
      try {
        await this.#file.append({ op: 'seen', id, receivedAt: at });
      } catch (err) {
        this.#seen.delete(id);
        throw err;
      }
      return 'absent';
    }
    if (item.envelope.from !== requester) return 'not-originator';
    this.#items.delete(id);
    this.#seen.set(id, item.receivedAt);
    try {
      await this.#file.rewrite(() => this.#records());
    } catch (err) {
      // Not erased from the file: put it back so memory and disk agree, and let the caller retry.
      this.#seen.delete(id);
      this.#items.set(id, item);
      throw err;
    }
    return 'purged';
  }

  /** The item `id`, or undefined. */
  get(id: string): InboxItem | undefined {
    const item = this.#items.get(id);
    return item === undefined ? undefined : { ...item };
  }

  /**
   * Items in arrival order: unacked ones, plus acked ones with `includeAcked`, that `filter` keeps;
   * at most `limit`. Only the items returned are copied (an ack or a page must not cost a copy
   * of every item kept for a week).
   */
  list(opts: InboxListOptions = {}): InboxItem[] {
    const limit = opts.limit ?? Number.POSITIVE_INFINITY;
    const out: InboxItem[] = [];
    for (const item of this.#items.values()) {
      if (out.length >= limit) break;
      if ((item.ackedAt === undefined || opts.includeAcked === true) && (opts.filter === undefined || opts.filter(item))) out.push({ ...item });
    }
    return out;
  }

  /** Resolves at the next arrival, after `timeoutMs`, on abort or on close; never rejects. */
  async waitForArrival(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (this.#isClosed) return;
    await this.#arrival.wait(timeoutMs, signal);
  }

  /** Calls `listener` with every newly stored item; returns the unsubscribe function. */
  onArrival(listener: (item: InboxItem) => void): () => void {
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }

  /**
   * Forgets what has outlived its retention (acked items become `seen` ids, old ids are dropped)
   * and rewrites the journal with the rest, in arrival order.
   */
  compact(): Promise<void> {
    this.#lastCompactMs = this.#now();
    return this.#file.rewrite(() => this.#prune());
  }

  #prune(): InboxRecord[] {
    const now = this.#now();
    for (const [id, item] of this.#items) {
      if (item.ackedAt !== undefined && Date.parse(item.ackedAt) < now - this.#ackedRetentionMs) {
        this.#items.delete(id);
        this.#seen.set(id, item.receivedAt);
      }
    }
    for (const [id, receivedAt] of this.#seen) if (Date.parse(receivedAt) < now - this.#dedupRetentionMs) this.#seen.delete(id);
    return this.#records();
  }

  /** The live state as journal records, `seen` ids first, then items in arrival order. */
  #records(): InboxRecord[] {
    const records: InboxRecord[] = [];
    for (const [id, receivedAt] of this.#seen) records.push({ op: 'seen', id, receivedAt });
    for (const item of this.#items.values()) {
      records.push({ op: 'put', id: item.id, receivedAt: item.receivedAt, envelope: item.envelope, ...(item.plaintext === undefined ? {} : { plaintext: item.plaintext }) });
      if (item.ackedAt !== undefined) records.push({ op: 'ack', id: item.id, at: item.ackedAt });
    }
    return records;
  }

  /** Stops taking writes, releases long polls and, once writes in flight are done, the file. */
  close(): void {
    this.#isClosed = true;
    this.#arrival.notify();
    void this.#file.close().catch((err: unknown) => this.#log.error({ err }, 'inbox: closing the journal failed'));
  }

  /** The journal's I/O counters (tests, benchmarks). */
  get ioStats(): RecordLog<typeof RecordSchema>['ioStats'] {
    return this.#file.ioStats;
  }

  /** Compacts when due; a failure is logged, not thrown: the change it follows is already durable. */
  async #maybeCompact(): Promise<void> {
    try {
      await this.#compactIfDue();
    } catch (err) {
      this.#log.error({ err }, 'inbox compaction failed, will retry');
    }
  }

  async #compactIfDue(): Promise<void> {
    // Records only die by age (an acked item stays whole for ackedRetentionMs), so compaction is
    // driven by time; the count bound covers a clock that does not move (tests, a stuck clock).
    const isDue = this.#now() - this.#lastCompactMs > this.#compactIntervalMs;
    if (isDue || this.#file.appendedSinceRewrite > 10_000 + 3 * (this.#items.size + this.#seen.size)) await this.compact();
  }

  #notify(item: InboxItem): void {
    this.#arrival.notify();
    for (const listener of [...this.#listeners]) {
      try {
        listener({ ...item });
      } catch (err) {
        this.#log.error({ err, id: item.id }, 'inbox listener failed');
      }
    }
  }
}
