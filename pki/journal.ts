import { close, constants, fdatasync, fstat, ftruncate, open, write } from 'node:fs';
import { mkdir, readFile, truncate } from 'node:fs/promises';
import { dirname } from 'node:path';
import { promisify } from 'node:util';
import type { Static, TSchema } from 'typebox';
import { schemaProblems } from '../protocol/validate.js';
import { JournalError, PKI_LEDGER_CORRUPT } from './errors.js';
import { fsyncDir, writeFileDurable } from './files.js';

// Plain descriptors, not FileHandles: the file stays open between appends, and a FileHandle that
// is garbage-collected open closes itself with a process warning.
const openFd = promisify(open);
const closeFd = promisify(close);
const writeFd = promisify(write);
const datasyncFd = promisify(fdatasync);
const truncateFd = promisify(ftruncate);
const statFd = promisify(fstat);

/** Most bytes one group commit writes (a single larger record still goes, alone). */
const MAX_BATCH_BYTES = 4 * 1024 * 1024;

/** A record `load` skipped (only with `onDamage: 'skip'`): its line number, exact bytes and why. */
export interface DamagedLine {
  line: number;
  /** The line as it was on disk, without its newline. */
  bytes: Buffer;
  problem: string;
}

/** What loading a journal found. `repaired` is set when a torn last record was cut off. */
export interface JournalLoad<T> {
  records: T[];
  repaired?: string;
  /** Damaged lines skipped; always empty unless `load` was asked to skip. */
  damaged: DamagedLine[];
}

/** Options of {@link Journal.load}. */
export interface JournalLoadOptions {
  /**
   * What a bad record before the last line means: `refuse` (default; the CA ledger and the
   * enrollment tokens, where guessing could resurrect a revoked certificate or a used token) throws
   * `PKI_LEDGER_CORRUPT` with the line number; `skip` leaves it out and lists it in `damaged`.
   */
  onDamage?: 'refuse' | 'skip';
}

/** I/O done by a journal since it was made: what group commit saves shows here. */
export interface JournalStats {
  /** `write(2)` calls for appends (one per batch unless the kernel writes short). */
  writes: number;
  /** `fdatasync(2)` calls for appends: one per batch. */
  syncs: number;
  /** Records appended durably. */
  records: number;
  /** Whole-file rewrites. */
  rewrites: number;
}

interface AppendJob {
  kind: 'append';
  line: Buffer;
  apply: (() => void) | undefined;
  resolve: () => void;
  reject: (err: unknown) => void;
}

interface RewriteJob {
  kind: 'rewrite';
  build: () => readonly unknown[];
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * An append-only file of JSON records, one per line, each fsynced before `append` resolves.
 * The shape is the one a JetStream stream will hold when the hub becomes a cluster: records are
 * only ever added, and state is what replaying them gives.
 *
 * Group commit: appends and rewrites run through one ordered queue. Appends that arrive while a
 * write + fdatasync is in progress are written together with one `write` and one `fdatasync`;
 * each caller resolves only after the fdatasync that covers its record, and the `apply` callbacks
 * of a batch run in call order right after it, before the next job starts. The file stays open
 * between appends; a rewrite replaces the inode (rename), so the descriptor is closed then and
 * reopened by the next append.
 *
 * A failed batch (ENOSPC, EIO) is cut off again with ftruncate to the length the file had before
 * it, so a partial record never sits in front of later ones; if even that fails, the next append
 * truncates first. Either way no caller of the batch was told it happened, and the next append
 * works as soon as the disk does.
 *
 * A crash mid-append leaves a last line without its newline; `load` cuts it off (the append never
 * resolved, so nobody was told it happened) and says so. A bad record anywhere else is damage,
 * not a crash artefact: `load` refuses with the line number rather than guess, unless told to skip.
 */
export class Journal<S extends TSchema> {
  readonly #path: string;
  readonly #schema: S;
  readonly #jobs: (AppendJob | RewriteJob)[] = [];
  #running: Promise<void> | undefined;
  #fd: number | undefined;
  /** Length of the file up to its last durable record (valid while `#fd` is open or `#isDirty`). */
  #size = 0;
  /** A failed batch may have left bytes after `#size`: truncate before the next write. */
  #isDirty = false;
  /** The file was created and its directory entry is not fsynced yet. */
  #needsDirSync = false;
  readonly #stats: JournalStats = { writes: 0, syncs: 0, records: 0, rewrites: 0 };

  constructor(path: string, schema: S) {
    this.#path = path;
    this.#schema = schema;
  }

  get path(): string {
    return this.#path;
  }

  /** A copy of the I/O counters (tests and benchmarks check that appends were coalesced). */
  get stats(): JournalStats {
    return { ...this.#stats };
  }

  async load(opts: JournalLoadOptions = {}): Promise<JournalLoad<Static<S>>> {
    let data: Buffer;
    try {
      data = await readFile(this.#path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { records: [], damaged: [] };
      throw err;
    }
    const result: JournalLoad<Static<S>> = { records: [], damaged: [] };
    const end = data.lastIndexOf(0x0a) + 1;
    if (end !== data.length) {
      await truncate(this.#path, end);
      result.repaired = `${this.#path}: cut off a torn last record (${data.length - end} bytes)`;
      data = data.subarray(0, end);
    }
    let start = 0;
    for (let line = 1; start < data.length; line++) {
      const newline = data.indexOf(0x0a, start);
      const bytes = data.subarray(start, newline);
      start = newline + 1;
      const problem = this.#check(bytes, result.records);
      if (problem === undefined) continue;
      if (opts.onDamage !== 'skip') throw new JournalError(PKI_LEDGER_CORRUPT, `${this.#path}:${line}: ${problem.message}`, problem.cause === undefined ? undefined : { cause: problem.cause });
      result.damaged.push({ line, bytes: Buffer.from(bytes), problem: problem.message });
    }
    return result;
  }

  /**
   * Appends one record durably (see the class comment for group commit); appends from one process
   * are written in call order. `apply`, when given, runs right after the fdatasync that covers the
   * record and before any later job (so a rewrite queued after this append sees its effect); when
   * the write fails it does not run.
   */
  append(record: Static<S>, apply?: () => void): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#jobs.push({ kind: 'append', line: Buffer.from(`${JSON.stringify(record)}\n`), apply, resolve, reject });
      this.#kick();
    });
  }

