/**
 * Appends to the AUDIT chain, pipelined: appends that arrive while a batch is on the wire are
 * chained in memory, in call order, and published back to back as the next batch; each append
 * resolves when its own record is stored. One round trip per batch instead of one per record is
 * what lets the router have many submissions in flight (each needs its record before its ack).
 *
 * The chain still cannot fork. The first record of a batch is published with
 * `Nats-Expected-Last-Sequence` = the stored tail's sequence; each later one also with
 * `Nats-Expected-Last-Msg-Id` = the record before it (every record's `Nats-Msg-Id` is its hash).
 * The sequence alone would not do when pipelining: if another writer took record k's place,
 * record k+1 (chained on k) would find the expected sequence and be stored on the wrong
 * predecessor; the message id makes the server refuse it. On a refusal (another writer appended
 * first) the records from the first refused one on are chained again on the re-read tail and sent
 * in order, as a single append did before. A timeout may hide a stored record, so each failed
 * record is looked up before it is given up on. After a nats-server restart the server forgets the
 * last message id; the next pipelined record is then refused once and re-chained: safe, not lost.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import type { JetStreamClient, PubAck } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { AUDIT_STREAM, AUDIT_SUBJECT, chainNext, encodeAuditRecord, type AuditFields, type AuditRecord, type ChainTail } from '../../protocol/audit.js';
import { AUDIT_APPEND_CONFLICT, AUDIT_UNAVAILABLE, AuditLogError } from './errors.js';

/** What {@link AuditWriter} needs from the log that owns it. */
export interface AuditWriterDeps {
  js: JetStreamClient;
  log: Logger;
  publishTimeoutMs: number;
  /** Batches tried for one record while other writers keep appending first. */
  maxAttempts: number;
  /** Records on the wire at once at most. */
  maxBatch: number;
  /** The chain's end as stored (throws `AUDIT_UNAVAILABLE`). */
  readTail(): Promise<ChainTail>;
  /** True when the stream holds exactly `record` at its seq. */
  isStored(record: AuditRecord): Promise<boolean>;
}

interface Waiting {
  fields: AuditFields;
  attempts: number;
  resolve(record: AuditRecord): void;
  reject(err: unknown): void;
}

interface Sent {
  w: Waiting;
  record: AuditRecord;
}

/** The `Nats-Msg-Id` of a record: its hash, unique to its place in the chain. */
const msgIdOf = (record: AuditRecord): string => record.hash;

/** Pipelined, fork-proof appends for one {@link AuditLog}. */
export class AuditWriter {
  readonly #d: AuditWriterDeps;
  readonly #waiting: Waiting[] = [];
  /** The last record known stored; undefined when it must be read from the stream again. */
  #tail: ChainTail | undefined;
  #driving: Promise<void> | undefined;

  constructor(deps: AuditWriterDeps, tail: ChainTail) {
    this.#d = deps;
    this.#tail = tail;
  }

  /** Where the chain ends as this writer last saw it stored. */
  get tail(): ChainTail | undefined {
    return this.#tail;
  }

  /** Queues `fields` (already checked by the caller); resolves with the stored record. */
  append(fields: AuditFields): Promise<AuditRecord> {
    return new Promise<AuditRecord>((resolve, reject) => {
      this.#waiting.push({ fields, attempts: 0, resolve, reject });
      this.#kick();
    });
  }

  /** Starts the send loop unless it runs; an append made as it was ending starts it again. */
  #kick(): void {
    if (this.#driving !== undefined) return;
    this.#driving = this.#drive().finally(() => {
      this.#driving = undefined;
      if (this.#waiting.length > 0) this.#kick();
    });
  }

  /** Resolves once nothing is waiting or on the wire. */
  async idle(): Promise<void> {
    while (this.#driving !== undefined) await this.#driving;
  }

  async #drive(): Promise<void> {
    while (this.#waiting.length > 0) {
      let tail = this.#tail;
      if (tail === undefined) {
        try {
          tail = await this.#d.readTail();
        } catch (err) {
          // No tail, no chain: everything waiting fails now rather than hang.
          for (const w of this.#waiting.splice(0)) w.reject(err);
          return;
        }
        this.#tail = tail;
      }
      const batch = this.#waiting.splice(0, this.#d.maxBatch);
      await this.#send(tail, batch);
    }
  }

  /** Publishes `batch` chained on `tail`, settles what was stored, puts the rest back in front. */
  async #send(tail: ChainTail, batch: Waiting[]): Promise<void> {
    const sent: Sent[] = [];
    let prev = tail;
    for (const w of batch) {
      const record = chainNext(prev, w.fields);
      sent.push({ w, record });
      prev = record;
    }
    const acks = await Promise.allSettled(
      sent.map(({ record }, i) => {
        // nats-server (2.9.10 checked, 0 included) refuses the publish when the stream's last
        // sequence (and, pipelined, the last message id) is not the record this one chains on.
        const before = sent[i - 1]?.record;
        const expect = { lastSequence: record.seq - 1, streamName: AUDIT_STREAM, ...(before === undefined ? {} : { lastMsgID: msgIdOf(before) }) };
        return this.#d.js.publish(AUDIT_SUBJECT, encodeAuditRecord(record), { msgID: msgIdOf(record), expect, timeout: this.#d.publishTimeoutMs });
      }),
    );
    for (let i = 0; i < sent.length; i++) {
      const { w, record } = sent[i] as Sent;
      const ack = acks[i] as PromiseSettledResult<PubAck>;
      if (ack.status === 'fulfilled' && ack.value.seq === record.seq && !ack.value.duplicate) {
        this.#tail = { seq: record.seq, hash: record.hash };
        w.resolve(record);
        continue;
      }
      const err: unknown = ack.status === 'rejected' ? ack.reason : new Error(`stored at stream sequence ${ack.value.seq}${ack.value.duplicate ? ' as a duplicate' : ''}`);
      // A timeout may hide a stored record whose ack was lost: look before failing.
      if (!isConflict(err) && ack.status === 'rejected' && (await this.#d.isStored(record))) {
        this.#tail = { seq: record.seq, hash: record.hash };
        w.resolve(record);
        continue;
      }
      this.#tail = undefined;
      const rest = sent.slice(i + 1).map((s) => s.w);
      if (isConflict(err)) {
        w.attempts += 1;
        if (w.attempts >= this.#d.maxAttempts) {
          w.reject(new AuditLogError(AUDIT_APPEND_CONFLICT, `audit: other writers appended first ${w.attempts} times; record not stored`, { cause: err }));
          this.#waiting.unshift(...rest);
        } else {
          this.#d.log.debug({ seq: record.seq, attempt: w.attempts, behind: rest.length }, 'another writer appended first; re-chaining');
          this.#waiting.unshift(w, ...rest);
          await delay(Math.floor(Math.random() * 5 * w.attempts));
        }
        return;
      }
      w.reject(new AuditLogError(AUDIT_UNAVAILABLE, `audit: record ${record.seq} not stored: ${err instanceof Error ? err.message : String(err)}`, { cause: err }));
      // The records chained on it are chained again on whatever is stored.
      this.#waiting.unshift(...rest);
      return;
    }
  }
}

/** nats-server's `err_code` for "wrong last msg ID" (not among the client's named codes). */
const STREAM_WRONG_LAST_MSG_ID = 10070;

/** The server refused a record because the stream's end is not what it chains on. */
function isConflict(err: unknown): boolean {
  return err instanceof JetStreamApiError && (err.code === JetStreamApiCodes.StreamWrongLastSequence || err.code === STREAM_WRONG_LAST_MSG_ID);
}
