/**
 * The hub's router (ARCHITECTURE, "Messages"): reads SUBMIT through the durable work-queue
 * consumer `router`, checks each envelope and its sender, and stores one copy per recipient on
 * `ncb.deliver.<TO>` with `Nats-Msg-Id: <id>.<TO>`. The SUBMIT message is acked only after every
 * copy is acked by JetStream, so a crash in between means a redelivery, and DELIVER's duplicate
 * window drops the copies already stored. A refused submission is answered on `ncb.event.<SENDER>`
 * and terminated; it never stops the loop.
 *
 * Not yet here (later issues): signature and handling-code checks, the audit record.
 */
import { envelopeDigest, type AuditFields } from '../../protocol/audit.js';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { ConsumerMessages, JetStreamClient, JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { isCountryCode } from '../../protocol/country.js';
import { EnvelopeError, MAX_ENVELOPE_BYTES, parseEnvelope, type Envelope } from '../../protocol/envelope.js';
import { CodedError } from '../../protocol/errors.js';
import { DELIVER_STREAM, SUBMIT_STREAM, countryOfSubject, subjects } from '../../protocol/subjects.js';
import { describeValue } from '../../protocol/validate.js';
import { ROUTER_CONSUMER, ensureRouterConsumer } from '../broker/streams.js';

/** The envelope's `from` is not the country whose subject it was submitted on. */
export const ROUTER_SENDER_MISMATCH = 'ROUTER_SENDER_MISMATCH';
/** The submitting country is not an active member (e.g. revoked, and its connection not yet dropped). */
export const ROUTER_SENDER_INACTIVE = 'ROUTER_SENDER_INACTIVE';
/** A listed recipient is not an active member; nothing is delivered. */
export const ROUTER_UNKNOWN_RECIPIENT = 'ROUTER_UNKNOWN_RECIPIENT';
/** `to: '*'` and no other country is active. */
export const ROUTER_NO_RECIPIENTS = 'ROUTER_NO_RECIPIENTS';
/** `expires` had passed when the router took the envelope. */
export const ROUTER_EXPIRED = 'ROUTER_EXPIRED';
/** The SUBMIT subject names no country, so there is nobody to answer. */
export const ROUTER_BAD_SUBJECT = 'ROUTER_BAD_SUBJECT';
/** Some copies were not stored in DELIVER; the submission is retried. */
export const ROUTER_DELIVERY_FAILED = 'ROUTER_DELIVERY_FAILED';
/** The router could not bind to its consumer. */
export const ROUTER_START_FAILED = 'ROUTER_START_FAILED';

/** A failure of the router itself (not of a submission, which is answered with a {@link RejectionEvent}). */
export class RouterError extends CodedError {}

/** Most problem lines sent back in one rejection. */
const MAX_PROBLEMS = 32;

/** Who may send and receive: the registry's view of active members. */
export interface RecipientDirectory {
  isActive(country: string): boolean;
  activeCountries(): readonly string[];
}

/** Metric callbacks; the metrics module turns them into series (no prom-client here). */
export interface RouterStats {
  /** A submission was stored for every recipient, `ms` after the router took it. */
  onRouted(from: string, to: readonly string[], ms: number): void;
  /** A submission was refused; `from` is undefined when the subject named no country. */
  onRejected(from: string | undefined, code: string): void;
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

/** What {@link decideRoute} concluded about one submission. */
export type RouteDecision =
  | { ok: true; envelope: Envelope; recipients: string[] }
  | { ok: false; id: string | null; code: string; problems: string[] };

/** Options of {@link decideRoute}. */
export interface DecideOptions {
  maxEnvelopeBytes?: number;
  /** Current time in ms (default Date.now()). */
  nowMs?: number;
}

/**
 * Decides what to do with the bytes `sender` submitted (pure): refuse with a code and problems, or
 * deliver to these recipients. All or nothing: one unknown recipient refuses the whole submission,
 * so the sender learns of it and nobody gets a message whose recipient list was not honoured.
 */
export function decideRoute(sender: string, data: Uint8Array, directory: RecipientDirectory, opts: DecideOptions = {}): RouteDecision {
  let envelope: Envelope;
  try {
    envelope = parseEnvelope(data, { maxBytes: opts.maxEnvelopeBytes ?? MAX_ENVELOPE_BYTES });
  } catch (err) {
    if (!(err instanceof EnvelopeError)) throw err;
    return refuse(err.envelopeId ?? null, err.code, err.problems);
  }
  const id = envelope.id;
  if (envelope.from !== sender) {
    return refuse(id, ROUTER_SENDER_MISMATCH, [`from: must be the submitting country ${sender} (got ${describeValue(envelope.from)})`]);
  }
  if (!directory.isActive(sender)) return refuse(id, ROUTER_SENDER_INACTIVE, [`from: not an active member country (got ${describeValue(sender)})`]);
  if (envelope.expires !== undefined && Date.parse(envelope.expires) <= (opts.nowMs ?? Date.now())) {
    return refuse(id, ROUTER_EXPIRED, [`expires: already passed when routed (got ${describeValue(envelope.expires)})`]);
  }
  if (envelope.to === '*') {
    // The directory is trusted but its output becomes subjects: keep only real codes, once each.
    const recipients = [...new Set(directory.activeCountries())].filter((cc) => cc !== sender && isCountryCode(cc));
    if (recipients.length === 0) return refuse(id, ROUTER_NO_RECIPIENTS, ['to: no active member country besides the sender (got "*")']);
    return { ok: true, envelope, recipients };
  }
  const problems = envelope.to.flatMap((cc, i) => (directory.isActive(cc) ? [] : [`to[${i}]: not an active member country (got ${describeValue(cc)})`]));
  if (problems.length > 0) return refuse(id, ROUTER_UNKNOWN_RECIPIENT, problems);
  return { ok: true, envelope, recipients: [...envelope.to] };
}

function refuse(id: string | null, code: string, problems: readonly string[]): RouteDecision {
  return { ok: false, id, code, problems: problems.slice(0, MAX_PROBLEMS) };
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
  #messages: ConsumerMessages | undefined;
  #loop: Promise<void> | undefined;
  #isStopping = false;

  constructor(opts: RouterOptions) {
    this.#opts = opts;
    this.#log = opts.log.child({ component: 'router' });
    this.#stats = opts.stats ?? NO_STATS;
  }

  /**
   * Ensures the consumer and starts routing in the background; resolves once bound. The streams
   * must exist ({@link ensureStreams}). Throws `STREAM_*` codes or `ROUTER_START_FAILED`.
   */
  async start(): Promise<void> {
    if (this.#loop !== undefined) return;
    this.#isStopping = false;
    const { nc, ackWaitMs } = this.#opts;
    let messages: ConsumerMessages;
    try {
      const jsm = await jetstreamManager(nc);
      await ensureRouterConsumer(jsm, ackWaitMs === undefined ? {} : { ackWaitMs });
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
    let decision: RouteDecision;
    try {
      decision = decideRoute(sender, m.data, this.#opts.directory, this.#opts.maxEnvelopeBytes === undefined ? {} : { maxEnvelopeBytes: this.#opts.maxEnvelopeBytes });
    } catch (err) {
      // A bug or a directory failure, not the sender's fault: retry rather than refuse.
      log.error({ err, seq: m.seq }, 'routing decision failed');
      m.nak(this.#retryDelayMs());
      return;
    }
    if (decision.ok && this.#opts.verify) {
      try {
        await this.#opts.verify(decision.envelope);
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        if (typeof code !== 'string') {
          log.error({ err, seq: m.seq }, 'signature check failed unexpectedly');
          m.nak(this.#retryDelayMs());
          return;
        }
        decision = { ok: false, id: decision.envelope.id, code, problems: [(err as Error).message] };
      }
    }
    if (!decision.ok) {
      await this.#reject(m, sender, decision, log);
      return;
    }
    try {
      await this.#deliver(decision.envelope.id, decision.recipients, m.data);
      await this.#opts.audit?.append({ event: 'routed', messageId: decision.envelope.id, from: sender, to: decision.recipients, envelopeSha256: envelopeDigest(m.data) });
    } catch (err) {
      log.warn({ err, id: decision.envelope.id, seq: m.seq, redelivered: m.redelivered }, 'delivery failed, will retry');
      m.nak(this.#retryDelayMs());
      return;
    }
    // A lost ack means a redelivery within ack_wait, whose copies DELIVER drops as duplicates.
    m.ack();
    const ms = performance.now() - startedMs;
    this.#stats.onRouted(sender, decision.recipients, ms);
    log.debug({ id: decision.envelope.id, to: decision.recipients.length, ms }, 'routed');
  }

  async #deliver(id: string, recipients: readonly string[], data: Uint8Array): Promise<void> {
    const js = this.#js;
    if (js === undefined) throw new RouterError(ROUTER_DELIVERY_FAILED, 'router: not started');
    const timeout = this.#opts.publishTimeoutMs ?? 5_000;
    const results = await Promise.allSettled(
      recipients.map((to) =>
        // expect.streamName: a copy must land in DELIVER, not in some other stream bound to the subject.
        js.publish(subjects.deliver(to), data, { msgID: `${id}.${to}`, timeout, expect: { streamName: DELIVER_STREAM } }),
      ),
    );
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed.length > 0) {
      const cause: unknown = failed[0]?.reason;
      throw new RouterError(ROUTER_DELIVERY_FAILED, `router: ${failed.length} of ${recipients.length} copies of ${id} not stored: ${String(cause)}`, { cause });
    }
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
