import t from 'tap';
import { spawnSync } from 'node:child_process';
import { chmod, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { tempDir, type Teardownable } from '../../test/helpers/tmpdir.js';
import { LocalAccess } from './auth.js';
import { createTokensFile, hashToken, readToken } from './tokens.js';
import { addUser, parseUsersFile, readUsers, removeUser } from './users.js';

const silent = pino({ level: 'silent' });

async function files(t: Teardownable) {
  const dir = await tempDir(t);
  const tokensFile = join(dir, 'local-api.tokens');
  await createTokensFile(tokensFile);
  return { dir, tokensFile, usersFile: join(dir, 'local-api.users.json'), operator: await readToken(tokensFile) };
}

t.test('users: add stores only the SHA-256 of a new 256-bit token, 0600; list and remove', async (t) => {
  const { usersFile } = await files(t);
  t.same(await readUsers(usersFile), [], 'no file is no users');
  const now = new Date('2026-11-25T10:00:00.000Z');
  const { user, token } = await addUser(usersFile, { name: 'border-lyon', role: 'border', now });
  t.match(token, /^[A-Za-z0-9_-]{43}$/);
  t.same(user, { name: 'border-lyon', role: 'border', tokenSha256: hashToken(token).toString('hex'), created: '2026-11-25T10:00:00.000Z' });
  t.equal((await stat(usersFile)).mode & 0o777, 0o600);
  const text = await readFile(usersFile, 'utf8');
  t.notMatch(text, token, 'the clear token is stored nowhere');
  await addUser(usersFile, { name: 'customs.cdg', role: 'customs' });
  t.same(
    (await readUsers(usersFile)).map((u) => [u.name, u.role]),
    [
      ['border-lyon', 'border'],
      ['customs.cdg', 'customs'],
    ],
  );
  t.match(await removeUser(usersFile, 'border-lyon'), { name: 'border-lyon', role: 'border' });
  t.same(
    (await readUsers(usersFile)).map((u) => u.name),
    ['customs.cdg'],
  );
});

t.test('users: bad names, unknown roles, duplicates and unknown users are refused with codes, changing nothing', async (t) => {
  const { usersFile } = await files(t);
  await addUser(usersFile, { name: 'officer1', role: 'officer' });
  const before = await readFile(usersFile, 'utf8');
  await t.rejects(addUser(usersFile, { name: 'Officer2', role: 'officer' }), { code: 'LOCAL_USER_BAD_NAME' });
  await t.rejects(addUser(usersFile, { name: 'a:b', role: 'officer' }), { code: 'LOCAL_USER_BAD_NAME' }, 'a colon would break the tokens-file format');
  await t.rejects(addUser(usersFile, { name: 'x'.repeat(65), role: 'officer' }), { code: 'LOCAL_USER_BAD_NAME' });
  await t.rejects(addUser(usersFile, { name: 'imm', role: 'immigration' }), { code: 'LOCAL_USER_BAD_ROLE', message: /roles: ncb-admin, officer, border, customs/ });
  await t.rejects(addUser(usersFile, { name: 'officer1', role: 'border' }), { code: 'LOCAL_USER_EXISTS' });
  await t.rejects(addUser(usersFile, { name: 'operator', role: 'border', reserved: ['operator'] }), { code: 'LOCAL_USER_EXISTS', message: /tokens file/ });
  await t.rejects(removeUser(usersFile, 'nobody'), { code: 'LOCAL_USER_UNKNOWN' });
  t.equal(await readFile(usersFile, 'utf8'), before, 'the file is unchanged');
});

t.test('users: a malformed or exposed users file is refused with every problem', async (t) => {
  t.throws(() => parseUsersFile('{', '/x'), { code: 'LOCAL_USERS_MALFORMED' });
  const hash = 'a'.repeat(64);
  try {
    parseUsersFile(JSON.stringify({ v: 1, users: [{ name: 'a', rol: 'border', tokenSha256: hash, created: '2026-01-01T00:00:00Z' }, { name: 'b', role: 'chief', tokenSha256: 'zz', created: 'x' }] }), '/x');
    t.fail('should refuse');
  } catch (err) {
    t.match(err, { code: 'LOCAL_USERS_MALFORMED' });
    const problems = (err as { problems: string[] }).problems.join('\n');
    t.match(problems, /users\[0\]\.rol: unknown key/);
    t.match(problems, /users\[0\]\.role: required/);
    t.match(problems, /users\[1\]\.role/);
    t.match(problems, /users\[1\]\.tokenSha256/);
  }
  const twice = { name: 'a', role: 'border', tokenSha256: hash, created: '2026-01-01T00:00:00Z' };
  t.throws(() => parseUsersFile(JSON.stringify({ v: 1, users: [twice, twice] }), '/x'), { code: 'LOCAL_USERS_MALFORMED', problems: ['users[1].name: a appears twice'] });
  const { usersFile } = await files(t);
  await addUser(usersFile, { name: 'b1', role: 'border' });
  await chmod(usersFile, 0o640);
  await t.rejects(readUsers(usersFile), { code: 'LOCAL_TOKENS_PERMISSIONS', message: /users file .*chmod 600/ });
});

t.test('users: LocalAccess gives tokens-file entries ncb-admin and users their role, and follows the users file', async (t) => {
  const { tokensFile, usersFile, operator } = await files(t);
  const border = await addUser(usersFile, { name: 'border-lyon', role: 'border' });
  const access = await LocalAccess.load({ tokensFile, usersFile, log: silent });
  t.same(access.authenticate(`Bearer ${operator}`), { name: 'operator', role: 'ncb-admin' }, 'the old name:token line keeps working, as ncb-admin');
  t.same(access.authenticate(`Bearer ${border.token}`), { name: 'border-lyon', role: 'border' });
  t.equal(access.authenticate(`Bearer ${border.token.slice(0, -1)}${border.token.endsWith('A') ? 'B' : 'A'}`), undefined);
  t.equal(access.authenticate(undefined), undefined);
  t.equal(access.authenticate(`Bearer ${border.user.tokenSha256}`), undefined, 'the stored hash is no token');

  const customs = await addUser(usersFile, { name: 'customs-cdg', role: 'customs' });
  t.equal(access.authenticate(`Bearer ${customs.token}`), undefined, 'not before a refresh');
  await access.refresh();
  t.same(access.authenticate(`Bearer ${customs.token}`), { name: 'customs-cdg', role: 'customs' }, 'a user added while running works after refresh');
  await removeUser(usersFile, 'border-lyon');
  await access.refresh();
  t.equal(access.authenticate(`Bearer ${border.token}`), undefined, 'a removed user is refused');

  await writeFile(usersFile, '{"v":1,"users":[{"name":"x"}]}', { mode: 0o600 });
  await access.refresh();
  t.same(access.authenticate(`Bearer ${customs.token}`), { name: 'customs-cdg', role: 'customs' }, 'an invalid file keeps the last good users');
  t.same(access.authenticate(`Bearer ${operator}`), { name: 'operator', role: 'ncb-admin' });
});

t.test('users: LocalAccess refuses to start on a bad users file, and starts without one', async (t) => {
  const { tokensFile, usersFile, operator } = await files(t);
  const access = await LocalAccess.load({ tokensFile, usersFile, log: silent });
  t.same(access.authenticate(`Bearer ${operator}`), { name: 'operator', role: 'ncb-admin' }, 'an install from before roles starts as it did');
  await writeFile(usersFile, 'not json', { mode: 0o600 });
  await t.rejects(LocalAccess.load({ tokensFile, usersFile, log: silent }), { code: 'LOCAL_USERS_MALFORMED' });
});

t.test('users: adds and removes running at once lose no update (users file lock)', async (t) => {
  const { usersFile } = await files(t);
  await addUser(usersFile, { name: 'old-1', role: 'officer' });
  // Unlocked, each of these would read the same file and write its own version: one user would survive.
  const names = Array.from({ length: 10 }, (_, i) => `officer-${i}`);
  await Promise.all([...names.map((name) => addUser(usersFile, { name, role: 'officer' })), removeUser(usersFile, 'old-1')]);
  t.same((await readUsers(usersFile)).map((u) => u.name).sort(), names.sort());
  await t.rejects(stat(`${usersFile}.lock`), { code: 'ENOENT' }, 'the lock is released');
});

t.test('users: a lock held by a live process is waited for, then refused with a code; a dead holder\'s lock is taken over', async (t) => {
  const { usersFile } = await files(t);
  const lock = `${usersFile}.lock`;
  await writeFile(lock, `${process.pid}\n`);
  await t.rejects(addUser(usersFile, { name: 'late', role: 'border', lockWaitMs: 150 }), { code: 'LOCAL_USERS_LOCKED', message: new RegExp(`held by process ${process.pid}`) });
  t.same(await readUsers(usersFile), [], 'nothing written');
  t.equal(await readFile(lock, 'utf8'), `${process.pid}\n`, "a live holder's lock is never broken");
  const dead = spawnSync(process.execPath, ['-e', '0']).pid;
  await writeFile(lock, `${dead}\n`);
  await addUser(usersFile, { name: 'after-crash', role: 'border', lockWaitMs: 150 });
  t.same((await readUsers(usersFile)).map((u) => u.name), ['after-crash'], 'the stale lock of an exited process is taken over');
});
