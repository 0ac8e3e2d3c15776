/**
 * The exactly-once ledger of a fault scenario: every message an agent's local API accepted (2xx
 * with its id), every refusal, and every inbox item the recipients' applications were offered and
 * acked. At the end it says, message by message, whether each one reached each of its recipients
 * exactly once.
 *
 * Definitions (per (message, recipient) pair):
 * - delivered: the recipient's application was offered the item at least once;
 * - lost: an accepted pair never offered before the convergence deadline;
 * - duplicated: the item was offered again AFTER the application's ack of it succeeded, or the same
 *   id appeared twice in one inbox answer. An inbox re-offering an item whose ack never succeeded
 *   (the agent was killed before or during the ack, or the ack call failed) is NOT a duplicate: the
 *   inbox keeps items until acked, by contract, and an application must expect it.
 * A message counts as delivered when every one of its recipients got it, lost when any did not.
 * An item can reach its recipient before the sender's application has read its 202 (a delivery
 * takes milliseconds), so offers are recorded for any id, and matched when the acceptance comes;
 * ids never accepted in this ledger (left by an earlier scenario, or accepted by an agent killed
 * before it could answer) are counted apart as foreign.
 */

/** One accepted message. */
interface Sent {
  from: string;
  to: readonly string[];
  /** `performance.now()` just before the POST that was accepted. */
  sentAt: number;
}

/** One (message, recipient) pair as the recipient's application saw it. */
interface Seen {
  firstAt: number;
  offers: number;
  acked: boolean;
  duplicates: number;
}

/** What the ledger concludes; see the module comment. */
export interface LedgerSummary {
  /** Messages accepted (2xx). */
  messages: number;
  /** (message, recipient) pairs expected. */
  pairs: number;
  /** Messages delivered to every recipient. */
  delivered: number;
  /** Messages some recipient never got. */
  lost: number;
  /** Pairs offered again after their ack succeeded (or twice in one answer). */
  duplicated: number;
  /** Pairs never offered, first few as `id→CC`. */
  lostPairs: string[];
  /** Offers of unacked items after a restart or failed ack (allowed). */
  reoffers: number;
  /** Refusals by the local API, by status and code (`507 LOCAL_STORAGE_FULL`, `unreachable`). */
  refusals: Record<string, number>;
  /** Items of earlier scenarios seen meanwhile. */
  foreign: number;
}

/** Percentiles of a latency sample, in ms. */
export interface Latency {
  n: number;
  p50: number;
  p99: number;
}

const key = (id: string, cc: string): string => `${id}→${cc}`;

/** See the module comment. One ledger per scenario. */
export class Ledger {
  readonly #sent = new Map<string, Sent>();
  readonly #seen = new Map<string, Seen>();
  readonly #refusals = new Map<string, number>();

  /** The local API of `from` accepted `id` for `to`; `sentAt` is when the POST started. */
  accepted(id: string, from: string, to: readonly string[], sentAt: number): void {
    this.#sent.set(id, { from, to, sentAt });
  }

  /** The local API refused (`reason`: `<status> <code>`, or `unreachable`). */
  refused(reason: string): void {
    this.#refusals.set(reason, (this.#refusals.get(reason) ?? 0) + 1);
  }

  /** Messages accepted from `from` so far. */
  acceptedFrom(from: string): number {
    let n = 0;
    for (const s of this.#sent.values()) if (s.from === from) n++;
    return n;
  }

  /** The country that sent `id` (undefined for an id this ledger never saw accepted). */
  senderOf(id: string): string | undefined {
    return this.#sent.get(id)?.from;
  }

  /** Whether `id` is a message of this scenario. */
  knows(id: string): boolean {
    return this.#sent.has(id);
  }

  /**
   * One inbox answer of `cc`: every id it listed, in order (the reader acks them all afterwards,
   * foreign ones too, so the next scenario starts with an empty inbox).
   */
  offered(cc: string, ids: readonly string[], at: number): void {
    const inAnswer = new Set<string>();
    for (const id of ids) {
      const k = key(id, cc);
      const seen = this.#seen.get(k);
      if (seen === undefined) {
        this.#seen.set(k, { firstAt: at, offers: 1, acked: false, duplicates: 0 });
      } else {
        seen.offers++;
        if (seen.acked || inAnswer.has(id)) seen.duplicates++;
      }
      inAnswer.add(id);
    }
  }

  /** `cc`'s application acked `id` and the agent answered 200. */
  acked(cc: string, id: string): void {
    const seen = this.#seen.get(key(id, cc));
    if (seen !== undefined) seen.acked = true;
  }

  /** Whether every accepted pair has been offered. */
  complete(): boolean {
    for (const [id, s] of this.#sent) for (const cc of s.to) if (!this.#seen.has(key(id, cc))) return false;
    return true;
  }

  /** Pairs still missing (for progress lines). */
  missing(): number {
    let n = 0;
    for (const [id, s] of this.#sent) for (const cc of s.to) if (!this.#seen.has(key(id, cc))) n++;
    return n;
  }

  /** Delivery latency (POST start to first offer) of the pairs sent from `from` in [since, until) of `sentAt`. */
  latency(filter: (from: string, to: string, sentAt: number) => boolean): Latency {
    const sample: number[] = [];
    for (const [id, s] of this.#sent) {
      for (const cc of s.to) {
        const seen = this.#seen.get(key(id, cc));
        if (seen !== undefined && filter(s.from, cc, s.sentAt)) sample.push(seen.firstAt - s.sentAt);
      }
    }
    sample.sort((a, b) => a - b);
    const at = (q: number): number => sample[Math.min(sample.length - 1, Math.floor(q * sample.length))] ?? NaN;
    return { n: sample.length, p50: at(0.5), p99: at(0.99) };
  }

  summary(): LedgerSummary {
    let pairs = 0;
    let delivered = 0;
    let lost = 0;
    let duplicated = 0;
    let reoffers = 0;
    const lostPairs: string[] = [];
    for (const [id, s] of this.#sent) {
      let complete = true;
      for (const cc of s.to) {
        pairs++;
        const seen = this.#seen.get(key(id, cc));
        if (seen === undefined) {
          complete = false;
          if (lostPairs.length < 5) lostPairs.push(key(id, cc));
          continue;
        }
        duplicated += seen.duplicates;
        reoffers += seen.offers - 1 - seen.duplicates;
      }
      if (complete) delivered++;
      else lost++;
    }
    const foreign = new Set([...this.#seen.keys()].map((k) => k.split('→')[0] as string).filter((id) => !this.#sent.has(id))).size;
    return { messages: this.#sent.size, pairs, delivered, lost, duplicated, lostPairs, reoffers, refusals: Object.fromEntries(this.#refusals), foreign };
  }
}
