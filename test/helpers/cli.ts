import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Under tap, the child loads TypeScript with tap's own loader (the one this test process runs
 * with), so tap's coverage maps the CLI's lines onto the same sources as in-process tests; a
 * second loader (tsx) would give the same files other source maps and spoil the merged report.
 * Outside tap, tsx.
 */
export function typescriptLoader(): string[] {
  const tapLoader = process.execArgv.filter((a) => a.startsWith('--import=') && a.includes('@tapjs/typescript'));
  return tapLoader.length > 0 ? tapLoader : ['--import', 'tsx'];
}

/** What one CLI run gave. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs one of the CLIs from source (through tsx) as a separate process, as an operator would:
 * `bin` is `ncbnet` or `ncbnet-agent`. Never throws on a non-zero exit.
 */
export function runCli(bin: 'ncbnet' | 'ncbnet-agent', args: readonly string[]): Promise<CliResult> {
  return runCliIn(undefined, bin, args);
}

/** {@link runCli} inside a network namespace (`ip netns exec`), as an operator on that host would. */
export function runCliIn(netns: string | undefined, bin: 'ncbnet' | 'ncbnet-agent', args: readonly string[]): Promise<CliResult> {
  const entry = bin === 'ncbnet' ? 'hub/cli/main.ts' : 'node-agent/cli/main.ts';
  const argv = [process.execPath, ...typescriptLoader(), entry, ...args];
  const [cmd, ...rest] = netns ? ['ip', 'netns', 'exec', netns, ...argv] : argv;
  return new Promise((resolve, reject) => {
    execFile(cmd as string, rest, { cwd: ROOT, encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') {
        reject(new Error(`${bin} could not run: ${err.message}`, { cause: err }));
        return;
      }
      resolve({ code: typeof err?.code === 'number' ? err.code : 0, stdout, stderr });
    });
  });
}
