import { CodedError } from '../../protocol/errors.js';

/**
 * Failures of the broker: rendering `nats-server.conf` and supervising the `nats-server` process.
 * `code` is one of the `BROKER_*` constants below; `output` carries nats-server's recent
 * stderr/stdout (bounded) when the process was involved, so an operator sees why it refused.
 */
export class BrokerError extends CodedError {
  /** nats-server's recent output at the time of the failure, when a process was involved. */
  readonly output: string | undefined;

  constructor(code: BrokerErrorCode, message: string, options: { cause?: unknown; output?: string } = {}) {
    super(code, message, options.cause === undefined ? undefined : { cause: options.cause });
    this.output = options.output;
  }
}

/** The binary could not be found or spawned (ENOENT, EACCES). */
export const BROKER_SPAWN_FAILED = 'BROKER_SPAWN_FAILED';
/** nats-server did not write its ports file (client + monitoring) before the deadline. */
export const BROKER_START_TIMEOUT = 'BROKER_START_TIMEOUT';
/** nats-server exited while starting or while a call waited on it. */
export const BROKER_EXITED = 'BROKER_EXITED';
/** `nats-server -t` or the SIGHUP reload refused the new config; the old one stays in force. */
export const BROKER_RELOAD_FAILED = 'BROKER_RELOAD_FAILED';
/** The server neither applied nor refused a reload before the deadline. */
export const BROKER_RELOAD_TIMEOUT = 'BROKER_RELOAD_TIMEOUT';
/** The renderer's input or the rendered file is invalid; `problems` lists every problem. */
export const BROKER_BAD_CONFIG = 'BROKER_BAD_CONFIG';
/** A call needs a running server and there is none (not started, or between restarts). */
export const BROKER_NOT_RUNNING = 'BROKER_NOT_RUNNING';
/** The supervisor was stopped; it does not start again. */
export const BROKER_STOPPED = 'BROKER_STOPPED';
/** A process survived SIGKILL for the stop timeout (should not happen outside a hung kernel). */
export const BROKER_STOP_TIMEOUT = 'BROKER_STOP_TIMEOUT';

export type BrokerErrorCode =
  | typeof BROKER_SPAWN_FAILED
  | typeof BROKER_START_TIMEOUT
  | typeof BROKER_EXITED
  | typeof BROKER_RELOAD_FAILED
  | typeof BROKER_RELOAD_TIMEOUT
  | typeof BROKER_BAD_CONFIG
  | typeof BROKER_NOT_RUNNING
  | typeof BROKER_STOPPED
  | typeof BROKER_STOP_TIMEOUT;

/** The broker config input is invalid: every problem as `path: problem (got X)`. */
export class BrokerConfigError extends BrokerError {
  readonly problems: readonly string[];

  constructor(problems: readonly string[], options: { cause?: unknown; output?: string } = {}) {
    super(BROKER_BAD_CONFIG, `broker config is invalid:\n  ${problems.join('\n  ')}`, options);
    this.problems = problems;
  }
}

/** nats-server could not be spawned, did not come up, or exited while starting. */
export class BrokerStartError extends BrokerError {}
/** A reload was refused (by `nats-server -t` or by the server) or not confirmed in time. */
export class BrokerReloadError extends BrokerError {}
/** A call that needs a running, non-stopped supervisor was made at the wrong time. */
export class BrokerStateError extends BrokerError {}
