// Throwaway network namespaces for tests that need real WireGuard and nftables: each test gets a
// random id, every namespace, veth and wireguard-go socket it makes carries that id, and a
// teardown registered on the test removes all of it, whether the test passed or not.
import { spawn as spawnChild, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import { isIP } from 'node:net';
import { delimiter, join } from 'node:path';
import { accessSync, constants } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { run, tryRun, type ExecOptions, type ExecResult } from '../../system/exec.js';
import type { Teardownable } from './tmpdir.js';

const WG_SOCKET_DIR = '/var/run/wireguard';
const TOOLS = ['ip', 'nft', 'wg', 'wireguard-go'] as const;

/** True when this process runs as root (network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN). */
export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** True when `cmd` is an executable on PATH or in an sbin directory. */
export function hasCommand(cmd: string): boolean {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin'];
  return dirs.some((dir) => {
    try {
      accessSync(join(dir, cmd), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Why netns tests cannot run here (not root, or a tool missing), or false when they can. */
export function netnsSkipReason(): string | false {
  if (!isRoot()) return 'needs root to create network namespaces (CI runs as root)';
  const missing = TOOLS.filter((tool) => !hasCommand(tool));
  return missing.length ? `needs ${missing.join(', ')} (make sysdeps installs them)` : false;
}

/** The slice of a tap test that {@link skipUnlessRoot} needs. */
export interface Plannable {
  plan(n: number, comment?: string): void;
}

/** Skips the calling test with the reason when it cannot run here; returns true when it skipped. */
export function skipUnlessRoot(t: Plannable): boolean {
  const reason = netnsSkipReason();
  if (reason === false) return false;
  // tap: a plan of 0 skips the test, with the comment as the reason.
  t.plan(0, reason);
  return true;
}

/** A long-running process started in a namespace; killed at teardown if still running. */
export interface NsProcess {
  readonly pid: number | undefined;
  /** Everything it printed so far (stdout and stderr). */
  output(): string;
  /** Resolves once its output matches `re`; rejects if it exits first or after `timeoutMs`. */
  waitForOutput(re: RegExp, timeoutMs?: number): Promise<void>;
  /** SIGTERM, then SIGKILL after 2 s. */
  kill(): Promise<void>;
}

/** Polls `check` until it returns true or `timeoutMs` passes; resolves whether it became true. */
export async function pollUntil(check: () => boolean | Promise<boolean>, opts: { timeoutMs?: number; intervalMs?: number } = {}): Promise<boolean> {
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await delay(opts.intervalMs ?? 100);
  }
}

/** Namespaces, links and processes of one test, all named after its random id. Make it with {@link createNetnsLab}. */
export class NetnsLab {
  /** 6 hex digits, unique per test; part of every name the lab hands out. */
  readonly id = randomBytes(3).toString('hex');
  readonly #namespaces: string[] = [];
  readonly #processes: ChildProcess[] = [];

  /** An interface name `<prefix><id>` (prefix of at most 9 characters keeps it within 15). */
  ifname(prefix: string): string {
    if (!/^[a-z][a-z0-9]{0,8}$/.test(prefix)) throw new Error(`interface prefix must be 1-9 of [a-z0-9] (got ${JSON.stringify(prefix)})`);
    return `${prefix}${this.id}`;
  }

  /** Creates namespace `ncbt-<id>-<name>` with loopback up, and returns its name. */
  async ns(name: string): Promise<string> {
    const full = `ncbt-${this.id}-${name}`;
    await run('ip', ['netns', 'add', full]);
    this.#namespaces.push(full);
    await this.exec(full, ['ip', 'link', 'set', 'lo', 'up']);
    return full;
  }

  /**
   * A veth pair between two of the lab's namespaces, each end with an address (`10.200.1.1/24`)
   * and up. Returns the two interface names.
   */
  async veth(a: { ns: string; address: string }, b: { ns: string; address: string }): Promise<{ a: string; b: string }> {
    const n = String(this.#namespaces.indexOf(a.ns)) + String(this.#namespaces.indexOf(b.ns));
    const ifA = this.ifname(`v${n}a`);
    const ifB = this.ifname(`v${n}b`);
    await run('ip', ['link', 'add', 'name', ifA, 'netns', a.ns, 'type', 'veth', 'peer', 'name', ifB, 'netns', b.ns]);
    for (const [end, ifname] of [[a, ifA], [b, ifB]] as const) {
      await this.exec(end.ns, ['ip', 'address', 'add', end.address, 'dev', ifname]);
      await this.exec(end.ns, ['ip', 'link', 'set', ifname, 'up']);
    }
    return { a: ifA, b: ifB };
  }

  /**
   * A veth pair between the test's own (root) namespace and one of the lab's, so the test process
   * can reach a daemon inside it. The root end gets `rootAddress`; both ends go when the namespace
   * is deleted. Traffic stays on this link: only the two addresses are on it.
   */
  async rootLink(ns: string, rootAddress: string, nsAddress: string): Promise<{ root: string; inner: string }> {
    const n = String(this.#namespaces.indexOf(ns));
    const root = this.ifname(`r${n}a`);
    const inner = this.ifname(`r${n}b`);
    await run('ip', ['link', 'add', 'name', root, 'type', 'veth', 'peer', 'name', inner, 'netns', ns]);
    await run('ip', ['address', 'add', rootAddress, 'dev', root]);
    await run('ip', ['link', 'set', root, 'up']);
    await this.exec(ns, ['ip', 'address', 'add', nsAddress, 'dev', inner]);
    await this.exec(ns, ['ip', 'link', 'set', inner, 'up']);
    return { root, inner };
  }

  /** Runs argv in `ns`; throws with stderr on a non-zero exit. */
  exec(ns: string, argv: readonly string[], opts: Omit<ExecOptions, 'netns'> = {}): Promise<ExecResult> {
    const [cmd, ...args] = argv;
    if (cmd === undefined) throw new Error('exec needs a command');
    return run(cmd, args, { ...opts, netns: ns });
  }

  /** Runs argv in `ns` and resolves whatever its exit status. */
  tryExec(ns: string, argv: readonly string[], opts: Omit<ExecOptions, 'netns'> = {}): Promise<ExecResult> {
    const [cmd, ...args] = argv;
    if (cmd === undefined) throw new Error('exec needs a command');
    return tryRun(cmd, args, { ...opts, netns: ns });
  }

  /** Starts a long-running argv in `ns`; it is killed at teardown. */
  spawn(ns: string, argv: readonly string[]): NsProcess {
    const child = spawnChild('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#processes.push(child);
    let out = '';
    const keep = (b: Buffer) => {
      out = (out + b.toString('utf8')).slice(-16_000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', (err) => keep(Buffer.from(`spawn error: ${err.message}\n`)));
    const exited = () => child.exitCode !== null || child.signalCode !== null;
    return {
      pid: child.pid,
      output: () => out,
      waitForOutput: async (re, timeoutMs = 5_000) => {
        const ok = await pollUntil(() => re.test(out) || exited(), { timeoutMs, intervalMs: 20 });
        if (!ok || !re.test(out)) throw new Error(`${argv.join(' ')} in ${ns}: no ${String(re)} (${exited() ? 'exited' : 'timed out'}): ${out}`);
      },
      kill: () => stopChild(child),
    };
  }

  /**
   * Removes everything: processes it spawned, then every process still inside its namespaces
   * (wireguard-go started by code under test), the namespaces (with their links), and leftover
   * wireguard-go sockets named with the id. Errors are collected and thrown together at the end.
   */
  async cleanup(): Promise<void> {
    const errors: unknown[] = [];
    await Promise.all(this.#processes.map((c) => stopChild(c).catch((e: unknown) => errors.push(e))));
    for (const ns of this.#namespaces.splice(0).reverse()) {
      try {
        const { stdout } = await tryRun('ip', ['netns', 'pids', ns]);
        for (const pid of stdout.split(/\s+/).filter(Boolean).map(Number)) await stopPid(pid);
        await run('ip', ['netns', 'delete', ns]);
      } catch (err) {
        errors.push(err);
      }
    }
    const sockets = await readdir(WG_SOCKET_DIR).catch(() => [] as string[]);
    for (const s of sockets.filter((f) => f.includes(this.id) && f.endsWith('.sock'))) {
      await rm(join(WG_SOCKET_DIR, s), { force: true }).catch((e: unknown) => errors.push(e));
    }
    if (errors.length) throw new AggregateError(errors, `netns cleanup for ${this.id} left errors`);
  }

  /**
   * The last resort, synchronous: kills whatever runs in the lab's namespaces and deletes them.
   * For a test process that ends without its teardown (tap's timeout sends SIGTERM), so no
   * namespace, interface or wireguard-go outlives a run.
   */
  cleanupSync(): void {
    for (const child of this.#processes) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    for (const ns of this.#namespaces.splice(0).reverse()) {
      const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout ?? '';
      for (const pid of pids.split(/\s+/).filter(Boolean).map(Number)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      spawnSync('ip', ['netns', 'delete', ns]);
    }
  }
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 2_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** Whether process `pid` exists (signal 0 checks without sending anything). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

// A process we did not spawn ourselves (wireguard-go started by the code under test): signal it by
// pid and poll until it is gone, so its tun device and socket go away before the namespace does.
async function stopPid(pid: number): Promise<void> {
  if (!alive(pid)) return;
  process.kill(pid, 'SIGTERM');
  if (await pollUntil(() => !alive(pid), { timeoutMs: 2_000, intervalMs: 20 })) return;
  process.kill(pid, 'SIGKILL');
  await pollUntil(() => !alive(pid), { timeoutMs: 2_000, intervalMs: 20 });
}

/** A new {@link NetnsLab} whose cleanup runs when `t` ends, pass or fail (and, failing that, when the process exits). */
export function createNetnsLab(t: Teardownable): NetnsLab {
  const lab = new NetnsLab();
  const onExit = () => lab.cleanupSync();
  const onSignal = () => {
    lab.cleanupSync();
    process.exit(1);
  };
  process.once('exit', onExit);
  process.once('SIGTERM', onSignal);
  t.teardown(async () => {
    process.off('exit', onExit);
    process.off('SIGTERM', onSignal);
    await lab.cleanup();
  });
  return lab;
}

/** Whether `ns` can open a TCP connection to host:port within `timeoutSeconds` (bash's /dev/tcp). */
export async function canConnectTcp(lab: NetnsLab, ns: string, host: string, port: number, timeoutSeconds = 1): Promise<boolean> {
  // Both go into a bash command line: accept nothing but an address and a port.
  if (isIP(host) === 0 || !Number.isInteger(port)) throw new Error(`canConnectTcp: bad target ${host}:${port}`);
  const r = await lab.tryExec(ns, ['timeout', String(timeoutSeconds), 'bash', '-c', `exec 3<>/dev/tcp/${host}/${port}`]);
  return r.exitCode === 0;
}

/** Whether `ns` gets an ICMP echo reply from `host` (`ping -c 1 -W 1`); needs iputils-ping. */
export async function canPing(lab: NetnsLab, ns: string, host: string): Promise<boolean> {
  const r = await lab.tryExec(ns, ['ping', '-n', '-q', '-c', '1', '-W', '1', host]);
  return r.exitCode === 0;
}
