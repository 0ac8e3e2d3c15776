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
/** A store on disk (inbox or status journal) is damaged beyond its torn last line: refused, not guessed. */
export const RELAY_STORE_CORRUPT = 'RELAY_STORE_CORRUPT';
/** Writing to a store failed (disk full, EIO); nothing was acknowledged to anyone. */
export const RELAY_STORE_FAILED = 'RELAY_STORE_FAILED';
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
