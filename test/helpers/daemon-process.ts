import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { readEndpoints, type Endpoints } from '../../hub/runtime.js';
import { readAgentEndpoints, type AgentEndpoints } from '../../node-agent/runtime.js';
import { typescriptLoader } from './cli.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** What owns a daemon: it is stopped at the owner's teardown, and its log printed when the owner failed. */
export interface DaemonOwner {
  teardown(fn: () => unknown): void;
  comment(...args: unknown[]): void;
  passing(): boolean;
}

/** A daemon (`ncbnet hub run`, `ncbnet-agent run`) started by a test as its own process. */
export interface DaemonProcess<E> {
  child: ChildProcess;
  endpoints: E;
  /** Everything it logged (JSON lines), for assertions and for failure output. */
  output(): string;
  /** SIGTERM and wait for the exit; resolves with the exit code. */
  stop(): Promise<number | null>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * How the daemon runs. Default: from source under the TypeScript loader (tap's under tap, tsx
 * outside). `compiled`: the JavaScript `tsc -p tsconfig.build.json` emitted into `outDir`, with
 * plain node and `execArgv` (as deployed; benchmarks use it so the loader's memory is not counted).
 */
export interface DaemonRunOptions {
  /**
   * How long to wait for the daemon to write its endpoints. Default 120 s: under the TypeScript
   * loader with coverage, next to another test file starting daemons on the same 2 cores, a start
   * took over 30 s once in CI (idle, a few seconds).
   */
  timeoutMs?: number;
  netns?: string;
  compiled?: { outDir: string; execArgv?: readonly string[] };
}

interface DaemonSpec<E> {
  label: string;
  /** Source path from the repository root (`hub/cli/main.ts`). */
  entry: string;
  args: string[];
  run: DaemonRunOptions;
  /** The daemon's endpoints once it wrote them for this pid; undefined until then. */
  ready: () => Promise<(E & { pid: number }) | undefined>;
}

async function startDaemon<E>(t: DaemonOwner, spec: DaemonSpec<E>): Promise<DaemonProcess<E>> {
  const { compiled, netns } = spec.run;
  const timeoutMs = spec.run.timeoutMs ?? 120_000;
  const program = compiled ? [...(compiled.execArgv ?? []), join(compiled.outDir, spec.entry.replace(/\.ts$/, '.js'))] : [...typescriptLoader(), spec.entry];
  const argv = [process.execPath, ...program, ...spec.args];
  // `ip netns exec` execs the program in place, so the pid is the daemon's own.
  const [cmd, ...args] = netns ? ['ip', 'netns', 'exec', netns, ...argv] : argv;
  const child = spawn(cmd as string, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (output += c.toString('utf8')));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  let hasExited = false;
  void exited.then(() => (hasExited = true));
  t.teardown(async () => {
    if (!t.passing()) t.comment(`${spec.label} output:\n${output.slice(-20_000)}`);
    if (!hasExited) {
      child.kill('SIGTERM');
      const done = await Promise.race([exited, delay(15_000).then(() => undefined)]);
      if (!done) child.kill('SIGKILL');
    }
  });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const endpoints = await spec.ready();
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
    const failure = hasExited ? 'exited before it was ready' : Date.now() > deadline ? `not ready after ${timeoutMs} ms` : undefined;
    if (failure) {
      // Also as a TAP comment: a throw from a test file's top level reaches only stderr, which a
      // CI summary of the TAP stream does not show.
      const message = `${spec.label} ${failure}:\n${output.slice(-5000)}`;
      t.comment(message);
      throw new Error(message);
    }
    await delay(100);
  }
}

/**
 * Runs the real hub daemon on `stateDir` with `config` (written to hub.json), waits for it to
 * write its endpoints, and stops it at teardown if the test did not. Its log is printed when the
 * test fails.
 */
export async function startHubProcess(t: DaemonOwner, stateDir: string, config: unknown, opts: DaemonRunOptions = {}): Promise<DaemonProcess<Endpoints>> {
  const configPath = join(stateDir, 'hub.json');
  await writeFile(configPath, JSON.stringify(config));
  return startDaemon(t, { label: 'hub', entry: 'hub/cli/main.ts', args: ['hub', 'run', '--state', stateDir, '--config', configPath], run: opts, ready: () => readEndpoints(stateDir) });
}

/** Runs the real node agent on an enrolled `stateDir` with `config` (agent.json), like {@link startHubProcess}. */
export async function startAgentProcess(t: DaemonOwner, stateDir: string, config: unknown, opts: DaemonRunOptions = {}): Promise<DaemonProcess<AgentEndpoints>> {
  const configPath = join(stateDir, 'agent.json');
  await writeFile(configPath, JSON.stringify(config));
  return startDaemon(t, {
    label: `agent ${stateDir}`,
    entry: 'node-agent/cli/main.ts',
    args: ['run', '--state', stateDir, '--config', configPath],
    run: opts,
    ready: () => readAgentEndpoints(stateDir).catch(() => undefined),
  });
}
