/**
 * Throttles guessing at `POST /v1/enroll`: a client address that has sent `maxFailures` wrong
 * tokens (unknown, expired, used, malformed, for another CA) within `windowMs` is refused with
 * `ENROLL_RATE_LIMITED` (429, `Retry-After`) until the oldest of those failures leaves the window.
 * A 256-bit secret already makes guessing hopeless; this makes it slow and visible (a warn line per
 * address when it starts being throttled). Successful enrollments never count, so an NCB retrying
 * with a good token is never held back by its own earlier typo for long.
 *
 * In memory: a hub restart forgets; at most `maxAddresses` addresses are tracked (the oldest
 * entries go first), so a flood of addresses cannot grow it without bound.
 */
export interface FailureLimiterOptions {
  maxFailures?: number;
  windowMs?: number;
  maxAddresses?: number;
  now?: () => number;
}

export class FailureLimiter {
  readonly #maxFailures: number;
  readonly #windowMs: number;
  readonly #maxAddresses: number;
  readonly #now: () => number;
  /** Failure times per address, oldest first; Map order is insertion order (oldest address first). */
  readonly #failures = new Map<string, number[]>();

  constructor(opts: FailureLimiterOptions = {}) {
    this.#maxFailures = opts.maxFailures ?? 10;
    this.#windowMs = opts.windowMs ?? 60_000;
    this.#maxAddresses = opts.maxAddresses ?? 10_000;
    this.#now = opts.now ?? Date.now;
  }

  /** Milliseconds `address` must wait before trying again, or 0 when it may try now. */
  retryAfterMs(address: string): number {
    const times = this.#recent(address);
    if (times.length < this.#maxFailures) return 0;
    return Math.max(1, (times[times.length - this.#maxFailures] ?? 0) + this.#windowMs - this.#now());
  }

  /** Records one failed attempt from `address`; true when this failure is the one that starts throttling. */
  fail(address: string): boolean {
    const times = this.#recent(address);
    times.push(this.#now());
    this.#failures.delete(address);
    this.#failures.set(address, times);
    while (this.#failures.size > this.#maxAddresses) {
      const oldest = this.#failures.keys().next().value;
      if (oldest === undefined) break;
      this.#failures.delete(oldest);
    }
    return times.length === this.#maxFailures;
  }

  #recent(address: string): number[] {
    const since = this.#now() - this.#windowMs;
    const times = (this.#failures.get(address) ?? []).filter((t) => t > since);
    if (times.length === 0) this.#failures.delete(address);
    return times;
  }
}
