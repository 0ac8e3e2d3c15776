/** Options and events of {@link ./supervisor.ts BrokerSupervisor}. */
import type { Logger } from 'pino';
import type { BrokerError } from './errors.js';

/** Restart back-off: the n-th consecutive restart waits about `initialMs * 2^(n-1)`, at most `maxMs`. */
export interface BrokerBackoff {
  initialMs: number;
  maxMs: number;
}

/** Options of `BrokerSupervisor`. */
export interface BrokerSupervisorOptions {
  /** nats-server executable (default: `nats-server` from PATH, else /usr/sbin). */
  binary?: string;
  /** Working dir: `nats-server.conf`, `nats-server.pid` and the ports file go here (`ports_file_dir` must name it). */
  dir: string;
  /** Renders the whole config; called by start() and by every reload(). */
  render: () => string;
  logger: Logger;
  /** Default `{ initialMs: 200, maxMs: 30_000 }`. A server that ran `maxMs` before dying starts over at `initialMs`. */
  backoff?: BrokerBackoff;
  /** Clock for uptime (ms); default Date.now. */
  now?: () => number;
  /** Jitter source in [0, 1); default Math.random. */
  random?: () => number;
  /** Host clients dial in `BrokerSupervisor.url`; default: from the ports file, loopback preferred. */
  clientHost?: string;
  /** How long to wait for the ports file (default 10 s). */
  startTimeoutMs?: number;
  /** How long to wait after SIGTERM, and after SIGKILL (default 5 s each). */
  stopTimeoutMs?: number;
  /** How long to wait for a reload to be applied (default 10 s). */
  reloadTimeoutMs?: number;
  /** Most output characters kept for error messages (default 64 KiB). */
  maxOutputChars?: number;
}

/** An unexpected exit of the server (not one stop() asked for). */
export interface BrokerExitInfo {
  pid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  uptimeMs: number;
}

/** A restart that brought the server back. */
export interface BrokerRestartInfo {
  /** Consecutive attempt number since the last stable run (1, 2, ...). */
  attempt: number;
  delayMs: number;
  pid: number;
  url: string;
}

/** Events of `BrokerSupervisor`. */
export interface BrokerSupervisorEvents {
  exit: [BrokerExitInfo];
  restart: [BrokerRestartInfo];
  'restart-failed': [{ attempt: number; err: BrokerError }];
}
