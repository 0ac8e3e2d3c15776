/**
 * The inbound side: reads the durable pull consumer `deliver-<CC>` on DELIVER and moves each
 * message into the inbox. For each: parse the envelope (a malformed one is logged and `term()`ed:
 * redelivering it cannot make it valid), `inbox.put` (fsync) and only then `ackAck()`, the ack the
 * server confirms. A lost ack means a redelivery after the consumer's ack wait, which the inbox
 * drops as a duplicate; a failed write means a `nak`, so the hub keeps the message. A `receipt`
 * never enters the inbox: it goes to `onReceipt` (the status store), then is acked.
 *
 * Up to `concurrency` deliveries are handled at once (default 32), each still "stored (fsynced)
 * before its ack" and with its `delivered` receipt queued before its ack. The signature check and
 * the decryption (CPU) run as the messages come; the store calls are where order is kept:
 * - inbox writes are issued in delivery order (a delivery waits until every earlier one has issued
 *   its own write, not until it is done), so the inbox's arrival order is DELIVER's order and the
 *   stores can coalesce the fsyncs of a whole pull into one;
 * - a redelivery of an id in the same pull is the inbox's business: its `put` answers `duplicate`
 *   only once the first copy's write has finished, so no ack outruns the write it duplicates;
 * - a `deletion` waits until every earlier delivery is finished, and every later one waits until
 *   the deletion is finished, so an original and its deletion in one pull purge in that order
 *   (and a redelivered deletion sees itself stored);
 * - receipts and refusals touch no inbox and keep no order (receipt states only move forward).
 * One at a time, the loop spent an inbox fsync and then the receipt's fsyncs per message, with the
 * CPU idle; a pull of 64 now costs a few coalesced fsyncs.
 *
 * `consume()` itself survives reconnects and server restarts (it re-pulls, and checks the consumer
 * after missed heartbeats); this loop only re-binds when `consumers.get` or `consume` fail, e.g.
 * while the hub is away at start, with the relay's back-off.
 */
import type { ConsumerMessages, JetStreamClient, JsMsg } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { EnvelopeError, parseEnvelope, type Envelope } from '../../protocol/envelope.js';
import { DELIVER_STREAM, deliverConsumer } from '../../protocol/subjects.js';
import type { Inbox } from './inbox.js';
import { Wakeup, backoffDelayMs, type RetryBackoff } from './wakeup.js';

/** What the delivery loop needs. */
export interface DeliveryOptions {
  country: string;
  js: JetStreamClient;
  inbox: Inbox;
  log: Logger;
  maxEnvelopeBytes: number;
  /** Messages buffered per pull. */
  batchSize: number;
  /** Deliveries handled at once (default {@link DEFAULT_DELIVERY_CONCURRENCY}); 1 handles them one by one. */
  concurrency?: number;
  /** How long to wait for the server to confirm an ack. */
  ackTimeoutMs: number;
  /** Delay before a message whose write failed is redelivered. */
  nakDelayMs: number;
  retry: RetryBackoff;
  /** Signature check of each delivered envelope (see RelayOptions.verify). */
  verify?: (envelope: Envelope) => Promise<void>;
  /**
   * Takes a delivered `receipt` envelope instead of the inbox (the relay records it in the status
   * store). Resolves once that is durable; a rejection means a nak, so the hub redelivers it.
   */
  onReceipt?: (envelope: Envelope) => Promise<void>;
  /**
   * Called once per envelope newly stored in the inbox (not for a duplicate), before the ack (the
   * relay queues the `delivered` receipt). A rejection is logged; the delivery is acked all the same.
   */
  onStored?: (envelope: Envelope) => Promise<void>;
  /**
   * Decrypts an `encrypted` body (restricted/confidential) after the signature check; the
   * plaintext is stored with the item. A coded failure (not one of our keys, damaged CMS) can never
   * succeed later: the delivery goes to `onUndecryptable` and is acked. Anything else is a nak.
   */
  decrypt?: (envelope: Envelope) => Promise<string>;
  /** Told of an envelope that cannot be decrypted here (the relay answers with a `rejected` receipt). */
  onUndecryptable?: (envelope: Envelope, code: string) => Promise<void>;
  /**
   * Takes a `deletion` envelope instead of the plain inbox path (the relay purges the message it
   * names, stores the deletion and answers with a receipt). A rejection means a nak.
   */
  onDeletion?: (envelope: Envelope) => Promise<void>;
}

/** Deliveries handled at once when {@link DeliveryOptions.concurrency} is not given. */
export const DEFAULT_DELIVERY_CONCURRENCY = 32;

/** Where one delivery stands among those in hand; see the module comment. */
interface Turn {
  /** Resolves once every earlier delivery has issued its inbox write (or needs none). */
  earlierIssued: Promise<void>;
  /** Resolves once every earlier delivery is finished. */
  earlierSettled: Promise<void>;
  /** This delivery has issued its inbox write (or needs none): later ones may issue theirs. Idempotent. */
  issued: () => void;
}

