/**
 * Import of an outbox directory left by the one-file-per-message layout (`<ULID>.json`, written
 * temp + fdatasync + rename) into the segment log of `outbox.ts`, at `Outbox.open`.
 *
 * Valid files are added (group-committed, durable) before they are unlinked, so a crash in between
 * only imports them again, which is a no-op for an id the outbox already holds. Damaged files are
 * moved to the quarantine directory exactly as the old outbox did; temp leftovers (a crash inside
 * an old `add`, which therefore never resolved) are removed.
 */
import { mkdir, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { fsyncDir } from '../../pki/files.js';
import { isUlid, type Envelope } from '../../protocol/envelope.js';
import type { RelayStats } from './types.js';

const SUFFIX = '.json';

/** What {@link importLegacyFiles} needs from the outbox. */
export interface LegacyImportOptions {
  dir: string;
  quarantineDir: string;
  log: Logger;
  stats?: RelayStats | undefined;
  /** File names of the new layout, left alone. */
  isOwnFile: (name: string) => boolean;
  /** The envelope in `bytes`, or why they are not a valid one for `id`. */
  check: (bytes: Uint8Array, id: string) => Envelope | string;
  add: (envelope: Envelope, bytes: Uint8Array) => Promise<void>;
}

/** Imports the old layout's files among `names` (the directory's regular files); see the module comment. */
export async function importLegacyFiles(names: readonly string[], opts: LegacyImportOptions): Promise<void> {
  const valid: { path: string; envelope: Envelope; bytes: Buffer }[] = [];
  for (const name of names) {
    if (opts.isOwnFile(name)) continue;
    const path = join(opts.dir, name);
    if (name.includes('.tmp-')) {
      await unlink(path).catch(() => undefined);
      continue;
    }
    const id = name.endsWith(SUFFIX) ? name.slice(0, -SUFFIX.length) : '';
    const bytes = await readFile(path);
    const envelope = isUlid(id) ? opts.check(bytes, id) : 'file name is not <ULID>.json';
    if (typeof envelope === 'string') await quarantineFile(path, name, envelope, opts);
    else valid.push({ path, envelope, bytes });
  }
  if (valid.length === 0) return;
  const results = await Promise.allSettled(valid.map((v) => opts.add(v.envelope, v.bytes)));
  let imported = 0;
  for (const [i, result] of results.entries()) {
    const path = (valid[i] as (typeof valid)[number]).path;
    if (result.status === 'fulfilled') {
      await unlink(path);
      imported++;
    } else {
      // Left in place (not listed this run): the next start imports it. Starting matters more.
      opts.log.error({ err: result.reason, file: path }, 'outbox: could not import a message file of the old layout');
    }
  }
  if (imported === 0) return;
  await fsyncDir(opts.dir);
  opts.log.info({ count: imported }, 'outbox: imported message files of the old layout');
}

/** A damaged file (or a stray one): moved to the quarantine directory, logged and counted. */
async function quarantineFile(path: string, name: string, problem: string, opts: LegacyImportOptions): Promise<void> {
  await mkdir(opts.quarantineDir, { recursive: true, mode: 0o700 });
  const target = join(opts.quarantineDir, `outbox-${Date.now()}-${name}`);
  await rename(path, target);
  await fsyncDir(opts.dir);
  opts.stats?.storeDamaged?.('outbox', 1);
  opts.log.error({ problem, file: path, movedTo: target }, 'damaged outbox file quarantined');
}
