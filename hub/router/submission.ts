/**
 * What the router does with one submission it took from SUBMIT (`router.ts` decides when and how
 * many at once): check it, store one copy per recipient on `ncb.deliver.<TO>` with
 * `Nats-Msg-Id: <id>.<TO>`, record the decision in the audit log, and only then ack. A crash in
 * between means a redelivery, and DELIVER's duplicate window drops the copies already stored. A
 * refused submission is answered on `ncb.event.<SENDER>` and terminated. A `deletion` from a
 * message's originator goes to that message's recipients and erases the hub's stored copies
 * (`deletion.ts`). Every outcome is an ack, a term or a nak: {@link SubmissionHandler.handle}
 * never throws.
 */
import { envelopeDigest, type AuditFields } from '../../protocol/audit.js';
import type { JetStreamClient, JetStreamManager, JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Envelope } from '../../protocol/envelope.js';
import { DELIVER_STREAM, countryOfSubject, subjects } from '../../protocol/subjects.js';
import { checkSubmission, resolveRecipients, type RecipientDirectory, type RouteDecision, type SubmissionCheck } from './decide.js';
import { eraseCopies, planDeletion, type MessageHistory } from './deletion.js';
import { ROUTER_BAD_SUBJECT, ROUTER_DELIVERY_FAILED, RouterError } from './errors.js';
import type { UrgentWatch } from './urgent-watch.js';

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
  /** A submission of `country` was held back because the country is over its rate (never dropped). */
  onThrottled?(country: string): void;
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

/** What {@link SubmissionHandler} needs (see `RouterOptions` for each). */
export interface SubmissionDeps {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  directory: RecipientDirectory;
  log: Logger;
  stats: RouterStats;
  audit: { append(fields: AuditFields): Promise<unknown> } | undefined;
  history: MessageHistory | undefined;
  urgent: Pick<UrgentWatch, 'routed'> | undefined;
  verify: ((envelope: Envelope) => Promise<void>) | undefined;
  maxEnvelopeBytes: number | undefined;
  retryDelayMs: number;
  publishTimeoutMs: number;
  /**
   * True while submissions of `country` are held back in SUBMIT (or queued behind this one): a
   * deletion whose original is not recorded yet is retried rather than refused then, since the
   * original may be among them.
   */
  hasHeldBack(country: string): boolean;
  /** How long a replay is recognised (DELIVER's duplicate window, 2 min by default). */
  replayWindowMs: number;
}

/** Envelope ids remembered for replay detection at most (about 100 bytes each). */
const MAX_REMEMBERED = 100_000;

/** Handles submissions one at a time each, any number at once. */
export class SubmissionHandler {
  readonly #d: SubmissionDeps;
  /** `<from>.<id>` → when it was routed: a submission again within the window is a replay. */
  readonly #recent = new Map<string, number>();

  constructor(deps: SubmissionDeps) {
    this.#d = deps;
  }

