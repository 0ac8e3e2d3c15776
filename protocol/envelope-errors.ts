import { CodedError } from './errors.js';

/** The bytes are not UTF-8 JSON. */
export const ENVELOPE_MALFORMED_JSON = 'ENVELOPE_MALFORMED_JSON';
/** The JSON does not match the envelope schema; `problems` lists every reason. */
export const ENVELOPE_INVALID = 'ENVELOPE_INVALID';
/** The envelope is larger than the allowed number of bytes (checked before parsing). */
export const ENVELOPE_TOO_LARGE = 'ENVELOPE_TOO_LARGE';

/** Every code an {@link EnvelopeError} can carry. */
export type EnvelopeErrorCode = typeof ENVELOPE_MALFORMED_JSON | typeof ENVELOPE_INVALID | typeof ENVELOPE_TOO_LARGE;

/**
 * Why an envelope was refused. The router sends `code` and `problems` back to the sender in its
 * rejection event, so both are meant to be read by the sending NCB's operators.
 */
export class EnvelopeError extends CodedError {
  declare readonly code: EnvelopeErrorCode;
  /** One line per problem, `path: problem (got X)`; a single line for the non-schema codes. */
  readonly problems: readonly string[];
  /** The envelope's `id` when the input had a well-formed one, so the sender can correlate. */
  readonly envelopeId: string | undefined;

  constructor(
    code: EnvelopeErrorCode,
    problems: readonly string[],
    opts: { envelopeId?: string | undefined; cause?: unknown } = {},
  ) {
    super(code, `envelope is invalid:\n  ${problems.join('\n  ')}`, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.problems = problems;
    this.envelopeId = opts.envelopeId;
  }
}
