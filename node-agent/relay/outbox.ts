/**
 * The durable outbox (ARCHITECTURE, "Messages"): every envelope the agent accepted and JetStream
 * has not yet acknowledged.
 *
 * A log of segments, not a file per message. The first layout gave each message its own file
 * (`<ULID>.json`: temp file, fdatasync, rename, directory fsync; unlink and directory fsync to
 * remove): simple, but in the relay benchmark those file operations per message took ~17% of the
 * receiving agent's CPU. Now:
 *
 * - `DIR/seg-<16 digits>.log`: append-only; each line is one envelope's exact bytes (the encoding
 *   is one-line JSON; bytes holding a newline are refused). Adds are group-committed
 *   ({@link SegmentWriter}): the ones that arrive while an fdatasync runs are written together
 *   and covered by the next single fdatasync, and each resolves only after the fdatasync that
 *   covers it. A process starts a fresh segment and rolls to the next one at 4 MiB.
 * - `DIR/removed.log`: one JSON record `{id, seg, off}` per removal (a {@link RecordLog}: group
 *   commit too, each remove resolves after its fdatasync). A record names the line it retires, not
 *   just the id, so an id added again after its removal is not hidden by the old record.
 * - A segment that is no longer current and whose every line is retired is deleted. When
 *   `removed.log` is mostly records of deleted segments it is compacted (rewritten durably with
 *   the others, after a directory fsync has made those deletions durable).
 *
 * Memory holds the sorted ids (ULIDs, so submission order) and per id where its line is, not the
 * bytes: an outbox that grows for hours while the hub is away stays small; `read` fetches the
 * bytes with one positioned read and checks them as before.
 *
 * Crash safety: a resolved add is fdatasynced (and a new segment's directory entry fsynced); a
 * crash mid-append leaves a torn last line in the newest segment, which `open` cuts off (that add
 * never resolved). A resolved remove is fdatasynced in `removed.log`; one that never resolved may
 * bring its message back after a restart, and the drain sends it again (the hub and recipients
 * deduplicate by id).
 *
 * Damage: a bad line elsewhere (not an envelope, or not valid) costs that message only. It is
 * copied to the quarantine directory (never just deleted), logged at error and counted, then
 * retired with a removal record so it is reported once; the lines after it load. The same holds for
 * damage `read` finds later. A full disk (ENOSPC/EDQUOT) refuses `add` with `RELAY_STORAGE_FULL`,
 * the partial write is cut off again, messages already stored are untouched and the next `add`
 * works once space returns.
 *
 * An outbox directory of the old layout is imported by `open`: valid `<ULID>.json` files are
 * appended (durably) and then unlinked, damaged ones quarantined, temp leftovers removed.
 */
