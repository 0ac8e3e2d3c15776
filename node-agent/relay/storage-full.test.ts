// Issue 9 (a), for real: the relay's stores on a small tmpfs that is filled up. A write refused
// for a full disk is RELAY_STORAGE_FULL (the local API answers 507 with it), leaves no trace in
// the file or in memory, keeps every record already stored, and the next write after space
// returns works without a restart. Needs root (mount); skipped with a reason otherwise.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, open, readdir, readFile, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import t from 'tap';
import { encodeEnvelope, newUlid, type Envelope } from '../../protocol/envelope.js';
import type { Teardownable } from '../../test/helpers/tmpdir.js';
import { buildLocalApi } from '../local-api/server.js';
import { createTokensFile, loadTokens, readToken } from '../local-api/tokens.js';
import { INBOX_FILE, Inbox } from './inbox.js';
import { Outbox } from './outbox.js';
import { Relay } from './relay.js';
import { StatusStore } from './status.js';
import type { RelayStats, StoreName } from './types.js';

const run = promisify(execFile);
const silent = pino({ level: 'silent' });
const isRoot = process.getuid?.() === 0;

/** A fresh tmpfs of `size` mounted on a temp dir; unmounted and removed at teardown. */
async function smallDisk(t: Teardownable, size = '256k'): Promise<string> {
  const base = await mkdtemp(join(tmpdir(), 'ncbnet-full-'));
  const dir = join(base, 'mnt');
  await mkdir(dir);
  await run('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir]);
  t.teardown(async () => {
    await run('umount', [dir]).catch(() => run('umount', ['-l', dir]));
    await rm(base, { recursive: true, force: true });
  });
  return dir;
}

/** Fills the disk with `path` until ENOSPC; returns the bytes written. */
async function fill(path: string): Promise<number> {
  const fd = await open(path, 'w');
  const chunk = Buffer.alloc(4096, 0x2e);
  let written = 0;
  try {
    for (;;) written += (await fd.write(chunk)).bytesWritten;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    await fd.close();
  }
  return written;
}

function envelope(body: string, over: Partial<Envelope> = {}): Envelope {
  return { v: 1, id: newUlid(), kind: 'message', from: 'DE', to: ['FR'], priority: 'routine', created: new Date().toISOString(), body, ...over };
}

function counting(): { stats: RelayStats; full: StoreName[]; damaged: number[] } {
  const full: StoreName[] = [];
  const damaged: number[] = [];
  return { full, damaged, stats: { storageFull: (s) => void full.push(s), storeDamaged: (_s, n) => void damaged.push(n) } };
}

/** Calls `write` until it throws; returns how many succeeded and the error (at most `max` tries). */
async function untilRefused(max: number, write: (i: number) => Promise<unknown>): Promise<{ ok: number; err: unknown }> {
  for (let i = 0; i < max; i++) {
    try {
      await write(i);
    } catch (err) {
      return { ok: i, err };
    }
  }
  return { ok: max, err: undefined };
}

t.test('storage-full: inbox and status journals refuse with RELAY_STORAGE_FULL, keep what they had, recover when space returns', { skip: isRoot ? false : 'needs root to mount a tmpfs' }, async (t) => {
  const dir = await smallDisk(t);
  const { stats, full, damaged } = counting();
  const inbox = await Inbox.open({ dir, log: silent, stats });
  const status = await StatusStore.open({ dir, log: silent, stats });
  const body = 'x'.repeat(3000);
  const stored: Envelope[] = [];
  for (let i = 0; i < 5; i++) {
    const env = envelope(body);
    await inbox.put(env);
    stored.push(env);
  }
  const queued: Envelope[] = [];
  for (let i = 0; i < 3; i++) {
    const env = envelope('s', { from: 'FR', to: ['DE'] });
    await status.recordQueued(env, new Date().toISOString());
    queued.push(env);
  }
  const filler = join(dir, 'filler');
  t.ok((await fill(filler)) > 0, 'the disk is full');

  // The inbox's last page may still have room for a record or two; then it must refuse.
  const refusedInbox = await untilRefused(50, async () => {
    const env = envelope(body);
    await inbox.put(env);
    stored.push(env);
  });
  t.match(refusedInbox.err, { code: 'RELAY_STORAGE_FULL', message: /state disk is full/ }, `inbox refused after ${refusedInbox.ok} more`);
  // tmpfs wrote the part of the record that fit in the file's last page, then said ENOSPC: the
  // journal counted a write without its fdatasync, and cut the partial record off again.
  t.ok(inbox.ioStats.writes > inbox.ioStats.syncs, `a partial write happened (${JSON.stringify(inbox.ioStats)})`);
  const refusedStatus = await untilRefused(200, async () => {
    const env = envelope('s', { from: 'FR', to: ['DE'] });
    await status.recordQueued(env, new Date().toISOString());
    queued.push(env);
  });
  t.match(refusedStatus.err, { code: 'RELAY_STORAGE_FULL' }, `status refused after ${refusedStatus.ok} more`);
  t.ok(full.includes('inbox') && full.includes('status'), 'counted for the metric');
  t.same(inbox.list().map((i) => i.id), stored.map((e) => e.id), 'memory holds exactly what was stored');
  t.same(status.queuedIds(), queued.map((e) => e.id).sort());

  // The file holds whole records only (no partial line from the refused write).
  const text = await readFile(join(dir, INBOX_FILE), 'utf8');
  t.ok(text.endsWith('\n'), 'no torn tail left by the refused write');
  t.same(text.trimEnd().split('\n').map((l) => (JSON.parse(l) as { id: string }).id), stored.map((e) => e.id));
  // A restart while the disk is still full starts (compaction at open fails, logged) and loses nothing.
  const whileFull = await Inbox.open({ dir, log: silent });
  t.same(whileFull.list().map((i) => i.id), stored.map((e) => e.id));
  whileFull.close();
  const statusWhileFull = await StatusStore.open({ dir, log: silent });
  t.same(statusWhileFull.queuedIds(), queued.map((e) => e.id).sort());
  await statusWhileFull.close();

  await unlink(filler);
  const late = envelope(body);
  t.equal(await inbox.put(late), 'stored', 'the inbox writes again without a restart');
  const lateStatus = envelope('s', { from: 'FR', to: ['DE'] });
  t.match(await status.recordQueued(lateStatus, new Date().toISOString()), { state: 'queued' }, 'so does the status store');
  inbox.close();
  await status.close();
  const reopened = await Inbox.open({ dir, log: silent });
  t.same(reopened.list().map((i) => i.id), [...stored, late].map((e) => e.id), 'every stored item loads after a restart');
  reopened.close();
  const reopenedStatus = await StatusStore.open({ dir, log: silent });
  t.same(reopenedStatus.queuedIds(), [...queued, lateStatus].map((e) => e.id).sort());
  await reopenedStatus.close();
  t.same(damaged, [], 'nothing was damaged');
  t.notOk((await readdir(dir)).some((n) => n.includes('.tmp-')), 'no temp files left');
});

t.test('storage-full: the outbox refuses an add with RELAY_STORAGE_FULL and nothing of it left, then accepts again', { skip: isRoot ? false : 'needs root to mount a tmpfs' }, async (t) => {
  const dir = await smallDisk(t);
  const { stats, full } = counting();
  const outbox = await Outbox.open({ dir: join(dir, 'outbox'), quarantineDir: join(dir, 'quarantine'), log: silent, stats });
  const kept: string[] = [];
  for (let i = 0; i < 3; i++) {
    const env = envelope('y'.repeat(2000), { from: 'FR', to: ['DE'] });
    await outbox.add(env, encodeEnvelope(env));
    kept.push(env.id);
  }
  const filler = join(dir, 'filler');
  await fill(filler);
  const refused = envelope('z'.repeat(5000), { from: 'FR', to: ['DE'] });
  await t.rejects(outbox.add(refused, encodeEnvelope(refused)), { code: 'RELAY_STORAGE_FULL' });
  t.same(full, ['outbox']);
  t.same(outbox.list(), kept.sort());
  // Nothing of the refused message can be read back: the segments hold whole lines of the kept ones.
  const segments = (await readdir(join(dir, 'outbox'))).filter((n) => n.startsWith('seg-'));
  t.notOk((await readdir(join(dir, 'outbox'))).some((n) => n.includes('.tmp-')), 'no temp file');
  const text = (await Promise.all(segments.sort().map((n) => readFile(join(dir, 'outbox', n), 'utf8')))).join('');
  t.ok(text.endsWith('\n'), 'no partial line left by the refused add');
  t.same(text.trimEnd().split('\n').map((l) => (JSON.parse(l) as Envelope).id), kept, 'only the kept messages, whole');
  await unlink(filler);
  await outbox.add(refused, encodeEnvelope(refused));
  const reopened = await Outbox.open({ dir: join(dir, 'outbox'), quarantineDir: join(dir, 'quarantine'), log: silent });
  t.same(reopened.list(), [...kept, refused.id].sort());
});

t.test('storage-full: POST /v1/messages on a full agent answers 507 RELAY_STORAGE_FULL and stores nothing; works again after', { skip: isRoot ? false : 'needs root to mount a tmpfs' }, async (t) => {
  const dir = await smallDisk(t, '512k');
  const tokensPath = join(dir, 'tokens');
  await createTokensFile(tokensPath);
  const token = await readToken(tokensPath);
  const relay = await Relay.open({ country: 'FR', stateDir: dir, log: silent });
  t.teardown(() => relay.stop());
  const app = await buildLocalApi({ relay, tokens: await loadTokens(tokensPath), log: silent, bodyLimitBytes: 64 * 1024, country: 'FR', readiness: () => ({ tunnel: true, broker: true }) });
  t.teardown(() => app.close());
  const post = (body: string) =>
    app.inject({ method: 'POST', url: '/v1/messages', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, payload: JSON.stringify({ kind: 'message', to: ['DE'], body }) });
  const first = await post('before');
  t.equal(first.statusCode, 202);
  const filler = join(dir, 'filler');
  await fill(filler);
  const refused = await post('w'.repeat(8000));
  t.equal(refused.statusCode, 507);
  t.match(refused.json(), { code: 'RELAY_STORAGE_FULL', message: /state disk is full/ });
  t.equal(relay.outboxDepth(), 1, 'nothing new stored');
  await unlink(filler);
  const again = await post('after');
  t.equal(again.statusCode, 202, 'accepted again once space returned, no restart');
  t.equal(relay.outboxDepth(), 2);
  t.equal(relay.status(first.json<{ id: string }>().id)?.state, 'queued', 'the message accepted before is still there');
});
