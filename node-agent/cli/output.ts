import { CommanderError } from 'commander';
import { CodedError } from '../../protocol/errors.js';
import { EXIT, exitCodeFor } from '../../protocol/exit-codes.js';

/** Writes a line to stdout. */
export function agentPrint(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

/** Prints a value as indented JSON for scripts. */
export function agentPrintJson(value: unknown): void {
  agentPrint(JSON.stringify(value, null, 2));
}

/** One line on stderr, `ncbnet-agent: CODE: message`, and the exit code for it. */
export function agentReportError(err: unknown): number {
  if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
  if (err instanceof CodedError) process.stderr.write(`ncbnet-agent: ${err.code}: ${err.message}\n`);
  else process.stderr.write(`ncbnet-agent: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return exitCodeFor(err);
}

/** Wraps a command action so every failure is reported once and becomes an exit code. */
export function agentAction<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      process.exitCode = agentReportError(err);
    }
  };
}
