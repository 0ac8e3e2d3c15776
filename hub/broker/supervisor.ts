/**
 * Supervises the hub's `nats-server` (ARCHITECTURE, "Broker (NATS)"): writes the rendered config,
 * starts the server and waits for its ports, reloads it with SIGHUP after validating the new config,
 * restarts it with exponential back-off when it dies, and never leaves it orphaned.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { EventEmitter } from 'node:events';
import { mkdir, readFile, rename, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { Logger } from 'pino';
import {
  BROKER_EXITED,
  BROKER_NOT_RUNNING,
  BROKER_RELOAD_FAILED,
  BROKER_RELOAD_TIMEOUT,
  BROKER_SPAWN_FAILED,
  BROKER_START_TIMEOUT,
  BROKER_STOP_TIMEOUT,
  BROKER_STOPPED,
  BrokerConfigError,
  BrokerError,
  BrokerReloadError,
  BrokerStartError,
  BrokerStateError,
  type BrokerErrorCode,
} from './errors.js';
import {
  checkConfig,
  clientHost,
  configLoadTime,
  describeExit,
  findNatsServer,
  killOrphan,
  raceDeadline,
  readPidFile,
  readPortsFile,
  removePortsFiles,
  writeFileAtomic,
  type ServerPorts,
} from './nats-server.js';
import { OutputBuffer } from './output-buffer.js';
import type { BrokerBackoff, BrokerExitInfo, BrokerRestartInfo, BrokerSupervisorEvents, BrokerSupervisorOptions } from './supervisor-types.js';

export type { BrokerBackoff, BrokerExitInfo, BrokerRestartInfo, BrokerSupervisorEvents, BrokerSupervisorOptions } from './supervisor-types.js';

interface Run {
  child: ChildProcess;
  startedAt: number;
  hasExited: boolean;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** util-linux setpriv, for the parent-death signal (see #launch). */
const SETPRIV = '/usr/bin/setpriv';
const POLL_INTERVAL_MS = 20;

/**
 * One supervised nats-server. `start()` once, `reload()` after every registry change, `stop()` on
 * shutdown; a stopped supervisor does not start again. Emits `exit` on each unexpected exit,
 * `restart` when a restart succeeded and `restart-failed` when one did not (another is scheduled).
 */
export class BrokerSupervisor extends EventEmitter<BrokerSupervisorEvents> {
  /** Absolute working dir. */
  readonly dir: string;
  readonly configPath: string;
  readonly pidFile: string;

  readonly #opts: BrokerSupervisorOptions;
  readonly #log: Logger;
  readonly #backoff: BrokerBackoff;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #startTimeoutMs: number;
  readonly #stopTimeoutMs: number;
  readonly #reloadTimeoutMs: number;
  readonly #output: OutputBuffer;
  #binary = '';
  #run: Run | undefined;
  #ports: ServerPorts | undefined;
  #isUp = false;
  #starting: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  #restartTimer: NodeJS.Timeout | undefined;
  #restarting: Promise<void> | undefined;
  #attempt = 0;
  #restarts = 0;
  #reloadQueue: Promise<unknown> = Promise.resolve();
  // Synchronous last resort: if the hub process exits without stop(), take the server with it.
  readonly #onProcessExit = (): void => {
    if (this.#run !== undefined && !this.#run.hasExited) this.#run.child.kill('SIGKILL');
  };

  constructor(opts: BrokerSupervisorOptions) {
    super();
    this.#opts = opts;
    this.dir = resolve(opts.dir);
    this.configPath = join(this.dir, 'nats-server.conf');
    this.pidFile = join(this.dir, 'nats-server.pid');
    this.#log = opts.logger;
    this.#backoff = opts.backoff ?? { initialMs: 200, maxMs: 30_000 };
    this.#now = opts.now ?? Date.now;
    this.#random = opts.random ?? Math.random;
    this.#startTimeoutMs = opts.startTimeoutMs ?? 10_000;
    this.#stopTimeoutMs = opts.stopTimeoutMs ?? 5_000;
    this.#reloadTimeoutMs = opts.reloadTimeoutMs ?? 10_000;
    this.#output = new OutputBuffer(opts.maxOutputChars ?? 64 * 1024, (line) => this.#log.warn({ line }, 'nats-server error'));
  }

