/**
 * The hub's audit log: hash-chained records (`protocol/audit.ts`) in the JetStream stream AUDIT.
 *
 * One chain, never forked: each record is published with `Nats-Expected-Last-Sequence` set to the
 * stream sequence of the record it chains on (and, when pipelined, `Nats-Expected-Last-Msg-Id`),
 * so a second writer (another hub of a cluster, or a second AuditLog in this process) that
 * appended first makes the server refuse the publish; the loser re-reads the tail and chains on
 * it. A record's `seq` is its stream sequence. Appends are pipelined (`audit-writer.ts`).
 */
import { createHash } from 'node:crypto';
import { DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { ConsumerMessages, JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { Value } from 'typebox/value';
import {
  AUDIT_STREAM,
  AuditRecordSchema,
  EMPTY_TAIL,
  GENESIS_PREV,
  chainNext,
  checkLink,
  decodeAuditRecord,
  type AuditFields,
  type AuditRecord,
  type ChainTail,
  type ChainVerdict,
} from '../../protocol/audit.js';
import { isUlid } from '../../protocol/envelope.js';
import { ensureAuditStream, type AuditStreamOptions } from './audit-stream.js';
import { AuditWriter } from './audit-writer.js';
import { AUDIT_BAD_MESSAGE_ID, AUDIT_CLOSED, AUDIT_UNAVAILABLE, AuditLogError } from './errors.js';

/** Options of {@link AuditLog.open}. */
export interface AuditLogOptions extends AuditStreamOptions {
  /** The hub's own broker connection (its user may publish on `ncb.audit` and use the JetStream API). */
  nc: NatsConnection;
  log: Logger;
  /** How long to wait for JetStream to ack one record (default 5 s). */
  publishTimeoutMs?: number;
  /** Publishes tried when other writers keep appending first (default 20). */
  maxAttempts?: number;
  /** Records published back to back before waiting for their acks (default 64). */
  maxBatch?: number;
}

/** One stored entry as read back: its stream sequence and bytes. */
interface StoredEntry {
  seq: number;
  data: Uint8Array;
}

/** The audit log over the AUDIT stream. Build it with {@link AuditLog.open}. */
export class AuditLog {
  readonly #js: JetStreamClient;
  readonly #jsm: JetStreamManager;
  readonly #log: Logger;
  /** Appends of this instance, chained in call order and pipelined. */
  readonly #writer: AuditWriter;
  #isClosed = false;

  private constructor(js: JetStreamClient, jsm: JetStreamManager, opts: AuditLogOptions, tail: ChainTail) {
    this.#js = js;
    this.#jsm = jsm;
    this.#log = opts.log.child({ component: 'audit' });
    this.#writer = new AuditWriter(
      {
        js,
        log: this.#log,
        publishTimeoutMs: opts.publishTimeoutMs ?? 5_000,
        maxAttempts: opts.maxAttempts ?? 20,
        maxBatch: opts.maxBatch ?? 64,
        readTail: () => AuditLog.#readTail(jsm, this.#log),
        isStored: (record) => this.#isStored(record),
      },
      tail,
    );
  }

  /**
   * Ensures the AUDIT stream ({@link ensureAuditStream}) and reads its last record so the chain
   * continues where it ended. Throws `AUDIT_STREAM_CONFLICT` or `AUDIT_UNAVAILABLE`.
   */
  static async open(opts: AuditLogOptions): Promise<AuditLog> {
    let jsm: JetStreamManager;
    try {
      jsm = await jetstreamManager(opts.nc);
    } catch (err) {
      throw new AuditLogError(AUDIT_UNAVAILABLE, `audit: JetStream not available: ${String(err)}`, { cause: err });
    }
    const streamOpts: AuditStreamOptions = {};
    if (opts.replicas !== undefined) streamOpts.replicas = opts.replicas;
    if (opts.maxAgeMs !== undefined) streamOpts.maxAgeMs = opts.maxAgeMs;
    const outcome = await ensureAuditStream(jsm, streamOpts);
    const log = opts.log.child({ component: 'audit' });
    const tail = await AuditLog.#readTail(jsm, log);
    const audit = new AuditLog(jetstream(opts.nc), jsm, opts, tail);
    audit.#log.info({ stream: AUDIT_STREAM, ...outcome, seq: tail.seq }, 'audit log open');
    return audit;
  }

  /** Where the chain ends as this instance last saw it. */
  get tail(): ChainTail | undefined {
    return this.#writer.tail;
  }

  /**
   * Appends one record and resolves once JetStream has stored it. Appends of one instance are
   * chained in call order; those made while earlier ones are on the wire are published back to
   * back (`audit-writer.ts`); a concurrent writer elsewhere is detected by the server and the
   * records re-chained. Throws `AUDIT_RECORD_INVALID` (bad fields; nothing stored),
   * `AUDIT_APPEND_CONFLICT` (other writers won `maxAttempts` times), `AUDIT_UNAVAILABLE` or
   * `AUDIT_CLOSED`.
   */
  // async, so a bad call is a rejected promise; everything before the return runs synchronously,
  // which keeps appends in call order.
  async append(fields: AuditFields): Promise<AuditRecord> {
    if (this.#isClosed) throw new AuditLogError(AUDIT_CLOSED, 'audit: log is closed');
    // Check the fields before queueing, so a bad call fails at once and costs no round trip.
    chainNext(EMPTY_TAIL, fields);
    return this.#writer.append(fields);
  }

  /** Waits for queued appends and refuses new ones. The connection stays the caller's. */
  async close(): Promise<void> {
    this.#isClosed = true;
    await this.#writer.idle();
  }

  /** True when the stream holds exactly `record` at its seq. */
  async #isStored(record: AuditRecord): Promise<boolean> {
    try {
      const stored = await this.#jsm.streams.getMessage(AUDIT_STREAM, { seq: record.seq });
      const value = stored === null ? undefined : decodeAuditRecord(stored.data);
      return Value.Check(AuditRecordSchema, value) && value.hash === record.hash;
    } catch (err) {
      this.#log.warn({ err, seq: record.seq }, 'could not read back an audit record');
      return false;
    }
  }

  /**
   * The chain's end as stored. A last entry that is not a valid record (damage, a forgery) is
   * chained on by the SHA-256 of its bytes, so logging goes on; `verify` reports that entry.
   */
  static async #readTail(jsm: JetStreamManager, log: Logger): Promise<ChainTail> {
    try {
      const info = await jsm.streams.info(AUDIT_STREAM);
      const last = info.state.last_seq;
      if (last === 0) return EMPTY_TAIL;
      const stored = await jsm.streams.getMessage(AUDIT_STREAM, { seq: last });
      if (stored === null) {
        log.error({ seq: last }, 'last audit record missing; the chain will not verify');
        return { seq: last, hash: GENESIS_PREV };
      }
      const value = decodeAuditRecord(stored.data);
      if (Value.Check(AuditRecordSchema, value)) return { seq: last, hash: value.hash };
      log.error({ seq: last }, 'last audit entry is not a valid record; chaining on its bytes');
      return { seq: last, hash: createHash('sha256').update(stored.data).digest('hex') };
    } catch (err) {
      throw new AuditLogError(AUDIT_UNAVAILABLE, `audit: cannot read the end of ${AUDIT_STREAM}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  }

  /**
   * Reads the whole stream in order and checks every link. Records appended while it runs are
   * not included (it stops at the last sequence it saw when it began). Throws `AUDIT_UNAVAILABLE`.
   */
  async verify(): Promise<ChainVerdict> {
    let tail: ChainTail = EMPTY_TAIL;
    for await (const entry of this.#scan()) {
      const seq = tail.seq + 1;
      const value = decodeAuditRecord(entry.data);
      const reason = checkLink(tail, value, seq);
      if (reason !== undefined) {
        this.#log.error({ seq, streamSeq: entry.seq, reason }, 'audit chain broken');
        return { ok: false, seq, reason };
      }
      tail = { seq, hash: (value as AuditRecord).hash };
    }
    return { ok: true, count: tail.seq };
  }

  /** Every valid record about message `id`, in order. Throws `AUDIT_BAD_MESSAGE_ID`, `AUDIT_UNAVAILABLE`. */
  async forMessage(id: string): Promise<AuditRecord[]> {
    if (!isUlid(id)) throw new AuditLogError(AUDIT_BAD_MESSAGE_ID, `audit: not a message id (ULID) (got ${JSON.stringify(String(id).slice(0, 40))})`);
    // A full scan: records are on one subject. Fine for what calls it: an operator's `audit show`
    // and the router's check of a deletion against its original, both rare; anything per message
    // would need an index (a subject per message id, or a KV beside the stream). Entries that are
    // not valid records are skipped here; `verify` is what reports them.
    const out: AuditRecord[] = [];
    for await (const entry of this.#scan()) {
      const value = decodeAuditRecord(entry.data);
      if (Value.Check(AuditRecordSchema, value) && value.messageId === id) out.push(value);
    }
    return out;
  }

  /**
   * Every valid membership record about country `code` (added, token created, enrolled, renewed,
   * suspended, resumed, revoked; its database writes and B2B policies), in order: records whose `country` is `code`. Message traffic is
   * not included (see {@link forMessage}). A full scan, as `forMessage`. Throws `AUDIT_UNAVAILABLE`.
   */
  async forCountry(code: string): Promise<AuditRecord[]> {
    const out: AuditRecord[] = [];
    for await (const entry of this.#scan()) {
      const value = decodeAuditRecord(entry.data);
      if (Value.Check(AuditRecordSchema, value) && value.country === code) out.push(value);
    }
    return out;
  }

  /** Every entry from the first to the last present when the scan began, via an ordered consumer. */
  async *#scan(): AsyncGenerator<StoredEntry> {
    const fail = (what: string, err: unknown): AuditLogError =>
      new AuditLogError(AUDIT_UNAVAILABLE, `audit: ${what} ${AUDIT_STREAM} failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    let last: number;
    let messages: number;
    try {
      const info = await this.#jsm.streams.info(AUDIT_STREAM);
      last = info.state.last_seq;
      messages = info.state.messages;
    } catch (err) {
      throw fail('reading', err);
    }
    if (messages === 0) return;
    let iter: ConsumerMessages;
    try {
      const consumer = await this.#js.consumers.get(AUDIT_STREAM, { deliver_policy: DeliverPolicy.All });
      iter = await consumer.consume({ max_messages: 512 });
    } catch (err) {
      throw fail('scanning', err);
    }
    let seen = 0;
    try {
      for await (const m of iter) {
        seen = m.seq;
        yield { seq: m.seq, data: m.data };
        if (m.seq >= last) break;
      }
    } catch (err) {
      throw fail('scanning', err);
    } finally {
      await iter.close();
    }
    // A scan that ended early would let a check pass on part of the chain.
    if (seen < last) throw fail('scanning', new Error(`stopped at ${seen} of ${last}`));
  }
}
