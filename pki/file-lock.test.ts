// The cross-process file lock on a real file system: an empty lock file (its owner died between
// create and write) is waited for while fresh and taken over once stale; the lock is released
// even when the work throws.
import { stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { tempDir } from '../test/helpers/tmpdir.js';
import { FILE_LOCKED, withFileLock } from './file-lock.js';

t.test('file lock: an unreadable lock is waited for while fresh, taken over once stale', async (t) => {
  const path = join(await tempDir(t), 'users.json');
  await writeFile(`${path}.lock`, '');
  await t.rejects(
    withFileLock(path, async () => 'ran', { waitMs: 100, staleMs: 60_000, pollMs: 10 }),
    { code: FILE_LOCKED, message: /held by another process/ },
  );
  const old = new Date(Date.now() - 120_000);
  await utimes(`${path}.lock`, old, old);
  t.equal(await withFileLock(path, async () => 'ran', { waitMs: 100, staleMs: 60_000, pollMs: 10 }), 'ran');
});

t.test('file lock: released when the work throws, and the error passes through', async (t) => {
  const path = join(await tempDir(t), 'users.json');
  await t.rejects(
    withFileLock(path, async () => {
      t.equal((await stat(`${path}.lock`)).mode & 0o777, 0o600, 'held while the work runs, 0600');
      throw new Error('work failed');
    }),
    { message: 'work failed' },
  );
  await t.rejects(stat(`${path}.lock`), { code: 'ENOENT' });
});
