import t from 'tap';
import fc from 'fast-check';
import {
  ENVELOPE_KINDS,
  EnvelopeError,
  HANDLING_CODES,
  MAX_BODY_CHARS,
  MAX_ENCRYPTED_CHARS,
  MAX_RECEIPT_ITEMS,
  NOTICE_COLOURS,
  RECEIPT_STATUSES,
  encodeEnvelope,
  envelopeProblems,
  isUlid,
  newUlid,
  parseEnvelope,
  receiptItems,
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

// A syntactically valid signature and certificate; whether they verify is signature.test.ts's business.
const SIG = `${'A'.repeat(85)}w`;
const CMS = Buffer.from('not really CMS, but base64').toString('base64');

/** What each kind needs beyond valid(): its own field, and no `notice`. */
function forKind(kind: Envelope['kind']): Partial<Envelope> {
  const other = { notice: undefined };
  switch (kind) {
    case 'notice':
      return {};
    case 'reply':
      return { ...other, kind, inReplyTo: newUlid() };
    case 'receipt':
      return { ...other, kind, to: ['DE'], body: undefined, receipt: { of: newUlid(), status: 'read' } };
    case 'deletion':
      return { ...other, kind, deletes: newUlid() };
    default:
      return { ...other, kind };
  }
}

/**
 * Each arbitrary made optional, absent two times in three (fc.record's optional keys are nearly
 * always present, and each kind accepts only a few of these fields).
 */
function maybe(arbs: Record<string, fc.Arbitrary<unknown>>): Record<string, fc.Arbitrary<unknown>> {
  const absent = { arbitrary: fc.constant(undefined), weight: 2 };
  return Object.fromEntries(Object.entries(arbs).map(([k, a]) => [k, fc.oneof(absent, { arbitrary: a, weight: 1 })]));
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
  const full = valid({ handling: 'public', expires: '2025-02-01T00:00:00+01:00', inReplyTo: newUlid(), subject: 'Red notice', sigCert: 'MIIBAA==', sig: SIG });
  const bytes = encodeEnvelope(full);
  t.same(parseEnvelope(bytes), full);
  t.same(parseEnvelope(new TextDecoder().decode(bytes)), full, 'a string is accepted too');
  t.same(parseEnvelope(JSON.stringify(valid({ to: '*', kind: 'diffusion', notice: undefined }))).to, '*');
  for (const kind of ENVELOPE_KINDS) t.same(envelopeProblems(valid(forKind(kind))), [], kind);
  for (const colour of NOTICE_COLOURS) t.same(envelopeProblems(valid({ notice: { colour } })), [], colour);
  for (const handling of HANDLING_CODES) t.same(envelopeProblems(valid({ handling, body: undefined, encrypted: CMS })), [], `${handling}, encrypted`);
  for (const status of RECEIPT_STATUSES) t.same(envelopeProblems(valid({ ...forKind('receipt'), receipt: { of: newUlid(), status, reason: 'ENVELOPE_INVALID' } })), [], status);
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
  // body is not in the count: a receipt has none, so its absence is a kind rule (below).
  t.same(envelopeProblems({}).length, 7, 'every missing field is listed');
  t.same(envelopeProblems({ ...valid(), handling: 'TLP-AMBER' }), ['handling: must be one of public, restricted, confidential (got "TLP-AMBER")']);
  t.same(envelopeProblems({ ...valid(), sig: 'abc-_09' }), ['sig: must be base64url (86 characters) of a 64-byte P-256 signature (got "abc-_09")']);
  t.same(envelopeProblems({ ...valid(), sig: `${'A'.repeat(85)}B` }).length, 1, 'sig: unused trailing bits must be zero, one spelling per signature');
  t.same(envelopeProblems({ ...valid(), sigCert: 'MII*' }), ['sigCert: must be base64 (DER certificate) (got "MII*")']);
  t.same(envelopeProblems({ ...valid({ body: undefined }), encrypted: 'ab' }), ['encrypted: base64 length must be a multiple of 4 (got 2 characters)']);
  t.match(envelopeProblems({ ...valid({ body: undefined }), encrypted: 'A'.repeat(MAX_ENCRYPTED_CHARS + 4) }), [/^encrypted: must not have more than/]);
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

t.test('envelope: kind rules for reply, receipt, deletion, content and handling, each with its path', async (t) => {
  const id = newUlid();
  const of = newUlid();
  t.same(envelopeProblems(valid({ ...forKind('reply'), inReplyTo: undefined })), ['inReplyTo: required when kind is reply']);

  const receipt = valid({ ...forKind('receipt'), id, receipt: { of, status: 'delivered' } });
  t.same(envelopeProblems({ ...receipt, receipt: undefined }), ['receipt: required when kind is receipt']);
  t.same(envelopeProblems({ ...receipt, to: ['DE', 'IT'] }), ['to: a receipt goes to exactly one country, the original sender (got ["DE","IT"])']);
  t.same(envelopeProblems({ ...receipt, to: '*' }), ['to: a receipt goes to exactly one country, the original sender (got "*")']);
  t.same(envelopeProblems({ ...receipt, receipt: { of: id, status: 'read' } }), [`receipt.of: must name another message than the receipt itself (got "${id}")`]);
  t.same(envelopeProblems({ ...receipt, body: 'thanks' }), ['body: not allowed when kind is receipt, which carries no content (got "thanks")']);
  t.same(envelopeProblems({ ...receipt, encrypted: CMS }), [`encrypted: not allowed when kind is receipt, which carries no content (got "${CMS}")`]);
  t.same(envelopeProblems({ ...receipt, handling: 'restricted' }), ['handling: must be public for a receipt, which carries no content (got "restricted")']);
  t.same(envelopeProblems({ ...receipt, receipt: { of, status: 'lost' } }), ['receipt.status: must be equal to one of the allowed values (got "lost")']);
  t.same(envelopeProblems({ ...receipt, receipt: { of, status: 'rejected', reason: 'not a code' } }), [
    'receipt.reason: must match pattern "^[A-Z][A-Z0-9_]{0,63}$" (got "not a code")',
  ]);
  t.same(envelopeProblems({ ...receipt, receipt: { of: 'x', status: 'read', extra: 1 } }).sort(), [
    'receipt.extra: unknown key',
    'receipt.of: must match pattern "^[0-7][0-9A-HJKMNP-TV-Z]{25}$" (got "x")',
  ]);
  t.same(envelopeProblems(valid({ kind: 'message', notice: undefined, receipt: { of, status: 'read' } })), ['receipt: only allowed when kind is receipt (got "message")']);

  // Batched receipts: `more` carries further receipts to the same sender in the same envelope.
  const more = Array.from({ length: 3 }, () => ({ of: newUlid(), status: 'delivered' as const }));
  const batch = { ...receipt, receipt: { of, status: 'delivered' as const, more } };
  t.same(envelopeProblems(batch), [], 'a batch of receipts');
  t.same(receiptItems(batch), [{ of, status: 'delivered' }, ...more], 'receiptItems lists the first, then `more`, in order');
  t.same(receiptItems(receipt), [{ of, status: 'delivered' }], 'one receipt');
  t.same(receiptItems(valid()), [], 'none for another kind');
  t.same(envelopeProblems({ ...batch, receipt: { ...batch.receipt, more: [more[0], { of: id, status: 'read' }] } }), [
    `receipt.more[1].of: must name another message than the receipt itself (got "${id}")`,
  ]);
  t.same(envelopeProblems({ ...batch, receipt: { ...batch.receipt, more: [{ of, status: 'read', more: [] }] } }), ['receipt.more[0].more: unknown key']);
  t.same(envelopeProblems({ ...batch, receipt: { ...batch.receipt, more: [] } }), ['receipt.more: must not have fewer than 1 items (got [])']);
  const tooMany = Array.from({ length: MAX_RECEIPT_ITEMS }, () => ({ of: newUlid(), status: 'read' as const }));
  t.same(envelopeProblems({ ...batch, receipt: { ...batch.receipt, more: tooMany } }).length, 1, `at most ${MAX_RECEIPT_ITEMS} receipts in one envelope`);
  t.same(envelopeProblems({ ...batch, receipt: { ...batch.receipt, more: tooMany.slice(1) } }), [], `exactly ${MAX_RECEIPT_ITEMS} is fine`);

  const deletion = valid({ ...forKind('deletion'), id, deletes: of, reason: 'RETENTION_EXPIRED' });
  t.same(envelopeProblems(deletion), [], 'a deletion may say why');
  t.same(envelopeProblems({ ...deletion, deletes: undefined }), ['deletes: required when kind is deletion']);
  t.same(envelopeProblems({ ...deletion, deletes: id }), [`deletes: must name another message than the deletion itself (got "${id}")`]);
  t.same(envelopeProblems(valid({ kind: 'message', notice: undefined, deletes: of, reason: 'X' })), [
    'deletes: only allowed when kind is deletion (got "message")',
    'reason: only allowed when kind is deletion (got "message")',
  ]);

  t.same(envelopeProblems(valid({ body: undefined })), ['body: required, or encrypted instead (got nothing)']);
  t.same(envelopeProblems(valid({ encrypted: CMS })), ['encrypted: only one of body and encrypted may be given (got both)']);
  t.same(envelopeProblems(valid({ handling: 'public', body: undefined, encrypted: CMS })), [], 'public content may be encrypted too');
  for (const handling of ['restricted', 'confidential']) {
    t.same(envelopeProblems(valid({ handling, body: 'plain' })), [`body: plaintext not allowed when handling is ${handling}; send the content as encrypted (got 5 characters)`], handling);
  }
  t.same(envelopeProblems(valid({ body: 'bad \ud800 half' })), ['body: contains a lone UTF-16 surrogate, not Unicode text (got "bad \\ud800 half")'], 'shown escaped');
  const r = codeOf(() => parseEnvelope(JSON.stringify(valid({ subject: 'x' })).replace('"subject":"x"', '"subject":"\\udc00"')));
  t.match(r, { code: 'ENVELOPE_INVALID', problems: [/^subject: contains a lone UTF-16 surrogate/] }, 'an escaped lone surrogate is refused at parse');
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
  const field = fc.constantFrom(...Object.keys(base), 'expires', 'handling', 'sig', 'sigCert', 'encrypted', 'receipt', 'deletes', 'reason', 'inReplyTo', 'zzz');
  fc.assert(
    fc.property(fc.array(fc.tuple(field, fc.option(fc.jsonValue(), { nil: undefined })), { maxLength: 4 }), (edits) => {
      const env: Record<string, unknown> = { ...base };
      for (const [k, v] of edits) env[k] = v;
      outcome(JSON.stringify(env));
    }),
    { numRuns: 2000 },
  );
  // Random combinations of kind, handling and content: whatever is accepted keeps the kind rules.
  const ulid = fc.constant(null).map(() => newUlid());
  const accepted = new Set<string>();
  fc.assert(
    fc.property(
      fc.record({
        kind: fc.constantFrom(...ENVELOPE_KINDS),
        // Not optional: every field of `over` replaces base's, even when undefined (absent).
        to: fc.constantFrom(['DE'], ['DE'], ['DE', 'IT'], '*'),
        ...maybe({
          handling: fc.constantFrom(...HANDLING_CODES, 'SECRET'),
          body: fc.string({ maxLength: 20 }),
          encrypted: fc.constantFrom(CMS, 'AAAA', 'A', '*'),
          receipt: fc.record({ of: ulid, status: fc.constantFrom(...RECEIPT_STATUSES, 'lost') }),
          deletes: ulid,
          reason: fc.constantFrom('GONE', 'gone'),
          inReplyTo: ulid,
          notice: fc.constant({ colour: 'red' }),
        }),
      }),
      (over: Record<string, unknown>) => {
        const env = { ...base, ...over };
        outcome(JSON.stringify(env));
        const problems = envelopeProblems(env);
        if (problems.length > 0) return;
        accepted.add(String(over['kind']));
        const hasBody = over['body'] !== undefined;
        const hasCipher = over['encrypted'] !== undefined;
        if (over['kind'] === 'receipt' ? hasBody || hasCipher : hasBody === hasCipher) throw new Error('content rule broken');
        if (over['handling'] !== undefined && over['handling'] !== 'public' && hasBody) throw new Error('plaintext restricted content accepted');
      },
    ),
    { numRuns: 8000 },
  );
  t.same([...accepted].sort(), [...ENVELOPE_KINDS].sort(), 'every kind was accepted in some combination');
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