// Consumer notifications worth a warning; the rest (heartbeats, next requests) are routine.
const WARN_STATUSES = new Set(['heartbeats_missed', 'consumer_not_found', 'stream_not_found', 'consumer_deleted', 'exceeded_limits']);

/** See the module comment. */
export class Delivery {
  readonly #opts: DeliveryOptions;
  readonly #log: Logger;
  readonly #retry = new Wakeup();
  readonly #concurrency: number;
  /** Deliveries being handled. */
  readonly #inHand = new Set<Promise<void>>();
  /** A delivery finished: a slot is free. */
  readonly #slotFreed = new Wakeup();
  /** Resolves once every delivery taken so far has issued its inbox write. */
  #issued: Promise<void> = Promise.resolve();
  /** Resolves once every delivery taken so far is finished. */
  #settled: Promise<void> = Promise.resolve();
  #messages: ConsumerMessages | undefined;
  #loop: Promise<void> | undefined;
  #isStopping = false;

  constructor(opts: DeliveryOptions) {
    this.#opts = opts;
    this.#log = opts.log;
    this.#concurrency = Math.max(1, Math.floor(opts.concurrency ?? DEFAULT_DELIVERY_CONCURRENCY));
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  /** The connection came back: re-bind now if the loop is waiting to. */
  reconnected(): void {
    this.#retry.notify();
  }

  /**
   * Stops pulling and waits for the messages in hand. Messages already pulled but not handled are
   * nak'ed, so the next run (or the next agent process) gets them at once, not after the ack wait.
   */
  async stop(): Promise<void> {
    this.#isStopping = true;
    this.#retry.notify();
    this.#slotFreed.notify();
    await this.#messages?.close();
    await this.#loop;
  }

  async #run(): Promise<void> {
    const { js, country } = this.#opts;
    const name = deliverConsumer(country);
    let failures = 0;
    while (!this.#isStopping) {
      try {
        const consumer = await js.consumers.get(DELIVER_STREAM, name);
        if (this.#isStopping) break;
        const messages = await consumer.consume({ max_messages: this.#opts.batchSize });
        this.#messages = messages;
        if (this.#isStopping) {
          await messages.close();
          break;
        }
        this.#log.info({ stream: DELIVER_STREAM, consumer: name }, 'inbox consumer bound');
        failures = 0;
        void this.#watch(messages);
        for await (const m of messages) {
          // Back-pressure: the consumer pulls more only as this loop takes them.
          while (!this.#isStopping && this.#inHand.size >= this.#concurrency) await this.#slotFreed.wait();
          if (this.#isStopping) m.nak();
          else this.#take(m);
        }
        await this.#settled;
        if (this.#isStopping) break;
        this.#log.warn({ consumer: name }, 'inbox consumer ended, re-binding');
      } catch (err) {
        await this.#settled;
        if (this.#isStopping) break;
        failures++;
        const delayMs = backoffDelayMs(failures, this.#opts.retry);
        this.#log.warn({ err, consumer: name, failures, delayMs }, 'inbox consumer not bound, will retry');
        await this.#retry.wait(delayMs);
      }
    }
  }

  async #watch(messages: ConsumerMessages): Promise<void> {
    try {
      for await (const status of messages.status()) {
        if (WARN_STATUSES.has(status.type)) this.#log.warn({ status }, 'inbox consumer status');
      }
    } catch (err) {
      this.#log.warn({ err }, 'inbox consumer status watch ended');
    }
  }

  /** Starts handling `m` in its turn (see the module comment), without waiting for it. */
  #take(m: JsMsg): void {
    let issued: () => void = () => undefined;
    const own = new Promise<void>((resolve) => (issued = resolve));
    const turn: Turn = { earlierIssued: this.#issued, earlierSettled: this.#settled, issued };
    const run = this.#handle(m, turn)
      .catch((err: unknown) => this.#log.error({ err, seq: m.seq }, 'delivery handling failed unexpectedly, left to the hub'))
      .finally(() => {
        issued();
        this.#inHand.delete(run);
        this.#slotFreed.notify();
      });
    this.#inHand.add(run);
    this.#issued = Promise.all([turn.earlierIssued, own]).then(() => undefined);
    this.#settled = Promise.all([turn.earlierSettled, run]).then(() => undefined);
  }

  /** Handles one delivery; never throws (every outcome is an ack, a term or a nak). */
  async #handle(m: JsMsg, turn: Turn): Promise<void> {
    let envelope: Envelope;
    try {
      envelope = parseEnvelope(m.data, { maxBytes: this.#opts.maxEnvelopeBytes });
    } catch (err) {
      const code = err instanceof EnvelopeError ? err.code : undefined;
      this.#log.error({ err, code, seq: m.seq, subject: m.subject }, 'malformed delivery terminated');
      // No reason argument: nats-server 2.9 ignores `+TERM <reason>` (see the router).
      m.term();
      return;
    }
    if (this.#opts.verify) {
      try {
        await this.#opts.verify(envelope);
      } catch (err) {
        // The hub verified it too; a failure here means tampering in between or a revoked sender.
        this.#log.error({ err, code: (err as { code?: string }).code, id: envelope.id, from: envelope.from, seq: m.seq }, 'delivery with a bad signature terminated');
        m.term();
        return;
      }
    }
    if (envelope.kind === 'deletion' && this.#opts.onDeletion) {
      // Issued (for later deliveries) only when finished: a full barrier, see the module comment.
      await turn.earlierSettled;
      if (await this.#handOver(m, envelope, this.#opts.onDeletion, 'deletion not carried out')) {
        this.#log.info({ id: envelope.id, deletes: envelope.deletes, from: envelope.from, seq: m.seq }, 'deletion delivery acked');
      }
      return;
    }
    if (envelope.kind === 'receipt' && this.#opts.onReceipt) {
      turn.issued();
      if (await this.#handOver(m, envelope, this.#opts.onReceipt, 'receipt not recorded')) {
        this.#log.debug({ id: envelope.id, of: envelope.receipt?.of, from: envelope.from, seq: m.seq }, 'receipt delivery acked');
      }
      return;
    }
    let plaintext: string | undefined;
    if (envelope.encrypted !== undefined && this.#opts.decrypt) {
      try {
        plaintext = await this.#opts.decrypt(envelope);
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        if (typeof code !== 'string' || !this.#opts.onUndecryptable) {
          this.#log.error({ err, id: envelope.id, seq: m.seq }, 'decryption failed, delivery left to the hub');
          m.nak(this.#opts.nakDelayMs);
          return;
        }
        this.#log.error({ err, code, id: envelope.id, from: envelope.from, seq: m.seq }, 'delivery cannot be decrypted here, refused');
        turn.issued();
        const onUndecryptable = this.#opts.onUndecryptable;
        await this.#handOver(m, envelope, (e) => onUndecryptable(e, code), 'refusal receipt not queued');
        return;
      }
    }
    let outcome: 'stored' | 'duplicate';
    await turn.earlierIssued;
    try {
      const put = this.#opts.inbox.put(envelope, plaintext);
      turn.issued();
      outcome = await put;
    } catch (err) {
      this.#log.error({ err, id: envelope.id, seq: m.seq }, 'inbox write failed, delivery left to the hub');
      m.nak(this.#opts.nakDelayMs);
      return;
    }
    // Durable from here; a crash before the ack below means a redelivery the inbox drops.
    if (outcome === 'stored') this.#log.debug({ id: envelope.id, seq: m.seq }, 'stored in inbox, not yet acked');
    if (outcome === 'stored' && this.#opts.onStored) {
      try {
        await this.#opts.onStored(envelope);
      } catch (err) {
        // The message is safely stored; only its receipt is missing. A nak would bring it back
        // as a duplicate, which gets no receipt either, so ack it.
        this.#log.error({ err, id: envelope.id, seq: m.seq }, 'delivered receipt not queued');
      }
    }
    await this.#ack(m, envelope);
    this.#log.debug({ id: envelope.id, seq: m.seq, outcome, redelivered: m.redelivered }, outcome === 'stored' ? 'delivered to inbox' : 'duplicate delivery dropped');
  }

  /**
   * Gives the envelope to a handler that makes it durable elsewhere, then acks; a failing handler
   * means a nak, so the hub keeps the delivery. True when acked.
   */
  async #handOver(m: JsMsg, envelope: Envelope, handler: (envelope: Envelope) => Promise<void>, failure: string): Promise<boolean> {
    try {
      await handler(envelope);
    } catch (err) {
      this.#log.error({ err, id: envelope.id, seq: m.seq }, `${failure}, delivery left to the hub`);
      m.nak(this.#opts.nakDelayMs);
      return false;
    }
    await this.#ack(m, envelope);
    return true;
  }

  /** Acks a handled delivery, waiting for the server's confirmation; never throws. */
  async #ack(m: JsMsg, envelope: Envelope): Promise<void> {
    try {
      const confirmed = await m.ackAck({ timeout: this.#opts.ackTimeoutMs });
      if (!confirmed) this.#log.warn({ id: envelope.id, seq: m.seq }, 'ack not confirmed, the hub may redeliver (deduplicated)');
    } catch (err) {
      // Stored already: a redelivery after the ack wait is dropped by the inbox.
      this.#log.warn({ err, id: envelope.id, seq: m.seq }, 'ack failed, the hub will redeliver (deduplicated)');
    }
  }
}
