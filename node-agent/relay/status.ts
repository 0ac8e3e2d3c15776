/**
 * Where each message this agent accepted stands (queued → submitted, or rejected by the hub's
 * router, plus what each recipient's receipts said: delivered, read, …), kept in a journal so
 * `GET /v1/messages/{id}` answers after a restart.
 *
 * Records: a whole status (`{ status }`, written when a message is accepted and by compaction) and
 * small deltas (`submitted`, `rejected`, `receipt`) for every later change, so a receipt from one of
 * 195 countries costs one short line, not a rewrite of the message's growing status. Deltas are
 * replayed with the same pure transitions the live marks use ({@link applyChange}); a delta whose
 * message is unknown is ignored. Memory holds each message's whole status, so reading one is a
 * map lookup. Compaction rewrites one `{ status }` per message when most records are superseded.
 *
 * Marks do not wait for each other: each one decides from the newest state, including changes
 * still being written (`#ahead`), and appends its delta; concurrent appends share one fdatasync
 * (see {@link RecordLog}). The durable state (`#byId`, what `get` shows) changes only after the
 * fsync, by replaying the delta on it, so a failed write leaves it as it was. Transitions are
 * idempotent and only move forward, so a redundant delta (written after a failed one was
 * forgotten from `#ahead`) is harmless.
 *
 * Damaged records are skipped at load (RecordLog): a lost delta shows the message one step behind
 * (e.g. `queued` although submitted, or a receipt missing) until the next event for it; a lost
 * `{ status }` forgets the message's status (GET answers 404; its outbox entry, if any, gets a
 * new `queued` status when the relay reconciles at open).
 *
 * Finished statuses (submitted, rejected) are forgotten `retentionMs` after acceptance; a queued
 * one never is, since its message is still in the outbox.
 */
import { join } from 'node:path';
import Type, { type Static } from 'typebox';
import type { Logger } from 'pino';
import type { Envelope } from '../../protocol/envelope.js';
import { RecordLog } from './record-log.js';
import { MessageStatusSchema, type MessageStatus, type ReceiptState, type RelayStats } from './types.js';

const ReceiptStateSchema = Type.Union([Type.Literal('delivered'), Type.Literal('read'), Type.Literal('rejected'), Type.Literal('deleted')]);

const ChangeSchema = Type.Union([
  Type.Object({ op: Type.Literal('submitted'), id: Type.String(), at: Type.String() }, { additionalProperties: false }),
  Type.Object({ op: Type.Literal('rejected'), id: Type.String(), at: Type.String(), code: Type.String(), problems: Type.Array(Type.String()) }, { additionalProperties: false }),
  Type.Object(
    { op: Type.Literal('receipt'), id: Type.String(), from: Type.String({ pattern: '^[A-Z]{2}$' }), state: ReceiptStateSchema, at: Type.String(), reason: Type.Optional(Type.String()) },
    { additionalProperties: false },
  ),
]);

/** A change to one message's status, as a journal delta. */
export type StatusChange = Static<typeof ChangeSchema>;

const RecordSchema = Type.Union([Type.Object({ status: MessageStatusSchema }, { additionalProperties: false }), ChangeSchema]);

/** File name of the status journal inside the relay's state dir. */
export const STATUS_FILE = 'status.jsonl';

const DAY_MS = 24 * 3600 * 1000;

/** How far along each receipt state is; a recipient's state only moves forward. */
const RECEIPT_ORDER: Readonly<Record<ReceiptState, number>> = { delivered: 0, read: 1, rejected: 2, deleted: 3 };

/**
 * The status after `change`, or undefined when it changes nothing: a second submission or
 * rejection, a receipt that does not move its recipient forward, or one from a country the message
 * was not addressed to. A message already rejected stays rejected when the publish ack comes
 * later (the event can overtake it); only `submittedAt` is added. Pure: used live and on replay.
 */
