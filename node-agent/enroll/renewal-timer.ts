/**
 * When the agent renews its certificate: at `renewAtFraction` of its lifetime (with jitter, see
 * {@link renewalDelayMs}), and after a failure again with back-off (1 min doubling to 1 h, with
 * jitter) until one succeeds; each success schedules the next renewal from the new certificate.
 */
import type { Logger } from 'pino';
import { renewalDelayMs } from './renew.js';

/** Retry delay after a failed renewal: 1 min doubling to 1 h, with jitter. */
function renewRetryMs(attempt: number): number {
  return Math.min(3_600_000, 60_000 * 2 ** attempt) * (0.75 + Math.random() * 0.5);
}

/** Options of {@link RenewalTimer}. */
export interface RenewalTimerOptions {
  /** The certificate in force (PEM); read again at each scheduling. */
  certificate: () => string;
  /** Fraction of the lifetime at which to renew (agent.json `renewAtFraction`). */
  fraction: number;
  /** Renews now; rejects on failure (then retried with back-off). */
  renew: () => Promise<unknown>;
  log: Logger;
}

/** See the module comment. */
export class RenewalTimer {
  readonly #o: RenewalTimerOptions;
  #timer: NodeJS.Timeout | undefined;
  #isStopped = false;

  constructor(opts: RenewalTimerOptions) {
    this.#o = opts;
  }

  start(): void {
    this.#schedule(0);
  }

  stop(): void {
    this.#isStopped = true;
    clearTimeout(this.#timer);
  }

  #schedule(attempt: number): void {
    if (this.#isStopped) return;
    const { log } = this.#o;
    const delayMs = attempt === 0 ? renewalDelayMs(this.#o.certificate(), this.#o.fraction, Date.now()) : renewRetryMs(attempt);
    log.info({ at: new Date(Date.now() + delayMs).toISOString(), attempt }, 'certificate renewal scheduled');
    // setTimeout holds at most ~24.8 days; longer waits are re-armed in steps.
    const step = Math.min(delayMs, 2 ** 31 - 1);
    this.#timer = setTimeout(() => {
      if (step < delayMs) {
        this.#schedule(attempt);
        return;
      }
      void this.#o.renew().then(
        () => this.#schedule(0),
        (err: unknown) => {
          log.warn({ err, attempt: attempt + 1 }, 'certificate renewal failed; will retry');
          this.#schedule(attempt + 1);
        },
      );
    }, step);
    this.#timer.unref();
  }
}
