import t from 'tap';
import Type from 'typebox';
import { parseWith, schemaProblems } from './validate.js';
import { CountryCodeSchema, isCountryCode, countryCodes } from './country.js';
import { hasCode } from './errors.js';
import { parseIdentityUri, subjectDn, identityUri } from './identity.js';

const Config = Type.Object(
  {
    listen: Type.String({ pattern: '^[^:]+:\\d+$' }),
    country: CountryCodeSchema,
    limits: Type.Object({ maxMessageBytes: Type.Integer({ minimum: 1 }) }, { additionalProperties: false }),
  },
  { additionalProperties: false },
);

t.test('validate: every problem is listed at once as path: problem (got X)', async (t) => {
  const problems = schemaProblems(Config, { listen: '10.0.0.1', country: 'fr', limits: { maxMessageBytes: 0, extra: 1 }, typo: true }, 'hub');
  t.same(problems.sort(), [
    'hub.country: must match pattern "^[A-Z]{2}$" (got "fr")',
    'hub.limits.extra: unknown key',
    'hub.limits.maxMessageBytes: must be >= 1 (got 0)',
    'hub.listen: must match pattern "^[^:]+:\\d+$" (got "10.0.0.1")',
    'hub.typo: unknown key',
  ].sort());
  t.same(schemaProblems(Config, {}), ['listen: required', 'country: required', 'limits: required']);
  t.same(schemaProblems(Type.Array(Type.Integer()), [1, 'x'], 'list'), ['list[1]: must be integer (got "x")']);
  t.match(schemaProblems(Type.String(), 'x'.repeat(500))[0] ?? 'ok', /ok/, 'valid input has no problems');
  t.match(schemaProblems(Type.Integer(), 'x'.repeat(500))[0], /got "x{50,}…\)$/, 'long values are cut short');
});

t.test('validate: parseWith returns typed input or throws a coded error with all problems', async (t) => {
  const ok = parseWith(Config, { listen: 'h:1', country: 'FR', limits: { maxMessageBytes: 5 } }, { code: 'X_BAD', what: 'config' });
  t.equal(ok.limits.maxMessageBytes, 5);
  try {
    parseWith(Config, { listen: 1 }, { code: 'X_BAD', what: 'config' });
    t.fail('should throw');
  } catch (err) {
    t.ok(hasCode(err, 'X_BAD'));
    t.match((err as Error).message, /^config is invalid:\n/);
    t.same((err as { problems: string[] }).problems, ['country: required', 'limits: required', 'listen: must be string (got 1)']);
  }
});

t.test('identity: names, DNs and URIs of ARCHITECTURE', async (t) => {
  t.equal(subjectDn('country', 'FR'), 'CN=FR,OU=ncb,O=ncbnet');
  t.equal(subjectDn('operator', 'alice'), 'CN=alice,OU=operator,O=ncbnet');
  t.equal(identityUri('hub', 'hub-1'), 'urn:ncbnet:hub:hub-1');
  t.same(parseIdentityUri('urn:ncbnet:country:FR'), { kind: 'country', name: 'FR' });
  t.equal(parseIdentityUri('urn:ncbnet:king:FR'), undefined);
  t.ok(isCountryCode('FR'));
  t.notOk(isCountryCode('UK'), 'UK is not an ISO code (GB is)');
  t.notOk(isCountryCode('fr'));
  t.ok(countryCodes().length >= 249);
});

t.test('validate: more than eight problems are all reported', async (t) => {
  const schema = Type.Object(Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, Type.Integer()])), { additionalProperties: false });
  const problems = schemaProblems(schema, Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, 'x'])), 'cfg');
  t.equal(problems.length, 20, 'one line per bad key');
});
