import t from 'tap';
import fc from 'fast-check';
import {
  MAX_QUERY_BYTES,
  QUERY_BAD_KEY,
  QUERY_BAD_RECORD,
  QUERY_INVALID,
  QUERY_SERVICES,
  QUERY_TOO_LARGE,
  QUERY_UNKNOWN_SERVICE,
  QUERY_UNSUPPORTED_OP,
  QueryError,
  encodeQueryRequest,
  kvKey,
  nameHash,
  normalizeCode,
  normalizeMake,
  normalizeName,
  parseQueryRequest,
  queryHttpStatus,
  refusalOf,
} from './query.js';

function refusal(fn: () => unknown): { code: string; problems: readonly string[] } | 'returned' {
  try {
    fn();
    return 'returned';
  } catch (err) {
    if (!(err instanceof QueryError)) throw err;
    return { code: err.code, problems: err.problems };
  }
}

const KV_KEY = /^[A-Za-z0-9]+(\.[A-Za-z0-9]+)*$/;

t.test('query: names are normalized for search (NFKD, no marks, case fold, spaces, token order)', async (t) => {
  t.equal(normalizeName('Doe, JOHN'), 'doe john');
  t.equal(normalizeName('  john\t doé '), 'doe john');
  t.equal(normalizeName('José  MÜLLER-Lüdenscheidt'), 'jose ludenscheidt muller');
  t.equal(normalizeName('Straße'), 'strasse', 'ß folds to ss');
  t.equal(normalizeName('Søren Łukasz Ærø'), 'aero lukasz soren', 'letters without a decomposition are folded');
  t.equal(normalizeName('ＪＯＨＮ ｄｏｅ'), 'doe john', 'full-width letters (NFKD)');
  t.equal(normalizeName('Иван Петров'), 'иван петров', 'other scripts keep their letters');
  t.equal(normalizeName('!!!'), '');
  t.equal(nameHash(normalizeName('a b')), nameHash(normalizeName('B  A')));
  t.match(nameHash('x'), /^[0-9a-f]{32}$/);
});

t.test('query: name normalization is idempotent, order-insensitive and gives KV-safe hashes (fast-check)', async (t) => {
  fc.assert(
    fc.property(fc.array(fc.string({ maxLength: 12 }), { maxLength: 6 }), (words) => {
      const once = normalizeName(words.join(' '));
      t.equal(normalizeName(once), once);
      t.equal(normalizeName([...words].reverse().join('  ')), once);
      t.notMatch(once, /\s{2}|^\s|\s$|\p{M}|\p{Lu}/u);
    }),
    { numRuns: 500 },
  );
});

t.test('query: keys are normalized per service and spelled as KV keys', async (t) => {
  const sltd = parseQueryRequest({ v: 1, service: 'sltd', op: 'get', key: { number: ' 12 ab-345/6 ', country: 'fr' } });
  t.same(sltd, { v: 1, service: 'sltd', op: 'get', key: { number: '12AB3456', country: 'FR' } });
  t.equal(kvKey('sltd', { number: '12AB3456', country: 'FR' }), 'FR.12AB3456');
  const gun = parseQueryRequest({ v: 1, service: 'firearms', op: 'get', key: { serial: 'g-12 3', make: 'Heckler & Koch' } });
  t.same(gun.op === 'get' && gun.key, { serial: 'G123', make: 'HECKLERKOCH' });
  t.equal(normalizeMake('Škoda Zbrojovka'), 'SKODAZBROJOVKA');
  t.equal(normalizeCode('ab.12/3_4'), 'AB1234');
  t.same(parseQueryRequest({ v: 1, service: 'smv', op: 'get', key: { vin: 'wvw zzz 1jz xw000001' } }), { v: 1, service: 'smv', op: 'get', key: { vin: 'WVWZZZ1JZXW000001' } });
  t.match(refusal(() => parseQueryRequest({ v: 1, service: 'smv', op: 'get', key: { vin: 'WVWOOO1JZXW000001' } })), { code: QUERY_BAD_KEY, problems: [/^key\.vin: .*without I, O or Q \(got "WVWOOO1JZXW000001"\)$/] });
});

t.test('query: every accepted key normalizes to a KV-safe key, and normalizing twice changes nothing (fast-check)', async (t) => {
  const text = fc.string({ maxLength: 40 });
  const keys: Record<string, fc.Arbitrary<Record<string, string>>> = {
    sltd: fc.record({ number: text, country: fc.constantFrom('FR', 'fr', 'DE', 'ZZ', 'f', 'FRA') }),
    smv: fc.record({ vin: text }),
    woa: fc.record({ objectId: text }),
    firearms: fc.record({ serial: text, make: text }),
    nominal: fc.record({ id: text }),
  };
  for (const service of QUERY_SERVICES) {
    fc.assert(
      fc.property(keys[service] as fc.Arbitrary<Record<string, string>>, (key) => {
        const outcome = refusal(() => parseQueryRequest({ v: 1, service, op: 'get', key }));
        if (outcome !== 'returned') {
          t.equal(outcome.code, QUERY_BAD_KEY);
          t.ok(outcome.problems.length > 0 && outcome.problems.every((p) => /^key\.[a-zA-Z]+: .+/.test(p)));
          return;
        }
        const parsed = parseQueryRequest({ v: 1, service, op: 'get', key });
        if (parsed.op !== 'get') throw new Error('not a get');
        t.match(kvKey(service, parsed.key), KV_KEY);
        t.same(parseQueryRequest({ v: 1, service, op: 'get', key: parsed.key }), parsed, 'normalized keys are fixed points');
      }),
      { numRuns: 300 },
    );
  }
});

