// Starts a real `nats-server` for tests, modeled on nats.js's test_helpers/launcher.ts: port -1
// (the server picks a free port and writes it to a ports file we poll), output kept in memory to
// print only when a test fails, and every temp file removed on stop.
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { access, constants, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, delimiter, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { readPortsFile } from '../../hub/broker/nats-server.js';

/** Why a helper call failed; tests assert on it. */
export type NatsServerErrorCode =
  | 'NATS_SERVER_NOT_FOUND'
  | 'NATS_SERVER_SPAWN_FAILED'
  | 'NATS_SERVER_EXITED'
  | 'NATS_SERVER_START_TIMEOUT'
  | 'NATS_SERVER_WRONG_PORT'
  | 'NATS_SERVER_STILL_RUNNING'
  | 'NATS_SERVER_RELOAD_FAILED'
  | 'NATS_SERVER_RELOAD_TIMEOUT'
  | 'NATS_SERVER_NOT_RUNNING'
  | 'NATS_SERVER_STOPPED';

/** A failure of the nats-server helper, with the server's captured output at that moment. */
export class NatsServerError extends Error {
  override readonly name = 'NatsServerError';
  /** Stable code, e.g. `NATS_SERVER_EXITED`. */
  readonly code: NatsServerErrorCode;
  /** nats-server's stderr+stdout captured so far (bounded). */
  readonly output: string;

  constructor(code: NatsServerErrorCode, message: string, opts: { output: string; cause?: unknown }) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.output = opts.output;
  }
}

/** Options for {@link startNatsServer}. */
export interface NatsServerOptions {
  /** Enable JetStream with a store inside the temp dir (default true). */
  jetstream?: boolean;
  /** Enable the HTTP monitoring endpoint on 127.0.0.1 (default true). */
  monitoring?: boolean;
  /** Appended verbatim to the rendered config (tls, authorization, accounts, limits...). */
  extraConfig?: string;
  /** `server_name` (default: the temp dir's unique base name). */
  serverName?: string;
  /** Path of the nats-server executable (default: `$NATS_SERVER_BIN`, else `nats-server` from PATH or an sbin dir). */
  binary?: string;
  /** How long to wait for the server to listen (default 10 s). */
  startTimeoutMs?: number;
  /** How long stop()/kill() wait for the process to exit before escalating or failing (default 5 s). */
  stopTimeoutMs?: number;
  /** Most output characters kept (default 64 KiB); older output is dropped. */
  maxOutputChars?: number;
}

/** What {@link renderNatsServerConfig} renders. */
export interface NatsServerConfigInput {
  serverName: string;
  /** Directory for the ports file. */
  portsFileDir: string;
  /** Client port; -1 lets the server choose. */
  port: number;
  /** Monitoring port (-1 lets the server choose); undefined turns monitoring off. */
  httpPort?: number | undefined;
  /** JetStream store directory; undefined turns JetStream off. */
  storeDir?: string | undefined;
  /** Appended verbatim. */
  extraConfig?: string | undefined;
}