  /** Handles one submission; never throws (every outcome is an ack, a term or a nak). */
  async handle(m: JsMsg): Promise<void> {
    const d = this.#d;
    const startedMs = performance.now();
    const sender = countryOfSubject(m.subject, 'submit');
    if (sender === undefined) {
      // Only the hub itself could publish here: a country's permissions allow only its own subject.
      d.log.warn({ subject: m.subject, seq: m.seq, code: ROUTER_BAD_SUBJECT }, 'submission on a subject naming no country');
      d.stats.onRejected(undefined, ROUTER_BAD_SUBJECT);
      m.term();
      return;
    }
    const log = d.log.child({ country: sender });
    const decideOpts = d.maxEnvelopeBytes === undefined ? {} : { maxEnvelopeBytes: d.maxEnvelopeBytes };
    let checked: SubmissionCheck;
    let recipients: string[] = [];
    try {
      checked = checkSubmission(sender, m.data, d.directory, decideOpts);
      // A deletion's recipients are the original's, found once its signature holds (below).
      if (checked.ok && !this.#isCheckedDeletion(checked.envelope)) {
        const route = resolveRecipients(checked.envelope, d.directory);
        if (route.ok) recipients = route.recipients;
        else checked = route;
      }
    } catch (err) {
      // A bug or a directory failure, not the sender's fault: retry rather than refuse.
      log.error({ err, seq: m.seq }, 'routing decision failed');
      m.nak(d.retryDelayMs);
      return;
    }
    if (checked.ok && d.verify) {
      try {
        await d.verify(checked.envelope);
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        if (typeof code !== 'string') {
          log.error({ err, seq: m.seq }, 'signature check failed unexpectedly');
          m.nak(d.retryDelayMs);
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
    if (d.history !== undefined && envelope.kind === 'deletion') {
      await this.#handleDeletion(m, envelope, d.history, startedMs, log);
      return;
    }
    const key = `${sender}.${envelope.id}`;
    try {
      const { seqs, allDuplicates } = await this.#deliver(envelope.id, recipients, m.data);
      if (allDuplicates && this.#isRecent(key)) {
        // A replay inside DELIVER's duplicate window: nothing new was stored, so nothing new is
        // recorded; the first submission's `routed` record stands. (After a crash between the
        // copies and the record, the id is not in memory, and the record is written now.)
        m.ack();
        log.info({ id: envelope.id, seq: m.seq }, 'replay dropped: every copy already stored');
        return;
      }
      await d.audit?.append({ event: 'routed', messageId: envelope.id, from: sender, to: recipients, seqs, envelopeSha256: envelopeDigest(m.data) });
    } catch (err) {
      log.warn({ err, id: envelope.id, seq: m.seq, redelivered: m.redelivered }, 'delivery failed, will retry');
      m.nak(d.retryDelayMs);
      return;
    }
    // A lost ack means a redelivery within ack_wait, whose copies DELIVER drops as duplicates.
    m.ack();
    this.#remember(key);
    this.#routed(envelope, recipients, startedMs, log);
  }

  /** A deletion checked against its original: only with a history. */
  #isCheckedDeletion(envelope: Envelope): boolean {
    return envelope.kind === 'deletion' && this.#d.history !== undefined;
  }

  /**
   * A deletion from a message's originator (see `deletion.ts`): erase the hub's stored copies of
   * the original, deliver the deletion to the original's recipients still active, audit both the
   * deletion (`routed`) and the fact (`deleted`), then ack. Every step is idempotent, so a crash or
   * a failure anywhere means the whole deletion is retried.
   */
  async #handleDeletion(m: JsMsg, deletion: Envelope, history: MessageHistory, startedMs: number, log: Logger): Promise<void> {
    const d = this.#d;
    const sender = deletion.from;
    const original = deletion.deletes;
    let recipients: string[];
    try {
      // parseEnvelope requires `deletes` on a deletion; planDeletion refuses one without it.
      const records = original === undefined ? [] : await history.forMessage(original);
      const plan = planDeletion(sender, deletion, records, d.directory);
      if (!plan.ok && records.length === 0 && d.hasHeldBack(sender)) {
        // The original may be one of the sender's submissions held back by its rate: try again
        // once they have had their turn, rather than refuse a deletion of a message not yet routed.
        log.info({ id: deletion.id, deletes: original, seq: m.seq }, 'deletion waits for its original, held back');
        m.nak(d.retryDelayMs);
        return;
      }
      if (!plan.ok) {
        await this.#reject(m, sender, { ok: false, id: deletion.id, code: plan.code, problems: plan.problems }, log);
        return;
      }
      recipients = plan.recipients;
      if (plan.unlocated.length > 0) log.warn({ id: plan.original, to: plan.unlocated }, 'stored copies of a message to delete not located (routed before their sequences were recorded); they age out');
      const erased = await eraseCopies(d.jsm, plan.original, plan.copies, log);
      const { seqs } = await this.#deliver(deletion.id, recipients, m.data);
      await d.audit?.append({ event: 'routed', messageId: deletion.id, from: sender, to: recipients, seqs, envelopeSha256: envelopeDigest(m.data) });
      await d.audit?.append({ event: 'deleted', messageId: plan.original, from: sender, to: recipients, code: deletion.reason });
      log.info({ id: plan.original, deletion: deletion.id, to: recipients, reason: deletion.reason, ...erased }, 'message deleted');
    } catch (err) {
      log.warn({ err, id: deletion.id, deletes: original, seq: m.seq, redelivered: m.redelivered }, 'deletion failed, will retry');
      m.nak(d.retryDelayMs);
      return;
    }
    m.ack();
    this.#routed(deletion, recipients, startedMs, log);
  }

  /** After the ack: stats, the urgent watch, the debug line. */
  #routed(envelope: Envelope, recipients: readonly string[], startedMs: number, log: Logger): void {
    const d = this.#d;
    const ms = performance.now() - startedMs;
    d.stats.onRouted(envelope.from, recipients, ms);
    if (envelope.kind === 'receipt') {
      try {
        d.stats.onReceipt?.(envelope);
      } catch (err) {
        log.error({ err, id: envelope.id }, 'receipt stats failed');
      }
    }
    try {
      d.urgent?.routed(envelope, recipients);
    } catch (err) {
      // The watch is an aid; a failure in it must not hold up routing.
      log.error({ err, id: envelope.id }, 'urgent watch failed');
    }
    log.debug({ id: envelope.id, to: recipients.length, ms }, 'routed');
  }