t.test('query: malformed requests are refused with a code and every problem, never anything else (fast-check)', async (t) => {
  const codes = new Set([QUERY_INVALID, QUERY_UNKNOWN_SERVICE, QUERY_UNSUPPORTED_OP, QUERY_BAD_KEY, QUERY_BAD_RECORD, QUERY_TOO_LARGE]);
  const request = fc.record(
    {
      v: fc.constantFrom(1, 2, '1'),
      service: fc.constantFrom(...QUERY_SERVICES, 'dna', '', 'SLTD'),
      op: fc.constantFrom('get', 'search', 'put', 'delete', 'list'),
      key: fc.dictionary(fc.constantFrom('number', 'country', 'vin', 'objectId', 'serial', 'make', 'id', 'x'), fc.oneof(fc.string({ maxLength: 20 }), fc.integer())),
      record: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 })),
      name: fc.string({ maxLength: 300 }),
      limit: fc.integer({ min: -5, max: 100 }),
      extra: fc.jsonValue({ maxDepth: 1 }),
    },
    { requiredKeys: [] },
  );
  fc.assert(
    fc.property(fc.oneof(request, fc.jsonValue({ maxDepth: 3 })), (value) => {
      for (const input of [value, JSON.stringify(value) ?? 'null']) {
        const outcome = refusal(() => parseQueryRequest(input));
        if (outcome === 'returned') continue;
        t.ok(codes.has(outcome.code), outcome.code);
        t.ok(outcome.code === QUERY_UNKNOWN_SERVICE || outcome.code === QUERY_UNSUPPORTED_OP || outcome.problems.length > 0, 'problems listed');
        // A path may itself hold a colon (an unknown key named `a:b`); the problem follows `: `.
        const odd = outcome.problems.filter((p) => !/^.+: .+/s.test(p));
        t.same(odd, [], 'each as `path: problem`');
      }
    }),
    { numRuns: 1500 },
  );
});

t.test('query: size limits, unknown services and wrong ops are coded', async (t) => {
  const big = JSON.stringify({ v: 1, service: 'nominal', op: 'search', name: 'x', pad: 'y'.repeat(MAX_QUERY_BYTES) });
  t.match(refusal(() => parseQueryRequest(big)), { code: QUERY_TOO_LARGE });
  t.throws(() => encodeQueryRequest({ v: 1, service: 'woa', op: 'put', record: { objectId: 'A', title: 'é'.repeat(MAX_QUERY_BYTES / 2) } }), { code: QUERY_TOO_LARGE });
  t.match(refusal(() => parseQueryRequest('{not json')), { code: QUERY_INVALID, problems: [/^\(root\): not JSON/] });
  t.match(refusal(() => parseQueryRequest({ v: 1, service: 'dna', op: 'get', key: {} })), { code: QUERY_UNKNOWN_SERVICE });
  t.match(refusal(() => parseQueryRequest({ v: 1, service: 'sltd', op: 'search', name: 'Doe' })), { code: QUERY_UNSUPPORTED_OP });
  t.match(refusal(() => parseQueryRequest({ v: 1, service: 'sltd', op: 'get', key: { number: 'A1', country: 'FR' }, name: 'x' })), { code: QUERY_INVALID, problems: ['name: not allowed when op is get'] });
  t.match(refusal(() => parseQueryRequest({ v: 1, service: 'sltd', op: 'get' })), { code: QUERY_BAD_KEY, problems: ['key: required when op is get'] });
  t.match(refusal(() => parseQueryRequest({ v: 1, service: 'sltd', op: 'get', key: { number: 'A1', country: 'FR', extra: 'x' } })), { code: QUERY_BAD_KEY, problems: ['key.extra: unknown key'] });
  t.match(refusal(() => parseQueryRequest({ v: 1, service: 'nominal', op: 'search', name: '---' })), { code: QUERY_BAD_KEY, problems: ['name: must contain letters or digits (got "---")'] });
  t.match(refusal(() => parseQueryRequest({ v: 1, service: 'nominal', op: 'put', record: { id: 'P1', name: 'Doe', notices: ['not-a-ulid'] } })), { code: QUERY_BAD_RECORD, problems: [/^record\.notices\[0\]: /] });
  t.match(refusal(() => parseQueryRequest({ v: 1, service: 'sltd', op: 'put', record: { number: '#', country: 'FR', type: 'passport', status: 'stolen' } })), { code: QUERY_BAD_RECORD, problems: [/^record\.number: /] });
  const put = parseQueryRequest({ v: 1, service: 'sltd', op: 'put', record: { number: 'ab 1', country: 'fr', type: 'passport', status: 'lost' } });
  t.same(put.op === 'put' && put.record, { number: 'AB1', country: 'FR', type: 'passport', status: 'lost' }, 'a stored record carries its normalized key');
});

t.test('query: refusals carry the code; HTTP statuses are mapped', async (t) => {
  t.same(refusalOf(new QueryError(QUERY_BAD_KEY, 'bad', { problems: ['key.x: y'] })), { v: 1, ok: false, code: QUERY_BAD_KEY, message: 'bad:\n  key.x: y', problems: ['key.x: y'] });
  t.match(refusalOf(new Error('kv down')), { ok: false, code: 'QUERY_UNAVAILABLE' });
  t.same([queryHttpStatus(QUERY_UNKNOWN_SERVICE), queryHttpStatus(QUERY_BAD_KEY), queryHttpStatus('QUERY_HUB_UNREACHABLE'), queryHttpStatus('QUERY_TIMEOUT'), queryHttpStatus('X')], [404, 400, 503, 504, undefined]);
});