  /**
   * Replaces the whole file, atomically (`writeFileDurable`), with what `build` returns when the
   * rewrite's turn comes: after every append queued before it has been written and applied, before
   * any append queued after it.
   */
  rewrite(build: () => readonly Static<S>[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#jobs.push({ kind: 'rewrite', build, resolve, reject });
      this.#kick();
    });
  }

  /** Waits for queued jobs and closes the descriptor. A later append opens the file again. */
  async close(): Promise<void> {
    while (this.#running !== undefined) await this.#running;
    await this.#closeFd();
  }

  #check(bytes: Buffer, into: Static<S>[]): { message: string; cause?: unknown } | undefined {
    let value: unknown;
    try {
      value = JSON.parse(bytes.toString('utf8'));
    } catch (err) {
      return { message: 'not JSON', cause: err };
    }
    const problems = schemaProblems(this.#schema, value, 'record');
    if (problems.length) return { message: problems.join('; ') };
    into.push(value as Static<S>);
    return undefined;
  }

  #kick(): void {
    if (this.#running !== undefined) return;
    this.#running = this.#drain().finally(() => {
      this.#running = undefined;
      // A job pushed after the drain loop saw an empty queue, before this ran, would wait forever.
      if (this.#jobs.length > 0) this.#kick();
    });
  }

  async #drain(): Promise<void> {
    for (let head = this.#jobs[0]; head !== undefined; head = this.#jobs[0]) {
      if (head.kind === 'rewrite') {
        this.#jobs.shift();
        await this.#rewrite(head);
        continue;
      }
      // Bounded, so a burst of large records does not become one huge buffer.
      let n = 1;
      let bytes = head.line.length;
      for (let next = this.#jobs[n]; next?.kind === 'append' && bytes + next.line.length <= MAX_BATCH_BYTES; next = this.#jobs[n]) {
        bytes += next.line.length;
        n++;
      }
      await this.#appendBatch(this.#jobs.splice(0, n) as AppendJob[]);
    }
  }

  async #appendBatch(batch: AppendJob[]): Promise<void> {
    try {
      const fd = await this.#openForAppend();
      const data = batch.length === 1 ? (batch[0] as AppendJob).line : Buffer.concat(batch.map((j) => j.line));
      this.#isDirty = true;
      for (let offset = 0; offset < data.length; ) {
        const { bytesWritten } = await writeFd(fd, data, offset, data.length - offset);
        this.#stats.writes++;
        offset += bytesWritten;
      }
      await datasyncFd(fd);
      this.#stats.syncs++;
      // A new file's directory entry must be durable too, or a crash can lose the whole file.
      if (this.#needsDirSync) {
        await fsyncDir(dirname(this.#path));
        this.#needsDirSync = false;
      }
      this.#size += data.length;
      this.#isDirty = false;
      this.#stats.records += batch.length;
    } catch (err) {
      await this.#cutFailedBatch();
      for (const job of batch) job.reject(err);
      return;
    }
    for (const job of batch) {
      try {
        job.apply?.();
        job.resolve();
      } catch (err) {
        job.reject(err);
      }
    }
  }

  /** Best effort: remove what a failed batch may have written; on failure the next append retries. */
  async #cutFailedBatch(): Promise<void> {
    if (this.#fd === undefined || !this.#isDirty) return;
    try {
      await truncateFd(this.#fd, this.#size);
      await datasyncFd(this.#fd);
      this.#isDirty = false;
    } catch {
      // Left dirty: #openForAppend truncates before the next write.
    }
  }

  async #openForAppend(): Promise<number> {
    if (this.#fd === undefined) {
      await mkdir(dirname(this.#path), { recursive: true, mode: 0o700 });
      let isCreated = true;
      let fd: number;
      try {
        fd = await openFd(this.#path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_EXCL, 0o600);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        isCreated = false;
        fd = await openFd(this.#path, constants.O_WRONLY | constants.O_APPEND);
      }
      if (isCreated) this.#needsDirSync = true;
      try {
        const { size } = await statFd(fd);
        if (!this.#isDirty || size < this.#size) this.#size = size;
      } catch (err) {
        await closeFd(fd).catch(() => undefined);
        throw err;
      }
      this.#fd = fd;
    }
    if (this.#isDirty) {
      await truncateFd(this.#fd, this.#size);
      this.#isDirty = false;
    }
    return this.#fd;
  }

  async #rewrite(job: RewriteJob): Promise<void> {
    try {
      const text = job.build().map((r) => `${JSON.stringify(r)}\n`).join('');
      await this.#closeFd();
      await writeFileDurable(this.#path, text, { mode: 0o600 });
      // The old file (and whatever a failed batch left in it) is gone; the new one is all durable,
      // its directory entry included.
      this.#isDirty = false;
      this.#needsDirSync = false;
      this.#stats.rewrites++;
    } catch (err) {
      job.reject(err);
      return;
    }
    job.resolve();
  }

  async #closeFd(): Promise<void> {
    const fd = this.#fd;
    if (fd === undefined) return;
    this.#fd = undefined;
    await closeFd(fd);
  }
}
