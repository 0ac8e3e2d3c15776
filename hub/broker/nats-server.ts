/**
 * The one wrapper around the `nats-server` program (v2.9.10 from Debian): finding it, checking a
 * config with `-t`, its ports file, its pid file, and finding an orphan left by a crashed hub.
 * The process lifecycle itself is in `supervisor.ts`.
 */
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access, open, readFile, readdir, rename, unlink } from 'node:fs/promises';
import { basename, delimiter, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

// Debian installs nats-server in /usr/sbin, which is not on every user's PATH.
const EXTRA_BINARY_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin'];
const POLL_INTERVAL_MS = 20;

/** `nats-server` from PATH or the sbin dirs; `explicit` wins. Undefined when there is none. */
export async function findNatsServer(explicit?: string): Promise<string | undefined> {
  if (explicit !== undefined && explicit !== '') return explicit;
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter).filter((d) => d !== ''), ...EXTRA_BINARY_DIRS];
  for (const dir of dirs) {
    const candidate = join(dir, 'nats-server');
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not in this directory; try the next.
    }
  }
  return undefined;
}

/** Outcome of `nats-server -t -c FILE`. */
export interface ConfigCheck {
  isValid: boolean;
  /** What the server printed (the parse error, with file:line:col, when invalid). */
  output: string;
}

/**
 * Runs `nats-server -t -c path`: parses the config (TLS files loaded included) and exits, 0 when
 * valid (2.9.10 `main.go`, `opts.CheckConfig`). Warnings count as failures there too.
 */
export function checkConfig(binary: string, path: string, timeoutMs: number): Promise<ConfigCheck> {
  return new Promise((resolve, reject) => {
    execFile(binary, ['-t', '-c', path], { encoding: 'utf8', timeout: timeoutMs }, (err, stdout, stderr) => {
      const output = `${stderr}${stdout}`.trim();
      if (err === null) resolve({ isValid: true, output });
      else if (typeof err.code === 'number') resolve({ isValid: false, output });
      else reject(new Error(`${binary} -t could not run: ${err.message}`, { cause: err }));
    });
  });
}

/**
 * Writes `data` to `path` atomically with `mode`: a temporary sibling, fsync, rename. nats-server
 * re-reads the file on SIGHUP, so it must never see a half-written one.
 */
export async function writeFileAtomic(path: string, data: string, mode: number): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = await open(tmp, 'w', mode);
  try {
    await fd.writeFile(data);
    await fd.sync();
  } finally {
    await fd.close();
  }
  await rename(tmp, path);
}

/** Ports nats-server reported in its ports file. */
export interface ServerPorts {
  /** First client URL, e.g. `nats://127.0.0.1:4222` (one per interface when bound to 0.0.0.0). */
  clientUrls: readonly string[];
  clientPort: number;
  monitorPort: number | undefined;
}

/**
 * Reads `<exe>_<pid>.ports` in `dir` (`ports_file_dir`), JSON like
 * `{"nats":["nats://127.0.0.1:4222"],"monitoring":["http://127.0.0.1:8222"]}`. 2.9.10 writes it
 * once every listener is up (`server.go` logPorts → PortsInfo), but not atomically, so a file that
 * does not parse yet gives undefined and is read again at the next poll.
 */
export async function readPortsFile(dir: string, pid: number): Promise<ServerPorts | undefined> {
  const name = (await readdir(dir)).find((f) => f.endsWith(`_${pid}.ports`));
  if (name === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(join(dir, name), 'utf8'));
  } catch {
    return undefined;
  }
  const clientUrls = urls(parsed, 'nats');
  const clientPort = portOf(clientUrls[0]);
  if (clientPort === undefined) return undefined;
  return { clientUrls, clientPort, monitorPort: portOf(urls(parsed, 'monitoring')[0]) };
}

function urls(parsed: unknown, key: string): string[] {
  if (typeof parsed !== 'object' || parsed === null) return [];
  const value: unknown = (parsed as Record<string, unknown>)[key];
  return Array.isArray(value) ? value.filter((u): u is string => typeof u === 'string') : [];
}

function portOf(url: string | undefined): number | undefined {
  if (url === undefined) return undefined;
  const port = Number(new URL(url).port);
  return Number.isInteger(port) && port > 0 ? port : undefined;
}

