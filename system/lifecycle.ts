/**
 * Stopping a daemon (hub or agent) in order, each step bounded in time: SIGTERM must end the
 * process promptly even when a peer is gone (a drain towards an unreachable broker, a consumer
 * waiting for an answer that will not come). A step that fails or overruns is logged and the
 * next one runs.
 */

export interface StopLogger {
  error(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** One step: a name for the log and what to do. */
export type StopStep = readonly [what: string, run: () => Promise<unknown> | undefined];

export async function stopInOrder(steps: readonly StopStep[], log: StopLogger, stepTimeoutMs = 10_000): Promise<void> {
  for (const [what, run] of steps) {
    let timer: NodeJS.Timeout | undefined;
    const overrun = new Promise<'overrun'>((resolve) => {
      timer = setTimeout(() => resolve('overrun'), stepTimeoutMs);
    });
    try {
      const outcome = await Promise.race([Promise.resolve(run()).then(() => 'done' as const), overrun]);
      if (outcome === 'overrun') log.warn({ what, stepTimeoutMs }, 'stop step took too long; going on');
    } catch (err) {
      log.error({ err, what }, 'error while stopping');
    } finally {
      clearTimeout(timer);
    }
  }
}

/** The part of a NATS connection that closing needs. */
export interface Closable {
  isClosed(): boolean;
  drain(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Drains a connection (flushing what is pending), closing it outright if that takes longer than
 * `ms`. Resolves by `ms` (plus the close) whatever the connection does: nats.js's `drain()` never
 * settles when the connection is closed under it while reconnecting, so the drain is raced
 * against the timer rather than awaited.
 */
export async function closeWithin(nc: Closable | undefined, ms: number): Promise<void> {
  if (!nc || nc.isClosed()) return;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), ms);
  });
  try {
    const outcome = await Promise.race([nc.drain().then(() => 'drained' as const, () => 'failed' as const), late]);
    if (outcome !== 'drained' && !nc.isClosed()) await nc.close();
  } finally {
    clearTimeout(timer);
  }
}
