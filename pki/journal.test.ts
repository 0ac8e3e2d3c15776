// The journal on a real file system: group commit (concurrent appends share one write and one
// fdatasync, applies run in order), rewrite ordering and reopening after the inode changes, torn
// tails cut off, damage refused by default and skipped on request (bytes kept verbatim).
import { appendFile, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Type from 'typebox';
import t from 'tap';
import { tempDir } from '../test/helpers/tmpdir.js';
import { Journal } from './journal.js';

const Rec = Type.Object({ n: Type.Integer() }, { additionalProperties: false });

async function journal(t: Parameters<typeof tempDir>[0]): Promise<{ path: string; j: Journal<typeof Rec> }> {
  const path = join(await tempDir(t), 'sub', 'j.jsonl');
  return { path, j: new Journal(path, Rec) };
}

t.test('journal: 32 concurrent appends share writes and fdatasyncs; each resolves after its sync, applies in order', async (t) => {
  const { path, j } = await journal(t);
  const applied: number[] = [];
  const resolved: number[] = [];
  await Promise.all(
    Array.from({ length: 32 }, (_, n) =>
      j.append({ n }, () => applied.push(n)).then(() => {
        resolved.push(n);
        t.ok(applied.includes(n), `record ${n} applied before its append resolved`);
      }),
    ),
  );
  t.same(applied, [...Array(32).keys()], 'applies ran in call order');
  t.same(resolved, [...Array(32).keys()], 'appends resolved in call order');
  const { writes, syncs, records } = j.stats;
  t.equal(records, 32);
  // The first append runs alone; the 31 that arrived during its fsync go together.
  t.equal(syncs, 2, 'two fdatasyncs for 32 records');
  t.equal(writes, 2, 'two writes for 32 records');
  t.same((await new Journal(path, Rec).load()).records.map((r) => r.n), [...Array(32).keys()]);
  t.equal((await stat(path)).mode & 0o777, 0o600);
  await j.close();
});

t.test('journal: a rewrite sees every append queued before it and none after; later appends go to the new file', async (t) => {
  const { path, j } = await journal(t);
  const state: number[] = [];
  const add = (n: number): Promise<void> => j.append({ n }, () => state.push(n));
  await add(0);
  let seen: number[] = [];
  const jobs = [add(1), add(2), j.rewrite(() => ((seen = [...state]), state.filter((n) => n !== 0).map((n) => ({ n })))), add(3), add(4)];
  await Promise.all(jobs);
  t.same(seen, [0, 1, 2], 'the rewrite saw exactly the appends queued before it');
  t.same((await new Journal(path, Rec).load()).records.map((r) => r.n), [1, 2, 3, 4], 'appends after the rewrite are in the new file');
  t.equal(j.stats.rewrites, 1);
  // Once more, with the descriptor already open on the new inode.
  await j.rewrite(() => [{ n: 9 }]);
  await add(10);
  t.equal(await readFile(path, 'utf8'), '{"n":9}\n{"n":10}\n');
  await j.close();
  await add(11);
  t.equal(await readFile(path, 'utf8'), '{"n":9}\n{"n":10}\n{"n":11}\n', 'a closed journal reopens on the next append');
  await j.close();
});

t.test('journal: a failed apply rejects only its own append', async (t) => {
  const { j } = await journal(t);
  const results = await Promise.allSettled([
    j.append({ n: 1 }),
    j.append({ n: 2 }, () => {
      throw new Error('boom');
    }),
    j.append({ n: 3 }),
  ]);
  t.same(
    results.map((r) => r.status),
    ['fulfilled', 'rejected', 'fulfilled'],
  );
  await j.close();
});

t.test('journal: a torn last line is cut off; damage in the middle is refused by default, skipped on request', async (t) => {
  const { path, j } = await journal(t);
  await j.append({ n: 1 });
  await j.append({ n: 2 });
  await j.close();
  await appendFile(path, '{"n":3');
  const loaded = await new Journal(path, Rec).load();
  t.same(loaded.records, [{ n: 1 }, { n: 2 }]);
  t.match(loaded.repaired, /torn last record \(6 bytes\)/);
  t.equal(await readFile(path, 'utf8'), '{"n":1}\n{"n":2}\n', 'the torn bytes are gone from the file');

  const bad = Buffer.concat([Buffer.from('{"n":1}\n{"n":"two"}\n'), Buffer.from([0xff, 0xfe, 0x00, 0x7b]), Buffer.from('\n{"n":4}\n')]);
  await writeFile(path, bad);
  await t.rejects(new Journal(path, Rec).load(), { code: 'PKI_LEDGER_CORRUPT', message: /j\.jsonl:2: / }, 'refused by default (CA ledger, tokens)');
  const skipped = await new Journal(path, Rec).load({ onDamage: 'skip' });
  t.same(skipped.records, [{ n: 1 }, { n: 4 }], 'the intact records are kept, in order');
  t.same(
    skipped.damaged.map((d) => d.line),
    [2, 3],
  );
  t.match(skipped.damaged[0]?.problem, /record\.n: must be integer/);
  t.equal(skipped.damaged[1]?.problem, 'not JSON');
  t.same(skipped.damaged[1]?.bytes, Buffer.from([0xff, 0xfe, 0x00, 0x7b]), 'the damaged bytes exactly as on disk');
  t.same(await readFile(path), bad, 'load changes nothing but a torn tail');
});

t.test('journal: an append after a load that cut a torn tail starts at the cut', async (t) => {
  const { path, j } = await journal(t);
  await j.append({ n: 1 });
  await j.close();
  await appendFile(path, '{"n":');
  const again = new Journal(path, Rec);
  await again.load();
  await again.append({ n: 2 });
  await again.close();
  t.same((await new Journal(path, Rec).load()).records, [{ n: 1 }, { n: 2 }]);
});

t.test('journal: a group commit is bounded in bytes (a burst of large records is several writes)', async (t) => {
  const Big = Type.Object({ s: Type.String() }, { additionalProperties: false });
  const path = join(await tempDir(t), 'big.jsonl');
  const j = new Journal(path, Big);
  const s = 'x'.repeat(3 * 1024 * 1024);
  await Promise.all([j.append({ s }), j.append({ s }), j.append({ s })]);
  t.equal(j.stats.syncs, 3, 'the second and third 3 MiB records do not share a 4 MiB batch');
  t.equal((await new Journal(path, Big).load()).records.length, 3);
  await j.close();
});
