// The outbox on a real file system: durable add, order, remove, group commit, segment deletion,
// reopen after a "crash" (the object dropped without any close), torn tails cut off, damaged lines
// quarantined instead of crashing, and import of the old one-file-per-message layout.
import { appendFile, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { pino } from 'pino';
import t from 'tap';
import { encodeEnvelope, newUlid, type Envelope } from '../../protocol/envelope.js';
import { tempDir } from '../../test/helpers/tmpdir.js';
import { nextUlid } from './ids.js';
import { Outbox } from './outbox.js';
import type { RelayStats } from './types.js';

function envelope(id: string = newUlid()): Envelope {
  return { v: 1, id, kind: 'message', from: 'FR', to: ['DE'], priority: 'routine', created: new Date().toISOString(), body: `body of ${id}` };
}

function logs(): { log: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  return { lines, log: pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) }) };
}

async function open(dir: string, log = pino({ level: 'silent' })): Promise<Outbox> {
  return Outbox.open({ dir: join(dir, 'outbox'), quarantineDir: join(dir, 'quarantine'), log });
}

async function add(outbox: Outbox, env: Envelope): Promise<void> {
  await outbox.add(env, encodeEnvelope(env));
}

async function segments(dir: string): Promise<string[]> {
  return (await readdir(join(dir, 'outbox'))).filter((n) => n.startsWith('seg-')).sort();
}

/** Ids added in submission order, one at a time (each its own group commit). */
async function addMany(outbox: Outbox, n: number): Promise<Envelope[]> {
  const envs: Envelope[] = [];
  let last: string | undefined;
  for (let i = 0; i < n; i++) {
    const env = envelope((last = nextUlid(last)));
    await add(outbox, env);
    envs.push(env);
  }
  return envs;
}

t.test('outbox: add is on disk when it resolves, list is in id order, remove forgets, reopen keeps the rest', async (t) => {
  const dir = await tempDir(t);
  const outbox = await open(dir);
  let last: string | undefined;
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) ids.push((last = nextUlid(last)));
  // Added out of order: the list is still in id (= submission) order.
  for (const id of [ids[3], ids[0], ids[4], ids[1], ids[2]]) await add(outbox, envelope(id));
  t.same(outbox.list(), ids);
  t.equal(outbox.first(), ids[0]);
  const [segment] = await segments(dir);
  t.match(segment, /^seg-\d{16}\.log$/);
  const lines = (await readFile(join(dir, 'outbox', segment ?? ''), 'utf8')).split('\n');
  t.equal(lines.length, 6, 'one line per message in one segment, newline-terminated');
  t.equal((JSON.parse(lines[1] ?? '') as Envelope).id, ids[0], 'each line is the envelope');
  t.equal((await stat(join(dir, 'outbox', segment ?? ''))).mode & 0o777, 0o600);
  t.equal((await stat(join(dir, 'outbox'))).mode & 0o777, 0o700);
  const entry = await outbox.read(ids[2] ?? '');
  t.equal(entry?.envelope.body, `body of ${ids[2]}`);
  t.equal(await outbox.read(newUlid()), undefined, 'an unknown id reads as undefined');
  await outbox.remove(ids[0] ?? '');
  await outbox.remove(ids[0] ?? ''); // idempotent
  t.equal(outbox.size, 4);
  t.notOk(outbox.has(ids[0] ?? ''));
  // "Crash": the object is dropped without any close; a new one reads the same state.
  const reopened = await open(dir);
  t.same(reopened.list(), ids.slice(1));
  t.same((await reopened.read(ids[2] ?? ''))?.bytes, entry?.bytes, 'the same bytes come back');
  await add(reopened, envelope(nextUlid(last)));
  t.equal((await segments(dir)).length, 2, 'a new run appends to a new segment');
});

t.test('outbox: adding an id it holds is a no-op; bytes that are not one line are refused', async (t) => {
  const dir = await tempDir(t);
  const outbox = await open(dir);
  const env = envelope();
  await Promise.all([add(outbox, env), add(outbox, env)]);
  await add(outbox, env);
  t.equal(outbox.ioStats.appends, 1, 'written once');
  t.same(outbox.list(), [env.id]);
  const other = envelope();
  const bytes = Buffer.from(JSON.stringify(other, null, 2));
  await t.rejects(outbox.add(other, bytes), { code: 'RELAY_STORE_FAILED' });
  t.notOk(outbox.has(other.id));
  t.same((await open(dir)).list(), [env.id]);
});

