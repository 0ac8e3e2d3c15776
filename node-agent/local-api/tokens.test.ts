import t from 'tap';
import { chmod, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { tempDir } from '../../test/helpers/tmpdir.js';
import { createTokensFile, generateToken, loadTokens, parseTokensFile, readToken } from './tokens.js';

t.test('tokens: createTokensFile makes one 256-bit operator token, mode 0600, and never replaces a file', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'sub', 'local-api.tokens');
  t.equal(await createTokensFile(path), true, 'created');
  t.equal((await stat(path)).mode & 0o777, 0o600, 'file 0600');
  t.equal((await stat(join(dir, 'sub'))).mode & 0o777, 0o700, 'new directory 0700');
  const token = await readToken(path);
  t.match(token, /^[A-Za-z0-9_-]{43}$/, '32 random bytes, base64url');
  const text = await readFile(path, 'utf8');
  t.match(text, new RegExp(`^operator:${token}$`, 'm'));
  t.equal(await createTokensFile(path), false, 'a second call leaves the file');
  t.equal(await readFile(path, 'utf8'), text, 'content unchanged');
  t.not(generateToken(), generateToken(), 'tokens are random');
});

t.test('tokens: a tokens file others can read is refused', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'local-api.tokens');
  await createTokensFile(path);
  await chmod(path, 0o644);
  await t.rejects(loadTokens(path), { code: 'LOCAL_TOKENS_PERMISSIONS', message: /chmod 600/ });
  await t.rejects(readToken(path), { code: 'LOCAL_TOKENS_PERMISSIONS' }, 'the client side checks too');
  await chmod(path, 0o600);
  t.ok(await loadTokens(path));
  await t.rejects(loadTokens(join(dir, 'missing')), { code: 'ENOENT' });
});

t.test('tokens: verifyBearer names the caller for a right token and nothing for any other header', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'local-api.tokens');
  const operator = generateToken();
  const app = generateToken();
  await writeFile(path, `# comment\n\noperator:${operator}\nborder-app:${app}\n`, { mode: 0o600 });
  const tokens = await loadTokens(path);
  t.same(tokens.names(), ['operator', 'border-app']);
  t.equal(tokens.verifyBearer(`Bearer ${operator}`), 'operator');
  t.equal(tokens.verifyBearer(`Bearer ${app}`), 'border-app');
  t.equal(tokens.verifyBearer(`bearer   ${app} `), 'border-app', 'scheme case and spacing (RFC 7235)');
  t.same(tokens.authenticate(`Bearer ${app}`), { name: 'border-app', role: 'ncb-admin' }, 'every tokens-file entry is ncb-admin, whatever its name (the format predates roles)');
  t.equal(tokens.verifyBearer(`Bearer ${operator.slice(0, -1)}${operator.endsWith('x') ? 'y' : 'x'}`), undefined, 'one character off');
  // timingSafeEqual throws on inputs of different lengths; hashing first makes every length safe
  // to compare, and the comparison time independent of the presented token's length.
  for (const guess of ['', 'a', operator.slice(0, 10), `${operator}${operator}`, 'x'.repeat(10_000)]) {
    t.equal(tokens.verifyBearer(`Bearer ${guess}`), undefined, `a ${guess.length}-character guess`);
  }
  t.equal(tokens.verifyBearer(undefined), undefined, 'no header');
  t.equal(tokens.verifyBearer(operator), undefined, 'no scheme');
  t.equal(tokens.verifyBearer(`Basic ${operator}`), undefined, 'another scheme');
  t.equal(tokens.verifyBearer(`Bearer ${operator} extra`), undefined, 'two credentials');
  const dump = `${inspect(tokens, { showHidden: true, depth: 10 })}${JSON.stringify(tokens)}`;
  t.notMatch(dump, operator, 'the loaded tokens do not hold the clear token');
});

t.test('tokens: a malformed file is refused with every bad line, never showing a token', async (t) => {
  const secret = generateToken();
  const text = ['operator:' + secret, 'no-colon-here', 'Upper:' + generateToken(), 'operator:' + generateToken(), 'weak:short-secret', ''].join('\n');
  try {
    parseTokensFile(text, '/etc/tokens');
    t.fail('should refuse');
  } catch (err) {
    t.match(err, { code: 'LOCAL_TOKENS_MALFORMED' });
    const problems = (err as { problems: string[] }).problems;
    t.match(problems, [/^\/etc\/tokens:2: not name:token$/, /^\/etc\/tokens:3: name must be/, /^\/etc\/tokens:4: name operator appears twice$/, /^\/etc\/tokens:5: token of weak must be at least 43/]);
    t.equal(problems.length, 4);
    t.notMatch(String((err as Error).message), secret);
    t.notMatch(String((err as Error).message), 'short-secret');
  }
  const dir = await tempDir(t);
  const path = join(dir, 't');
  await writeFile(path, `app:${generateToken()}\n`, { mode: 0o600 });
  await t.rejects(readToken(path), { code: 'LOCAL_TOKEN_MISSING' }, 'no operator line');
  t.match(await readToken(path, 'app'), /^[A-Za-z0-9_-]{43}$/);
});
