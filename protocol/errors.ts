/**
 * The root of every coded error in ncbnet. Each package extends it in its own `errors.ts`
 * (`PkiError`, later `HubError`, `AgentError`), with one subclass per failure.
 *
 * `code` is stable (`<AREA>_<WHAT>`): tests, HTTP bodies and CLI output carry it; messages may change.
 */
export class CodedError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Input did not match its schema; `problems` lists every one as `path: problem (got X)`. */
export class ValidationError extends CodedError {
  readonly problems: readonly string[];

  constructor(code: string, what: string, problems: readonly string[]) {
    super(code, `${what} is invalid:\n  ${problems.join('\n  ')}`);
    this.problems = problems;
  }
}

/** True when `err` is a {@link CodedError} with the given code (or any code when omitted). */
export function hasCode(err: unknown, code?: string): err is CodedError {
  return err instanceof CodedError && (code === undefined || err.code === code);
}
