import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { readEndpoints, type Endpoints } from '../../hub/runtime.js';
import { typescriptLoader } from './cli.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface Teardownable {
  teardown(fn: () => unknown): void;
  comment(...args: unknown[]): void;
  passing(): boolean;
}

/** A `ncbnet hub run` child process started by a test. */
export interface HubProcess {
  child: ChildProcess;
  endpoints: Endpoints;
  /** Everything it logged (JSON lines), for assertions and for failure output. */
  output(): string;
  /** SIGTERM and wait for the exit; resolves with the exit code. */
  stop(): Promise<number | null>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Runs the real hub daemon as a separate process on `stateDir` with `config` (written to
 * hub.json), waits for it to write its endpoints, and kills it at teardown if the test did not
 * stop it. Its log is printed when the test fails.
 */
export async function startHubProcess(t: Teardownable, stateDir: string, config: unknown, opts: { timeoutMs?: number; netns?: string } = {}): Promise<HubProcess> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const configPath = join(stateDir, 'hub.json');
  await writeFile(configPath, JSON.stringify(config));
  const argv = [process.execPath, ...typescriptLoader(), 'hub/cli/main.ts', 'hub', 'run', '--state', stateDir, '--config', configPath];
  // `ip netns exec` execs the program in place, so the pid is the hub's own.
  const [cmd, ...args] = opts.netns ? ['ip', 'netns', 'exec', opts.netns, ...argv] : argv;
  const child = spawn(cmd as string, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (output += c.toString('utf8')));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  let hasExited = false;
  void exited.then(() => (hasExited = true));
  t.teardown(async () => {
    if (!t.passing()) t.comment(`hub output:\n${output.slice(-20_000)}`);
    if (!hasExited) {
      child.kill('SIGTERM');
      const done = await Promise.race([exited, delay(15_000).then(() => undefined)]);
      if (!done) child.kill('SIGKILL');
    }
  });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const endpoints = await readEndpoints(stateDir);
    if (endpoints && endpoints.pid === child.pid) {
      return {
        child,
        endpoints,
        output: () => output,
        exited,
        stop: async () => {
          if (!hasExited) child.kill('SIGTERM');
          return (await exited).code;
        },
      };
    }
    if (hasExited) throw new Error(`hub exited before it was ready:\n${output.slice(-5000)}`);
    if (Date.now() > deadline) throw new Error(`hub not ready after ${timeoutMs} ms:\n${output.slice(-5000)}`);
    await delay(100);
  }
}
