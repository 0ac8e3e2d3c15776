// Creates a WireGuard interface: the kernel's when it has the module, else wireguard-go in the
// foreground as our child (so stop() owns its lifetime). wireguard-go's control socket lives in
// /var/run/wireguard/IFNAME.sock, shared by every network namespace: names must be unique per host.
import { spawn, type ChildProcess } from 'node:child_process';
import { access, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { execFailure, netnsArgv, tryRun } from './exec.js';
import { IP_FAILED, SystemError, WG_USERSPACE_FAILED } from './errors.js';
import { assertIfname, deleteLink, linkExists } from './ip.js';

const DEFAULT_SOCKET_DIR = '/var/run/wireguard';
const POLL_MS = 20;
const MAX_OUTPUT_CHARS = 8_000;
/** How long a wireguard-go orphan gets to exit once its tun is deleted. */
const LEFTOVER_EXIT_MS = 2_000;

/** How to create the interface. */
export interface WgInterfaceOptions {
  /** Network namespace to create it in (wireguard-go runs there too). */
  netns?: string | undefined;
  /** `auto` (default) tries the kernel, then wireguard-go; the others force one. */
  implementation?: 'auto' | 'kernel' | 'userspace' | undefined;
  /** How long to wait for wireguard-go's socket and link (default 5 s). */
  startTimeoutMs?: number | undefined;
  /** How long close() waits after SIGTERM before SIGKILL (default 5 s). */
  stopTimeoutMs?: number | undefined;
  /** wireguard-go executable (default `wireguard-go` from PATH). */
  wireguardGoPath?: string | undefined;
  /** Where wireguard-go puts its control socket (default /var/run/wireguard; fixed in wireguard-go). */
  socketDir?: string | undefined;
}

/** A WireGuard interface this process created; close() removes it. */
export interface WgInterface {
  readonly name: string;
  readonly netns: string | undefined;
  readonly implementation: 'kernel' | 'userspace';
  /** wireguard-go's process id (userspace only). */
  readonly pid: number | undefined;
  /** False once wireguard-go has exited (always true for a kernel interface until close()). */
  isAlive(): boolean;
  /** Stops wireguard-go (SIGTERM, then SIGKILL) and deletes the link and socket. Idempotent. */
  close(): Promise<void>;
}

// What `ip link add … type wireguard` says when the kernel has no WireGuard module.
const NO_KERNEL_WG = /Unknown device type|Operation not supported|not supported/i;

async function fileExists(path: string): Promise<boolean> {
  return access(path).then(() => true, () => false);
}

async function tryKernel(name: string, netns: string | undefined, required: boolean): Promise<WgInterface | undefined> {
  const args = ['link', 'add', 'dev', name, 'type', 'wireguard'];
  const r = await tryRun('ip', args, { netns });
  if (r.exitCode !== 0) {
    if (!required && NO_KERNEL_WG.test(r.stderr)) return undefined;
    throw execFailure('ip', args, r, { netns, errorCode: IP_FAILED });
  }
  let open = true;
  return {
    name,
    netns,
    implementation: 'kernel',
    pid: undefined,
    isAlive: () => open,
    close: async () => {
      open = false;
      await deleteLink(name, { netns });
    },
  };
}

/** Waits for `child` to exit, up to `ms`; resolves whether it did. */
function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

async function startUserspace(name: string, opts: WgInterfaceOptions): Promise<WgInterface> {
  const netns = opts.netns;
  const socket = join(opts.socketDir ?? DEFAULT_SOCKET_DIR, `${name}.sock`);
  const startTimeoutMs = opts.startTimeoutMs ?? 5_000;
  const stopTimeoutMs = opts.stopTimeoutMs ?? 5_000;
  if (await linkExists(name, { netns })) {
    throw new SystemError(WG_USERSPACE_FAILED, `interface ${name} already exists${netns ? ` in netns ${netns}` : ''}`);
  }
  const [file, ...args] = netnsArgv(opts.wireguardGoPath ?? 'wireguard-go', ['-f', name], netns);
  // -f keeps it in the foreground as our child; the variable does the same for older builds.
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, WG_PROCESS_FOREGROUND: '1' } });
  let output = '';
  const keep = (b: Buffer) => {
    output = (output + b.toString('utf8')).slice(-MAX_OUTPUT_CHARS);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let spawnError: Error | undefined;
  child.on('error', (err) => {
    spawnError = err;
  });
  const exited = () => spawnError !== undefined || child.exitCode !== null || child.signalCode !== null;

  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    if (!exited()) {
      child.kill('SIGTERM');
      if (!(await waitExit(child, stopTimeoutMs))) {
        child.kill('SIGKILL');
        await waitExit(child, stopTimeoutMs);
      }
    }
    // wireguard-go removes both on a clean exit; after SIGKILL or a crash they stay behind.
    await deleteLink(name, { netns });
    await rm(socket, { force: true });
  };

  const deadline = Date.now() + startTimeoutMs;
  for (;;) {
    if (exited()) {
      await close();
      throw new SystemError(WG_USERSPACE_FAILED, `wireguard-go for ${name} exited during start (status ${child.exitCode ?? child.signalCode ?? 'not started'}): ${output.trim().slice(-1000)}`, spawnError ? { cause: spawnError } : undefined);
    }
    if ((await fileExists(socket)) && (await linkExists(name, { netns }))) break;
    if (Date.now() > deadline) {
      await close();
      throw new SystemError(WG_USERSPACE_FAILED, `wireguard-go for ${name}: no socket ${socket} and link within ${startTimeoutMs} ms: ${output.trim().slice(-1000)}`);
    }
    await delay(POLL_MS);
  }
  return { name, netns, implementation: 'userspace', pid: child.pid, isAlive: () => !closed && !exited(), close };
}

