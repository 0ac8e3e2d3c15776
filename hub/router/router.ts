/**
 * The hub's router (ARCHITECTURE, "Messages"): reads SUBMIT through the durable work-queue
 * consumer `router`, checks each envelope and its sender, and stores one copy per recipient on
 * `ncb.deliver.<TO>` with `Nats-Msg-Id: <id>.<TO>`. The SUBMIT message is acked only after every
 * copy is acked by JetStream, so a crash in between means a redelivery, and DELIVER's duplicate
 * window drops the copies already stored. A refused submission is answered on `ncb.event.<SENDER>`
 * and terminated; it never stops the loop. A `deletion` from a message's originator goes to that
 * message's recipients and erases the hub's stored copies (`deletion.ts`); urgent messages are
 * watched until every recipient confirms (`urgent-watch.ts`).
 */
import { envelopeDigest, type AuditFields } from '../../protocol/audit.js';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { ConsumerMessages, JetStreamClient, JetStreamManager, JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Envelope } from '../../protocol/envelope.js';
import { CodedError } from '../../protocol/errors.js';
import { DELIVER_STREAM, SUBMIT_STREAM, countryOfSubject, subjects } from '../../protocol/subjects.js';
import { ROUTER_CONSUMER, ensureRouterConsumer } from '../broker/streams.js';
import { checkSubmission, resolveRecipients, type RecipientDirectory, type RouteDecision, type SubmissionCheck } from './decide.js';
import { eraseCopies, planDeletion, type MessageHistory } from './deletion.js';
import { ROUTER_BAD_SUBJECT, ROUTER_DELIVERY_FAILED, ROUTER_START_FAILED, RouterError } from './errors.js';
import type { UrgentWatch } from './urgent-watch.js';

export * from './decide.js';
export * from './errors.js';
export type { MessageHistory } from './deletion.js';

/** Metric callbacks; the metrics module turns them into series (no prom-client here). */
export interface RouterStats {
  /** A submission was stored for every recipient, `ms` after the router took it. */
  onRouted(from: string, to: readonly string[], ms: number): void;
  /** A submission was refused; `from` is undefined when the subject named no country. */
  onRejected(from: string | undefined, code: string): void;
  /**
   * A receipt (`kind: 'receipt'`) was routed, after {@link onRouted}: the metrics module reads
   * delivery times from `delivered` receipts (their `receipt.of` is a ULID carrying the original's
   * creation time, their `created` is when the recipient stored it).
   */
  onReceipt?(receipt: Envelope): void;
}

/** Published on `ncb.event.<SENDER>` when a submission is refused. */
export interface RejectionEvent {
  type: 'rejected';
  /** The envelope's id, or null when the input had no well-formed one. */
  id: string | null;
  code: string;
  /** `path: problem (got X)` lines. */
  problems: string[];
}

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
  /** Messages the consumer buffers (default 64). */
  batchSize?: number;
}

const NO_STATS: RouterStats = { onRouted: () => undefined, onRejected: () => undefined };

// Consumer notifications worth a warning; the rest (heartbeats, next requests) are routine.
const WARN_STATUSES = new Set(['heartbeats_missed', 'consumer_not_found', 'stream_not_found', 'consumer_deleted', 'no_responders', 'exceeded_limits']);

/**
 * The routing service. `start()` binds to (creating if needed) the `router` consumer on SUBMIT and
 * routes until `stop()`. Several routers (one per hub of a cluster) share the same consumer.
 */
export class Router {
  readonly #opts: RouterOptions;
  readonly #log: Logger;
  readonly #stats: RouterStats;
  #js: JetStreamClient | undefined;
  #jsm: JetStreamManager | undefined;
  #messages: ConsumerMessages | undefined;
  #loop: Promise<void> | undefined;
  #isStopping = false;
  #hasEnded = false;

