/**
 * Failures of the agent's relay (outbox, inbox, status store, NATS loops). Every one carries a
 * stable `RELAY_*` code; the local API puts it in its HTTP error bodies and tests assert it.
 * Bad envelopes keep their own `ENVELOPE_*` codes ({@link EnvelopeError}), which `submit` rethrows.
 */
import { CodedError } from '../../protocol/errors.js';

/** `ack` or `status` named an id this agent does not hold. */
export const RELAY_UNKNOWN_MESSAGE = 'RELAY_UNKNOWN_MESSAGE';
/** A draft did not match {@link MessageDraftSchema}; `problems` lists every reason. */
export const RELAY_BAD_DRAFT = 'RELAY_BAD_DRAFT';
/** Restricted/confidential handling needs end-to-end encryption, and this relay was given no way to encrypt. */
export const RELAY_ENCRYPTION_UNAVAILABLE = 'RELAY_ENCRYPTION_UNAVAILABLE';
/** A recipient of a restricted/confidential message has no valid certificate in the member directory. */
export const RELAY_RECIPIENT_KEY_UNKNOWN = 'RELAY_RECIPIENT_KEY_UNKNOWN';
/** No member directory at all (never fetched, hub unreachable): nothing can be encrypted yet. */
export const RELAY_DIRECTORY_UNAVAILABLE = 'RELAY_DIRECTORY_UNAVAILABLE';
/**
 * A store on disk cannot be read at all (permissions, EIO). Damaged records are not this: they are
 * skipped, copied aside and reported (see `RecordLog.load`).
 */
export const RELAY_STORE_CORRUPT = 'RELAY_STORE_CORRUPT';
/** Writing to a store failed (EIO, permissions); nothing was acknowledged to anyone. */
export const RELAY_STORE_FAILED = 'RELAY_STORE_FAILED';
/**
 * The agent's state disk is full (ENOSPC, or EDQUOT for a quota): the write was refused and left
 * no trace, records already stored are intact, and the next write works once space returns. The
 * local API answers HTTP 507 with this code.
 */
export const RELAY_STORAGE_FULL = 'RELAY_STORAGE_FULL';
/** The relay was stopped; it takes no more work. */
export const RELAY_STOPPED = 'RELAY_STOPPED';
/** `attach` was given a connection that is already closed (it will never come back). */
export const RELAY_CONNECTION_CLOSED = 'RELAY_CONNECTION_CLOSED';
/** A bad option was given to the relay (e.g. a country code that is not one). */
export const RELAY_BAD_OPTIONS = 'RELAY_BAD_OPTIONS';

/** Every code a {@link RelayError} can carry. */
export type RelayErrorCode =
  | typeof RELAY_UNKNOWN_MESSAGE
  | typeof RELAY_BAD_DRAFT
  | typeof RELAY_ENCRYPTION_UNAVAILABLE
  | typeof RELAY_RECIPIENT_KEY_UNKNOWN
  | typeof RELAY_DIRECTORY_UNAVAILABLE
  | typeof RELAY_STORE_CORRUPT
  | typeof RELAY_STORE_FAILED
  | typeof RELAY_STORAGE_FULL
  | typeof RELAY_STOPPED
  | typeof RELAY_CONNECTION_CLOSED
  | typeof RELAY_BAD_OPTIONS;

/** Base of every relay failure. `problems` is set for input errors (one `path: problem (got X)` per line). */
export class RelayError extends CodedError {
  declare readonly code: RelayErrorCode;
  readonly problems: readonly string[];

  constructor(code: RelayErrorCode, message: string, opts: { cause?: unknown; problems?: readonly string[] } = {}) {
    super(code, message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.problems = opts.problems ?? [];
  }
}

/** errno codes that mean "no space left for this write". */
const FULL_ERRNOS: ReadonlySet<string> = new Set(['ENOSPC', 'EDQUOT']);

/** Whether `err` (or an error in its `cause` chain) says the disk or a quota is full. */
export function isStorageFull(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== undefined && (FULL_ERRNOS.has(code) || code === RELAY_STORAGE_FULL)) return true;
  }
  return false;
}

/**
 * The coded error for a failed write to a store at `path`: `RELAY_STORAGE_FULL` for a full disk,
 * else `RELAY_STORE_FAILED`; an error that already is a {@link RelayError} is returned as is.
 */
export function storeWriteError(path: string, err: unknown): RelayError {
  if (err instanceof RelayError) return err;
  const why = err instanceof Error ? err.message : String(err);
  if (isStorageFull(err)) return new RelayError(RELAY_STORAGE_FULL, `the agent's state disk is full: ${path} was not written (${why}); free space on it, nothing already stored was lost`, { cause: err });
  return new RelayError(RELAY_STORE_FAILED, `${path}: write failed: ${why}`, { cause: err });
}
