// The one way ncbnet runs external programs (wg, wireguard-go, ip, nft). Secrets go on stdin,
// which is never recorded; errors carry argv, exit status and stderr only.
import { spawn } from 'node:child_process';
import { ExecError, SYS_BAD_NETNS, SYS_EXEC_FAILED, SYS_EXEC_TIMEOUT, SystemError } from './errors.js';

const DEFAULT_TIMEOUT_MS = 10_000;
const MAX_STDOUT_BYTES = 8 * 1024 * 1024;
const MAX_STDERR_SHOWN = 2_000;
// A netns name becomes a file under /run/netns: a plain name, as iproute2 itself requires.
const NETNS_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;

/** Options for {@link run} and {@link tryRun}. */
export interface ExecOptions {
  /** Written to the program's stdin, then closed. Never logged nor put in errors (may hold keys). */
  input?: string | undefined;
  /** Kill the program (SIGKILL) after this long; default 10 s. */
  timeoutMs?: number | undefined;
  /** Run inside this network namespace, as `ip netns exec NETNS cmd args…`. */
  netns?: string | undefined;
  /** Extra environment variables, added to this process's environment. */
  env?: Readonly<Record<string, string>> | undefined;
  /** Code of the {@link ExecError} thrown by {@link run} on a non-zero exit (default `SYS_EXEC_FAILED`). */
  errorCode?: string | undefined;
}

/** What a finished program printed, and its exit status. */
export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Throws `SYS_BAD_NETNS` unless `name` is a valid network namespace name. */
export function assertNetnsName(name: string): void {
  if (!NETNS_NAME.test(name)) {
    throw new SystemError(SYS_BAD_NETNS, `network namespace name must match ${String(NETNS_NAME)} (got ${JSON.stringify(name)})`);
  }
}

/** The argv that runs `cmd args` in `netns` (or as is without one): `ip netns exec NETNS cmd args…`. */
export function netnsArgv(cmd: string, args: readonly string[], netns?: string): [string, ...string[]] {
  if (netns === undefined) return [cmd, ...args];
  assertNetnsName(netns);
  return ['ip', 'netns', 'exec', netns, cmd, ...args];
}

function shownStderr(stderr: string): string {
  const s = stderr.trim();
  return s.length > MAX_STDERR_SHOWN ? `${s.slice(0, MAX_STDERR_SHOWN)}…` : s;
}

/**
 * Runs a program to completion and resolves with its exit status and output, whatever the status.
 * Rejects with an {@link ExecError} only when it could not start (`SYS_EXEC_FAILED`) or ran past
 * its deadline (`SYS_EXEC_TIMEOUT`).
 */
export function tryRun(cmd: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const [file, ...argv] = netnsArgv(cmd, args, opts.netns);
  const command = [file, ...argv].join(' ');
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, {
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      env: opts.env ? { ...process.env, ...opts.env } : process.env,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outBytes = 0;
    let timedOut = false;
    child.stdout?.on('data', (b: Buffer) => {
      // Keep memory bounded if a program misbehaves; nothing ncbnet reads comes near this.
      if (outBytes < MAX_STDOUT_BYTES) out.push(b);
      outBytes += b.length;
    });
    child.stderr?.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (cause) => {
      clearTimeout(timer);
      reject(new ExecError(SYS_EXEC_FAILED, `${command}: could not run: ${cause.message}`, { command, exitCode: null, signal: null, stderr: '', cause }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stderr = Buffer.concat(err).toString('utf8');
      if (timedOut) {
        reject(new ExecError(SYS_EXEC_TIMEOUT, `${command}: killed after ${timeoutMs} ms`, { command, exitCode: code, signal, stderr: shownStderr(stderr) }));
        return;
      }
      // A signal death gets a shell-style status so callers see a failure, never 0.
      resolve({ exitCode: code ?? 128, stdout: Buffer.concat(out).toString('utf8'), stderr });
    });
    if (child.stdin) {
      // A program that exits without reading its input makes the write fail with EPIPE; its exit
      // status already reports what went wrong, so this error carries nothing more.
      child.stdin.on('error', () => undefined);
      child.stdin.end(opts.input);
    }
  });
}

/**
 * Runs a program and resolves with its output; a non-zero exit rejects with an {@link ExecError}
 * (code `opts.errorCode`, default `SYS_EXEC_FAILED`) holding argv, exit status and stderr —
 * never stdin or stdout, which may hold private keys.
 */
export async function run(cmd: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const result = await tryRun(cmd, args, opts);
  if (result.exitCode !== 0) throw execFailure(cmd, args, result, opts);
  return result;
}

/**
 * The {@link ExecError} for a run that exited non-zero (for callers of {@link tryRun} that accept
 * some failures, such as "no such device", and throw on the others).
 */
export function execFailure(cmd: string, args: readonly string[], result: ExecResult, opts: ExecOptions = {}): ExecError {
  const command = netnsArgv(cmd, args, opts.netns).join(' ');
  const stderr = shownStderr(result.stderr);
  return new ExecError(opts.errorCode ?? SYS_EXEC_FAILED, `${command}: exited ${result.exitCode}${stderr ? `: ${stderr}` : ''}`, {
    command,
    exitCode: result.exitCode,
    signal: null,
    stderr,
  });
}