import { mkdir, open as openFile, readFile, readdir, truncate, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import Type from 'typebox';
import { fsyncDir, writeFileDurable } from '../../pki/files.js';
import { MAX_ENVELOPE_BYTES, isUlid, parseEnvelope, type Envelope } from '../../protocol/envelope.js';
import { RELAY_STORE_FAILED, RelayError, isStorageFull, storeWriteError } from './errors.js';
import { SEGMENT_BYTES, SegmentWriter, segmentName, segmentNumber, splitLines, type Appended } from './outbox-segments.js';
import { importLegacyFiles } from './outbox-legacy.js';
import { RecordLog } from './record-log.js';
import type { RelayStats } from './types.js';

const REMOVED_FILE = 'removed.log';
/** Compaction of `removed.log` waits until it holds at least this many records... */
const COMPACT_MIN_RECORDS = 4096;

/** A removal: the line at `off` in segment `seg` (message `id`; empty when unknown) is retired. */
const RemovalSchema = Type.Object(
  { id: Type.String(), seg: Type.Integer({ minimum: 0 }), off: Type.Integer({ minimum: 0 }) },
  { additionalProperties: false },
);
type Removal = { id: string; seg: number; off: number };

/** Options of {@link Outbox.open}. */
export interface OutboxOptions {
  /** Where the segments live (created 0700). */
  dir: string;
  /** Where damaged records are copied, out of the way but kept for an operator (created 0700). */
  quarantineDir: string;
  log: Logger;
  /** Largest envelope accepted when reading one back (default {@link MAX_ENVELOPE_BYTES}). */
  maxEnvelopeBytes?: number;
  /** Told of quarantined records and full-disk refusals (the agent's metrics). */
  stats?: RelayStats;
  /** Size at which a new segment is started (default 4 MiB; tests use small ones). */
  segmentBytes?: number;
}

/** I/O done by an outbox since it was opened: what group commit saves shows here. */
export interface OutboxStats {
  /** Messages appended to segments. */
  appends: number;
  /** fdatasyncs for those appends: one per group commit. */
  syncs: number;
  /** Removal records written to `removed.log`. */
  removals: number;
  /** fdatasyncs of `removed.log` for them: one per group commit. */
  removalSyncs: number;
  /** Segment files created and deleted. */
  segmentsCreated: number;
  segmentsDeleted: number;
  /** Rewrites of `removed.log`. */
  compactions: number;
}

/** One message read back from the outbox. */
export interface OutboxEntry {
  id: string;
  envelope: Envelope;
  /** The bytes to publish, exactly as they were accepted. */
  bytes: Uint8Array;
}

interface Segment {
  /** Lines not retired yet (including damaged ones whose quarantine copy failed). */
  live: number;
  /** Records in `removed.log` that name lines of this segment (kept by a compaction). */
  removals: Removal[];
}

/** See the module comment. Use {@link Outbox.open}. */
export class Outbox {
  readonly #opts: OutboxOptions;
  readonly #log: Logger;
  readonly #writer: SegmentWriter;
  readonly #removed: RecordLog<typeof RemovalSchema>;
  /** Ids in ascending order (= submission order). */
  #ids: string[] = [];
  readonly #where = new Map<string, Appended>();
  readonly #segments = new Map<number, Segment>();
  /** Deleted segments: their removal records are kept until a directory fsync made the unlink durable. */
  readonly #deleted = new Map<number, { removals: Removal[]; unlinked: Promise<void> }>();
  readonly #adding = new Map<string, Promise<void>>();
  readonly #retiring = new Map<string, Promise<void>>();
  #compacting: Promise<void> | undefined;
  /** After a failed compaction, the next try waits for this many records in `removed.log`. */
  #compactAt = COMPACT_MIN_RECORDS;
  #segmentsDeleted = 0;

  private constructor(opts: OutboxOptions, firstSegment: number) {
    this.#opts = opts;
    this.#log = opts.log;
    this.#writer = new SegmentWriter({ dir: opts.dir, firstSegment, segmentBytes: opts.segmentBytes ?? SEGMENT_BYTES, onRoll: (segment) => this.#maybeDelete(segment) });
    this.#removed = new RecordLog({ path: join(opts.dir, REMOVED_FILE), schema: RemovalSchema, store: 'outbox', log: opts.log, stats: opts.stats });
  }

  /**
   * Opens (creating) the outbox and reads back what a previous run left: segments in order, minus
   * the lines `removed.log` retires. A torn last line of the newest segment is cut off; damaged
   * lines are quarantined (module comment), never a crash. Files of the old one-file-per-message
   * layout are imported.
   */
  static async open(opts: OutboxOptions): Promise<Outbox> {
    await mkdir(opts.dir, { recursive: true, mode: 0o700 });
    const names = (await readdir(opts.dir, { withFileTypes: true })).filter((d) => d.isFile()).map((d) => d.name).sort();
    const segments = names.map(segmentNumber).filter((n): n is number => n !== undefined);
    const outbox = new Outbox(opts, (segments.at(-1) ?? 0) + 1);
    await outbox.#load(segments);
    await importLegacyFiles(names, {
      ...opts,
      isOwnFile: (name) => segmentNumber(name) !== undefined || name === REMOVED_FILE || name.startsWith(`${REMOVED_FILE}.`),
      check: (bytes, id) => outbox.#check(bytes, id),
      add: (envelope, bytes) => outbox.add(envelope, bytes),
    });
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
    return this.#where.has(id);
  }

  /** A copy of the I/O counters (tests and benchmarks check that fdatasyncs were shared). */
  get ioStats(): OutboxStats {
    const w = this.#writer.stats;
    const r = this.#removed.ioStats;
    return { appends: w.records, syncs: w.syncs, removals: r.records, removalSyncs: r.syncs, segmentsCreated: w.segments, segmentsDeleted: this.#segmentsDeleted, compactions: r.rewrites };
  }

  /**
   * Stores `bytes` (the encoded `envelope`) durably; resolves only after the fdatasync that covers
   * them (shared with concurrent adds). Adding an id already held is a no-op (it waits for that
   * id's pending add, if any). Throws `RELAY_STORAGE_FULL` when the disk is full, else
   * `RELAY_STORE_FAILED` (also for bytes that are not one line); then the id is not listed and
   * nothing of it can be read back.
   */
  add(envelope: Envelope, bytes: Uint8Array): Promise<void> {
    const id = envelope.id;
    if (this.#where.has(id)) return Promise.resolve();
    const pending = this.#adding.get(id);
    if (pending !== undefined) return pending;
    if (!isUlid(id) || bytes.byteLength === 0 || bytes.includes(0x0a)) {
      return Promise.reject(new RelayError(RELAY_STORE_FAILED, `${this.#opts.dir}: message ${JSON.stringify(id)} not stored: the outbox holds one-line envelopes named by a ULID`));
    }
    const added = this.#writer
      .append(bytes, (at) => {
        this.#index(id, at);
        this.#segment(at.segment).live++;
      })
      .catch((err: unknown) => {
        const coded = storeWriteError(this.#writer.path(this.#writer.current), err);
        if (isStorageFull(coded)) this.#opts.stats?.storageFull?.('outbox');
        throw coded;
      })
      .finally(() => this.#adding.delete(id));
    this.#adding.set(id, added);
    return added;
  }

  /**
   * Reads a waiting message back. A record damaged since it was written is quarantined and retired,
   * and `undefined` returned, so one bad sector cannot block every message behind it.
   */
  async read(id: string): Promise<OutboxEntry | undefined> {
    const at = this.#where.get(id);
    if (at === undefined) return undefined;
    const path = this.#writer.path(at.segment);
    let bytes: Buffer;
    try {
      const fd = await openFile(path, 'r');
      try {
        bytes = Buffer.alloc(at.length);
        const { bytesRead } = await fd.read(bytes, 0, at.length, at.offset);
        bytes = bytes.subarray(0, bytesRead);
      } finally {
        await fd.close();
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      // Removed meanwhile (its segment deleted) is not damage; a segment gone under a live id is.
      if (this.#where.get(id) !== at) return undefined;
      this.#log.error({ err, id, file: path }, 'outbox segment missing; message dropped');
      this.#opts.stats?.storeDamaged?.('outbox', 1);
      this.#unindex(id);
      return undefined;
    }
    const problem = this.#check(bytes, id);
    if (typeof problem !== 'string') return { id, envelope: problem, bytes };
    if (this.#where.get(id) !== at) return undefined;
    const saved = await this.#quarantine(at, bytes, problem);
    this.#opts.stats?.storeDamaged?.('outbox', 1);
    // A copy kept, the line is retired for good; without a copy it stays in its segment, skipped.
    if (saved) await this.#retire(id, at);
    else this.#unindex(id);
    return undefined;
  }

  /**
   * Forgets a message JetStream has acknowledged: a removal record, fdatasynced (shared with
   * concurrent removes) before this resolves. Idempotent. Throws `RELAY_STORAGE_FULL` or
   * `RELAY_STORE_FAILED` (then the message stays listed).
   */
  async remove(id: string): Promise<void> {
    await this.#adding.get(id)?.catch(() => undefined);
    const at = this.#where.get(id);
    if (at === undefined) {
      await this.#retiring.get(id);
      return;
    }
    await this.#retire(id, at);
  }

  /** Writes the removal record of `id`'s line (once, however many callers ask). */
  #retire(id: string, at: Appended): Promise<void> {
    const pending = this.#retiring.get(id);
    if (pending !== undefined) return pending;
    const record: Removal = { id, seg: at.segment, off: at.offset };
    const done = this.#removed
      .append(record, () => {
        // The record first: unindexing may delete the segment, which takes its records along.
        this.#segments.get(at.segment)?.removals.push(record);
        if (this.#where.get(id) === at) this.#unindex(id);
      })
      .finally(() => this.#retiring.delete(id))
      .then(() => this.#afterRemoval());
    this.#retiring.set(id, done);
    return done;
  }

  /** Segment deletion and compaction: failures are logged, the removal itself has succeeded. */
  async #afterRemoval(): Promise<void> {
    const records = this.#removed.appendedSinceRewrite;
    let kept = 0;
    for (const s of this.#segments.values()) kept += s.removals.length;
    if (records >= this.#compactAt && records > 2 * kept) await this.#compact();
  }

  /** Takes `id` out of the index and its line out of its segment's count; may delete the segment. */
  #unindex(id: string): void {
    const at = this.#where.get(id);
    if (at === undefined) return;
    this.#where.delete(id);
    const { found, index } = this.#find(id);
    if (found) this.#ids.splice(index, 1);
    this.#segment(at.segment).live--;
    this.#maybeDelete(at.segment);
  }

  #maybeDelete(segment: number): void {
    const s = this.#segments.get(segment);
    if (s === undefined || s.live > 0 || segment === this.#writer.current) return;
    this.#segments.delete(segment);
    this.#segmentsDeleted++;
    const path = this.#writer.path(segment);
    const unlinked = unlink(path).catch((err: unknown) => {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.#log.error({ err, path }, 'outbox segment could not be deleted');
    });
    this.#deleted.set(segment, { removals: s.removals, unlinked });
  }

  /**
   * Rewrites `removed.log` without the records of deleted segments. Their unlinks are made durable
   * first (a directory fsync): a segment that came back after a crash without its removal records
   * would resend every message in it.
   */
  #compact(): Promise<void> {
    this.#compacting ??= (async () => {
      try {
        const gone = new Set(this.#deleted.keys());
        await Promise.all([...this.#deleted.values()].map((d) => d.unlinked));
        await fsyncDir(this.#opts.dir);
        await this.#removed.rewrite(() => [
          ...[...this.#segments.values()].flatMap((s) => s.removals),
          ...[...this.#deleted].filter(([n]) => !gone.has(n)).flatMap(([, d]) => d.removals),
        ]);
        for (const n of gone) this.#deleted.delete(n);
        this.#compactAt = COMPACT_MIN_RECORDS;
      } catch (err) {
        this.#compactAt = this.#removed.appendedSinceRewrite + COMPACT_MIN_RECORDS;
        this.#log.error({ err, path: this.#removed.path }, 'outbox removal log could not be compacted; will retry later');
      } finally {
        this.#compacting = undefined;
      }
    })();
    return this.#compacting;
  }

  async #load(segments: number[]): Promise<void> {
    const retired = new Map<number, Map<number, Removal>>();
    for (const r of await this.#removed.load()) {
      let lines = retired.get(r.seg);
      if (lines === undefined) retired.set(r.seg, (lines = new Map<number, Removal>()));
      lines.set(r.off, r);
    }
    const toRetire: { id: string; at: Appended }[] = [];
    let damaged = 0;
    for (const n of segments) {
      const path = this.#writer.path(n);
      let data = await readFile(path);
      const { lines, tail } = splitLines(data);
      if (tail.length > 0 && n === segments.at(-1)) {
        // A crash mid-append: that add never resolved. Cut off durably, so a later run never
        // mistakes the bytes for damage.
        await truncate(path, tail.offset);
        const fd = await openFile(path, 'r+');
        await fd.datasync().finally(() => fd.close());
        this.#log.warn({ path, bytes: tail.length }, 'outbox: cut off a torn last record');
        data = data.subarray(0, tail.offset);
      } else if (tail.length > 0) {
        lines.push(tail);
      }
      const segment = this.#segment(n);
      const gone = retired.get(n);
      for (const line of lines) {
        const removal = gone?.get(line.offset);
        if (removal !== undefined) {
          segment.removals.push(removal);
          continue;
        }
        const at = { segment: n, offset: line.offset, length: line.length };
        const bytes = data.subarray(line.offset, line.offset + line.length);
        const envelope = this.#check(bytes, undefined);
        if (typeof envelope !== 'string') {
          // The same id twice (a crash in the middle of importing old files): keep the first.
          if (this.#where.has(envelope.id)) toRetire.push({ id: '', at });
          else {
            this.#where.set(envelope.id, at);
            segment.live++;
          }
          continue;
        }
        damaged++;
        if (await this.#quarantine(at, bytes, envelope)) toRetire.push({ id: '', at });
        else segment.live++; // keeps the segment (and the bytes) until a copy can be made
      }
    }
    if (damaged > 0) this.#opts.stats?.storeDamaged?.('outbox', damaged);
    this.#ids = [...this.#where.keys()].sort();
    // Lines to skip from now on; best effort (a full disk must not stop the agent from starting).
    await Promise.all(
      toRetire.map(({ at }) =>
        this.#removed.append({ id: '', seg: at.segment, off: at.offset }, () => this.#segment(at.segment).removals.push({ id: '', seg: at.segment, off: at.offset })).catch((err: unknown) => {
          this.#log.error({ err, segment: at.segment, offset: at.offset }, 'outbox: could not retire a damaged or duplicate record');
          this.#segment(at.segment).live++;
        }),
      ),
    );
    for (const n of segments) this.#maybeDelete(n);
    // Records naming segments that are gone (deleted, or a crash before their unlink was durable).
    const stale = [...retired.keys()].some((n) => !this.#segments.has(n) && !this.#deleted.has(n));
    if (stale || this.#deleted.size > 0) await this.#compact();
  }

  /** The envelope in `bytes`, or why they are not a valid one (for `id`, when given). */
  #check(bytes: Uint8Array, id: string | undefined): Envelope | string {
    try {
      const envelope = parseEnvelope(bytes, { maxBytes: this.#opts.maxEnvelopeBytes ?? MAX_ENVELOPE_BYTES });
      if (!isUlid(envelope.id)) return 'envelope id is not a ULID';
      if (id !== undefined && envelope.id !== id) return `envelope id ${envelope.id} is not ${id}`;
      return envelope;
    } catch (err) {
      return err instanceof Error ? err.message : String(err);
    }
  }

  /** Copies a damaged line to the quarantine directory; false (logged) if that failed. */
  async #quarantine(at: Appended, bytes: Uint8Array, problem: string): Promise<boolean> {
    const file = this.#writer.path(at.segment);
    const target = join(this.#opts.quarantineDir, `outbox-${Date.now()}-${segmentName(at.segment)}-${at.offset}`);
    try {
      await mkdir(this.#opts.quarantineDir, { recursive: true, mode: 0o700 });
      await writeFileDurable(target, bytes, { mode: 0o600, exclusive: true });
    } catch (err) {
      this.#log.error({ err, problem, file, offset: at.offset }, 'damaged outbox record skipped; copying it to quarantine failed');
      return false;
    }
    this.#log.error({ problem, file, offset: at.offset, movedTo: target }, 'damaged outbox record quarantined');
    return true;
  }

  #segment(n: number): Segment {
    let s = this.#segments.get(n);
    if (s === undefined) this.#segments.set(n, (s = { live: 0, removals: [] }));
    return s;
  }

  #index(id: string, at: Appended): void {
    this.#where.set(id, at);
    const { found, index } = this.#find(id);
    if (!found) this.#ids.splice(index, 0, id);
  }

  /** Binary search: ids arrive almost always in order, but concurrent adds may complete out of it. */
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
}
