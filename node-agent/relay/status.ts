/**
 * Where each message this agent accepted stands (queued → submitted, or rejected by the hub's
 * router, plus what each recipient's receipts said: delivered, read, …), kept in a journal so
 * `GET /v1/messages/{id}` answers after a restart. Every record is the message's whole status
 * after the change (last one wins), so compaction is "write the latest of each" and a reader never
 * needs to merge partial records.
 *
 * Finished statuses (submitted, rejected) are forgotten `retentionMs` after acceptance; a queued
 * one never is, since its message is still in the outbox.
 */
import { join } from 'node:path';
import Type from 'typebox';
import type { Logger } from 'pino';
import type { Envelope } from '../../protocol/envelope.js';
import { RecordLog } from './record-log.js';
import { MessageStatusSchema, type MessageStatus, type ReceiptState } from './types.js';

const RecordSchema = Type.Object({ status: MessageStatusSchema });

/** File name of the status journal inside the relay's state dir. */
export const STATUS_FILE = 'status.jsonl';

const DAY_MS = 24 * 3600 * 1000;

/** How far along each receipt state is; a recipient's state only moves forward. */
const RECEIPT_ORDER: Readonly<Record<ReceiptState, number>> = { delivered: 0, read: 1, rejected: 2, deleted: 3 };

/** Options of {@link StatusStore.open}. */
export interface StatusStoreOptions {
  /** Directory of the journal. */
  dir: string;
  log: Logger;
  /** How long a submitted or rejected status is kept after acceptance (default 30 days). */
  retentionMs?: number;
  /** Current time (tests). */
  now?: () => number;
}

/** A refusal by the hub's router, as its rejection event carries it. */
export interface Rejection {
  code: string;
  problems: string[];
}

/** See the module comment. Use {@link StatusStore.open}. */
export class StatusStore {
  readonly #file: RecordLog<typeof RecordSchema>;
  readonly #retentionMs: number;
  readonly #now: () => number;
  readonly #log: Logger;
  readonly #byId = new Map<string, MessageStatus>();
  // Changes run one at a time, each reading the state the previous one left (an ack and a
  // rejection event for the same message can race).
  #serial: Promise<unknown> = Promise.resolve();

  private constructor(opts: StatusStoreOptions) {
    this.#file = new RecordLog(join(opts.dir, STATUS_FILE), RecordSchema, opts.log);
    this.#retentionMs = opts.retentionMs ?? 30 * DAY_MS;
    this.#now = opts.now ?? Date.now;
    this.#log = opts.log;
  }

  /** Loads the journal (see {@link RecordLog.load} for damage) and compacts it. */
  static async open(opts: StatusStoreOptions): Promise<StatusStore> {
    const store = new StatusStore(opts);
    for (const { status } of await store.#file.load()) store.#byId.set(status.id, status);
    await store.compact();
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

  /** Records a newly accepted message as queued; resolves once fsynced. */
  recordQueued(envelope: Envelope, acceptedAt: string): Promise<MessageStatus> {
    const status: MessageStatus = { id: envelope.id, state: 'queued', to: Array.isArray(envelope.to) ? [...envelope.to] : envelope.to, acceptedAt };
    return this.#change(() => this.#put(status));
  }

  /**
   * JetStream stored the message in SUBMIT. A message already rejected stays rejected (the event
   * can overtake the publish ack); only `submittedAt` is added. Undefined for an unknown id.
   */
  markSubmitted(id: string, at: string): Promise<MessageStatus | undefined> {
    return this.#change(async () => {
      const current = this.#byId.get(id);
      if (current === undefined) return undefined;
      if (current.submittedAt !== undefined) return structuredClone(current);
      return this.#put({ ...current, state: current.state === 'rejected' ? 'rejected' : 'submitted', submittedAt: at });
    });
  }

  /** The router refused the message. Undefined for an id this agent never accepted (or forgot). */
  markRejected(id: string, rejection: Rejection, at: string): Promise<MessageStatus | undefined> {
    return this.#change(async () => {
      const current = this.#byId.get(id);
      if (current === undefined) return undefined;
      if (current.state === 'rejected') return structuredClone(current);
      return this.#put({ ...current, state: 'rejected', rejectedAt: at, rejection: { code: rejection.code, problems: [...rejection.problems] } });
    });
  }

  /**
   * Recipient `from` sent a receipt for message `id`: records its state unless the recipient
   * already reached the same or a later one (delivered → read → rejected → deleted; a late
   * `delivered` never undoes `read`). Undefined for an id this agent never accepted (or forgot);
   * a receipt from a country the message was not addressed to is ignored (status unchanged).
   */
  markReceipt(id: string, from: string, state: ReceiptState, at: string, reason?: string): Promise<MessageStatus | undefined> {
    return this.#change(async () => {
      const current = this.#byId.get(id);
      if (current === undefined) return undefined;
      if (Array.isArray(current.to) && !current.to.includes(from)) {
        this.#log.warn({ id, from, state }, 'receipt from a country the message was not sent to ignored');
        return structuredClone(current);
      }
      const previous = current.recipients?.[from];
      if (previous !== undefined && RECEIPT_ORDER[previous.state] >= RECEIPT_ORDER[state]) return structuredClone(current);
      const entry = reason === undefined ? { state, at } : { state, at, reason };
      return this.#put({ ...current, recipients: { ...current.recipients, [from]: entry } });
    });
  }

  /** Drops expired finished statuses and rewrites the journal with one record per message. */
  compact(): Promise<void> {
    return this.#file.rewrite(() => {
      const cutoff = this.#now() - this.#retentionMs;
      for (const [id, s] of this.#byId) if (s.state !== 'queued' && Date.parse(s.acceptedAt) < cutoff) this.#byId.delete(id);
      return [...this.#byId.values()].map((status) => ({ status }));
    });
  }

  #change<T>(job: () => Promise<T>): Promise<T> {
    const run = this.#serial.then(job);
    this.#serial = run.catch(() => undefined);
    return run;
  }

  async #put(status: MessageStatus): Promise<MessageStatus> {
    await this.#file.append({ status }, () => this.#byId.set(status.id, status));
    // Rewrite when most records are superseded (each message writes 2-3, plus 1-2 per recipient's
    // receipts): keeps the file O(live).
    if (this.#file.appendedSinceRewrite > 1_000 + 3 * this.#byId.size) {
      // The change is durable already; a failed compaction is retried at the next change.
      await this.compact().catch((err: unknown) => this.#log.error({ err }, 'status compaction failed, will retry'));
    }
    return structuredClone(status);
  }
}
