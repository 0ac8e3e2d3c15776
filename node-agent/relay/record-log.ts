/**
 * The inbox's and the status store's file: {@link Journal} (fsynced JSON lines, torn last line cut
 * off on load) plus compaction. Journal appends are cheap and crash-safe, but both stores change
 * records (ack, submitted, rejected) and must forget old ones, so from time to time the live state
 * is written to a fresh file with `writeFileDurable` (temp + fsync + rename + dir fsync): a crash
 * leaves the old journal or the new one, never a mix. Appends and rewrites go through one queue,
 * so an append can never land in the file a rewrite is about to replace.
 */
import { readdir, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Static, TSchema } from 'typebox';
import type { Logger } from 'pino';
import { Journal } from '../../pki/journal.js';
import { writeFileDurable } from '../../pki/files.js';
import { RELAY_STORE_CORRUPT, RELAY_STORE_FAILED, RelayError } from './errors.js';

/** A journal the relay can append to and rewrite; see the module comment. */
export class RecordLog<S extends TSchema> {
  readonly #journal: Journal<S>;
  readonly #log: Logger;
  #queue: Promise<void> = Promise.resolve();
  #appended = 0;

  constructor(path: string, schema: S, log: Logger) {
    this.#journal = new Journal(path, schema);
    this.#log = log;
  }

  get path(): string {
    return this.#journal.path;
  }

  /** Records appended since the last load or rewrite (to decide when compaction pays). */
  get appendedSinceRewrite(): number {
    return this.#appended;
  }

  /**
   * Reads every record. A torn last line is cut off and logged (its append never resolved, so
   * nobody was told it happened); damage elsewhere throws `RELAY_STORE_CORRUPT`, because skipping
   * a line could forget an ack (a duplicate for the app) or a message (a loss), and the hub keeps
   * everything unacked, so refusing to start loses nothing while an operator looks.
   */
  async load(): Promise<Static<S>[]> {
    await removeStaleTemps(this.path);
    try {
      const loaded = await this.#journal.load();
      if (loaded.repaired !== undefined) this.#log.warn({ path: this.path, repaired: loaded.repaired }, 'journal repaired');
      this.#appended = loaded.records.length;
      return loaded.records;
    } catch (err) {
      throw new RelayError(RELAY_STORE_CORRUPT, `${this.path}: cannot be read: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  }

  /**
   * Appends one record; resolves once it is fsynced. `apply` (the in-memory change the record
   * stands for) runs inside the queue right after the fsync, so a rewrite queued later always
   * sees it. Throws `RELAY_STORE_FAILED` (then `apply` did not run).
   */
  append(record: Static<S>, apply?: () => void): Promise<void> {
    return this.#enqueue(async () => {
      await this.#journal.append(record);
      this.#appended++;
      apply?.();
    });
  }

  /**
   * Replaces the whole file, atomically, with what `build` returns when the rewrite's turn comes
   * (after every append queued before it has been applied). Throws `RELAY_STORE_FAILED`.
   */
  rewrite(build: () => readonly Static<S>[]): Promise<void> {
    return this.#enqueue(async () => {
      const records = build();
      await writeFileDurable(this.path, records.map((r) => `${JSON.stringify(r)}\n`).join(''), { mode: 0o600 });
      this.#appended = records.length;
    });
  }

  #enqueue(job: () => Promise<void>): Promise<void> {
    const run = this.#queue.then(job).catch((err: unknown) => {
      throw new RelayError(RELAY_STORE_FAILED, `${this.path}: write failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    });
    this.#queue = run.catch(() => undefined);
    return run;
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