export function applyChange(current: MessageStatus, change: StatusChange): MessageStatus | undefined {
  switch (change.op) {
    case 'submitted':
      if (current.submittedAt !== undefined) return undefined;
      return { ...current, state: current.state === 'rejected' ? 'rejected' : 'submitted', submittedAt: change.at };
    case 'rejected':
      if (current.state === 'rejected') return undefined;
      return { ...current, state: 'rejected', rejectedAt: change.at, rejection: { code: change.code, problems: [...change.problems] } };
    case 'receipt': {
      if (Array.isArray(current.to) && !current.to.includes(change.from)) return undefined;
      const previous = current.recipients?.[change.from];
      if (previous !== undefined && RECEIPT_ORDER[previous.state] >= RECEIPT_ORDER[change.state]) return undefined;
      const entry = change.reason === undefined ? { state: change.state, at: change.at } : { state: change.state, at: change.at, reason: change.reason };
      return { ...current, recipients: { ...current.recipients, [change.from]: entry } };
    }
  }
}

/** Options of {@link StatusStore.open}. */
export interface StatusStoreOptions {
  /** Directory of the journal. */
  dir: string;
  log: Logger;
  /** How long a submitted or rejected status is kept after acceptance (default 30 days). */
  retentionMs?: number;
  /** Current time (tests). */
  now?: () => number;
  /** Told of damaged records and full-disk refusals (the agent's metrics). */
  stats?: RelayStats;
}

/** A refusal by the hub's router, as its rejection event carries it. */
export interface Rejection {
  code: string;
  problems: string[];
}

/** A message's newest status while writes for it are in flight. */
interface Ahead {
  status: MessageStatus;
  pending: number;
  /** Settles when the last write for this message started so far has. */
  last: Promise<unknown>;
}

/** See the module comment. Use {@link StatusStore.open}. */
export class StatusStore {
  readonly #file: RecordLog<typeof RecordSchema>;
  readonly #retentionMs: number;
  readonly #now: () => number;
  readonly #log: Logger;
  /** Durable statuses: what the journal holds. */
  readonly #byId = new Map<string, MessageStatus>();
  /** Newest statuses of messages with writes in flight (see the module comment). */
  readonly #ahead = new Map<string, Ahead>();
  #compacting: Promise<void> | undefined;

  private constructor(opts: StatusStoreOptions) {
    this.#file = new RecordLog({ path: join(opts.dir, STATUS_FILE), schema: RecordSchema, store: 'status', log: opts.log, stats: opts.stats });
    this.#retentionMs = opts.retentionMs ?? 30 * DAY_MS;
    this.#now = opts.now ?? Date.now;
    this.#log = opts.log;
  }

  /** Loads the journal (damaged records are skipped, see {@link RecordLog.load}) and compacts it. */
  static async open(opts: StatusStoreOptions): Promise<StatusStore> {
    const store = new StatusStore(opts);
    for (const record of await store.#file.load()) {
      if ('status' in record) store.#byId.set(record.status.id, record.status);
      else store.#replay(record);
    }
    // Not fatal: the journal as loaded is valid, only longer than it needs to be (and, after
    // damage, still holding the damaged lines). A full disk must not stop the agent from starting.
    await store.compact().catch((err: unknown) => opts.log.warn({ err }, 'status: compaction at open failed, will retry'));
    return store;
  }

  /** The status of `id`, or undefined. A copy: callers cannot change the store. */
  get(id: string): MessageStatus | undefined {
    const status = this.#byId.get(id);
    return status === undefined ? undefined : structuredClone(status);
  }

