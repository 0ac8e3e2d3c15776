/**
 * The steady load a fault runs under: per country an "application" that POSTs messages to its
 * agent's local API at a fixed rate (stops by itself after a bounded count, or when told), and per
 * country an application that long-polls its inbox and acks what it gets. Everything goes into a
 * {@link Ledger}: accepted ids, refusals by code, items offered and acked.
 *
 * Recipients: message i from a country goes to the next other country in turn; every fourth goes
 * to two (exactly-once holds per recipient). Calls time out, so a killed agent or a cut link
 * costs a refusal (`unreachable`) or a retried poll, never a hung loop.
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { Ledger } from './ledger.js';
import { localApiCall } from '../../test/helpers/local-api-call.js';

/** Where the applications find their agents (stable across restarts). */
export interface LoadTarget {
  apiUrl(cc: string): string;
  token(cc: string): string;
}

export interface LoadOptions {
  /** Countries that send (each to the others of `countries`). */
  senders: readonly string[];
  /** Countries whose applications read and ack (and receive). */
  countries: readonly string[];
  /** Messages per second per sender. */
  ratePerSecond: number;
  /** Most messages each sender posts (it stops by itself then). */
  maxPerSender: number;
}

const CALL_TIMEOUT_MS = 10_000;
const POLL_WAIT_S = 1;

interface Answer {
  status: number;
  json: unknown;
}

function call(url: string, token: string, method: string, body?: unknown): Promise<Answer> {
  return localApiCall(url, token, method, body, { timeoutMs: CALL_TIMEOUT_MS });
}

/** The recipients of message `i` from `from`. */
export function recipientsOf(from: string, countries: readonly string[], i: number): string[] {
  const others = countries.filter((c) => c !== from);
  if (others.length === 0) throw new Error(`load: ${from} has nobody to send to`);
  const first = others[i % others.length] as string;
  if (i % 4 !== 3 || others.length < 2) return [first];
  return [first, others[(i + 1) % others.length] as string];
}

/** A running load; see the module comment. */
export class Load {
  readonly #target: LoadTarget;
  readonly #ledger: Ledger;
  readonly #opts: LoadOptions;
  #sending = true;
  #receiving = true;
  readonly #paused = new Set<string>();
  readonly #senders: Promise<void>[] = [];
  readonly #receivers: Promise<void>[] = [];
  /** Completed inbox polls per country (convergence waits for fresh ones). */
  readonly #polls = new Map<string, number>();
  /** Refusals per sender, for scenarios that look at one country. */
  readonly #refusalsBy = new Map<string, Map<string, number>>();

  constructor(target: LoadTarget, ledger: Ledger, opts: LoadOptions) {
    this.#target = target;
    this.#ledger = ledger;
    this.#opts = opts;
    for (const cc of opts.countries) this.#receivers.push(this.#receive(cc));
    for (const cc of opts.senders) this.#senders.push(this.#send(cc));
  }

  /** Stops the senders (after their call in flight); resolves when they have. */
  async stopSending(): Promise<void> {
    this.#sending = false;
    await Promise.all(this.#senders);
  }

  /** Whether every sender has posted its bounded count (or was stopped). */
  async sendersDone(): Promise<void> {
    await Promise.all(this.#senders);
  }

  /** Stops reading inboxes; resolves when the pollers have. */
  async stop(): Promise<void> {
    this.#sending = false;
    this.#receiving = false;
    await Promise.all([...this.#senders, ...this.#receivers]);
  }

  /** Holds `cc`'s reader: items stay unacked in its inbox until {@link resume}. */
  pause(cc: string): void {
    this.#paused.add(cc);
  }

  resume(cc: string): void {
    this.#paused.delete(cc);
  }

  /** Refusals seen by `cc`'s sender, by reason. */
  refusalsOf(cc: string): Record<string, number> {
    return Object.fromEntries(this.#refusalsBy.get(cc) ?? []);
  }

  /**
   * Waits until every accepted message reached every recipient, then for two more polls of every
   * reader (a duplicate arriving right after would be seen). Resolves whether it converged by
   * `deadlineMs`.
   */
  async converge(deadlineMs: number): Promise<boolean> {
    const deadline = Date.now() + deadlineMs;
    while (!this.#ledger.complete()) {
      if (Date.now() > deadline) return false;
      await delay(200);
    }
    const mark = new Map(this.#opts.countries.map((cc) => [cc, this.#polls.get(cc) ?? 0]));
    const fresh = (): boolean => this.#opts.countries.every((cc) => (this.#polls.get(cc) ?? 0) >= (mark.get(cc) ?? 0) + 2);
    while (!fresh() && Date.now() < deadline + 15_000) await delay(100);
    return true;
  }

  #refuse(from: string, reason: string): void {
    this.#ledger.refused(reason);
    const by = this.#refusalsBy.get(from) ?? new Map<string, number>();
    by.set(reason, (by.get(reason) ?? 0) + 1);
    this.#refusalsBy.set(from, by);
  }

  async #send(from: string): Promise<void> {
    const url = `${this.#target.apiUrl(from)}/v1/messages`;
    const period = 1000 / this.#opts.ratePerSecond;
    let next = performance.now();
    for (let i = 0; i < this.#opts.maxPerSender && this.#sending; i++) {
      const to = recipientsOf(from, this.#opts.countries, i);
      const sentAt = performance.now();
      try {
        const r = await call(url, this.#target.token(from), 'POST', { kind: 'message', to, subject: `fault load ${from} ${i}`, body: `message ${i} from ${from}` });
        const id = (r.json as { id?: unknown } | undefined)?.id;
        if (r.status >= 200 && r.status < 300 && typeof id === 'string') this.#ledger.accepted(id, from, to, sentAt);
        else {
          const code = (r.json as { code?: unknown } | undefined)?.code;
          this.#refuse(from, `${r.status} ${typeof code === 'string' ? code : 'no code'}`);
        }
      } catch {
        this.#refuse(from, 'unreachable');
      }
      next += period;
      const wait = next - performance.now();
      if (wait > 0) await delay(wait);
      else next = performance.now();
    }
  }

  async #receive(cc: string): Promise<void> {
    const base = this.#target.apiUrl(cc);
    while (this.#receiving) {
      if (this.#paused.has(cc)) {
        await delay(100);
        continue;
      }
      let ids: string[];
      try {
        const r = await call(`${base}/v1/inbox?wait=${POLL_WAIT_S}&limit=500`, this.#target.token(cc), 'GET');
        if (r.status !== 200) throw new Error(`inbox: ${r.status}`);
        ids = ((r.json as { items?: { id: string }[] }).items ?? []).map((item) => item.id);
      } catch {
        // The agent is down or cut off: try again shortly (bounded by `stop`).
        await delay(200);
        continue;
      }
      this.#ledger.offered(cc, ids, performance.now());
      let unacked = 0;
      for (const id of ids) {
        if (this.#paused.has(cc)) break;
        try {
          const r = await call(`${base}/v1/inbox/${encodeURIComponent(id)}/ack`, this.#target.token(cc), 'POST');
          if (r.status === 200) this.#ledger.acked(cc, id);
          else unacked++;
        } catch {
          // Not acked: the inbox offers it again, which the ledger allows.
          unacked++;
        }
      }
      this.#polls.set(cc, (this.#polls.get(cc) ?? 0) + 1);
      // Acks refused (a full disk): the same items come straight back; do not spin on them.
      if (unacked > 0) await delay(200);
    }
  }
}
