/**
 * The outbox's segment files (see `outbox.ts` for the design): naming, splitting a segment into
 * lines, and {@link SegmentWriter}, which appends lines to the current segment with group commit.
 *
 * Same discipline as {@link Journal} (`pki/journal.ts`), which cannot be used as is because the
 * outbox must store the exact bytes it was given (not a re-serialised record) and must know where
 * each one landed: appends queue up while a write + fdatasync runs and then go together, with one
 * `write` and one `fdatasync`; a failed batch is cut off again with ftruncate, so nothing of a
 * refused message can be read back and the next append works as soon as the disk does.
 */
import { close, constants, fdatasync, ftruncate, open, write } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fsyncDir } from '../../pki/files.js';

// Plain descriptors, as in Journal: the file stays open between appends, and a FileHandle that is
// garbage-collected open closes itself with a process warning.
const openFd = promisify(open);
const closeFd = promisify(close);
const writeFd = promisify(write);
const datasyncFd = promisify(fdatasync);
const truncateFd = promisify(ftruncate);

/** Size at which the writer starts a new segment (a single larger batch still goes, alone). */
export const SEGMENT_BYTES = 4 * 1024 * 1024;
/** Most bytes one group commit writes. */
const MAX_BATCH_BYTES = 4 * 1024 * 1024;
const SEGMENT_NAME = /^seg-(\d{16})\.log$/;

/** `seg-<16-digit number>.log`: names sort in number order. */
export function segmentName(segment: number): string {
  return `seg-${String(segment).padStart(16, '0')}.log`;
}