  /** Ids still queued, in id order (for reconciling with the outbox at start). */
  queuedIds(): string[] {
    return [...this.#byId.values()].filter((s) => s.state === 'queued').map((s) => s.id).sort();
  }

  /** The journal's I/O counters (tests, benchmarks). */
  get ioStats(): RecordLog<typeof RecordSchema>['ioStats'] {
    return this.#file.ioStats;
  }

  /** Records a newly accepted message as queued; resolves once fsynced. Throws `RELAY_STORAGE_FULL` or `RELAY_STORE_FAILED`. */
  async recordQueued(envelope: Envelope, acceptedAt: string): Promise<MessageStatus> {
    const status: MessageStatus = { id: envelope.id, state: 'queued', to: Array.isArray(envelope.to) ? [...envelope.to] : envelope.to, acceptedAt };
    await this.#write(status.id, status, { status }, () => this.#byId.set(status.id, status));
    return structuredClone(status);
  }

  /**
   * JetStream stored the message in SUBMIT. A message already rejected stays rejected (the event
   * can overtake the publish ack); only `submittedAt` is added. Undefined for an unknown id.
   */
  markSubmitted(id: string, at: string): Promise<MessageStatus | undefined> {
    return this.#change({ op: 'submitted', id, at });
  }

  /** The router refused the message. Undefined for an id this agent never accepted (or forgot). */
  markRejected(id: string, rejection: Rejection, at: string): Promise<MessageStatus | undefined> {
    return this.#change({ op: 'rejected', id, at, code: rejection.code, problems: [...rejection.problems] });
  }

  /**
   * Recipient `from` sent a receipt for message `id`: records its state unless the recipient
   * already reached the same or a later one (delivered → read → rejected → deleted; a late
   * `delivered` never undoes `read`). Undefined for an id this agent never accepted (or forgot);
   * a receipt from a country the message was not addressed to is ignored (status unchanged).
   */
  markReceipt(id: string, from: string, state: ReceiptState, at: string, reason?: string): Promise<MessageStatus | undefined> {
    const current = this.#ahead.get(id)?.status ?? this.#byId.get(id);
    if (current !== undefined && Array.isArray(current.to) && !current.to.includes(from)) {
      this.#log.warn({ id, from, state }, 'receipt from a country the message was not sent to ignored');
    }
    return this.#change(reason === undefined ? { op: 'receipt', id, from, state, at } : { op: 'receipt', id, from, state, at, reason });
  }

  /** Drops expired finished statuses and rewrites the journal with one record per message. */
  compact(): Promise<void> {
    return this.#file.rewrite(() => {
      const cutoff = this.#now() - this.#retentionMs;
      for (const [id, s] of this.#byId) if (s.state !== 'queued' && Date.parse(s.acceptedAt) < cutoff) this.#byId.delete(id);
      return [...this.#byId.values()].map((status) => ({ status }));
    });
  }

  /** Waits for writes in flight and releases the journal's file descriptor. */
  close(): Promise<void> {
    return this.#file.close();
  }

  /**
   * Applies `change` to the newest state of its message; writes it only when it changes something.
   * Resolves with the durable status once the write (and every earlier write for the message) is done.
   */
  async #change(change: StatusChange): Promise<MessageStatus | undefined> {
    const ahead = this.#ahead.get(change.id);
    const current = ahead?.status ?? this.#byId.get(change.id);
    if (current === undefined) return undefined;
    const next = applyChange(current, change);
    if (next === undefined) {
      // Nothing to write, but the answer must not show a state that is not durable yet.
      await ahead?.last.catch(() => undefined);
      const durable = this.#byId.get(change.id);
      return durable === undefined ? undefined : structuredClone(durable);
    }
    let result: MessageStatus | undefined;
    await this.#write(change.id, next, change, () => {
      this.#replay(change);
      result = this.#byId.get(change.id);
    });
    return result === undefined ? undefined : structuredClone(result);
  }

  /** Replays a delta on the durable state (load and after each fsync). */
  #replay(change: StatusChange): void {
    const base = this.#byId.get(change.id);
    if (base === undefined) return;
    const next = applyChange(base, change);
    if (next !== undefined) this.#byId.set(change.id, next);
  }

  /** Appends `record` with `newest` as the message's state meanwhile; compacts when it pays. */
  async #write(id: string, newest: MessageStatus, record: Static<typeof RecordSchema>, apply: () => void): Promise<void> {
    const write = this.#file.append(record, apply);
    let entry = this.#ahead.get(id);
    if (entry === undefined) {
      entry = { status: newest, pending: 0, last: write };
      this.#ahead.set(id, entry);
    }
    Object.assign(entry, { status: newest, pending: entry.pending + 1, last: write });
    try {
      await write;
    } catch (err) {
      // Forget the speculative state: later marks decide from what is durable (writes still in
      // flight replay on the durable state anyway, so nothing they carry is lost).
      if (this.#ahead.get(id) === entry) this.#ahead.delete(id);
      throw err;
    } finally {
      if (--entry.pending === 0 && this.#ahead.get(id) === entry) this.#ahead.delete(id);
    }
    // Rewrite when most records are superseded (a message writes 2-3, plus one per recipient's
    // receipt): keeps the file O(live). The change is durable already; a failed compaction is
    // logged and retried at a later change.
    if (this.#compacting === undefined && this.#file.appendedSinceRewrite > 1_000 + 3 * this.#byId.size) {
      this.#compacting = this.compact()
        .catch((err: unknown) => this.#log.error({ err }, 'status compaction failed, will retry'))
        .finally(() => (this.#compacting = undefined));
    }
    await this.#compacting;
  }
}