  /**
   * Stores one copy per recipient and returns their DELIVER sequences in `recipients` order (for
   * a copy already stored inside the duplicate window, the sequence of the stored one), and
   * whether every copy was already stored.
   */
  async #deliver(id: string, recipients: readonly string[], data: Uint8Array): Promise<{ seqs: number[]; allDuplicates: boolean }> {
    const js = this.#d.js;
    const timeout = this.#d.publishTimeoutMs;
    const results = await Promise.allSettled(
      recipients.map((to) =>
        // expect.streamName: a copy must land in DELIVER, not in some other stream bound to the subject.
        js.publish(subjects.deliver(to), data, { msgID: `${id}.${to}`, timeout, expect: { streamName: DELIVER_STREAM } }),
      ),
    );
    const seqs: number[] = [];
    const failed: PromiseRejectedResult[] = [];
    let allDuplicates = recipients.length > 0;
    for (const r of results) {
      if (r.status === 'fulfilled') {
        seqs.push(r.value.seq);
        if (!r.value.duplicate) allDuplicates = false;
      } else failed.push(r);
    }
    if (failed.length > 0) {
      const cause: unknown = failed[0]?.reason;
      throw new RouterError(ROUTER_DELIVERY_FAILED, `router: ${failed.length} of ${recipients.length} copies of ${id} not stored: ${String(cause)}`, { cause });
    }
    return { seqs, allDuplicates };
  }

  async #reject(m: JsMsg, sender: string, decision: Extract<RouteDecision, { ok: false }>, log: Logger): Promise<void> {
    const d = this.#d;
    const event: RejectionEvent = { type: 'rejected', id: decision.id, code: decision.code, problems: decision.problems };
    try {
      await d.audit?.append({ event: 'rejected', messageId: decision.id, from: sender, code: decision.code, problems: decision.problems, envelopeSha256: envelopeDigest(m.data) });
      d.nc.publish(subjects.event(sender), JSON.stringify(event));
      // The event is core NATS; flush so it has reached the server before the submission is dropped.
      await d.nc.flush();
    } catch (err) {
      log.warn({ err, seq: m.seq }, 'rejection event not sent, will retry');
      m.nak(d.retryDelayMs);
      return;
    }
    // No reason argument: nats-server 2.9 matches `+TERM` exactly and ignores `+TERM <reason>`,
    // which would leave the submission to be redelivered forever.
    m.term();
    d.stats.onRejected(sender, decision.code);
    log.info({ id: decision.id, code: decision.code, problems: decision.problems }, 'submission rejected');
  }

  #isRecent(key: string): boolean {
    const at = this.#recent.get(key);
    return at !== undefined && performance.now() - at < this.#d.replayWindowMs;
  }

  /** Remembers a routed id; forgets ids past the window (oldest first: a Map keeps insertion order). */
  #remember(key: string): void {
    const now = performance.now();
    this.#recent.delete(key);
    this.#recent.set(key, now);
    for (const [k, at] of this.#recent) {
      if (now - at < this.#d.replayWindowMs && this.#recent.size <= MAX_REMEMBERED) break;
      this.#recent.delete(k);
    }
  }
}

