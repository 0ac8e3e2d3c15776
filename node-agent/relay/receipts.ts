/**
 * The relay's receipts (ARCHITECTURE, "Messages"): the ones this agent owes senders — `delivered`
 * when a message is newly stored, `read` when the application acks it, `rejected` for one it
 * cannot use, `deleted` when it purges a message on its originator's order — and the ones it
 * receives about its own messages, recorded in their status.
 *
 * Outgoing receipts leave through the outbox like submissions, batched per country
 * ({@link ReceiptBatcher}: one signed envelope for the receipts of a burst), with no status record
 * of their own: nobody asks for the status of a receipt (the application never learns its id),
 * and the record cost two fsynced journal appends per received message. A rejection of one by the
 * router is logged as one for an unknown message.
 */
import type { Logger } from 'pino';
import { receiptItems, type Envelope, type ReceiptItem } from '../../protocol/envelope.js';
import type { Inbox } from './inbox.js';
import { ReceiptBatcher } from './receipt-batcher.js';
import type { StatusStore } from './status.js';
import type { RelayStats } from './types.js';

/** What {@link Receipts} needs from the relay. */
export interface ReceiptsOptions {
  country: string;
  inbox: Inbox;
  status: StatusStore;
  log: Logger;
  /** The relay's outbox path: id, sign, check, store durably (see `Relay#queue`). */
  queue: (fields: Omit<Envelope, 'v' | 'id' | 'from' | 'created'>) => Promise<Envelope>;
  /** Tells the drain there is something to send. */
  wake: () => void;
  stats?: RelayStats;
  /** Most receipts per envelope (see {@link ReceiptBatcher}). */
  maxReceiptsPerEnvelope?: number;
}

/** See the module comment. */
export class Receipts {
  readonly #opts: ReceiptsOptions;
  readonly #log: Logger;
  readonly #batcher: ReceiptBatcher;

  constructor(opts: ReceiptsOptions) {
    this.#opts = opts;
    this.#log = opts.log;
    this.#batcher = new ReceiptBatcher({ send: (to, items) => this.#send(to, items), ...(opts.maxReceiptsPerEnvelope === undefined ? {} : { maxItems: opts.maxReceiptsPerEnvelope }) });
  }

  /** Receipts sent so far, and the envelopes that carried them. */
  get sent(): { envelopes: number; receipts: number } {
    return this.#batcher.stats;
  }

  /**
   * Queues a receipt telling `original`'s sender what happened to it here. Never about a receipt
   * (the relay takes those out of the delivery path before they could get here), nor about a
   * deletion, whose one receipt is the `deleted` one about the message it named.
   */
  async answer(original: Envelope, state: 'delivered' | 'read'): Promise<void> {
    // A note this agent made for its own NCB (`Relay.putLocal`) has nobody to tell.
    if (original.kind === 'receipt' || original.kind === 'deletion' || original.from === this.#opts.country) return;
    await this.#batcher.queue(original.from, { of: original.id, status: state });
  }

  /** A delivery this agent cannot use (e.g. not encrypted to our key): tell the sender, with the code. */
  async refuse(envelope: Envelope, code: string): Promise<void> {
    if (envelope.kind === 'receipt') return;
    await this.#batcher.queue(envelope.from, { of: envelope.id, status: 'rejected', reason: code });
  }

  /**
   * A deletion from the originator: erase the message it names from the inbox (content gone from
   * the journal), keep the deletion itself so the NCB's application learns of it, and confirm with
   * one `deleted` receipt. A deletion from another country than the originator changes nothing and
   * is refused (`DELETION_NOT_ORIGINATOR`; the hub's router refuses those before they get here).
   * A redelivered deletion finds itself stored already and sends no second receipt.
   */
  async applyDeletion(envelope: Envelope): Promise<void> {
    const { inbox } = this.#opts;
    const target = envelope.deletes;
    if (target === undefined) return; // parseEnvelope requires it for kind deletion
    if (inbox.has(envelope.id)) return;
    const outcome = await inbox.purge(target, envelope.from);
    if (outcome === 'not-originator') {
      this.#log.warn({ id: envelope.id, deletes: target, from: envelope.from }, 'deletion from a country that did not send the message, refused');
      await this.#batcher.queue(envelope.from, { of: envelope.id, status: 'rejected', reason: 'DELETION_NOT_ORIGINATOR' });
      return;
    }
    const put = await inbox.put(envelope);
    if (put === 'stored') this.#opts.stats?.messageReceived?.();
    this.#log.info({ id: envelope.id, deletes: target, from: envelope.from, outcome, reason: envelope.reason }, "message deleted on its originator's order");
    if (put === 'stored') await this.#batcher.queue(envelope.from, { of: target, status: 'deleted', ...(envelope.reason === undefined ? {} : { reason: envelope.reason }) });
  }

  /** Receipts from a recipient (one envelope may carry many): each recorded in the status of the message it names. */
  async record(envelope: Envelope): Promise<void> {
    await Promise.all(
      receiptItems(envelope).map(async (receipt) => {
        const status = await this.#opts.status.markReceipt(receipt.of, envelope.from, receipt.status, envelope.created, receipt.reason);
        if (status === undefined) this.#log.warn({ id: envelope.id, of: receipt.of, from: envelope.from, state: receipt.status }, 'receipt for an unknown message ignored');
        else this.#log.info({ of: receipt.of, from: envelope.from, state: receipt.status }, 'receipt recorded');
      }),
    );
  }

  /** One receipt envelope carrying `items` to `to`, durably in the outbox when this resolves. */
  async #send(to: string, items: readonly ReceiptItem[]): Promise<void> {
    const [first, ...more] = items;
    if (first === undefined) return;
    const { id } = await this.#opts.queue({ kind: 'receipt', to: [to], priority: 'routine', handling: 'public', receipt: more.length === 0 ? first : { ...first, more } });
    this.#opts.wake();
    for (const r of items) this.#log.info({ id, of: r.of, to, state: r.status, reason: r.reason, batch: items.length }, 'receipt queued');
  }
}