t.test('outbox: concurrent adds and removes share fdatasyncs; each resolves listed and durable', async (t) => {
  const dir = await tempDir(t);
  const outbox = await open(dir);
  const envs = Array.from({ length: 32 }, () => envelope());
  await Promise.all(
    envs.map(async (env) => {
      await add(outbox, env);
      t.ok(outbox.has(env.id), `${env.id} listed when add resolves`);
    }),
  );
  const afterAdds = outbox.ioStats;
  t.equal(afterAdds.appends, 32);
  t.ok(afterAdds.syncs < 8, `${afterAdds.syncs} fdatasyncs for 32 concurrent adds`);
  t.same(outbox.list(), envs.map((e) => e.id).sort(), 'in id order although they completed in batches');
  await Promise.all(envs.slice(0, 16).map((env) => outbox.remove(env.id)));
  const afterRemoves = outbox.ioStats;
  t.equal(afterRemoves.removals, 16);
  t.ok(afterRemoves.removalSyncs < 8, `${afterRemoves.removalSyncs} fdatasyncs for 16 concurrent removes`);
  t.same((await open(dir)).list(), envs.slice(16).map((e) => e.id).sort());
});

t.test('outbox: a segment whose messages are all removed is deleted once it is not current; removed.log is compacted', async (t) => {
  const dir = await tempDir(t);
  const outbox = await Outbox.open({ dir: join(dir, 'outbox'), quarantineDir: join(dir, 'quarantine'), log: pino({ level: 'silent' }), segmentBytes: 500 });
  const envs = await addMany(outbox, 6);
  const before = await segments(dir);
  t.ok(before.length >= 2, `small segments roll: ${before.length} segments`);
  const firstSegment = before[0] ?? '';
  const inFirst = (await readFile(join(dir, 'outbox', firstSegment), 'utf8')).trimEnd().split('\n').map((l) => (JSON.parse(l) as Envelope).id);
  t.ok(inFirst.length >= 2, `${inFirst.length} messages in the first segment`);
  for (const id of inFirst.slice(0, -1)) await outbox.remove(id);
  t.ok((await segments(dir)).includes(firstSegment), 'kept while one of its messages waits');
  await outbox.remove(inFirst.at(-1) ?? '');
  t.notOk((await segments(dir)).includes(firstSegment), 'deleted with its last message');
  t.equal(outbox.ioStats.segmentsDeleted, 1);
  for (const env of envs) await outbox.remove(env.id);
  t.equal(outbox.size, 0);
  t.equal((await segments(dir)).length, 1, 'only the current segment is left');
  // Reopen: the old current segment is now all removed, so it goes, and removed.log is compacted.
  const reopened = await open(dir);
  t.equal(reopened.size, 0);
  t.same(await segments(dir), []);
  t.equal(reopened.ioStats.compactions, 1);
  t.equal(await readFile(join(dir, 'outbox', 'removed.log'), 'utf8'), '', 'no record of a deleted segment is kept');
  t.equal((await open(dir)).size, 0);
});

t.test('outbox: removed.log is compacted while running once it is mostly records of deleted segments', async (t) => {
  const dir = await tempDir(t);
  const outbox = await Outbox.open({ dir: join(dir, 'outbox'), quarantineDir: join(dir, 'quarantine'), log: pino({ level: 'silent' }), segmentBytes: 64 * 1024 });
  let last: string | undefined;
  for (let round = 0; round < 10; round++) {
    const envs = Array.from({ length: 500 }, () => envelope((last = nextUlid(last))));
    await Promise.all(envs.map((env) => add(outbox, env)));
    await Promise.all(envs.map((env) => outbox.remove(env.id)));
  }
  const io = outbox.ioStats;
  t.equal(io.removals, 5000);
  t.ok(io.compactions >= 1, `${io.compactions} compactions`);
  t.ok(io.segmentsDeleted > 10, `${io.segmentsDeleted} segments deleted`);
  const records = (await readFile(join(dir, 'outbox', 'removed.log'), 'utf8')).split('\n').length - 1;
  t.ok(records < 5000, `${records} records left in removed.log`);
  t.equal((await open(dir)).size, 0, 'nothing comes back after a restart');
});

t.test('outbox: a torn last line (crash mid-append) is cut off, the rest loads', async (t) => {
  const dir = await tempDir(t);
  const outbox = await open(dir);
  const envs = await addMany(outbox, 3);
  const [segment] = await segments(dir);
  const path = join(dir, 'outbox', segment ?? '');
  const half = encodeEnvelope(envelope(nextUlid(envs[2]?.id)));
  await appendFile(path, half.subarray(0, half.length >> 1));
  const { log, lines } = logs();
  const damaged: number[] = [];
  const reopened = await Outbox.open({ dir: join(dir, 'outbox'), quarantineDir: join(dir, 'quarantine'), log, stats: { storeDamaged: (_s, n) => void damaged.push(n) } });
  t.same(reopened.list(), envs.map((e) => e.id));
  t.ok((await readFile(path, 'utf8')).endsWith('}\n'), 'the torn bytes are gone from the file');
  t.ok(lines.some((l) => l['msg'] === 'outbox: cut off a torn last record'), 'logged');
  t.same(damaged, [], 'a torn tail is a crash artefact, not damage');
  t.same((await reopened.read(envs[2]?.id ?? ''))?.envelope.id, envs[2]?.id);
});