  constructor(opts: RouterOptions) {
    this.#opts = opts;
    this.#log = opts.log.child({ component: 'router' });
    this.#stats = opts.stats ?? NO_STATS;
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
    const { nc, ackWaitMs } = this.#opts;
    let messages: ConsumerMessages;
    try {
      const jsm = await jetstreamManager(nc);
      await ensureRouterConsumer(jsm, ackWaitMs === undefined ? {} : { ackWaitMs });
      this.#jsm = jsm;
      this.#js = jetstream(nc);
      const consumer = await this.#js.consumers.get(SUBMIT_STREAM, ROUTER_CONSUMER);
      messages = await consumer.consume({ max_messages: this.#opts.batchSize ?? 64 });
    } catch (err) {
      if (err instanceof CodedError) throw err;
      throw new RouterError(ROUTER_START_FAILED, `router: cannot bind to ${SUBMIT_STREAM}/${ROUTER_CONSUMER}: ${String(err)}`, { cause: err });
    }
    this.#messages = messages;
    void this.#watch(messages);
    this.#loop = this.#run(messages);
    this.#log.info({ stream: SUBMIT_STREAM, consumer: ROUTER_CONSUMER }, 'router started');
  }

  /**
   * Stops taking messages and waits for the one in hand to finish. Messages buffered but not yet
   * handled are nak'ed so another router (or the next start) gets them without waiting for ack_wait.
   */
  async stop(): Promise<void> {
    const loop = this.#loop;
    if (loop === undefined) return;
    this.#isStopping = true;
    await this.#messages?.close();
    await loop;
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
        await this.#handle(m);
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

  /** Handles one submission; never throws (every outcome is an ack, a term or a nak). */
  async #handle(m: JsMsg): Promise<void> {
    const startedMs = performance.now();
    const sender = countryOfSubject(m.subject, 'submit');
    if (sender === undefined) {
      // Only the hub itself could publish here: a country's permissions allow only its own subject.
      this.#log.warn({ subject: m.subject, seq: m.seq, code: ROUTER_BAD_SUBJECT }, 'submission on a subject naming no country');
      this.#stats.onRejected(undefined, ROUTER_BAD_SUBJECT);
      m.term();
      return;
    }
    const log = this.#log.child({ country: sender });
    const decideOpts = this.#opts.maxEnvelopeBytes === undefined ? {} : { maxEnvelopeBytes: this.#opts.maxEnvelopeBytes };
    let checked: SubmissionCheck;
    let recipients: string[] = [];
    try {
      checked = checkSubmission(sender, m.data, this.#opts.directory, decideOpts);
      // A deletion's recipients are the original's, found once its signature holds (below).
      if (checked.ok && !this.#isCheckedDeletion(checked.envelope)) {
        const route = resolveRecipients(checked.envelope, this.#opts.directory);
        if (route.ok) recipients = route.recipients;
        else checked = route;
      }
    } catch (err) {
      // A bug or a directory failure, not the sender's fault: retry rather than refuse.
      log.error({ err, seq: m.seq }, 'routing decision failed');
      m.nak(this.#retryDelayMs());
      return;
    }
    if (checked.ok && this.#opts.verify) {
      try {
        await this.#opts.verify(checked.envelope);
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        if (typeof code !== 'string') {
          log.error({ err, seq: m.seq }, 'signature check failed unexpectedly');
          m.nak(this.#retryDelayMs());
          return;
        }
        checked = { ok: false, id: checked.envelope.id, code, problems: [(err as Error).message] };
      }
    }
    if (!checked.ok) {
      await this.#reject(m, sender, checked, log);
      return;
    }
    const envelope = checked.envelope;
    const history = this.#opts.history;
    if (history !== undefined && envelope.kind === 'deletion') {
      await this.#handleDeletion(m, envelope, history, startedMs, log);
      return;
    }
    try {
      const seqs = await this.#deliver(envelope.id, recipients, m.data);
      await this.#opts.audit?.append({ event: 'routed', messageId: envelope.id, from: sender, to: recipients, seqs, envelopeSha256: envelopeDigest(m.data) });
    } catch (err) {
      log.warn({ err, id: envelope.id, seq: m.seq, redelivered: m.redelivered }, 'delivery failed, will retry');
      m.nak(this.#retryDelayMs());
      return;
    }
    // A lost ack means a redelivery within ack_wait, whose copies DELIVER drops as duplicates.
    m.ack();
    this.#routed(envelope, recipients, startedMs, log);
  }

  /** A deletion checked against its original: only with a {@link RouterOptions.history}. */
  #isCheckedDeletion(envelope: Envelope): boolean {
    return envelope.kind === 'deletion' && this.#opts.history !== undefined;
  }

  /**
   * A deletion from a message's originator (see `deletion.ts`): erase the hub's stored copies of
   * the original, deliver the deletion to the original's recipients still active, audit both the
   * deletion (`routed`) and the fact (`deleted`), then ack. Every step is idempotent, so a crash or
   * a failure anywhere means the whole deletion is retried.
   */
  async #handleDeletion(m: JsMsg, deletion: Envelope, history: MessageHistory, startedMs: number, log: Logger): Promise<void> {
    const sender = deletion.from;
    const original = deletion.deletes;
    let recipients: string[];
    try {
      // parseEnvelope requires `deletes` on a deletion; planDeletion refuses one without it.
      const records = original === undefined ? [] : await history.forMessage(original);
      const plan = planDeletion(sender, deletion, records, this.#opts.directory);
      if (!plan.ok) {
        await this.#reject(m, sender, { ok: false, id: deletion.id, code: plan.code, problems: plan.problems }, log);
        return;
      }
      recipients = plan.recipients;
      if (plan.unlocated.length > 0) log.warn({ id: plan.original, to: plan.unlocated }, 'stored copies of a message to delete not located (routed before their sequences were recorded); they age out');
      const erased = await eraseCopies(this.#jetstreamManager(), plan.original, plan.copies, log);
      const seqs = await this.#deliver(deletion.id, recipients, m.data);
      await this.#opts.audit?.append({ event: 'routed', messageId: deletion.id, from: sender, to: recipients, seqs, envelopeSha256: envelopeDigest(m.data) });
      await this.#opts.audit?.append({ event: 'deleted', messageId: plan.original, from: sender, to: recipients, code: deletion.reason });
      log.info({ id: plan.original, deletion: deletion.id, to: recipients, reason: deletion.reason, ...erased }, 'message deleted');
    } catch (err) {
      log.warn({ err, id: deletion.id, deletes: original, seq: m.seq, redelivered: m.redelivered }, 'deletion failed, will retry');
      m.nak(this.#retryDelayMs());
      return;
    }
    m.ack();
    this.#routed(deletion, recipients, startedMs, log);
  }

  /** After the ack: stats, the urgent watch, the debug line. */
  #routed(envelope: Envelope, recipients: readonly string[], startedMs: number, log: Logger): void {
    const ms = performance.now() - startedMs;
    this.#stats.onRouted(envelope.from, recipients, ms);
    if (envelope.kind === 'receipt') {
      try {
        this.#stats.onReceipt?.(envelope);
      } catch (err) {
        log.error({ err, id: envelope.id }, 'receipt stats failed');
      }
    }
    try {
      this.#opts.urgent?.routed(envelope, recipients);
    } catch (err) {
      // The watch is an aid; a failure in it must not hold up routing.
      log.error({ err, id: envelope.id }, 'urgent watch failed');
    }
    log.debug({ id: envelope.id, to: recipients.length, ms }, 'routed');
  }

  #jetstreamManager(): JetStreamManager {
    if (this.#jsm === undefined) throw new RouterError(ROUTER_DELIVERY_FAILED, 'router: not started');
    return this.#jsm;
  }

  /**
   * Stores one copy per recipient and returns their DELIVER sequences in `recipients` order (for
   * a copy already stored inside the duplicate window, the sequence of the stored one).
   */
  async #deliver(id: string, recipients: readonly string[], data: Uint8Array): Promise<number[]> {
    const js = this.#js;
    if (js === undefined) throw new RouterError(ROUTER_DELIVERY_FAILED, 'router: not started');
    const timeout = this.#opts.publishTimeoutMs ?? 5_000;
    const results = await Promise.allSettled(
      recipients.map((to) =>
        // expect.streamName: a copy must land in DELIVER, not in some other stream bound to the subject.
        js.publish(subjects.deliver(to), data, { msgID: `${id}.${to}`, timeout, expect: { streamName: DELIVER_STREAM } }),
      ),
    );
    const seqs: number[] = [];
    const failed: PromiseRejectedResult[] = [];
    for (const r of results) {
      if (r.status === 'fulfilled') seqs.push(r.value.seq);
      else failed.push(r);
    }
    if (failed.length > 0) {
      const cause: unknown = failed[0]?.reason;
      throw new RouterError(ROUTER_DELIVERY_FAILED, `router: ${failed.length} of ${recipients.length} copies of ${id} not stored: ${String(cause)}`, { cause });
    }
    return seqs;
  }

  async #reject(m: JsMsg, sender: string, decision: Extract<RouteDecision, { ok: false }>, log: Logger): Promise<void> {
    const event: RejectionEvent = { type: 'rejected', id: decision.id, code: decision.code, problems: decision.problems };
    try {
      await this.#opts.audit?.append({ event: 'rejected', messageId: decision.id, from: sender, code: decision.code, problems: decision.problems, envelopeSha256: envelopeDigest(m.data) });
      this.#opts.nc.publish(subjects.event(sender), JSON.stringify(event));
      // The event is core NATS; flush so it has reached the server before the submission is dropped.
      await this.#opts.nc.flush();
    } catch (err) {
      log.warn({ err, seq: m.seq }, 'rejection event not sent, will retry');
      m.nak(this.#retryDelayMs());
      return;
    }
    // No reason argument: nats-server 2.9 matches `+TERM` exactly and ignores `+TERM <reason>`,
    // which would leave the submission to be redelivered forever.
    m.term();
    this.#stats.onRejected(sender, decision.code);
    log.info({ id: decision.id, code: decision.code, problems: decision.problems }, 'submission rejected');
  }

  #retryDelayMs(): number {
    return this.#opts.retryDelayMs ?? 2_000;
  }
}