  /** Client URL, `tls://HOST:PORT`. Throws `BROKER_NOT_RUNNING` before the first start. */
  get url(): string {
    const ports = this.#requirePorts();
    const host = this.#opts.clientHost ?? clientHost(ports.clientUrls);
    return `tls://${host.includes(':') ? `[${host}]` : host}:${ports.clientPort}`;
  }

  /** Monitoring URL, `http://127.0.0.1:PORT` (loopback only). Throws `BROKER_NOT_RUNNING` before the first start. */
  get monitorUrl(): string {
    return `http://127.0.0.1:${String(this.#requirePorts().monitorPort)}`;
  }

  /** PID of the running server, if any. */
  get pid(): number | undefined {
    return this.#run !== undefined && !this.#run.hasExited ? this.#run.child.pid : undefined;
  }

  /** True while a server started by this supervisor is up. */
  get isRunning(): boolean {
    return this.#isUp;
  }

  /** Restarts attempted after unexpected exits. */
  get restarts(): number {
    return this.#restarts;
  }

  /** The server's recent stderr/stdout (bounded). */
  output(): string {
    return this.#output.text();
  }

  /**
   * Writes the config (validated with `nats-server -t`, 0600, atomically), kills an orphan server
   * a crashed hub left on this config, starts nats-server and resolves once its ports file shows
   * the client and monitoring ports. Idempotent. Rejects with `BROKER_BAD_CONFIG`,
   * `BROKER_SPAWN_FAILED`, `BROKER_EXITED` or `BROKER_START_TIMEOUT` (with the server's output).
   */
  start(): Promise<void> {
    if (this.#stopping !== undefined) return Promise.reject(this.#error(BrokerStateError, BROKER_STOPPED, 'broker supervisor was stopped'));
    this.#starting ??= this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const binary = await findNatsServer(this.#opts.binary);
    if (binary === undefined) throw this.#error(BrokerStartError, BROKER_SPAWN_FAILED, 'nats-server not found in PATH or /usr/sbin; set the binary path');
    this.#binary = binary;
    const orphan = await killOrphan(this.pidFile, this.configPath, this.#stopTimeoutMs);
    if (orphan !== undefined) this.#log.warn({ pid: orphan }, 'killed nats-server left by a previous hub');
    await removePortsFiles(this.dir);
    await this.#install(this.#opts.render(), 'start');
    process.on('exit', this.#onProcessExit);
    try {
      await this.#launch();
    } catch (err) {
      process.off('exit', this.#onProcessExit); // #launch has already ended the child
      throw err;
    }
    this.#log.info({ pid: this.pid, url: this.url }, 'nats-server started');
  }

  /**
   * Re-renders the config, validates it with `nats-server -t`, writes it, sends SIGHUP and resolves
   * once `/varz` shows a new `config_load_time` (set after the reload is applied, pinned certs
   * rechecked included). When the new config is refused, the old file is kept (the server keeps
   * running it) and this rejects with `BROKER_RELOAD_FAILED` and the server's message. Calls are
   * serialized.
   */
  reload(): Promise<void> {
    const next = this.#reloadQueue.then(() => this.#reload());
    this.#reloadQueue = next.catch(() => undefined);
    return next;
  }

  async #reload(): Promise<void> {
    const run = this.#requireUp();
    const text = this.#opts.render();
    const previous = await readFile(this.configPath, 'utf8');
    await this.#install(text, 'reload');
    const before = await configLoadTime(this.monitorUrl);
    const failuresBefore = this.#output.reloadFailures;
    run.child.kill('SIGHUP');
    const deadline = Date.now() + this.#reloadTimeoutMs;
    for (;;) {
      if (this.#run !== run || run.hasExited) throw this.#error(BrokerReloadError, BROKER_EXITED, 'nats-server exited during reload');
      if (this.#output.reloadFailures > failuresBefore) {
        // nats-server keeps the config it runs; put the matching file back so a restart uses it too.
        await writeFileAtomic(this.configPath, previous, 0o600);
        throw this.#error(BrokerReloadError, BROKER_RELOAD_FAILED, `nats-server refused the reload: ${this.#output.lastReloadFailure}`);
      }
      const now = await configLoadTime(this.monitorUrl).catch(() => undefined);
      if (now !== undefined && now !== before) break;
      if (Date.now() > deadline) throw this.#error(BrokerReloadError, BROKER_RELOAD_TIMEOUT, `nats-server did not apply the reload within ${this.#reloadTimeoutMs} ms`);
      await delay(POLL_INTERVAL_MS);
    }
    this.#log.info({ pid: run.child.pid }, 'nats-server reloaded');
  }

  /**
   * Stops the server: SIGTERM, SIGKILL after `stopTimeoutMs`; cancels any pending restart; removes
   * the pid file and the process-exit safety. Idempotent; no restart happens afterwards.
   */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      clearTimeout(this.#restartTimer);
      this.#restartTimer = undefined;
      await this.#terminate();
      // A restart in flight may have spawned a child after the first terminate.
      await this.#restarting?.catch(() => undefined);
      await this.#starting?.catch(() => undefined);
      await this.#terminate();
      process.off('exit', this.#onProcessExit);
      // Only our own pid file: another supervisor may have taken over this dir since.
      const pid = this.#run?.child.pid;
      if (pid !== undefined && (await readPidFile(this.pidFile).catch(() => undefined)) === pid) await unlink(this.pidFile).catch(() => undefined);
      this.#log.info('nats-server stopped');
    })();
    return this.#stopping;
  }

  /** Writes `text` to a sibling file, has `nats-server -t` check it, then renames it into place. */
  async #install(text: string, why: 'start' | 'reload'): Promise<void> {
    const next = `${this.configPath}.next`;
    await writeFileAtomic(next, text, 0o600);
    const check = await checkConfig(this.#binary, next, this.#startTimeoutMs);
    if (!check.isValid) {
      await unlink(next).catch(() => undefined);
      const message = `nats-server -t refused the new config: ${check.output}`;
      if (why === 'start') throw new BrokerConfigError(check.output.split('\n'), { output: check.output });
      throw new BrokerReloadError(BROKER_RELOAD_FAILED, message, { output: check.output });
    }
    await rename(next, this.configPath);
  }

  /** Spawns nats-server on the config in place and waits for its ports file. */
  async #launch(): Promise<void> {
    // Through setpriv(1) when present: PR_SET_PDEATHSIG makes the kernel send nats-server SIGTERM
    // when the hub dies, even by SIGKILL, so it never outlives the hub. setpriv execs in place, so
    // the pid (and /proc/PID/cmdline, which the orphan check reads) is nats-server's own.
    const [cmd, ...args] = existsSync(SETPRIV) ? [SETPRIV, '--pdeathsig', 'TERM', this.#binary, '-c', this.configPath] : [this.#binary, '-c', this.configPath];
    const child = spawn(cmd, args, { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    const run: Run = {
      child,
      startedAt: this.#now(),
      hasExited: false,
      exited: new Promise((resolveExit) => {
        // 'close' (not 'exit') so the output is complete when a failure is reported.
        child.once('close', (code, sig) => {
          run.hasExited = true;
          resolveExit({ code, signal: sig });
          this.#onChildClose(run, code, sig);
        });
      }),
    };
    child.once('error', (err) => {
      this.#output.append(`--- ncbnet: spawn ${this.#binary} failed: ${err.message} ---\n`);
      if (child.pid === undefined) run.hasExited = true;
    });
    this.#run = run;
    for (const stream of [child.stdout, child.stderr]) {
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk: string) => this.#output.append(chunk));
    }
    const pid = child.pid;
    if (pid === undefined) {
      await delay(0); // let 'error' record why
      throw this.#error(BrokerStartError, BROKER_SPAWN_FAILED, `could not spawn ${this.#binary}`);
    }
    await writeFileAtomic(this.pidFile, `${pid}\n`, 0o644);
    const deadline = Date.now() + this.#startTimeoutMs;
    for (;;) {
      if (run.hasExited) {
        const exit = await run.exited;
        throw this.#error(BrokerStartError, BROKER_EXITED, `nats-server exited (${describeExit(exit)}) before listening`);
      }
      const ports = await readPortsFile(this.dir, pid);
      if (ports !== undefined) {
        if (ports.monitorPort === undefined) {
          await this.#terminate();
          throw new BrokerConfigError(['http: the monitoring port is required (reload confirmation reads /varz)']);
        }
        this.#ports = ports;
        this.#isUp = true;
        return;
      }
      if (Date.now() > deadline) {
        await this.#terminate();
        throw this.#error(BrokerStartError, BROKER_START_TIMEOUT, `nats-server did not listen within ${this.#startTimeoutMs} ms`);
      }
      await delay(POLL_INTERVAL_MS);
    }
  }

  #onChildClose(run: Run, code: number | null, sig: NodeJS.Signals | null): void {
    if (this.#run !== run) return;
    const wasUp = this.#isUp;
    this.#isUp = false;
    // During start() or a restart attempt, the waiter reports the exit; after stop(), it was asked for.
    if (!wasUp || this.#stopping !== undefined) return;
    const uptimeMs = this.#now() - run.startedAt;
    const info: BrokerExitInfo = { pid: run.child.pid ?? -1, code, signal: sig, uptimeMs };
    this.#log.error({ ...info, output: this.#output.tail(2_000) }, 'nats-server exited unexpectedly');
    this.emit('exit', info);
    // A server that ran for a while before dying is not in a crash loop: start the back-off over.
    if (uptimeMs >= this.#backoff.maxMs) this.#attempt = 0;
    this.#scheduleRestart();
  }

  #scheduleRestart(): void {
    if (this.#stopping !== undefined) return;
    const attempt = ++this.#attempt;
    const base = Math.min(this.#backoff.maxMs, this.#backoff.initialMs * 2 ** (attempt - 1));
    // "Equal jitter": half fixed, half random, so hubs restarted together do not retry in step.
    const delayMs = Math.round(base / 2 + (this.#random() * base) / 2);
    this.#log.warn({ attempt, delayMs }, 'restarting nats-server');
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      this.#restarting = this.#restart(attempt, delayMs);
    }, delayMs);
  }

  async #restart(attempt: number, delayMs: number): Promise<void> {
    if (this.#stopping !== undefined) return;
    this.#restarts += 1;
    try {
      // Render afresh so changes made while the server was down (a revoked country) apply; if that
      // fails, the file in place is the last config nats-server -t accepted: restart on it.
      await this.#install(this.#opts.render(), 'reload').catch((err: unknown) => {
        this.#log.error({ err }, 'could not render a fresh nats-server config; restarting on the last good one');
      });
      await removePortsFiles(this.dir);
      await this.#launch();
    } catch (err) {
      if (this.#stopping !== undefined) return;
      const error = err instanceof BrokerError ? err : this.#error(BrokerStartError, BROKER_SPAWN_FAILED, 'nats-server restart failed', err);
      this.#log.error({ err: error, attempt }, 'nats-server restart failed');
      this.emit('restart-failed', { attempt, err: error });
      this.#scheduleRestart();
      return;
    }
    const info: BrokerRestartInfo = { attempt, delayMs, pid: this.pid ?? -1, url: this.url };
    this.#log.info({ ...info, restarts: this.#restarts }, 'nats-server restarted');
    this.emit('restart', info);
  }

  /** SIGTERM the current child, SIGKILL after the timeout; resolves once it has exited. */
  async #terminate(): Promise<void> {
    const run = this.#run;
    if (run === undefined || run.hasExited) return;
    this.#isUp = false;
    run.child.kill('SIGTERM');
    if ((await raceDeadline(run.exited, this.#stopTimeoutMs)) !== undefined) return;
    run.child.kill('SIGKILL');
    if ((await raceDeadline(run.exited, this.#stopTimeoutMs)) !== undefined) return;
    throw this.#error(BrokerStateError, BROKER_STOP_TIMEOUT, `nats-server pid ${String(run.child.pid)} survived SIGKILL for ${this.#stopTimeoutMs} ms`);
  }

  #requireUp(): Run {
    if (this.#stopping !== undefined) throw this.#error(BrokerStateError, BROKER_STOPPED, 'broker supervisor was stopped');
    if (!this.#isUp || this.#run === undefined) throw this.#error(BrokerStateError, BROKER_NOT_RUNNING, 'nats-server is not running');
    return this.#run;
  }

  #requirePorts(): ServerPorts {
    if (this.#ports === undefined) throw this.#error(BrokerStateError, BROKER_NOT_RUNNING, 'nats-server has not started');
    return this.#ports;
  }

  #error(
    Kind: new (code: BrokerErrorCode, message: string, options: { cause?: unknown; output?: string }) => BrokerError,
    code: BrokerErrorCode,
    message: string,
    cause?: unknown,
  ): BrokerError {
    const output = this.#output.text();
    const withOutput = output === '' ? message : `${message}\n--- nats-server output ---\n${this.#output.tail(4_000)}`;
    return new Kind(code, withOutput, cause === undefined ? { output } : { output, cause });
  }
}
