/**
 * The inbox's and the status store's file: {@link Journal} (fsynced JSON lines, torn last line cut
 * off on load, group commit) plus compaction, damage handling and coded write errors.
 *
 * Appends are cheap and crash-safe, and concurrent ones are coalesced: each resolves after the one
 * fdatasync that covers it (see {@link Journal}). Both stores change records (ack, submitted,
 * receipts) and must forget old ones, so from time to time the live state is written to a fresh
 * file with `writeFileDurable` (temp + fsync + rename + dir fsync): a crash leaves the old journal
 * or the new one, never a mix. Appends and rewrites go through one queue, so an append can never
 * land in the file a rewrite is about to replace.
 *
 * Damage (issue 9): a record in the middle that is not JSON or fails its schema is skipped; the
 * skipped lines are copied verbatim to `<file>.damaged-<ISO time>` (0600), logged once and counted,
 * and the store starts with the rest. Refusing to start would not help: under systemd it is a
 * crash loop, and what a store loses this way the hub still has or the app can ask again (each
 * store's module comment says what skipping costs it). The next compaction (both stores compact at
 * open) leaves the damaged lines out of the journal, so they are reported once.
 *
 * A write that fails with ENOSPC/EDQUOT is `RELAY_STORAGE_FULL`, anything else
 * `RELAY_STORE_FAILED`; either way the file is as it was and the in-memory change did not happen.
 */
import { readdir, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Static, TSchema } from 'typebox';
import type { Logger } from 'pino';
import { Journal, type JournalStats } from '../../pki/journal.js';
import { writeFileDurable } from '../../pki/files.js';
import { RELAY_STORE_CORRUPT, RelayError, isStorageFull, storeWriteError } from './errors.js';
import type { RelayStats, StoreName } from './types.js';

/** Options of {@link RecordLog}. */
export interface RecordLogOptions<S extends TSchema> {
  path: string;
  schema: S;
  /** Which store this is (logs and metrics labels). */
  store: StoreName;
  log: Logger;
  /** Told of damaged records skipped at load and of writes refused for a full disk. */
  stats?: RelayStats | undefined;
}

/** A journal the relay can append to and rewrite; see the module comment. */
export class RecordLog<S extends TSchema> {
  readonly #journal: Journal<S>;
  readonly #store: StoreName;
  readonly #log: Logger;
  readonly #stats: RelayStats | undefined;
  #appended = 0;

  constructor(opts: RecordLogOptions<S>) {
    this.#journal = new Journal(opts.path, opts.schema);
    this.#store = opts.store;
    this.#log = opts.log;
    this.#stats = opts.stats;
  }

  get path(): string {
    return this.#journal.path;
  }

  /** Records appended since the last load or rewrite (to decide when compaction pays). */
  get appendedSinceRewrite(): number {
    return this.#appended;
  }

  /** The journal's I/O counters (writes, syncs, records, rewrites). */
  get ioStats(): JournalStats {
    return this.#journal.stats;
  }

  /**
   * Reads every intact record. A torn last line is cut off and logged (its append never resolved,
   * so nobody was told it happened). Damaged lines elsewhere are skipped and reported (module
   * comment). Throws `RELAY_STORE_CORRUPT` only when the file cannot be read at all.
   */
  async load(): Promise<Static<S>[]> {
    await removeStaleTemps(this.path);
    let loaded;
    try {
      loaded = await this.#journal.load({ onDamage: 'skip' });
    } catch (err) {
      throw new RelayError(RELAY_STORE_CORRUPT, `${this.path}: cannot be read: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    if (loaded.repaired !== undefined) this.#log.warn({ path: this.path, repaired: loaded.repaired }, 'journal repaired');
    if (loaded.damaged.length > 0) await this.#setAside(loaded.damaged);
    this.#appended = loaded.records.length;
    return loaded.records;
  }

  /**
   * Appends one record; resolves once it is fsynced (concurrent appends share one write and one
   * fdatasync). `apply` (the in-memory change the record stands for) runs right after that fsync,
   * in append order, so a rewrite queued later always sees it. Throws `RELAY_STORAGE_FULL` or
   * `RELAY_STORE_FAILED` (then `apply` did not run and the file holds no trace of the record).
   */
  async append(record: Static<S>, apply?: () => void): Promise<void> {
    try {
      await this.#journal.append(record, () => {
        this.#appended++;
        apply?.();
      });
    } catch (err) {
      throw this.#failed(err);
    }
  }

  /**
   * Replaces the whole file, atomically, with what `build` returns when the rewrite's turn comes
   * (after every append queued before it has been applied). Throws `RELAY_STORAGE_FULL` or
   * `RELAY_STORE_FAILED` (the old file stays).
   */
  async rewrite(build: () => readonly Static<S>[]): Promise<void> {
    let count = 0;
    try {
      await this.#journal.rewrite(() => {
        const records = build();
        count = records.length;
        return records;
      });
    } catch (err) {
      throw this.#failed(err);
    }
    this.#appended = count;
  }

  /** Waits for queued writes and releases the file descriptor (a later write reopens it). */
  close(): Promise<void> {
    return this.#journal.close();
  }

  #failed(err: unknown): RelayError {
    const coded = storeWriteError(this.path, err);
    if (isStorageFull(coded)) this.#stats?.storageFull?.(this.#store);
    return coded;
  }

  /** Copies damaged lines verbatim beside the journal, logs once and counts them. */
  async #setAside(damaged: readonly { line: number; bytes: Buffer; problem: string }[]): Promise<void> {
    const copy = `${this.path}.damaged-${new Date().toISOString()}`;
    const lines = damaged.slice(0, 100).map((d) => d.line);
    const problems = damaged.slice(0, 10).map((d) => `${d.line}: ${d.problem}`);
    this.#stats?.storeDamaged?.(this.#store, damaged.length);
    try {
      await writeFileDurable(copy, Buffer.concat(damaged.flatMap((d) => [d.bytes, Buffer.from('\n')])), { mode: 0o600, exclusive: true });
    } catch (err) {
      // The store must still start (a full disk is a likely reason); the lines stay in the journal
      // until the next compaction drops them. Their content is not logged: it may be a message.
      this.#log.error({ err, path: this.path, lines, count: damaged.length, problems }, 'damaged journal records skipped; saving a copy failed');
      return;
    }
    this.#log.error({ path: this.path, lines, count: damaged.length, problems, copy }, 'damaged journal records skipped and copied aside');
  }
}

/** Removes `<file>.tmp-*` siblings a crash in the middle of `writeFileDurable` left behind. */
export async function removeStaleTemps(path: string): Promise<void> {
  const prefix = `${basename(path)}.tmp-`;
  let names: string[];
  try {
    names = await readdir(dirname(path));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  for (const name of names) if (name.startsWith(prefix)) await unlink(join(dirname(path), name)).catch(() => undefined);
}
