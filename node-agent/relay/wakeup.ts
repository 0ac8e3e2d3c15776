/**
 * A level-less wake-up signal for the relay's loops and long polls: `wait()` resolves at the next
 * `notify()`, after `timeoutMs`, or when `signal` aborts, whichever comes first. No state is kept
 * between notifications, so a waiter must re-check its condition after every wake-up.
 */
export class Wakeup {
  #waiters = new Set<() => void>();

  /** Resolves `true` when notified, `false` on timeout or abort. Never rejects. */
  wait(timeoutMs?: number, signal?: AbortSignal): Promise<boolean> {
    if (signal?.aborted === true) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const finish = (notified: boolean): void => {
        this.#waiters.delete(onNotify);
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        resolve(notified);
      };
      const onNotify = (): void => finish(true);
      const onAbort = (): void => finish(false);
      this.#waiters.add(onNotify);
      if (timeoutMs !== undefined && Number.isFinite(timeoutMs)) timer = setTimeout(() => finish(false), Math.max(0, timeoutMs));
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Wakes every current waiter. */
  notify(): void {
    for (const wake of [...this.#waiters]) wake();
  }
}

/** Retry delays: exponential from `initialMs` to `maxMs`. */
export interface RetryBackoff {
  initialMs: number;
  maxMs: number;
}

/**
 * The delay before retry number `attempt` (1-based): "equal jitter" (a uniform pick in
 * [cap/2, cap]) so 195 agents coming back after a hub outage do not retry in lock-step.
 */
export function backoffDelayMs(attempt: number, backoff: RetryBackoff, random: () => number = Math.random): number {
  const cap = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.min(Math.max(attempt - 1, 0), 30));
  return Math.round(cap / 2 + (random() * cap) / 2);
}