/** Removes ports files left by earlier processes (a SIGKILLed server cannot delete its own). */
export async function removePortsFiles(dir: string): Promise<void> {
  for (const f of await readdir(dir)) {
    if (/_\d+\.ports$/.test(f)) await unlink(join(dir, f)).catch(() => undefined);
  }
}

/** The pid in `path`, or undefined when the file is missing or not a pid. */
export async function readPidFile(path: string): Promise<number | undefined> {
  const text = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return '';
    throw err;
  });
  const pid = Number(text.trim());
  return Number.isInteger(pid) && pid > 1 ? pid : undefined;
}

/**
 * True when `pid` is alive and is a nats-server started with `-c configPath`, judged from
 * `/proc/PID/cmdline` (NUL-separated argv). A pid file can outlive its process and the pid be
 * reused by anything, so nothing else is ever killed.
 */
export async function isOurNatsServer(pid: number, configPath: string): Promise<boolean> {
  let argv: string[];
  try {
    argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
  } catch {
    return false;
  }
  const exe = argv[0];
  if (exe === undefined || !basename(exe).startsWith('nats-server')) return false;
  return argv.some((arg, i) => (arg === '-c' || arg === '--config') && argv[i + 1] === configPath);
}

/** True while `pid` exists and is not a zombie (a zombie is dead, just not yet reaped by its parent). */
export async function isAlive(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Field 3, after the parenthesised command name: R, S, D, Z, ...
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Polls until `pid` is gone or `timeoutMs` passes; true when gone. */
export async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (await isAlive(pid)) {
    if (Date.now() > deadline) return false;
    await delay(POLL_INTERVAL_MS);
  }
  return true;
}

/**
 * Kills the nats-server a crashed hub left running on this config (its pid in `pidFile`): SIGTERM,
 * then SIGKILL after `timeoutMs`. It holds the JetStream store and the ports, so a new one could
 * not start beside it. Returns the pid it killed, or undefined when there was none.
 */
export async function killOrphan(pidFile: string, configPath: string, timeoutMs: number): Promise<number | undefined> {
  const pid = await readPidFile(pidFile);
  if (pid === undefined || !(await isOurNatsServer(pid, configPath))) return undefined;
  signal(pid, 'SIGTERM');
  if (await waitForExit(pid, timeoutMs)) return pid;
  signal(pid, 'SIGKILL');
  if (await waitForExit(pid, timeoutMs)) return pid;
  throw new Error(`orphan nats-server pid ${pid} survived SIGKILL for ${timeoutMs} ms`);
}

/** process.kill that ignores a process already gone (ESRCH). */
export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

const VARZ_TIMEOUT_MS = 2_000;

/**
 * `config_load_time` from the monitoring endpoint's `/varz`: 2.9.10 sets it at start and again at
 * the very end of a successful reload (`reload.go` ReloadOptions, after recheckPinnedCerts), so a
 * new value means the new config is fully applied.
 */
export async function configLoadTime(monitorUrl: string): Promise<string> {
  const res = await fetch(`${monitorUrl}/varz`, { signal: AbortSignal.timeout(VARZ_TIMEOUT_MS) });
  const body: unknown = await res.json();
  const value = typeof body === 'object' && body !== null ? (body as Record<string, unknown>)['config_load_time'] : undefined;
  if (typeof value !== 'string') throw new Error('varz has no config_load_time');
  return value;
}

/** Loopback first (the hub dials its own broker there), else the first address the server listed. */
export function clientHost(urls: readonly string[]): string {
  const hosts = urls.map((u) => new URL(u).hostname.replace(/^\[|\]$/g, ''));
  return hosts.find((h) => h === '127.0.0.1') ?? hosts[0] ?? '127.0.0.1';
}

export function describeExit(exit: { code: number | null; signal: NodeJS.Signals | null }): string {
  return exit.signal !== null ? `signal ${exit.signal}` : `code ${String(exit.code)}`;
}

/** Resolves `p`, or undefined after `ms`; the timer is cleared either way. */
export async function raceDeadline<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  const ac = new AbortController();
  try {
    return await Promise.race([p, delay(ms, undefined, { signal: ac.signal }).then(() => undefined)]);
  } finally {
    ac.abort();
  }
}