/**
 * Creates the WireGuard interface `name` (in `opts.netns`), kernel first unless told otherwise,
 * and resolves once it can be configured with `wg` and `ip`. The caller must close() it.
 * Throws `WG_USERSPACE_FAILED` when wireguard-go does not come up, `IP_FAILED` when `ip` refuses.
 */
export async function createWgInterface(name: string, opts: WgInterfaceOptions = {}): Promise<WgInterface> {
  assertIfname(name);
  const mode = opts.implementation ?? 'auto';
  if (mode !== 'userspace') {
    const kernel = await tryKernel(name, opts.netns, mode === 'kernel');
    if (kernel) return kernel;
  }
  return startUserspace(name, opts);
}

/** Whether something accepts connections on the unix socket `path` (a live wireguard-go). */
function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ path });
    const done = (answered: boolean) => {
      socket.destroy();
      resolve(answered);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * Removes what a process killed with SIGKILL (or the OOM killer) left of interface `name`: the
 * link (kernel, or a wireguard-go orphan still holding the tun) and a dead wireguard-go control
 * socket. Without it, creating the interface again fails with "File exists" and a daemon under
 * systemd restarts in a loop until someone deletes the interface by hand. The name is the caller's
 * own. Resolves true when a link was removed (the caller logs it).
 */
export async function removeLeftoverInterface(name: string, opts: Pick<WgInterfaceOptions, 'netns' | 'socketDir'> = {}): Promise<boolean> {
  const { netns } = opts;
  const socket = join(opts.socketDir ?? DEFAULT_SOCKET_DIR, `${name}.sock`);
  const removed = await linkExists(name, { netns });
  if (removed) {
    await deleteLink(name, { netns });
    // A wireguard-go orphan exits once its tun is gone; give it a bounded time to do so.
    const deadline = Date.now() + LEFTOVER_EXIT_MS;
    while (Date.now() < deadline && (await socketAnswers(socket))) await delay(POLL_MS);
  }
  // Nothing listening: a dead process's socket. One that answers belongs to a live interface of
  // this name (another namespace shares the directory); wireguard-go then refuses to start.
  if ((await access(socket).then(() => true, () => false)) && !(await socketAnswers(socket))) await rm(socket, { force: true });
  return removed;
}
