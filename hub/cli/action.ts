import { CommanderError } from 'commander';
import { CodedError } from '../../protocol/errors.js';
import { EXIT, exitCodeFor } from '../../protocol/exit-codes.js';

/** Writes a line to stdout. */
export function print(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

/** Prints a value as indented JSON for scripts. */
export function printJson(value: unknown): void {
  print(JSON.stringify(value, null, 2));
}

/**
 * Reports an error once, on stderr, as `ncbnet: CODE: message`, and returns its exit code.
 * Unexpected errors keep their stack (they are bugs); coded ones do not (they are answers).
 */
export function reportError(err: unknown): number {
  if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
  if (err instanceof CodedError) {
    process.stderr.write(`ncbnet: ${err.code}: ${err.message}\n`);
  } else if (err instanceof Error && 'code' in err && typeof err.code === 'string' && 'path' in err) {
    process.stderr.write(`ncbnet: ${err.code}: ${err.message}\n`);
  } else {
    process.stderr.write(`ncbnet: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  }
  return exitCodeFor(err);
}

/** Wraps a command action so every failure is reported and turned into an exit code. */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      process.exitCode = reportError(err);
    }
  };
}
