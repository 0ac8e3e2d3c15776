// The outbox on a real file system: durable add, order, remove, reopen after a "crash" (the
// object dropped without any close), and damaged files quarantined instead of crashing.
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { pino } from 'pino';
import t from 'tap';
import { encodeEnvelope, newUlid, type Envelope } from '../../protocol/envelope.js';
import { tempDir } from '../../test/helpers/tmpdir.js';
import { nextUlid } from './ids.js';
import { Outbox } from './outbox.js';

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
  const onDisk = JSON.parse(await readFile(join(dir, 'outbox', `${ids[0]}.json`), 'utf8')) as Envelope;
  t.equal(onDisk.id, ids[0], 'one file per message, named by id, holding the envelope');
  const entry = await outbox.read(ids[2] ?? '');
  t.equal(entry?.envelope.body, `body of ${ids[2]}`);
  await outbox.remove(ids[0] ?? '');
  await outbox.remove(ids[0] ?? ''); // idempotent
  t.equal(outbox.size, 4);
  t.notOk(outbox.has(ids[0] ?? ''));
  // "Crash": the object is dropped without any close; a new one reads the same state.
  const reopened = await open(dir);
  t.same(reopened.list(), ids.slice(1));
  t.same((await reopened.read(ids[2] ?? ''))?.bytes, entry?.bytes, 'the same bytes come back');
});

t.test('outbox: torn or garbage files are quarantined with a log line, the rest loads', async (t) => {
  const dir = await tempDir(t);
  const outbox = await open(dir);
  const good = envelope();
  await add(outbox, good);
  const torn = envelope();
  const bytes = encodeEnvelope(torn);
  await writeFile(join(dir, 'outbox', `${torn.id}.json`), bytes.subarray(0, bytes.length - 7));
  const wrongName = envelope();
  await writeFile(join(dir, 'outbox', `${newUlid()}.json`), encodeEnvelope(wrongName));
  await writeFile(join(dir, 'outbox', 'notes.txt'), 'hello');
  await writeFile(join(dir, 'outbox', `${newUlid()}.json.tmp-123-456`), 'half a write');
  const { log, lines } = logs();
  const reopened = await open(dir, log);
  t.same(reopened.list(), [good.id], 'only the good message is queued');
  t.same((await readdir(join(dir, 'outbox'))).sort(), [`${good.id}.json`], 'temp file removed, damaged files moved');
  t.equal((await readdir(join(dir, 'quarantine'))).length, 3, 'three files quarantined');
  const logged = lines.filter((l) => l['msg'] === 'damaged outbox file quarantined');
  t.equal(logged.length, 3);
  t.match(logged[0], { level: 50, file: /outbox/, movedTo: /quarantine/ });

  // Damage after load: read() quarantines and skips, the head of the queue is not blocked.
  const next = envelope(nextUlid(good.id));
  await add(reopened, next);
  await writeFile(join(dir, 'outbox', `${good.id}.json`), '{"v":1');
  t.equal(await reopened.read(good.id), undefined);
  t.same(reopened.list(), [next.id]);
});

t.test('outbox: concurrent adds and removes share directory fsyncs; each resolves with its file in place', async (t) => {
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
  t.equal(afterAdds.files, 32, 'one file per message');
  t.ok(afterAdds.dirSyncs < 32, `${afterAdds.dirSyncs} directory fsyncs for 32 concurrent adds`);
  t.same((await readdir(join(dir, 'outbox'))).length, 32);
  await Promise.all(envs.slice(0, 16).map((env) => outbox.remove(env.id)));
  t.ok(outbox.ioStats.dirSyncs - afterAdds.dirSyncs < 16, `${outbox.ioStats.dirSyncs - afterAdds.dirSyncs} directory fsyncs for 16 concurrent removes`);
  t.same((await open(dir)).list(), envs.slice(16).map((e) => e.id).sort());
});

t.test('outbox: a quarantined file is counted as damaged for the metric', async (t) => {
  const dir = await tempDir(t);
  const first = await open(dir);
  const env = envelope();
  await add(first, env);
  await writeFile(join(dir, 'outbox', `${env.id}.json`), '{"v":1');
  const damaged: [string, number][] = [];
  const outbox = await Outbox.open({ dir: join(dir, 'outbox'), quarantineDir: join(dir, 'quarantine'), log: pino({ level: 'silent' }), stats: { storeDamaged: (s, n) => void damaged.push([s, n]) } });
  t.same(damaged, [['outbox', 1]]);
  t.equal(outbox.size, 0);
  t.equal((await readdir(join(dir, 'quarantine'))).length, 1, 'moved aside, not deleted');
});

t.test('outbox: any sequence of add/remove/reopen keeps exactly the un-removed messages (property)', async (t) => {
  const root = await tempDir(t);
  let run = 0;
  const op = fc.oneof(
    fc.record({ kind: fc.constant('add' as const) }),
    fc.record({ kind: fc.constant('remove' as const), pick: fc.nat() }),
    fc.record({ kind: fc.constant('reopen' as const) }),
  );
  await fc.assert(
    fc.asyncProperty(fc.array(op, { maxLength: 25 }), async (ops) => {
      const dir = join(root, String(run++));
      let outbox = await open(dir);
      const model = new Set<string>();
      for (const o of ops) {
        if (o.kind === 'add') {
          const env = envelope();
          await add(outbox, env);
          model.add(env.id);
        } else if (o.kind === 'remove') {
          const ids = [...model];
          const id = ids.length === 0 ? newUlid() : (ids[o.pick % ids.length] ?? '');
          await outbox.remove(id);
          model.delete(id);
        } else {
          outbox = await open(dir);
        }
        if (JSON.stringify(outbox.list()) !== JSON.stringify([...model].sort())) return false;
      }
      const reopened = await open(dir);
      return JSON.stringify(reopened.list()) === JSON.stringify([...model].sort());
    }),
    { numRuns: 60 },
  );
  t.pass('60 random sequences kept exactly the un-removed messages, across reopens');
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
