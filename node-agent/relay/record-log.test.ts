// The relay's record log on a real file system: damaged lines in the middle are skipped, copied
// verbatim beside the journal (0600), logged once with their line numbers and counted; coded
// errors for failed writes; the local API's status for a full disk.
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import Type from 'typebox';
import { statusFor } from '../local-api/errors.js';
import { tempDir } from '../../test/helpers/tmpdir.js';
import { RELAY_STORAGE_FULL, RELAY_STORE_FAILED, RelayError, storeWriteError } from './errors.js';
import { RecordLog } from './record-log.js';
import type { RelayStats, StoreName } from './types.js';

const Rec = Type.Object({ n: Type.Integer() }, { additionalProperties: false });

function logs(): { log: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  return { lines, log: pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) }) };
}

function counting(): { stats: RelayStats; damaged: [StoreName, number][]; full: StoreName[] } {
  const damaged: [StoreName, number][] = [];
  const full: StoreName[] = [];
  return { damaged, full, stats: { storeDamaged: (s, n) => void damaged.push([s, n]), storageFull: (s) => void full.push(s) } };
}

t.test('record-log: damaged lines are skipped, copied aside verbatim (0600), logged once and counted; the rest loads', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'x.jsonl');
  const garbage = Buffer.from([0x00, 0x00, 0xff, 0x7b, 0x22]);
  await writeFile(path, Buffer.concat([Buffer.from('{"n":1}\n'), garbage, Buffer.from('\n{"n":2}\n{"n":"3"}\n{"n":4}\n{"n":5')]));
  const { log, lines } = logs();
  const { stats, damaged } = counting();
  const file = new RecordLog({ path, schema: Rec, store: 'inbox', log, stats });
  t.same(await file.load(), [{ n: 1 }, { n: 2 }, { n: 4 }], 'intact records in order; the torn tail cut off');
  t.same(damaged, [['inbox', 2]], 'counted once, by store');
  const reported = lines.filter((l) => l['msg'] === 'damaged journal records skipped and copied aside');
  t.equal(reported.length, 1, 'logged once');
  t.match(reported[0], { level: 50, path, lines: [2, 4], count: 2, problems: ['2: not JSON', /^4: record\.n/] });
  const copies = (await readdir(dir)).filter((n) => n.startsWith('x.jsonl.damaged-'));
  t.equal(copies.length, 1);
  t.match(copies[0], /^x\.jsonl\.damaged-\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  const copy = join(dir, copies[0] ?? '');
  t.same(await readFile(copy), Buffer.concat([garbage, Buffer.from('\n{"n":"3"}\n')]), 'the damaged lines, byte for byte');
  t.equal((await stat(copy)).mode & 0o777, 0o600);
  t.equal(reported[0]?.['copy'], copy);
  t.match(lines, [{ level: 40, msg: 'journal repaired' }], 'the torn tail is reported separately');

  // The store compacts after load; then the damage is gone and not reported again.
  await file.rewrite(() => [{ n: 1 }, { n: 2 }, { n: 4 }]);
  const again = counting();
  t.same(await new RecordLog({ path, schema: Rec, store: 'inbox', log: pino({ level: 'silent' }), stats: again.stats }).load(), [{ n: 1 }, { n: 2 }, { n: 4 }]);
  t.same(again.damaged, []);
  await file.close();
});

t.test('record-log: a file that cannot be read at all is RELAY_STORE_CORRUPT', async (t) => {
  const dir = await tempDir(t);
  const file = new RecordLog({ path: dir, schema: Rec, store: 'status', log: pino({ level: 'silent' }) });
  await t.rejects(file.load(), { code: 'RELAY_STORE_CORRUPT', message: /cannot be read: EISDIR/ });
});

t.test('record-log: write errors are coded: ENOSPC/EDQUOT are RELAY_STORAGE_FULL (HTTP 507), others RELAY_STORE_FAILED (503)', async (t) => {
  const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
  const edquot = Object.assign(new Error('EDQUOT: disk quota exceeded, write'), { code: 'EDQUOT' });
  const eio = Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
  const full = storeWriteError('/s/inbox.jsonl', enospc);
  t.match(full, { code: RELAY_STORAGE_FULL, message: /state disk is full: \/s\/inbox\.jsonl was not written/, cause: enospc });
  t.equal(storeWriteError('/s/x', edquot).code, RELAY_STORAGE_FULL);
  t.equal(storeWriteError('/s/x', new Error('wrapped', { cause: enospc })).code, RELAY_STORAGE_FULL, 'found in the cause chain');
  t.equal(storeWriteError('/s/x', eio).code, RELAY_STORE_FAILED);
  const coded = new RelayError(RELAY_STORE_FAILED, 'x');
  t.equal(storeWriteError('/s/x', coded), coded, 'a coded error passes through');
  t.equal(statusFor(RELAY_STORAGE_FULL), 507);
  t.equal(statusFor(RELAY_STORE_FAILED), 503);

  // A real failure: the parent of the journal is a file, so the append cannot open it.
  const dir = await tempDir(t);
  await writeFile(join(dir, 'f'), '');
  const { stats, full: fulls } = counting();
  const file = new RecordLog({ path: join(dir, 'f', 'x.jsonl'), schema: Rec, store: 'status', log: pino({ level: 'silent' }), stats });
  let applied = false;
  await t.rejects(
    file.append({ n: 1 }, () => (applied = true)),
    { code: RELAY_STORE_FAILED },
  );
  t.notOk(applied, 'apply did not run');
  t.same(fulls, [], 'not counted as a full disk');
});