t.test('outbox: a damaged line in the middle is quarantined, counted and logged once; later messages load', async (t) => {
  const dir = await tempDir(t);
  const outbox = await open(dir);
  const envs = await addMany(outbox, 4);
  const [segment] = await segments(dir);
  const path = join(dir, 'outbox', segment ?? '');
  const text = (await readFile(path, 'utf8')).split('\n');
  // The second message's line damaged (a bad byte), and a garbage line inserted after the third.
  const bad = (text[1] ?? '').replace('"v":1', '"v":#');
  await writeFile(path, [text[0], bad, text[2], '{"not": "an envelope" ###', text[3], ''].join('\n'));
  const { log, lines } = logs();
  const damaged: [string, number][] = [];
  const stats = { storeDamaged: (s: string, n: number) => void damaged.push([s, n]) } as RelayStats;
  const reopened = await Outbox.open({ dir: join(dir, 'outbox'), quarantineDir: join(dir, 'quarantine'), log, stats });
  t.same(reopened.list(), [envs[0], envs[2], envs[3]].map((e) => e?.id), 'everything else loads, in order');
  t.same(damaged, [['outbox', 2]]);
  const logged = lines.filter((l) => l['msg'] === 'damaged outbox record quarantined');
  t.equal(logged.length, 2);
  t.match(logged[0], { level: 50, file: /seg-/, movedTo: /quarantine/ });
  const quarantined = (await readdir(join(dir, 'quarantine'))).sort();
  t.equal(quarantined.length, 2);
  t.equal((await stat(join(dir, 'quarantine'))).mode & 0o777, 0o700);
  t.ok((await Promise.all(quarantined.map((q) => readFile(join(dir, 'quarantine', q), 'utf8')))).includes(bad), 'the exact bytes kept for an operator');
  t.same((await reopened.read(envs[3]?.id ?? ''))?.envelope.body, envs[3]?.body);
  // Reported once: the damaged lines are retired.
  damaged.length = 0;
  t.same((await Outbox.open({ dir: join(dir, 'outbox'), quarantineDir: join(dir, 'quarantine'), log: pino({ level: 'silent' }), stats })).list(), reopened.list());
  t.same(damaged, []);
  t.equal((await readdir(join(dir, 'quarantine'))).length, 2);
});

t.test('outbox: damage found by read() is quarantined and skipped; the next message is not blocked', async (t) => {
  const dir = await tempDir(t);
  const damaged: [string, number][] = [];
  const stats = { storeDamaged: (s: string, n: number) => void damaged.push([s, n]) } as RelayStats;
  const outbox = await Outbox.open({ dir: join(dir, 'outbox'), quarantineDir: join(dir, 'quarantine'), log: pino({ level: 'silent' }), stats });
  const envs = await addMany(outbox, 2);
  const [segment] = await segments(dir);
  const path = join(dir, 'outbox', segment ?? '');
  // Same length, so offsets are unchanged: a bad sector rather than a different file.
  await writeFile(path, (await readFile(path, 'utf8')).replace('"kind"', '"k#nd"'));
  t.equal(await outbox.read(envs[0]?.id ?? ''), undefined);
  t.same(outbox.list(), [envs[1]?.id]);
  t.same(damaged, [['outbox', 1]]);
  t.equal((await readdir(join(dir, 'quarantine'))).length, 1);
  t.equal((await outbox.read(envs[1]?.id ?? ''))?.id, envs[1]?.id);
  damaged.length = 0;
  t.same((await Outbox.open({ dir: join(dir, 'outbox'), quarantineDir: join(dir, 'quarantine'), log: pino({ level: 'silent' }), stats })).list(), [envs[1]?.id]);
  t.same(damaged, [], 'retired: not reported again');
});

