/**
 * The hub of the 195-country benchmark: the real daemon (`ncbnet hub run`, through tsx as the
 * tests run it) as a process of its own, so that its memory is its own and it can be profiled with
 * `--cpu-prof`; its operator API over mutual TLS; and RSS read from /proc.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { open, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import { readEndpoints, type Endpoints } from '../../hub/runtime.js';
import { identityPaths } from '../../hub/state-init.js';
import { httpsCall, type HttpsAnswer } from '../../test/helpers/https.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface HubProcess {
  child: ChildProcess;
  pid: number;
  endpoints: Endpoints;
  stateDir: string;
  logPath: string;
  /** Directory `--cpu-prof` writes to, when profiling. */
  profileDir: string | undefined;
  rootPem: string;
  /** One operator call to `/v1/admin…`; throws on an unexpected status. */
  admin(method: 'GET' | 'POST', path: string, body?: unknown, expect?: number): Promise<HttpsAnswer>;
  /** The supervised nats-server's pid (from the broker's pid file). */
  natsPid(): Promise<number | undefined>;
  /** The last `n` characters of the hub's log. */
  logTail(n?: number): Promise<string>;
  /** SIGTERM, wait (SIGKILL after `ms`); resolves with the path of the CPU profile if one was written. */
  stop(ms?: number): Promise<string | undefined>;
}

export interface StartHubOptions {
  stateDir: string;
  workDir: string;
  logLevel: string;
  /** Run the hub with `--cpu-prof` (profile written when it exits). */
  cpuProfile: boolean;
  /** More hub.json sections (e.g. `router`), added to the loopback settings. */
  config?: Record<string, unknown>;
}

/** Starts `ncbnet hub run` on `stateDir` (made by `initHubState`) on free loopback ports, WireGuard off. */
export async function startHub(opts: StartHubOptions): Promise<HubProcess> {
  const configPath = join(opts.workDir, 'hub.json');
  await writeFile(
    configPath,
    JSON.stringify({
      api: { host: '127.0.0.1', port: 0 },
      broker: { host: '127.0.0.1', port: 0, monitorPort: 0 },
      metrics: { host: '127.0.0.1', port: 0 },
      log: { level: opts.logLevel },
      ...opts.config,
    }),
  );
  const logPath = join(opts.workDir, 'hub.log');
  const logFile = await open(logPath, 'w');
  const profileDir = opts.cpuProfile ? join(opts.workDir, 'hub-profile') : undefined;
  const argv = ['--import', 'tsx', ...(profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : []), 'hub/cli/main.ts', 'hub', 'run', '--state', opts.stateDir, '--config', configPath];
  const child = spawn(process.execPath, argv, { cwd: ROOT, stdio: ['ignore', logFile.fd, logFile.fd] });
  await logFile.close();
  const killOnExit = () => child.kill('SIGKILL');
  process.on('exit', killOnExit);
  let hasExited = false;
  const exited = new Promise<void>((resolve) => child.once('exit', () => {
    hasExited = true;
    resolve();
  }));
  const logTail = async (n = 4000) => (await readFile(logPath, 'utf8').catch(() => '')).slice(-n);

  let endpoints: Endpoints | undefined;
  for (const deadline = Date.now() + 60_000; ; ) {
    endpoints = await readEndpoints(opts.stateDir);
    if (endpoints && endpoints.pid === child.pid) break;
    if (hasExited) throw new Error(`hub exited before it was ready:\n${await logTail()}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`hub not ready after 60 s:\n${await logTail()}`);
    }
    await delay(100);
  }
  const ids = identityPaths(opts.stateDir);
  const operator = { ca: await readFile(ids.operatorCa, 'utf8'), cert: await readFile(ids.operatorCert, 'utf8'), key: await readFile(ids.operatorKey, 'utf8') };
  const rootPem = await readFile(join(opts.stateDir, 'pki', 'root.crt'), 'utf8');
  const apiUrl = endpoints.apiUrl;

  return {
    child,
    pid: child.pid,
    endpoints,
    stateDir: opts.stateDir,
    logPath,
    profileDir,
    rootPem,
    async admin(method, path, body, expect) {
      const answer = await httpsCall(`${apiUrl}/v1/admin${path}`, { ...operator, method, ...(body === undefined ? {} : { body }) });
      const ok = expect === undefined ? answer.status >= 200 && answer.status < 300 : answer.status === expect;
      if (!ok) throw new Error(`${method} /v1/admin${path}: HTTP ${answer.status} ${answer.text.slice(0, 300)}`);
      return answer;
    },
    async natsPid() {
      const text = await readFile(join(opts.stateDir, 'broker', 'nats-server.pid'), 'utf8').catch(() => '');
      const pid = Number(text.trim());
      return Number.isInteger(pid) && pid > 0 ? pid : undefined;
    },
    logTail,
    async stop(ms = 20_000) {
      if (!hasExited) child.kill('SIGTERM');
      const done = await Promise.race([exited.then(() => true), delay(ms).then(() => false)]);
      if (!done) {
        child.kill('SIGKILL');
        await exited;
      }
      process.off('exit', killOnExit);
      if (!profileDir || !done) return undefined;
      // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile: thread 0 is the main thread (the others
      // are workers, such as the module loader's hooks thread under tsx).
      const files = (await readdir(profileDir).catch(() => [])).filter((f) => f.endsWith('.cpuprofile'));
      const main = files.find((f) => f.split('.')[4] === '0') ?? files[0];
      return main === undefined ? undefined : join(profileDir, main);
    },
  };
}

/** VmRSS and VmHWM of a process in MiB, from /proc (undefined when it is gone). */
export async function processMemory(pid: number | undefined): Promise<{ rssMiB: number; hwmMiB: number } | undefined> {
  if (pid === undefined) return undefined;
  const text = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
  return { rssMiB: kib('VmRSS') / 1024, hwmMiB: kib('VmHWM') / 1024 };
}
