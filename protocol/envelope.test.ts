import t from 'tap';
import fc from 'fast-check';
import {
  ENVELOPE_KINDS,
  EnvelopeError,
  MAX_BODY_CHARS,
  NOTICE_COLOURS,
  encodeEnvelope,
  envelopeProblems,
  isUlid,
  newUlid,
  parseEnvelope,
  ulidTime,
  type Envelope,
} from './envelope.js';

function valid(over: Partial<Envelope> = {}): Envelope {
  return {
    v: 1,
    id: newUlid(),
    kind: 'notice',
    notice: { colour: 'red' },
    from: 'FR',
    to: ['DE', 'IT'],
    priority: 'urgent',
    created: '2025-01-02T03:04:05.678Z',
    body: 'wanted for armed robbery',
    ...over,
  };
}

function codeOf(fn: () => unknown): { code: string; problems: readonly string[]; envelopeId: string | undefined } | 'returned' {
  try {
    fn();
    return 'returned';
  } catch (err) {
    if (!(err instanceof EnvelopeError)) throw err;
    return { code: err.code, problems: err.problems, envelopeId: err.envelopeId };
  }
}

t.test('envelope: a valid envelope round-trips through encode and parse', async (t) => {
  const full = valid({ handling: 'TLP-AMBER', expires: '2025-02-01T00:00:00+01:00', inReplyTo: newUlid(), subject: 'Red notice', sig: 'abc-_09' });
  const bytes = encodeEnvelope(full);
  t.same(parseEnvelope(bytes), full);
  t.same(parseEnvelope(new TextDecoder().decode(bytes)), full, 'a string is accepted too');
  t.same(parseEnvelope(JSON.stringify(valid({ to: '*', kind: 'diffusion', notice: undefined }))).to, '*');
  for (const kind of ENVELOPE_KINDS.filter((k) => k !== 'notice')) t.same(envelopeProblems({ ...valid({ kind }), notice: undefined }), [], kind);
  for (const colour of NOTICE_COLOURS) t.same(envelopeProblems(valid({ notice: { colour } })), [], colour);
});

t.test('envelope: every problem is reported as path: problem (got X) with code ENVELOPE_INVALID', async (t) => {
  const id = newUlid();
  const bad = { ...valid({ id }), v: 2, to: ['DE', 'DE'], priority: 'high', extra: true };
  const r = codeOf(() => parseEnvelope(JSON.stringify(bad)));
  t.not(r, 'returned');
  if (r === 'returned') return;
  t.equal(r.code, 'ENVELOPE_INVALID');
  t.equal(r.envelopeId, id, 'the id is kept so the sender can correlate');
  t.same([...r.problems].sort(), [
    'extra: unknown key',
    'priority: must be equal to one of the allowed values (got "high")',
    'to: must not have duplicate items (got ["DE","DE"])',
    'v: must be equal to constant (got 2)',
  ]);
  t.same(envelopeProblems({ ...valid(), to: 'everyone' }), ['to: must be "*" or a list of country codes (got "everyone")']);
  t.same(envelopeProblems({ ...valid(), to: [] }), ['to: must not have fewer than 1 items (got [])']);
  t.same(envelopeProblems({ ...valid(), id: 'not-a-ulid' }), ['id: must match pattern "^[0-7][0-9A-HJKMNP-TV-Z]{25}$" (got "not-a-ulid")']);
  t.same(envelopeProblems({ ...valid(), created: '2025-01-02T03:04:05' }), ['created: must match format "date-time" (got "2025-01-02T03:04:05")'], 'an offset is required');
  t.same(envelopeProblems({ ...valid(), created: '2025-01-02T03:04:05Z[Europe/Paris]' }), [
    'created: must be an RFC 3339 date-time without suffix (got "2025-01-02T03:04:05Z[Europe/Paris]")',
  ]);
  t.match(envelopeProblems({ ...valid(), created: '2025-13-02T03:04:05Z' }), [/^created: must match format "date-time"/]);
  t.match(envelopeProblems({ ...valid(), body: 'x'.repeat(MAX_BODY_CHARS + 1) }), [/^body: must not have more than/]);
  t.same(envelopeProblems({}).length, 8, 'every missing field is listed');
  t.same(envelopeProblems(null), ['(root): must be object (got null)']);
});

t.test('envelope: rules beyond the schema (ISO codes, notice colour, expiry)', async (t) => {
  t.same(envelopeProblems(valid({ from: 'UK', to: ['DE', 'ZZ'] })), [
    'from: not an assigned ISO 3166-1 code (got "UK")',
    'to[1]: not an assigned ISO 3166-1 code (got "ZZ")',
  ]);
  t.same(envelopeProblems({ ...valid(), notice: undefined }), ['notice: required when kind is notice']);
  t.same(envelopeProblems(valid({ kind: 'message' })), ['notice: only allowed when kind is notice (got "message")']);
  t.same(envelopeProblems(valid({ expires: '2025-01-02T03:04:05.678Z' })), ['expires: must be after created (got "2025-01-02T03:04:05.678Z")']);
  t.same(envelopeProblems(valid({ expires: '2025-01-02T04:04:05.000+01:00' })).length, 1, 'offsets are compared as instants');
});