/** The number in a segment file name, or undefined for any other name. */
export function segmentNumber(name: string): number | undefined {
  const match = SEGMENT_NAME.exec(name);
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

/** Where one line of a segment is: its first byte and its length without the newline. */
export interface LineRef {
  offset: number;
  length: number;
}

/**
 * Splits a segment's content into newline-terminated lines. Bytes after the last newline (a torn
 * append, or damage) are not a line: `tail` gives their offset and length (length 0 when none).
 */
export function splitLines(data: Buffer): { lines: LineRef[]; tail: LineRef } {
  const lines: LineRef[] = [];
  let start = 0;
  for (let newline = data.indexOf(0x0a); newline !== -1; newline = data.indexOf(0x0a, start)) {
    lines.push({ offset: start, length: newline - start });
    start = newline + 1;
  }
  return { lines, tail: { offset: start, length: data.length - start } };
}

/** Where an appended record landed. */
export interface Appended {
  segment: number;
  offset: number;
  /** Without the newline. */
  length: number;
}

/** I/O of a {@link SegmentWriter} since it was made. */
export interface SegmentWriterStats {
  /** `write(2)` calls (one per batch unless the kernel writes short). */
  writes: number;
  /** `fdatasync(2)` calls: one per batch. */
  syncs: number;
  /** Records appended durably. */
  records: number;
  /** Segment files created. */
  segments: number;
}

interface Job {
  /** The record's bytes followed by a newline. */
  line: Buffer;
  apply: (at: Appended) => void;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** Options of {@link SegmentWriter}. */
export interface SegmentWriterOptions {
  dir: string;
  /** Number of the first segment this writer creates; it never appends to an older file. */
  firstSegment: number;
  /** Roll to a new segment once the current one holds this many bytes. */
  segmentBytes: number;
  /** Called (synchronously, between batches) when `segment` stops being the current segment. */
  onRoll: (segment: number) => void;
}

/**
 * Appends lines to `DIR/seg-<n>.log`, starting with a fresh segment and moving to the next one
 * when the current one passes `segmentBytes`. Appends are written in call order; every caller in
 * a batch resolves only after the fdatasync that covers its line (and, for the first batch of a
 * segment, the directory fsync that makes the new file itself durable). `apply` runs right after
 * that, in call order, before the next batch and before any roll.
 */
export class SegmentWriter {
  readonly #opts: SegmentWriterOptions;
  readonly #jobs: Job[] = [];
  #running: Promise<void> | undefined;
  #segment: number;
  #fd: number | undefined;
  /** Length of the current segment up to its last durable record. */
  #size = 0;
  /** A failed batch may have left bytes after `#size`: truncate before the next write. */
  #isDirty = false;
  /** The current segment's file is new and its directory entry not fsynced yet. */
  #needsDirSync = false;
  /** The last segment this writer created (the only existing file it may reopen). */
  #created: number | undefined;
  readonly #stats: SegmentWriterStats = { writes: 0, syncs: 0, records: 0, segments: 0 };

  constructor(opts: SegmentWriterOptions) {
    this.#opts = opts;
    this.#segment = opts.firstSegment;
  }

  /** The segment appends go to now (its file may not exist yet). */
  get current(): number {
    return this.#segment;
  }

  get stats(): SegmentWriterStats {
    return { ...this.#stats };
  }

  path(segment: number): string {
    return join(this.#opts.dir, segmentName(segment));
  }

  /** Appends `record` (which must not contain a newline); see the class comment. */
  append(record: Uint8Array, apply: (at: Appended) => void): Promise<void> {
    const line = Buffer.allocUnsafe(record.byteLength + 1);
    line.set(record);
    line[record.byteLength] = 0x0a;
    return new Promise<void>((resolve, reject) => {
      this.#jobs.push({ line, apply, resolve, reject });
      this.#kick();
    });
  }

  /** Waits for queued appends and closes the descriptor. */
  async close(): Promise<void> {
    while (this.#running !== undefined) await this.#running;
    const fd = this.#fd;
    this.#fd = undefined;
    if (fd !== undefined) await closeFd(fd);
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
    while (this.#jobs.length > 0) {
      let n = 0;
      let bytes = 0;
      for (let next = this.#jobs[0]; next !== undefined && (n === 0 || bytes + next.line.length <= MAX_BATCH_BYTES); next = this.#jobs[n]) {
        bytes += next.line.length;
        n++;
      }
      if (this.#size > 0 && this.#size + bytes > this.#opts.segmentBytes) await this.#roll();
      await this.#appendBatch(this.#jobs.splice(0, n));
    }
  }

  async #roll(): Promise<void> {
    const old = this.#segment;
    const fd = this.#fd;
    this.#fd = undefined;
    this.#segment++;
    this.#size = 0;
    this.#isDirty = false;
    this.#opts.onRoll(old);
    if (fd !== undefined) await closeFd(fd).catch(() => undefined);
  }

  async #appendBatch(batch: Job[]): Promise<void> {
    const at: Appended[] = [];
    try {
      const fd = await this.#openForAppend();
      const data = batch.length === 1 ? (batch[0] as Job).line : Buffer.concat(batch.map((j) => j.line));
      this.#isDirty = true;
      for (let offset = 0; offset < data.length; ) {
        const { bytesWritten } = await writeFd(fd, data, offset, data.length - offset);
        this.#stats.writes++;
        offset += bytesWritten;
      }
      await datasyncFd(fd);
      this.#stats.syncs++;
      // A new file's directory entry must be durable too, or a crash can lose the whole segment.
      if (this.#needsDirSync) {
        await fsyncDir(this.#opts.dir);
        this.#needsDirSync = false;
      }
      let offset = this.#size;
      for (const job of batch) {
        at.push({ segment: this.#segment, offset, length: job.line.length - 1 });
        offset += job.line.length;
      }
      this.#size = offset;
      this.#isDirty = false;
      this.#stats.records += batch.length;
    } catch (err) {
      await this.#cutFailedBatch();
      for (const job of batch) job.reject(err);
      return;
    }
    batch.forEach((job, i) => {
      try {
        job.apply(at[i] as Appended);
        job.resolve();
      } catch (err) {
        job.reject(err);
      }
    });
  }

  /** Best effort: remove what a failed batch may have written; on failure the next batch retries. */
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
      const path = this.path(this.#segment);
      let fd: number;
      try {
        fd = await openFd(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_EXCL, 0o600);
        this.#stats.segments++;
        this.#created = this.#segment;
        this.#needsDirSync = true;
      } catch (err) {
        // Only a file this writer created (a failed batch closed it) may be reopened: any other
        // would be a segment of an earlier run, which must never be truncated.
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || this.#created !== this.#segment) throw err;
        fd = await openFd(path, constants.O_WRONLY | constants.O_APPEND);
      }
      this.#fd = fd;
    }
    if (this.#isDirty) {
      await truncateFd(this.#fd, this.#size);
      this.#isDirty = false;
    }
    return this.#fd;
  }
}
