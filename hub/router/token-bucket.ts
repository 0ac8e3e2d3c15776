/**
 * A token bucket (pure, clock passed in): `perSecond` tokens a second, at most `burst` saved up.
 * The router keeps one per sending country (`fair-queue.ts`) to hold back a country that submits
 * faster than its rate, without ever dropping what it sent.
 */

/** The rate a country may submit at: sustained `perSecond`, with `burst` at once after a quiet time. */
export interface RateLimit {
  perSecond: number;
  burst: number;
}

/** One country's allowance. Starts full, so a country that was quiet may send `burst` at once. */
export class TokenBucket {
  readonly #perMs: number;
  readonly #burst: number;
  #tokens: number;
  #atMs: number;

  constructor(limit: RateLimit, nowMs: number) {
    this.#perMs = limit.perSecond / 1000;
    this.#burst = limit.burst;
    this.#tokens = limit.burst;
    this.#atMs = nowMs;
  }

  /** Takes one token when there is one; false means "not now". */
  take(nowMs: number): boolean {
    this.#refill(nowMs);
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** Milliseconds until `n` tokens are there (0 when they are now). */
  waitMs(n: number, nowMs: number): number {
    this.#refill(nowMs);
    const missing = n - this.#tokens;
    return missing <= 0 ? 0 : Math.ceil(missing / this.#perMs);
  }

  /** True when the bucket is full again: nothing to remember about this country. */
  isFull(nowMs: number): boolean {
    this.#refill(nowMs);
    return this.#tokens >= this.#burst;
  }

  #refill(nowMs: number): void {
    if (nowMs > this.#atMs) {
      this.#tokens = Math.min(this.#burst, this.#tokens + (nowMs - this.#atMs) * this.#perMs);
      this.#atMs = nowMs;
    }
  }
}
