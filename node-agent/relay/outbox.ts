/**
 * The durable outbox (ARCHITECTURE, "Messages"): every envelope the agent accepted and JetStream
 * has not yet acknowledged.
 *
 * One file per message, `DIR/<ULID>.json`, holding the exact bytes to publish, written as a temp
 * file (fdatasync), renamed into place, then the directory fsynced — chosen over a journal because the outbox
 * is a queue whose entries are all removed, usually seconds after they were added: removal is one
 * unlink plus a dir fsync, with no compaction to schedule, and a damaged file costs one message
 * (quarantined), never the entries after it. The id is a ULID, so sorting file names gives the
 * submission order. Bytes stay on disk; memory holds only the sorted ids, so an outbox that grows
 * for hours while the hub is away costs ~30 bytes per message.
 *
 * Group commit: each file needs its own fdatasync, but the directory fsync that makes the renames
 * (and unlinks) durable is shared: adds and removes that arrive while one runs wait for the next,
 * which covers them all ({@link DirSync}). Each resolves only after the fsync that covers it.
 *
 * A full disk (ENOSPC/EDQUOT) refuses `add` with `RELAY_STORAGE_FULL` and leaves no file behind;
 * messages already stored are untouched, and the next `add` works once space returns. A damaged
 * file is moved to the quarantine directory (never deleted), logged and counted.
 */
import { mkdir, open as openFile, readFile, readdir, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { fsyncDir } from '../../pki/files.js';
import { MAX_ENVELOPE_BYTES, isUlid, parseEnvelope, type Envelope } from '../../protocol/envelope.js';
import { isStorageFull, storeWriteError } from './errors.js';
import type { RelayStats } from './types.js';

const SUFFIX = '.json';

/** Options of {@link Outbox.open}. */
export interface OutboxOptions {
  /** Where the message files live (created 0700). */
  dir: string;
  /** Where damaged files are moved, out of the way but kept for an operator (created 0700). */
  quarantineDir: string;
  log: Logger;
  /** Largest envelope accepted when reading a file back (default {@link MAX_ENVELOPE_BYTES}). */
  maxEnvelopeBytes?: number;
  /** Told of quarantined files and full-disk refusals (the agent's metrics). */
  stats?: RelayStats;
}

/** I/O done by an outbox since it was opened: what group commit saves shows here. */
export interface OutboxStats {
  /** Message files written (each with its own fdatasync). */
  files: number;
  /** Directory fsyncs for adds and removes (shared by the ones that arrive together). */
  dirSyncs: number;
}

/**
 * fsyncs one directory for many callers: a call while an fsync runs waits for the next one, which
 * starts when the running one ends and covers every call made meanwhile (their renames and unlinks
 * happened before it started).
 */
class DirSync {
  readonly #dir: string;
  readonly #onSync: () => void;
  #running: Promise<void> | undefined;
  #next: Promise<void> | undefined;

  constructor(dir: string, onSync: () => void) {
    this.#dir = dir;
    this.#onSync = onSync;
  }

  sync(): Promise<void> {
    if (this.#next !== undefined) return this.#next;
    if (this.#running === undefined) return this.#start();
    const next = this.#running.catch(() => undefined).then(() => {
      this.#next = undefined;
      return this.#start();
    });
    this.#next = next;
    return next;
  }

  #start(): Promise<void> {
    this.#onSync();
    const run: Promise<void> = fsyncDir(this.#dir).finally(() => {
      if (this.#running === run) this.#running = undefined;
    });
    this.#running = run;
    return run;
  }
}

/** One message read back from the outbox. */
export interface OutboxEntry {
  id: string;
  envelope: Envelope;
  /** The bytes to publish, exactly as they were accepted. */
  bytes: Uint8Array;
}

/** See the module comment. Use {@link Outbox.open}. */
export class Outbox {
  readonly #opts: OutboxOptions;
  readonly #log: Logger;
  /** Ids in ascending order (= submission order). */
  #ids: string[] = [];
  readonly #dirSync: DirSync;
  readonly #ioStats: OutboxStats = { files: 0, dirSyncs: 0 };
  #tmpSeq = 0;

  private constructor(opts: OutboxOptions) {
    this.#opts = opts;
    this.#log = opts.log;
    this.#dirSync = new DirSync(opts.dir, () => this.#ioStats.dirSyncs++);
  }

  /**
   * Opens (creating) the outbox and reads back what a previous run left. Leftover temp files
   * (a crash inside `add`, which therefore never resolved) are removed; a file that is not a valid
   * envelope named after its id is quarantined with a warning, never a crash.
   */
  static async open(opts: OutboxOptions): Promise<Outbox> {
    const outbox = new Outbox(opts);
    await mkdir(opts.dir, { recursive: true, mode: 0o700 });
    const names = (await readdir(opts.dir, { withFileTypes: true })).filter((d) => d.isFile()).map((d) => d.name);
    const ids: string[] = [];
    for (const name of names.sort()) {
      const path = join(opts.dir, name);
      if (name.includes('.tmp-')) {
        await unlink(path).catch(() => undefined);
        continue;
      }
      const id = name.endsWith(SUFFIX) ? name.slice(0, -SUFFIX.length) : '';
      const entry = await outbox.#readFile(id, path);
      if (entry !== undefined) ids.push(entry.id);
    }
    outbox.#ids = ids;
    return outbox;
  }

