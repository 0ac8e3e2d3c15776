/**
 * An exclusive lock between processes on one machine, for read-modify-write of a small file that
 * several CLI runs may change at once (the agent's users file): `<path>.lock`, created with
 * O_EXCL and holding the owner's pid, removed when the work is done.
 *
 * A lock whose pid no longer runs (its owner was killed between create and remove) is stale and
 * taken over; a lock held by a live process is waited for, polling, up to `waitMs`, then refused
 * with `FILE_LOCKED`, naming the file and the pid — never broken, since two writers would lose an
 * update. A lock file that cannot be read (empty: its owner died between create and write) is
 * stale once it is older than `staleMs`.
 */
import { open, readFile, stat, unlink } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { CodedError } from '../protocol/errors.js';

/** Another live process holds the lock and did not release it in time. */
export const FILE_LOCKED = 'FILE_LOCKED';

/** Options of {@link withFileLock}. */
export interface FileLockOptions {
  /** How long to wait for a live holder (default 10 s). */
  waitMs?: number;
  /** Age after which an unreadable lock file is taken as stale (default 10 s). */
  staleMs?: number;
  /** Polling interval while waiting (default 50 ms). */
  pollMs?: number;
}

/** Runs `fn` holding `<path>.lock`; see the module comment. */
export async function withFileLock<T>(path: string, fn: () => Promise<T>, opts: FileLockOptions = {}): Promise<T> {
  const lockPath = `${path}.lock`;
  await acquire(lockPath, opts);
  try {
    return await fn();
  } finally {
    await unlink(lockPath).catch(() => undefined);
  }
}

async function acquire(lockPath: string, opts: FileLockOptions): Promise<void> {
  const deadline = Date.now() + (opts.waitMs ?? 10_000);
  for (;;) {
    try {
      const fd = await open(lockPath, 'wx', 0o600);
      try {
        await fd.writeFile(`${process.pid}\n`);
      } finally {
        await fd.close();
      }
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = await holderOf(lockPath, opts.staleMs ?? 10_000);
    if (holder === 'stale') {
      // Two waiters may both find it stale; unlink + O_EXCL create lets only one of them win.
      await unlink(lockPath).catch(() => undefined);
      continue;
    }
    if (Date.now() > deadline) {
      throw new CodedError(FILE_LOCKED, `${lockPath}: held by ${holder === 'unknown' ? 'another process' : `process ${holder}`}; try again when it has finished (or remove the file if no such process runs)`);
    }
    await delay(opts.pollMs ?? 50);
  }
}

/** The live pid holding the lock, `unknown` for a fresh unreadable file, `stale` otherwise. */
async function holderOf(lockPath: string, staleMs: number): Promise<number | 'unknown' | 'stale'> {
  let text: string;
  try {
    text = await readFile(lockPath, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'stale'; // released meanwhile: try again
    throw err;
  }
  const pid = Number(text.trim());
  if (!Number.isSafeInteger(pid) || pid <= 0) {
    const age = await stat(lockPath).then((s) => Date.now() - s.mtimeMs, () => Infinity);
    return age > staleMs ? 'stale' : 'unknown';
  }
  return isProcessAlive(pid) ? pid : 'stale';
}

/** Whether a process with this pid runs (EPERM: it does, as another user). */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
