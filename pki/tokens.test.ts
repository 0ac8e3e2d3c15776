import t from 'tap';
import fc from 'fast-check';
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from '../test/helpers/tmpdir.js';
import { TokenError } from './errors.js';
import { EnrollmentTokens, parseToken } from './tokens.js';

const FP = 'ab'.repeat(32);

async function open(t: Parameters<typeof tempDir>[0], clock = { now: new Date() }) {
  const dir = await tempDir(t);
  const path = join(dir, 'tokens.jsonl');
  const tokens = await EnrollmentTokens.open(path, FP, () => clock.now);
  return { dir, path, tokens, clock };
}

t.test('tokens: a token has the designed format, is bound to its country, and works once', async (t) => {
  const { tokens, path } = await open(t);
  const { token, info } = await tokens.create('FR');
  t.match(token, /^ncbnet1\.[0-9a-f]{16}\.[A-Za-z0-9_-]{43}\.[0-9a-f]{64}$/);
  t.equal(parseToken(token).caFingerprint, FP, 'carries the CA fingerprint');
  t.equal(info.country, 'FR');
  t.equal(Date.parse(info.expiresAt) - Date.parse(info.createdAt), 3600_000, '1 h default TTL');
  t.equal(tokens.verify(token).country, 'FR', 'verify does not use it up');
  const used = await tokens.consume(token);
  t.equal(used.country, 'FR');
  t.ok(used.usedAt);
  await t.rejects(tokens.consume(token), { code: 'ENROLL_TOKEN_USED' }, 'second use refused');
  const stored = await readFile(path, 'utf8');
  t.notMatch(stored, parseToken(token).secret, 'the secret is never stored');
  t.match(stored, /"secretSha256":"[0-9a-f]{64}"/, 'only its SHA-256');
  const reopened = await EnrollmentTokens.open(path, FP);
  t.throws(() => reopened.verify(token), { code: 'ENROLL_TOKEN_USED' }, 'used survives a restart');
});

t.test('tokens: expired, unknown, wrong-secret, garbled and foreign tokens each have their code', async (t) => {
  const { tokens, clock } = await open(t);
  const { token } = await tokens.create('DE', 120_000);
  clock.now = new Date(clock.now.getTime() + 120_000);
  t.throws(() => tokens.verify(token), { code: 'ENROLL_TOKEN_EXPIRED' });
  const p = parseToken(token);
  t.throws(() => tokens.verify(`ncbnet1.${'0'.repeat(16)}.${p.secret}.${FP}`), { code: 'ENROLL_TOKEN_UNKNOWN' }, 'unknown id');
  const otherSecret = p.secret.startsWith('A') ? `B${p.secret.slice(1)}` : `A${p.secret.slice(1)}`;
  t.throws(() => tokens.verify(`ncbnet1.${p.id}.${otherSecret}.${FP}`), { code: 'ENROLL_TOKEN_UNKNOWN' }, 'right id, wrong secret says unknown, not expired');
  t.throws(() => tokens.verify(`ncbnet1.${p.id}.${p.secret}.${'cd'.repeat(32)}`), { code: 'ENROLL_TOKEN_WRONG_CA' });
  for (const bad of ['', 'ncbnet1', token.slice(0, -1), `${token}x`, token.replace('ncbnet1', 'ncbnet2'), token.toUpperCase()]) {
    t.throws(() => tokens.verify(bad), { code: 'ENROLL_TOKEN_MALFORMED' }, `garbled: ${JSON.stringify(bad.slice(0, 20))}`);
  }
  t.throws(() => tokens.verify(42 as unknown as string), { code: 'ENROLL_TOKEN_MALFORMED' }, 'not a string');
});

t.test('tokens: creation refuses bad countries and TTLs', async (t) => {
  const { tokens } = await open(t);
  await t.rejects(tokens.create('fr'), { code: 'PKI_BAD_COUNTRY' });
  await t.rejects(tokens.create('ZZ'), { code: 'PKI_BAD_COUNTRY' });
  await t.rejects(tokens.create('FR', 0), { code: 'ENROLL_TOKEN_BAD_TTL' });
  await t.rejects(tokens.create('FR', 8 * 86400e3), { code: 'ENROLL_TOKEN_BAD_TTL' });
  t.equal(tokens.list().length, 0, 'nothing stored');
});

t.test('tokens: concurrent uses of one token: exactly one wins', async (t) => {
  const { tokens } = await open(t);
  const { token } = await tokens.create('IT');
  const results = await Promise.allSettled(Array.from({ length: 8 }, () => tokens.consume(token)));
  t.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
  t.ok(results.filter((r) => r.status === 'rejected').every((r) => (r.reason as TokenError).code === 'ENROLL_TOKEN_USED'));
});

t.test('tokens: a torn last record is cut off; damage in the middle is refused with its line', async (t) => {
  const { path, tokens } = await open(t);
  const { token } = await tokens.create('ES');
  await appendFile(path, '{"type":"used","id":"');
  const reopened = await EnrollmentTokens.open(path, FP);
  t.match(reopened.repaired, /torn last record/);
  t.equal(reopened.verify(token).country, 'ES', 'the complete record is kept, the torn one dropped');
  await reopened.consume(token);
  const again = await EnrollmentTokens.open(path, FP);
  t.throws(() => again.verify(token), { code: 'ENROLL_TOKEN_USED' }, 'appends after a repair are readable');
  const text = await readFile(path, 'utf8');
  await writeFile(path, `not json\n${text}`);
  await t.rejects(EnrollmentTokens.open(path, FP), { code: 'PKI_LEDGER_CORRUPT', message: /tokens\.jsonl:1: not JSON/ });
  await writeFile(path, `{"type":"used","id":"nothex","at":"x"}\n`);
  await t.rejects(EnrollmentTokens.open(path, FP), { code: 'PKI_LEDGER_CORRUPT', message: /:1: record/ });
});

t.test('tokens: any text is either a valid token or a TokenError (fuzz)', async (t) => {
  const { tokens } = await open(t);
  const { token } = await tokens.create('PT');
  fc.assert(
    fc.property(fc.oneof(fc.string({ maxLength: 200 }), fc.nat({ max: token.length - 1 }).chain((i) => fc.string({ minLength: 1, maxLength: 1 }).map((c) => token.slice(0, i) + c + token.slice(i + 1)))), (text) => {
      try {
        return tokens.verify(text).country === 'PT';
      } catch (err) {
        return err instanceof TokenError;
      }
    }),
    { numRuns: 500 },
  );
  t.pass('no input escaped as anything but a TokenError');
});