t.test('envelope: too large, not UTF-8 and not JSON each have their code', async (t) => {
  const big = JSON.stringify(valid({ body: 'x'.repeat(2000) }));
  t.match(codeOf(() => parseEnvelope(big, { maxBytes: 1000 })), { code: 'ENVELOPE_TOO_LARGE', problems: [/larger than 1000 bytes/] });
  t.match(codeOf(() => parseEnvelope('é'.repeat(600), { maxBytes: 1000 })), { code: 'ENVELOPE_TOO_LARGE' }, 'bytes, not characters');
  t.match(codeOf(() => encodeEnvelope(valid({ body: 'x'.repeat(2000) }), { maxBytes: 1000 })), { code: 'ENVELOPE_TOO_LARGE' });
  t.match(codeOf(() => parseEnvelope(new Uint8Array([0x7b, 0xff, 0x7d]))), { code: 'ENVELOPE_MALFORMED_JSON', problems: [/not UTF-8/] });
  t.match(codeOf(() => parseEnvelope('{"v":1,')), { code: 'ENVELOPE_MALFORMED_JSON', problems: [/not JSON/] });
  t.match(codeOf(() => parseEnvelope('')), { code: 'ENVELOPE_MALFORMED_JSON' });
  t.match(codeOf(() => parseEnvelope('['.repeat(100_000) + ']'.repeat(100_000))), { code: /^ENVELOPE_/ }, 'deep nesting');
  t.match(codeOf(() => encodeEnvelope({ ...valid(), from: 'fr' })), { code: 'ENVELOPE_INVALID' }, 'nothing invalid is ever encoded');
  const proto = codeOf(() => parseEnvelope('{"__proto__":{"v":1}}'));
  t.ok(proto !== 'returned' && proto.code === 'ENVELOPE_INVALID' && proto.problems.includes('__proto__: unknown key'), '__proto__ is just an unknown key');
});

t.test('envelope: newUlid gives 26 Crockford characters carrying the time, all different', async (t) => {
  const now = Date.UTC(2025, 0, 2);
  const ids = new Set(Array.from({ length: 1000 }, () => newUlid(now)));
  t.equal(ids.size, 1000);
  t.same([...ids].filter((id) => !isUlid(id) || ulidTime(id) !== now), [], 'each is a ULID with the given time');
  t.equal(newUlid(0).slice(0, 10), '0000000000');
  t.equal(newUlid(2 ** 48 - 1).slice(0, 10), '7ZZZZZZZZZ');
  t.throws(() => newUlid(2 ** 48), RangeError);
  t.throws(() => newUlid(-1), RangeError);
  t.ok(Number.isNaN(ulidTime('nope')));
  t.notOk(isUlid('8ZZZZZZZZZZZZZZZZZZZZZZZZZ'), 'over 128 bits');
  t.notOk(isUlid('01ARZ3NDEKTSV4RRFFQ69G5FAI'), 'I is not Crockford');
});

t.test('envelope: fuzz — any input gives an Envelope or an EnvelopeError, nothing else', async (t) => {
  const outcome = (input: Uint8Array | string): void => {
    try {
      const env = parseEnvelope(input);
      if (envelopeProblems(env).length !== 0) throw new Error('parse accepted an envelope with problems');
    } catch (err) {
      if (!(err instanceof EnvelopeError)) throw err;
      if (err.problems.length === 0) throw new Error('an EnvelopeError without problems');
    }
  };
  fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => outcome(bytes)), { numRuns: 2000 });
  fc.assert(fc.property(fc.jsonValue(), (value) => outcome(JSON.stringify(value) ?? 'null')), { numRuns: 1000 });
  // Near-valid envelopes: each field replaced by an arbitrary JSON value, or dropped.
  const base = valid() as unknown as Record<string, unknown>;
  const field = fc.constantFrom(...Object.keys(base), 'expires', 'handling', 'sig', 'zzz');
  fc.assert(
    fc.property(fc.array(fc.tuple(field, fc.option(fc.jsonValue(), { nil: undefined })), { maxLength: 4 }), (edits) => {
      const env: Record<string, unknown> = { ...base };
      for (const [k, v] of edits) env[k] = v;
      outcome(JSON.stringify(env));
    }),
    { numRuns: 2000 },
  );
  // Random valid envelopes are accepted.
  fc.assert(
    fc.property(
      fc.record({
        to: fc.oneof(fc.constant('*' as const), fc.uniqueArray(fc.constantFrom('DE', 'IT', 'ES', 'US', 'JP'), { minLength: 1 })),
        priority: fc.constantFrom('urgent' as const, 'routine' as const),
        body: fc.string({ maxLength: 200 }),
        subject: fc.string({ maxLength: 100 }),
      }),
      (over) => parseEnvelope(encodeEnvelope(valid(over))).body === over.body,
    ),
    { numRuns: 300 },
  );
  t.pass('no other error escaped');
});