  /** Messages waiting. */
  get size(): number {
    return this.#ids.length;
  }

  /** Waiting ids in submission order. */
  list(): string[] {
    return [...this.#ids];
  }

  /** The oldest waiting id. */
  first(): string | undefined {
    return this.#ids[0];
  }

  has(id: string): boolean {
    return this.#find(id).found;
  }

  /** A copy of the I/O counters (tests and benchmarks check that directory fsyncs were shared). */
  get ioStats(): OutboxStats {
    return { ...this.#ioStats };
  }

  /**
   * Stores `bytes` (the encoded `envelope`) durably; resolves only after the file and its
   * directory entry are fsynced (the directory fsync shared with concurrent adds and removes).
   * Adding an id twice is a no-op rewrite of the same bytes. Throws `RELAY_STORAGE_FULL` when the
   * disk is full, else `RELAY_STORE_FAILED`; then no file is left and the id is not listed.
   */
  async add(envelope: Envelope, bytes: Uint8Array): Promise<void> {
    const path = this.#path(envelope.id);
    const tmp = `${path}.tmp-${process.pid}-${++this.#tmpSeq}`;
    let isRenamed = false;
    try {
      const fd = await openFile(tmp, 'wx', 0o600);
      try {
        await fd.writeFile(bytes);
        await fd.datasync();
      } finally {
        await fd.close();
      }
      this.#ioStats.files++;
      await rename(tmp, path);
      isRenamed = true;
      await this.#dirSync.sync();
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      // Refused means not stored: a file left in place would be sent after a restart. (An id
      // already held keeps its file: adding it again is a rewrite of the same bytes.)
      if (isRenamed && !this.has(envelope.id)) await unlink(path).catch(() => undefined);
      const coded = storeWriteError(path, err);
      if (isStorageFull(coded)) this.#opts.stats?.storageFull?.('outbox');
      throw coded;
    }
    const { found, index } = this.#find(envelope.id);
    if (!found) this.#ids.splice(index, 0, envelope.id);
  }

  /**
   * Reads a waiting message back. A file damaged since it was written is quarantined and
   * `undefined` returned, so one bad sector cannot block every message behind it.
   */
  async read(id: string): Promise<OutboxEntry | undefined> {
    const entry = await this.#readFile(id, this.#path(id));
    if (entry === undefined) this.#drop(id);
    return entry;
  }

  /**
   * Forgets a message JetStream has acknowledged: unlink, then fsync the directory (shared with
   * concurrent adds and removes). Idempotent.
   */
  async remove(id: string): Promise<void> {
    try {
      await unlink(this.#path(id));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    this.#drop(id);
    await this.#dirSync.sync();
  }

  async #readFile(id: string, path: string): Promise<OutboxEntry | undefined> {
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    try {
      if (!isUlid(id)) throw new Error('file name is not <ULID>.json');
      const envelope = parseEnvelope(bytes, { maxBytes: this.#opts.maxEnvelopeBytes ?? MAX_ENVELOPE_BYTES });
      if (envelope.id !== id) throw new Error(`envelope id ${envelope.id} does not match the file name`);
      return { id, envelope, bytes };
    } catch (err) {
      await this.#quarantine(path, err);
      return undefined;
    }
  }

  async #quarantine(path: string, why: unknown): Promise<void> {
    await mkdir(this.#opts.quarantineDir, { recursive: true, mode: 0o700 });
    const name = path.slice(this.#opts.dir.length + 1);
    const target = join(this.#opts.quarantineDir, `outbox-${Date.now()}-${name}`);
    await rename(path, target);
    await fsyncDir(this.#opts.dir);
    this.#opts.stats?.storeDamaged?.('outbox', 1);
    this.#log.error({ err: why, file: path, movedTo: target }, 'damaged outbox file quarantined');
  }

  #drop(id: string): void {
    const { found, index } = this.#find(id);
    if (found) this.#ids.splice(index, 1);
  }

  /** Binary search: ids arrive almost always in order, but a restored file may not. */
  #find(id: string): { found: boolean; index: number } {
    let lo = 0;
    let hi = this.#ids.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const at = this.#ids[mid] ?? '';
      if (at === id) return { found: true, index: mid };
      if (at < id) lo = mid + 1;
      else hi = mid;
    }
    return { found: false, index: lo };
  }

  #path(id: string): string {
    return join(this.#opts.dir, `${id}${SUFFIX}`);
  }
}