t.test('outbox: files of the old one-file-per-message layout are imported; damaged ones quarantined', async (t) => {
  const dir = await tempDir(t);
  const old = join(dir, 'outbox');
  await mkdir(old, { mode: 0o700 });
  // Written the old way: <ULID>.json holding the envelope's exact bytes.
  let last: string | undefined;
  const envs = Array.from({ length: 3 }, () => envelope((last = nextUlid(last))));
  for (const env of envs) await writeFile(join(old, `${env.id}.json`), encodeEnvelope(env), { mode: 0o600 });
  const torn = encodeEnvelope(envelope());
  await writeFile(join(old, `${newUlid()}.json`), torn.subarray(0, torn.length - 7));
  await writeFile(join(old, `${newUlid()}.json`), encodeEnvelope(envelope()), { mode: 0o600 }); // named after another id
  await writeFile(join(old, 'notes.txt'), 'hello');
  await writeFile(join(old, `${newUlid()}.json.tmp-123-456`), 'half a write');
  const { log, lines } = logs();
  const damaged: number[] = [];
  const outbox = await Outbox.open({ dir: old, quarantineDir: join(dir, 'quarantine'), log, stats: { storeDamaged: (_s, n) => void damaged.push(n) } });
  t.same(outbox.list(), envs.map((e) => e.id));
  t.same(await readdir(old), await segments(dir), 'old files gone: only the new segment is left');
  t.equal((await readdir(join(dir, 'quarantine'))).length, 3, 'three files quarantined');
  t.equal(damaged.reduce((a, b) => a + b, 0), 3);
  t.equal(lines.filter((l) => l['msg'] === 'damaged outbox file quarantined').length, 3);
  t.ok(Buffer.from(encodeEnvelope(envs[1] as Envelope)).equals(Buffer.from((await outbox.read(envs[1]?.id ?? ''))?.bytes ?? [])), 'the exact bytes');
  const reopened = await open(dir);
  t.same(reopened.list(), envs.map((e) => e.id));
  // A crash after the import was durable but before the old files were unlinked imports nothing twice.
  await writeFile(join(old, `${envs[0]?.id}.json`), encodeEnvelope(envs[0] as Envelope));
  const again = await open(dir);
  t.same(again.list(), envs.map((e) => e.id));
  t.equal(again.ioStats.appends, 0);
  t.notOk((await readdir(old)).some((n) => n.endsWith('.json')));
});

t.test('outbox: any sequence of add/remove/reopen keeps exactly the un-removed messages and their bytes (property)', async (t) => {
  const root = await tempDir(t);
  let run = 0;
  const op = fc.oneof(
    fc.record({ kind: fc.constant('add' as const), n: fc.integer({ min: 1, max: 4 }) }),
    fc.record({ kind: fc.constant('remove' as const), pick: fc.nat(), n: fc.integer({ min: 1, max: 3 }) }),
    fc.record({ kind: fc.constant('reopen' as const) }),
  );
  const reopen = (dir: string): Promise<Outbox> => Outbox.open({ dir: join(dir, 'outbox'), quarantineDir: join(dir, 'quarantine'), log: pino({ level: 'silent' }), segmentBytes: 700 });
  await fc.assert(
    fc.asyncProperty(fc.array(op, { maxLength: 25 }), async (ops) => {
      const dir = join(root, String(run++));
      let outbox = await reopen(dir);
      const model = new Map<string, Uint8Array>();
      const sorted = (): string[] => [...model.keys()].sort();
      for (const o of ops) {
        if (o.kind === 'add') {
          // Concurrent adds: one group commit, possibly across a segment roll.
          const envs = Array.from({ length: o.n }, () => envelope());
          await Promise.all(envs.map((env) => add(outbox, env)));
          for (const env of envs) model.set(env.id, encodeEnvelope(env));
        } else if (o.kind === 'remove') {
          const ids = sorted();
          const picked = Array.from({ length: o.n }, (_, i) => (ids.length === 0 ? newUlid() : (ids[(o.pick + i) % ids.length] ?? '')));
          await Promise.all(picked.map((id) => outbox.remove(id)));
          for (const id of picked) model.delete(id);
        } else {
          outbox = await reopen(dir);
        }
        if (JSON.stringify(outbox.list()) !== JSON.stringify(sorted())) return false;
      }
      const reopened = await reopen(dir);
      if (JSON.stringify(reopened.list()) !== JSON.stringify(sorted())) return false;
      for (const [id, bytes] of model) if (!Buffer.from(bytes).equals(Buffer.from((await reopened.read(id))?.bytes ?? []))) return false;
      return true;
    }),
    { numRuns: 50 },
  );
  t.pass('50 random sequences kept exactly the un-removed messages, across reopens and segment rolls');
});

t.test('ids: nextUlid is strictly increasing within a millisecond and when the clock steps back', async (t) => {
  const now = Date.now();
  let last: string | undefined;
  for (let i = 0; i < 1000; i++) {
    const id = nextUlid(last, now);
    if (last !== undefined && !(id > last)) t.fail(`${id} not after ${last}`);
    last = id;
  }
  const back = nextUlid(last, now - 60_000);
  t.ok(last !== undefined && back > last, 'a clock stepped back still gives a larger id');
  t.equal(nextUlid('000000000100000000000000ZZ', 0), '00000000010000000000000100', 'the increment carries');
  t.throws(() => nextUlid('000000000AZZZZZZZZZZZZZZZZ', 0), RangeError, 'an exhausted millisecond is an error, not a wrap');
});
