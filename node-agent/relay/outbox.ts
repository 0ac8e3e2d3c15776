/**
 * The durable outbox (ARCHITECTURE, "Messages"): every envelope the agent accepted and JetStream
 * has not yet acknowledged.
 *
 * One file per message, `DIR/<ULID>.json`, holding the exact bytes to publish, written with
 * `writeFileDurable` (temp, fsync, rename, dir fsync) — chosen over a journal because the outbox
 * is a queue whose entries are all removed, usually seconds after they were added: removal is one
 * unlink plus a dir fsync, with no compaction to schedule, and a damaged file costs one message
 * (quarantined), never the entries after it. The id is a ULID, so sorting file names gives the
 * submission order. Bytes stay on disk; memory holds only the sorted ids, so an outbox that grows
 * for hours while the hub is away costs ~30 bytes per message.
 */
import { mkdir, readFile, readdir, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { fsyncDir, writeFileDurable } from '../../pki/files.js';
import { MAX_ENVELOPE_BYTES, isUlid, parseEnvelope, type Envelope } from '../../protocol/envelope.js';

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

  private constructor(opts: OutboxOptions) {
    this.#opts = opts;
    this.#log = opts.log;
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

  /**
   * Stores `bytes` (the encoded `envelope`) durably; resolves only after the file and its
   * directory entry are fsynced. Adding an id twice is a no-op rewrite of the same bytes.
   */
  async add(envelope: Envelope, bytes: Uint8Array): Promise<void> {
    await writeFileDurable(this.#path(envelope.id), bytes, { mode: 0o600 });
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

  /** Forgets a message JetStream has acknowledged: unlink, then fsync the directory. Idempotent. */
  async remove(id: string): Promise<void> {
    try {
      await unlink(this.#path(id));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    this.#drop(id);
    await fsyncDir(this.#opts.dir);
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