/** How a nats-server process ended. */
export interface NatsServerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Minimal slice of a tap test used here (so helpers do not depend on tap's types). */
export interface TestLike {
  teardown(fn: () => unknown): void;
  passing(): boolean;
  comment(...args: unknown[]): void;
}

const POLL_INTERVAL_MS = 20;
const DEFAULT_START_TIMEOUT_MS = 10_000;
const DEFAULT_STOP_TIMEOUT_MS = 5_000;
const DEFAULT_MAX_OUTPUT_CHARS = 64 * 1024;
// Debian installs nats-server in /usr/sbin, which is not on every user's PATH.
const EXTRA_BINARY_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/**
 * Renders a nats-server config (pure). Strings are JSON-quoted, which the nats-server config
 * parser accepts (double-quoted strings with backslash escapes).
 */
export function renderNatsServerConfig(c: NatsServerConfigInput): string {
  const q = (s: string): string => JSON.stringify(s);
  const lines = [
    `server_name: ${q(c.serverName)}`,
    'host: "127.0.0.1"',
    `port: ${c.port}`,
    `ports_file_dir: ${q(c.portsFileDir)}`,
  ];
  if (c.httpPort !== undefined) lines.push(`http: ${q(`127.0.0.1:${c.httpPort}`)}`);
  if (c.storeDir !== undefined) lines.push(`jetstream: { store_dir: ${q(c.storeDir)} }`);
  if (c.extraConfig !== undefined && c.extraConfig !== '') lines.push('', c.extraConfig);
  return lines.join('\n') + '\n';
}

/**
 * Starts a nats-server in a fresh temp dir (`ncbnet-nats-*`) and resolves once it listens.
 * Rejects with a {@link NatsServerError} carrying the server's output if it exits first (e.g. a
 * bad config: code `NATS_SERVER_EXITED`) or does not listen within `startTimeoutMs`; the temp dir
 * is removed in that case. Call {@link NatsServer.stop} when done.
 */
export async function startNatsServer(opts: NatsServerOptions = {}): Promise<NatsServer> {
  const binary = await resolveBinary(opts.binary);
  const dir = await mkdtemp(join(tmpdir(), 'ncbnet-nats-'));
  const server = new NatsServer(binary, dir, opts);
  try {
    await server.restart();
  } catch (err) {
    await server.stop();
    throw err;
  }
  return server;
}

/**
 * Starts a nats-server for a tap test: stops it in `t.teardown` and prints its output there when
 * the test failed.
 */
export async function startNatsServerForTest(t: TestLike, opts: NatsServerOptions = {}): Promise<NatsServer> {
  const server = await startNatsServer(opts);
  printOutputOnFailure(t, server);
  t.teardown(() => server.stop());
  return server;
}

/** Registers a teardown that prints `server`'s output as TAP comments if `t` failed. */
export function printOutputOnFailure(t: TestLike, server: Pick<NatsServer, 'output' | 'serverName'>): void {
  t.teardown(() => {
    if (!t.passing()) t.comment(`nats-server ${server.serverName} output:\n${server.output()}`);
  });
}

/**
 * One nats-server under test. Its port is fixed after the first start (and written into the
 * config), so {@link restart} comes back on the same port with the same JetStream store.
 */
export class NatsServer {
  /** The temp dir holding config, ports file and JetStream store; removed by {@link stop}. */
  readonly dir: string;
  /** Path of the rendered config file. */
  readonly configPath: string;
  /** `server_name` in the config. */
  readonly serverName: string;
  /** JetStream store dir, or undefined when JetStream is off. */
  readonly storeDir: string | undefined;

  readonly #binary: string;
  readonly #isMonitored: boolean;
  readonly #startTimeoutMs: number;
  readonly #stopTimeoutMs: number;
  readonly #maxOutputChars: number;
  #extraConfig: string;
  #port = -1;
  #httpPort = -1;
  // Ports written into the config: -1 until a restart pins the ones first chosen.
  #configPort = -1;
  #configHttpPort = -1;
  #child: ChildProcess | undefined;
  #exited: Promise<NatsServerExit> | undefined;
  #isRunning = false;
  #stopping: Promise<void> | undefined;
  #output = '';
  #partialLine = '';
  #reloadsOk = 0;
  #reloadFailures: string[] = [];
  // Kills the child if the test process exits without stop() (a thrown error, process.exit()).
  readonly #onProcessExit = (): void => {
    if (this.#isRunning) this.#child?.kill('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  };

  /** Use {@link startNatsServer}; the constructor neither spawns nor writes anything. */
  constructor(binary: string, dir: string, opts: NatsServerOptions = {}) {
    this.#binary = binary;
    this.dir = dir;
    this.configPath = join(dir, 'nats-server.conf');
    this.serverName = opts.serverName ?? basename(dir);
    this.storeDir = opts.jetstream === false ? undefined : join(dir, 'jetstream');
    this.#isMonitored = opts.monitoring !== false;
    this.#extraConfig = opts.extraConfig ?? '';
    this.#startTimeoutMs = opts.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
    this.#stopTimeoutMs = opts.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
    this.#maxOutputChars = opts.maxOutputChars ?? DEFAULT_MAX_OUTPUT_CHARS;
    process.on('exit', this.#onProcessExit);
  }

  /** Client port (-1 before the first start). */
  get port(): number {
    return this.#port;
  }

  /** Client URL, `nats://127.0.0.1:PORT`. */
  get url(): string {
    return `nats://127.0.0.1:${this.#port}`;
  }

  /** Monitoring URL, `http://127.0.0.1:PORT`, or undefined when monitoring is off. */
  get monitorUrl(): string | undefined {
    return this.#isMonitored ? `http://127.0.0.1:${this.#httpPort}` : undefined;
  }

  /** PID of the current (or last) process. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Whether the process is alive (as far as its exit event tells). */
  get isRunning(): boolean {
    return this.#isRunning;
  }

  /** nats-server's captured stderr+stdout, all runs, the last `maxOutputChars` characters. */
  output(): string {
    return this.#output;
  }

  /**
   * Reloads the config with SIGHUP, after rewriting it with `extraConfig` when given, and waits
   * for nats-server to log the outcome. If the server refuses the new config it keeps running the
   * old one, so the old file is restored and this rejects with `NATS_SERVER_RELOAD_FAILED`.
   */
  async reload(extraConfig?: string): Promise<void> {
    const child = this.#requireRunning();
    const previous = this.#extraConfig;
    if (extraConfig !== undefined) {
      this.#extraConfig = extraConfig;
      await this.#writeConfig();
    }
    const okBefore = this.#reloadsOk;
    const failedBefore = this.#reloadFailures.length;
    child.kill('SIGHUP');
    const deadline = Date.now() + this.#startTimeoutMs;
    while (this.#reloadsOk === okBefore && this.#reloadFailures.length === failedBefore) {
      if (!this.#isRunning) throw this.#error('NATS_SERVER_EXITED', 'nats-server exited during reload');
      if (Date.now() > deadline) throw this.#error('NATS_SERVER_RELOAD_TIMEOUT', `nats-server did not report a reload within ${this.#startTimeoutMs} ms`);
      await delay(POLL_INTERVAL_MS);
    }
    const failure = this.#reloadFailures[failedBefore];
    if (failure !== undefined) {
      this.#extraConfig = previous;
      await this.#writeConfig();
      throw this.#error('NATS_SERVER_RELOAD_FAILED', `nats-server rejected the reload: ${failure}`);
    }
  }

  /**
   * Sends `signal` (default SIGKILL) and waits for the process to exit, leaving the temp dir in
   * place (for fault tests followed by {@link restart}). For signals that end the process only.
   */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<NatsServerExit> {
    const child = this.#requireRunning();
    const exited = this.#exited;
    child.kill(signal);
    const exit = exited === undefined ? undefined : await raceDeadline(exited, this.#stopTimeoutMs);
    if (exit === undefined) throw this.#error('NATS_SERVER_STILL_RUNNING', `nats-server did not exit within ${this.#stopTimeoutMs} ms of ${signal}`);
    return exit;
  }

  /**
   * Starts the process again on the same port with the same config and JetStream store, stopping
   * the running one first (SIGTERM). Resolves once it listens.
   */
  async restart(): Promise<void> {
    if (this.#stopping !== undefined) throw this.#error('NATS_SERVER_STOPPED', 'nats-server helper was stopped');
    if (this.#isRunning) await this.#terminate();
    if (this.#port !== -1) {
      // Pin the ports chosen at first start. Not earlier: a running server started with `http`
      // port -1 refuses a reload whose config names the chosen port (HTTPPort is not reloadable).
      this.#configPort = this.#port;
      this.#configHttpPort = this.#httpPort;
    }
    await this.#writeConfig();
    const child = this.#spawn();
    const ports = await this.#waitForPorts(child);
    if (this.#port !== -1 && ports.port !== this.#port) {
      throw this.#error('NATS_SERVER_WRONG_PORT', `nats-server came back on port ${ports.port}, expected ${this.#port}`);
    }
    if (this.#port === -1) {
      this.#port = ports.port;
      this.#httpPort = ports.httpPort ?? -1;
    }
  }

  /**
   * Stops the process (SIGTERM, SIGKILL after `stopTimeoutMs`) and removes the temp dir.
   * Idempotent: later calls return the first call's promise.
   */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      try {
        if (this.#isRunning) await this.#terminate();
      } finally {
        process.off('exit', this.#onProcessExit);
        await rm(this.dir, { recursive: true, force: true });
      }
    })();
    return this.#stopping;
  }

  async #terminate(): Promise<void> {
    const child = this.#child;
    const exited = this.#exited;
    if (child === undefined || exited === undefined) return;
    child.kill('SIGTERM');
    if ((await raceDeadline(exited, this.#stopTimeoutMs)) !== undefined) return;
    child.kill('SIGKILL');
    if ((await raceDeadline(exited, this.#stopTimeoutMs)) === undefined) {
      throw this.#error('NATS_SERVER_STILL_RUNNING', `nats-server pid ${child.pid} survived SIGKILL for ${this.#stopTimeoutMs} ms`);
    }
  }

  #spawn(): ChildProcess {
    if (this.#output !== '') this.#appendOutput(`--- ncbnet test helper: restarting nats-server ---\n`);
    const child = spawn(this.#binary, ['-c', this.configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    this.#isRunning = true;
    this.#partialLine = '';
    for (const stream of [child.stdout, child.stderr]) {
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk: string) => this.#appendOutput(chunk));
    }
    this.#exited = new Promise((resolve) => {
      // 'close' (not 'exit') so the output is complete when a start failure is reported.
      child.once('close', (code, signal) => {
        this.#isRunning = false;
        resolve({ code, signal });
      });
      child.once('error', (err) => {
        this.#appendOutput(`--- ncbnet test helper: spawn ${this.#binary} failed: ${err.message} ---\n`);
        if (child.pid === undefined) {
          this.#isRunning = false;
          resolve({ code: null, signal: null });
        }
      });
    });
    return child;
  }

  async #waitForPorts(child: ChildProcess): Promise<{ port: number; httpPort: number | undefined }> {
    const deadline = Date.now() + this.#startTimeoutMs;
    for (;;) {
      if (!this.#isRunning || child.pid === undefined) {
        const exit = await this.#exited;
        const how = exit?.signal != null ? `signal ${exit.signal}` : `code ${exit?.code ?? 'unknown'}`;
        const code = child.pid === undefined ? 'NATS_SERVER_SPAWN_FAILED' : 'NATS_SERVER_EXITED';
        throw this.#error(code, `nats-server exited (${how}) before listening:\n${this.#output}`);
      }
      // The hub's own reader of nats-server's ports file (one parser for the format).
      const ports = await readPortsFile(this.dir, child.pid);
      if (ports !== undefined && (!this.#isMonitored || ports.monitorPort !== undefined)) return { port: ports.clientPort, httpPort: ports.monitorPort };
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        await this.#exited;
        throw this.#error('NATS_SERVER_START_TIMEOUT', `nats-server did not listen within ${this.#startTimeoutMs} ms:\n${this.#output}`);
      }
      await delay(POLL_INTERVAL_MS);
    }
  }

  #appendOutput(chunk: string): void {
    this.#output += chunk;
    if (this.#output.length > this.#maxOutputChars) this.#output = this.#output.slice(-this.#maxOutputChars);
    // Reload outcomes are counted per line as they arrive, since the kept output is truncated.
    const lines = (this.#partialLine + chunk).split('\n');
    this.#partialLine = lines.pop() ?? '';
    for (const line of lines) {
      if (line.includes('[INF] Reloaded server configuration')) this.#reloadsOk += 1;
      const failed = /\[ERR\] Failed to reload server configuration: (.*)$/.exec(line);
      if (failed) this.#reloadFailures.push(failed[1] ?? line);
    }
  }

  async #writeConfig(): Promise<void> {
    const config = renderNatsServerConfig({
      serverName: this.serverName,
      portsFileDir: this.dir,
      port: this.#configPort,
      httpPort: this.#isMonitored ? this.#configHttpPort : undefined,
      storeDir: this.storeDir,
      extraConfig: this.#extraConfig,
    });
    await writeFile(this.configPath, config, { mode: 0o600 });
  }

  #requireRunning(): ChildProcess {
    if (this.#stopping !== undefined) throw this.#error('NATS_SERVER_STOPPED', 'nats-server helper was stopped');
    if (!this.#isRunning || this.#child === undefined) throw this.#error('NATS_SERVER_NOT_RUNNING', 'nats-server is not running');
    return this.#child;
  }

  #error(code: NatsServerErrorCode, message: string): NatsServerError {
    return new NatsServerError(code, message, { output: this.#output });
  }
}

/** Resolves `p`, or undefined after `ms` (the timer does not keep the process alive past it). */
async function raceDeadline<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  const ac = new AbortController();
  try {
    return await Promise.race([p, delay(ms, undefined, { signal: ac.signal }).then(() => undefined)]);
  } finally {
    ac.abort();
  }
}

async function resolveBinary(explicit: string | undefined): Promise<string> {
  const wanted = explicit ?? process.env['NATS_SERVER_BIN'];
  if (wanted !== undefined && wanted !== '') return wanted;
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter).filter((d) => d !== ''), ...EXTRA_BINARY_DIRS];
  for (const d of dirs) {
    const candidate = join(d, 'nats-server');
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not in this directory; try the next.
    }
  }
  throw new NatsServerError('NATS_SERVER_NOT_FOUND', `nats-server not found in PATH or ${EXTRA_BINARY_DIRS.join(', ')}; set NATS_SERVER_BIN`, { output: '' });
}
