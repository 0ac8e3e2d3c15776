import { CodedError } from './errors.js';

/** The bytes are not UTF-8 JSON. */
export const ENVELOPE_MALFORMED_JSON = 'ENVELOPE_MALFORMED_JSON';
/** The JSON does not match the envelope schema; `problems` lists every reason. */
export const ENVELOPE_INVALID = 'ENVELOPE_INVALID';
/** The envelope is larger than the allowed number of bytes (checked before parsing). */
export const ENVELOPE_TOO_LARGE = 'ENVELOPE_TOO_LARGE';
/** `sig` or `sigCert` is missing, so there is nothing to verify. */
export const ENVELOPE_UNSIGNED = 'ENVELOPE_UNSIGNED';
/** `sig` is not a P-256 signature by `sigCert`'s key over the envelope's canonical (JCS) form. */
export const ENVELOPE_BAD_SIGNATURE = 'ENVELOPE_BAD_SIGNATURE';
/** `sigCert` is unreadable, not a P-256 end-entity certificate, outside its validity, or does not chain to a trusted root. */
export const ENVELOPE_BAD_CERTIFICATE = 'ENVELOPE_BAD_CERTIFICATE';
/** `sigCert` chains correctly but has been revoked. */
export const ENVELOPE_CERT_REVOKED = 'ENVELOPE_CERT_REVOKED';
/** `sigCert` names another country (SAN `urn:ncbnet:country:<CC>`) than the envelope's `from`. */
export const ENVELOPE_SENDER_MISMATCH = 'ENVELOPE_SENDER_MISMATCH';
/** Signing failed locally (a key that is not a P-256 signing key): the sender's fault, not the input's. */
export const ENVELOPE_SIGN_FAILED = 'ENVELOPE_SIGN_FAILED';
/** The verifier's own trust configuration (a trusted root or intermediate) is not a certificate. */
export const ENVELOPE_TRUST_CONFIG = 'ENVELOPE_TRUST_CONFIG';

/** Every code an {@link EnvelopeError} can carry. */
export type EnvelopeErrorCode =
  | typeof ENVELOPE_MALFORMED_JSON
  | typeof ENVELOPE_INVALID
  | typeof ENVELOPE_TOO_LARGE
  | typeof ENVELOPE_UNSIGNED
  | typeof ENVELOPE_BAD_SIGNATURE
  | typeof ENVELOPE_BAD_CERTIFICATE
  | typeof ENVELOPE_CERT_REVOKED
  | typeof ENVELOPE_SENDER_MISMATCH
  | typeof ENVELOPE_SIGN_FAILED
  | typeof ENVELOPE_TRUST_CONFIG;

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

/** The value is not JSON data and has no canonical form (RFC 8785 §3.1: I-JSON only). */
export const JCS_UNSUPPORTED_VALUE = 'JCS_UNSUPPORTED_VALUE';

/**
 * Why `canonicalize` (`jcs.ts`) refused a value: not JSON data (undefined, a function, a Map, a
 * non-finite number, a cycle) or a string with a lone surrogate, which `JSON.parse` can produce
 * from a `\ud800` escape but I-JSON forbids.
 */
export class JcsError extends CodedError {
  declare readonly code: typeof JCS_UNSUPPORTED_VALUE;
  /** `path: problem (got X)` for the first value refused. */
  readonly problem: string;

  constructor(problem: string) {
    super(JCS_UNSUPPORTED_VALUE, `not canonicalizable: ${problem}`);
    this.problem = problem;
  }
}
