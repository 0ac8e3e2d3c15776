/**
 * Receipts in batches: the receipts this agent owes one country leave in as few signed envelopes
 * as the traffic allows (protocol/envelope.ts, `receipt.more`).
 *
 * Each received message costs its sender two receipts (`delivered`, then `read`), and each receipt
 * envelope was a signature, an outbox write, a hub verification, an audit record and a routing of
 * its own — two thirds of the envelopes on the relay path. Group commit, as in the journals: a
 * receipt queued while nothing is in flight is sent on the next turn of the event loop (with every
 * other receipt queued in the same turn, e.g. the `delivered` receipts of a pull whose inbox writes
 * shared one fsync); receipts queued while a batch is being signed and written wait for it to end
 * and then leave together. An idle agent therefore adds no delay; a busy one sends one envelope
 * per country per batch instead of one per receipt.
 *
 * A receipt's promise resolves only once the envelope carrying it is in the outbox (durable), and
 * rejects with that envelope's error: the callers' guarantees ("stored, receipt queued, then
 * acked") are unchanged.
 */
import { MAX_RECEIPT_ITEMS, type ReceiptItem } from '../../protocol/envelope.js';

/** Options of {@link ReceiptBatcher}. */
export interface ReceiptBatcherOptions {
  /**
   * Makes, signs and durably queues one receipt envelope to `to` carrying `items` (1 to
   * `maxItems`, in the order they were queued); resolves once it is in the outbox.
   */
  send: (to: string, items: readonly ReceiptItem[]) => Promise<void>;
  /** Most receipts per envelope (default and upper bound {@link MAX_RECEIPT_ITEMS}). */
  maxItems?: number;
}

interface Waiting {
  item: ReceiptItem;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** See the module comment. */
export class ReceiptBatcher {
  readonly #send: ReceiptBatcherOptions['send'];
  readonly #maxItems: number;
  /** Receipts not yet handed to `send`, per country they go to. */
  #pending = new Map<string, Waiting[]>();
  #isScheduled = false;
  #isFlushing = false;
  #envelopes = 0;
  #receipts = 0;

  constructor(opts: ReceiptBatcherOptions) {
    this.#send = opts.send;
    this.#maxItems = Math.max(1, Math.min(opts.maxItems ?? MAX_RECEIPT_ITEMS, MAX_RECEIPT_ITEMS));
  }

  /** Envelopes sent and receipts they carried since construction (tests, diagnostics). */
  get stats(): { envelopes: number; receipts: number } {
    return { envelopes: this.#envelopes, receipts: this.#receipts };
  }

  /** Queues one receipt to `to`; resolves when the envelope carrying it is in the outbox. */
  queue(to: string, item: ReceiptItem): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const list = this.#pending.get(to);
      const waiting = { item, resolve, reject };
      if (list === undefined) this.#pending.set(to, [waiting]);
      else list.push(waiting);
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#isScheduled || this.#isFlushing) return;
    this.#isScheduled = true;
    setImmediate(() => {
      this.#isScheduled = false;
      void this.#flush();
    });
  }

  async #flush(): Promise<void> {
    this.#isFlushing = true;
    const pending = this.#pending;
    this.#pending = new Map();
    const sends: Promise<void>[] = [];
    for (const [to, waiting] of pending) {
      for (let start = 0; start < waiting.length; start += this.#maxItems) sends.push(this.#sendChunk(to, waiting.slice(start, start + this.#maxItems)));
    }
    await Promise.all(sends);
    this.#isFlushing = false;
    if (this.#pending.size > 0) this.#schedule();
  }

  /** Never rejects: the outcome goes to each receipt's own promise. */
  async #sendChunk(to: string, chunk: Waiting[]): Promise<void> {
    try {
      await this.#send(
        to,
        chunk.map((w) => w.item),
      );
      this.#envelopes++;
      this.#receipts += chunk.length;
      for (const w of chunk) w.resolve();
    } catch (err) {
      for (const w of chunk) w.reject(err);
    }
  }
}
