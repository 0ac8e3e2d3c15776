import { CodedError } from '../../protocol/errors.js';

/** Failures of the hub's metrics, probes and status collection (STYLE, Errors). */
export class MetricsError extends CodedError {}

/** A scrape-time source (connz, consumer info, `wg show`) did not answer within its time limit. */
export const METRICS_SOURCE_TIMEOUT = 'METRICS_SOURCE_TIMEOUT';
/** nats-server's `/connz` answered with something other than a connection list. */
export const METRICS_CONNZ_BAD_ANSWER = 'METRICS_CONNZ_BAD_ANSWER';
/** The `/metrics` listener could not bind its address. */
export const METRICS_LISTEN_FAILED = 'METRICS_LISTEN_FAILED';
/** `GET /v1/admin/status` was asked before the hub's collectors exist (services without a daemon). */
export const METRICS_STATUS_UNAVAILABLE = 'METRICS_STATUS_UNAVAILABLE';

/** `p`, or a `METRICS_SOURCE_TIMEOUT` rejection after `ms` (the timer is cleared as soon as `p` settles). */
export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new MetricsError(METRICS_SOURCE_TIMEOUT, `${what}: no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
