import t from 'tap';
import fc from 'fast-check';
import {
  B2B_BAD_KEY,
  B2B_INVALID,
  B2B_POLICY_INVALID,
  B2B_TOO_LARGE,
  B2bError,
  b2bGrants,
  b2bHttpStatus,
  b2bRefusalOf,
  fieldsFor,
  filterRecord,
  isAllowed,
  parseB2bPolicySet,
  parseB2bRequest,
  type B2bPolicy,
} from './b2b.js';

function codeOf(fn: () => unknown): { code: string; problems: readonly string[] } | 'returned' {
  try {
    fn();
    return 'returned';
  } catch (err) {
    if (!(err instanceof B2bError)) throw err;
    return { code: err.code, problems: err.problems };
  }
}

const vehicles: B2bPolicy = {
  db: 'vehicles',
  allow: ['DE', 'NL'],
  fields: { default: ['vin', 'status'], perCountry: { DE: ['vin', 'status', 'make', 'plate'] } },
  notifyEnquiries: true,
};

t.test('b2b: a policy set is checked for its owner, every problem at once', async (t) => {
  t.same(parseB2bPolicySet({ databases: [vehicles] }, 'FR'), { databases: [vehicles] });
  t.same(parseB2bPolicySet({ databases: [{ ...vehicles, allow: '*' }] }, 'FR').databases[0]?.allow, '*');
  const bad = codeOf(() =>
    parseB2bPolicySet(
      {
        databases: [
          { ...vehicles, allow: ['DE', 'FR', 'ZZ'], fields: { default: ['vin'], perCountry: { IT: ['vin'] } } },
          { ...vehicles },
        ],
      },
      'FR',
    ),
  );
  t.match(bad, {
    code: B2B_POLICY_INVALID,
    problems: [/^b2b\.databases\[0\]\.allow\[1\]: the owner/, /^b2b\.databases\[0\]\.allow\[2\]: not an assigned/, /^b2b\.databases\[0\]\.fields\.perCountry\.IT: IT is not in allow/, /^b2b\.databases\[1\]\.db: duplicate/],
  });
  t.match(codeOf(() => parseB2bPolicySet({ databases: [{ ...vehicles, extra: 1 }] }, 'FR')), { code: B2B_POLICY_INVALID, problems: [/extra/] }, 'unknown keys refused');
  t.match(codeOf(() => parseB2bPolicySet({ databases: [{ ...vehicles, db: 'Vehicles.x' }] }, 'FR')), { code: B2B_POLICY_INVALID });
  t.match(codeOf(() => parseB2bPolicySet({ databases: [{ ...vehicles, fields: { default: ['__proto__'] } }] }, 'FR')), { code: B2B_POLICY_INVALID }, 'no odd field names');
});

t.test('b2b: who is allowed, which fields each sees', async (t) => {
  t.ok(isAllowed(vehicles, 'DE'));
  t.notOk(isAllowed(vehicles, 'IT'));
  t.same(fieldsFor(vehicles, 'DE'), ['vin', 'status', 'make', 'plate'], 'per-country fields replace the default');
  t.same(fieldsFor(vehicles, 'NL'), ['vin', 'status']);
  t.same(fieldsFor(vehicles, 'IT'), [], 'a country not allowed sees nothing');
  t.same(fieldsFor({ ...vehicles, allow: '*' }, 'IT'), ['vin', 'status']);
  t.same(fieldsFor({ ...vehicles, allow: '*' }, 'toString'), [], 'nothing inherited');
  const record = { vin: 'VF1AB000000000001', status: 'stolen', make: 'Renault', plate: 'AB-123-CD', owner: 'Jean Dupont' };
  t.same(filterRecord(record, fieldsFor(vehicles, 'NL')), { vin: 'VF1AB000000000001', status: 'stolen' });
  t.same(filterRecord(record, fieldsFor(vehicles, 'DE')), { vin: 'VF1AB000000000001', status: 'stolen', make: 'Renault', plate: 'AB-123-CD' });
  t.same(filterRecord(Object.create({ status: 'inherited' }) as Record<string, unknown>, ['status']), {}, 'inherited values are not own fields');
});

const FIELD = fc.stringMatching(/^[A-Za-z][A-Za-z0-9_]{0,8}$/);

t.test('b2b: no field outside the policy ever appears in a filtered record (fast-check)', async (t) => {
  fc.assert(
    fc.property(
      fc.dictionary(fc.oneof(FIELD, fc.string(), fc.constantFrom('__proto__', 'constructor', 'toString')), fc.jsonValue()),
      fc.uniqueArray(FIELD, { maxLength: 8 }),
      fc.uniqueArray(FIELD, { maxLength: 8 }),
      fc.constantFrom('DE', 'NL', 'IT', 'ES'),
      (record, defaults, german, asker) => {
        const policy: B2bPolicy = { db: 'x', allow: ['DE', 'NL'], fields: { default: defaults, perCountry: { DE: german } }, notifyEnquiries: false };
        const out = filterRecord(record, fieldsFor(policy, asker));
        const allowed = new Set(asker === 'DE' ? german : asker === 'NL' ? defaults : []);
        for (const k of Object.keys(out)) if (!allowed.has(k)) return false;
        // What is shared is the record's own value, untouched.
        for (const [k, v] of Object.entries(out)) if (record[k] !== v) return false;
        return Object.getPrototypeOf(out) === Object.prototype && JSON.stringify(out).length <= JSON.stringify(record).length + 2;
      },
    ),
    { numRuns: 500 },
  );
  t.pass('500 random records and policies');
});

t.test('b2b: requests are checked and their keys normalized', async (t) => {
  t.same(parseB2bRequest({ v: 1, db: 'vehicles', key: 'vf1-ab 000.000/000001' }), { v: 1, db: 'vehicles', key: 'VF1AB000000000001' });
  t.same(parseB2bRequest(JSON.stringify({ v: 1, db: 'vehicles', key: 'x1' })).key, 'X1');
  t.match(codeOf(() => parseB2bRequest({ v: 1, db: 'vehicles', key: '#?' })), { code: B2B_BAD_KEY, problems: [/^key: .*\(got "#\?"\)/] });
  t.match(codeOf(() => parseB2bRequest({ v: 1, db: 'vehicles' })), { code: B2B_INVALID });
  t.match(codeOf(() => parseB2bRequest({ v: 1, db: 'vehicles', key: 'A', more: 1 })), { code: B2B_INVALID });
  t.match(codeOf(() => parseB2bRequest('{')), { code: B2B_INVALID });
  t.match(codeOf(() => parseB2bRequest('x'.repeat(2000))), { code: B2B_TOO_LARGE });
  t.equal(b2bHttpStatus('B2B_NOT_ALLOWED'), 403);
  t.equal(b2bHttpStatus('B2B_UNREACHABLE'), 503);
  t.match(b2bRefusalOf(new Error('disk on fire at /secret/path')), { ok: false, code: 'B2B_UNAVAILABLE', message: 'the database failed; retry later' }, 'uncoded errors say nothing');
});

t.test('b2b: grants expand * to active members and drop inactive countries', async (t) => {
  const owners = [
    { code: 'FR', b2b: [vehicles, { ...vehicles, db: 'boats', allow: '*' as const }] },
    { code: 'XK', b2b: [vehicles] },
    { code: 'DE' },
  ];
  t.same(b2bGrants(owners, ['DE', 'FR', 'IT']), [
    { owner: 'FR', db: 'boats', allow: ['DE', 'IT'] },
    { owner: 'FR', db: 'vehicles', allow: ['DE'] },
  ]);
});
