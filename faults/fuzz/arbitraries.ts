/**
 * fast-check arbitraries shared by the fuzz targets: valid envelopes of every kind and valid
 * message drafts (the local API's input), near-valid mutations of any record, and hostile text and
 * JSON. Pure and seedable (no `newUlid()` inside: ids are drawn by fast-check, so a failing case
 * replays from its seed), unlike a `map(() => newUlid())`.
 *
 * Valid means valid for `protocol/envelope.ts` (`envelopeProblems` is empty) — the fuzz targets
 * check that themselves and count any valid-by-construction case that is refused as a failure of
 * the arbitrary, so these stay honest as the envelope rules move.
 */
import fc from 'fast-check';
import { countryCodes } from '../../protocol/country.js';
import { HANDLING_CODES, NOTICE_COLOURS, PRIORITIES, RECEIPT_STATUSES, type Envelope } from '../../protocol/envelope.js';

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** Assigned ISO codes, a handful of them (the checks are per code, not per list size). */
export const COUNTRIES = ['DE', 'FR', 'IT', 'ES', 'US', 'JP', 'BR', 'NG'] as const;
/** Look like codes, are not assigned ones, or are not codes at all. */
export const BAD_COUNTRIES = ['ZZ', 'UK', 'XK', 'de', 'D', 'DEU', '', '*', '..', 'DE ', 'ÄÖ'] as const;

const chars = (alphabet: string, n: number) => fc.array(fc.constantFrom(...alphabet), { minLength: n, maxLength: n }).map((a) => a.join(''));

/** A ULID drawn by fast-check: 10 time characters (first ≤ 7) then 16 random ones. */
export const ulidArb: fc.Arbitrary<string> = fc.tuple(fc.constantFrom(...'01234567'), chars(CROCKFORD, 25)).map(([a, b]) => a + b);
/** The fields of one receipt (`receipt` itself and each of its `more`). */
const receiptItemArbs = {
  of: ulidArb,
  status: fc.constantFrom(...RECEIPT_STATUSES),
  reason: fc.option(fc.constantFrom('ENVELOPE_INVALID', 'PKI_CMS_NOT_RECIPIENT'), { nil: undefined }),
};

/** An RFC 3339 time, UTC or with an offset, between 2001 and 2099. */
export const timeArb: fc.Arbitrary<string> = fc
  .tuple(fc.integer({ min: Date.UTC(2001, 0, 1), max: Date.UTC(2099, 0, 1) }), fc.constantFrom('Z', '+01:00', '-05:30', '+00:00'))
  .map(([ms, zone]) => {
    const iso = new Date(ms).toISOString();
    if (zone === 'Z') return iso;
    const sign = zone.startsWith('-') ? -1 : 1;
    const minutes = sign * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6)));
    return `${new Date(ms + minutes * 60_000).toISOString().slice(0, -1)}${zone}`;
  });

/** Unicode text without lone surrogates (what an officer types), up to `max` characters. */
export const textArb = (max: number): fc.Arbitrary<string> => fc.string({ unit: 'grapheme', maxLength: max });

/** A syntactically valid signature (86 base64url characters, last one with zero padding bits). */
export const sigArb: fc.Arbitrary<string> = fc.tuple(chars(BASE64URL, 85), fc.constantFrom('A', 'Q', 'g', 'w')).map(([a, b]) => a + b);

/** Standard base64 with padding, length a multiple of 4 (stands for CMS or a DER certificate). */
export const base64Arb: fc.Arbitrary<string> = fc.uint8Array({ minLength: 1, maxLength: 96 }).map((b) => Buffer.from(b).toString('base64'));

const recipientsArb: fc.Arbitrary<string[] | '*'> = fc.oneof(fc.constant('*' as const), fc.uniqueArray(fc.constantFrom(...COUNTRIES), { minLength: 1, maxLength: 5 }));

/** Content for a kind that carries some: plaintext when public, else ciphertext only. */
const contentArb = fc.oneof(
  fc.record({ handling: fc.constantFrom(undefined, 'public'), body: textArb(200) }),
  fc.record({ handling: fc.constantFrom(...HANDLING_CODES), encrypted: base64Arb }),
);

/** The part of an envelope every kind shares, before the kind's own fields. */
const headerArb = fc.record({
  id: ulidArb,
  from: fc.constantFrom(...COUNTRIES),
  priority: fc.constantFrom(...PRIORITIES),
  created: timeArb,
  subject: fc.option(textArb(60), { nil: undefined }),
  sigCert: fc.option(base64Arb, { nil: undefined }),
  sig: fc.option(sigArb, { nil: undefined }),
});

/** Drops keys whose value is undefined (JSON would, and `Value.Check` treats present-undefined as present). */
export function compact<T extends Record<string, unknown>>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/** A valid envelope of any kind (per-kind rules, content rules, expiry after creation). */
export const envelopeArb: fc.Arbitrary<Envelope> = fc
  .tuple(
    headerArb,
    fc.oneof(
      fc.record({ kind: fc.constant('notice'), notice: fc.record({ colour: fc.constantFrom(...NOTICE_COLOURS) }), to: recipientsArb, content: contentArb }),
      fc.record({ kind: fc.constantFrom('diffusion', 'message', 'query'), to: recipientsArb, content: contentArb }),
      fc.record({ kind: fc.constant('reply'), inReplyTo: ulidArb, to: recipientsArb, content: contentArb }),
      fc.record({ kind: fc.constant('deletion'), deletes: ulidArb, reason: fc.option(fc.stringMatching(/^[A-Z][A-Z0-9_]{0,20}$/), { nil: undefined }), to: recipientsArb, content: contentArb }),
      fc.record({
        kind: fc.constant('receipt'),
        to: fc.constantFrom(...COUNTRIES).map((c) => [c]),
        receipt: fc
          .record({
            ...receiptItemArbs,
            // A batch: further receipts to the same sender in the same envelope.
            more: fc.option(fc.array(fc.record(receiptItemArbs).map(compact), { minLength: 1, maxLength: 4 }), { nil: undefined }),
          })
          .map(compact),
      }),
    ),
    fc.option(fc.integer({ min: 1, max: 30 * 86_400_000 }), { nil: undefined }),
  )
  .map(([header, kindPart, expiresInMs]) => {
    const { content, ...rest } = kindPart as Record<string, unknown> & { content?: Record<string, unknown> };
    const env: Record<string, unknown> = { v: 1, ...header, ...rest, ...(content ?? {}) };
    if (expiresInMs !== undefined) env['expires'] = new Date(Date.parse(header.created) + expiresInMs).toISOString();
    // Self-references are refused (a deletion of itself, a receipt about itself): astronomically unlikely, but keep it valid.
    const receipt = env['receipt'] as { of: string; more?: { of: string }[] } | undefined;
    const named = [env['deletes'], receipt?.of, ...(receipt?.more ?? []).map((r) => r.of)];
    if (named.includes(env['id'])) env['id'] = `0${String(env['id']).slice(1)}`;
    return compact(env) as unknown as Envelope;
  });

/** A valid draft for `POST /v1/messages` (public content: the agent under test has no directory to encrypt with). */
export const draftArb: fc.Arbitrary<Record<string, unknown>> = fc
  .tuple(
    fc.oneof(
      fc.record({ kind: fc.constant('notice'), notice: fc.record({ colour: fc.constantFrom(...NOTICE_COLOURS) }) }),
      fc.record({ kind: fc.constantFrom('diffusion', 'message', 'query') }),
      fc.record({ kind: fc.constant('reply'), inReplyTo: ulidArb }),
      fc.record({ kind: fc.constant('deletion'), deletes: ulidArb, reason: fc.option(fc.constantFrom('CCF_ORDER', 'WRONG_DATA'), { nil: undefined }) }),
    ),
    fc.record({
      to: recipientsArb,
      priority: fc.option(fc.constantFrom(...PRIORITIES), { nil: undefined }),
      handling: fc.option(fc.constant('public'), { nil: undefined }),
      subject: fc.option(textArb(40), { nil: undefined }),
      body: textArb(120),
      expires: fc.option(fc.constant('2099-01-01T00:00:00Z'), { nil: undefined }),
    }),
  )
  .map(([k, rest]) => compact({ ...k, ...rest }));

/** Text meant to hurt: traversal, injection, prototype keys, control characters, lone surrogates, very long runs. */
export const hostileStringArb: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    '',
    ' ',
    '../../etc/passwd',
    '..%2f..%2f',
    '%00',
    '\u0000',
    '\ud800',
    '\udc00x',
    '__proto__',
    'constructor',
    'prototype',
    '{"$ne":null}',
    '<script>alert(1)</script>',
    "' OR 1=1 --",
    '${jndi:ldap://x}',
    '*',
    '>',
    'ncb.submit.DE',
    '\r\nX-Injected: 1',
    'ncbnet1.0000000000000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.' + '0'.repeat(64),
  ),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.tuple(fc.constantFrom('A', 'é', '😀', '\u202e'), fc.integer({ min: 100, max: 5000 })).map(([c, n]) => c.repeat(n)),
);

/** JSON-ish values: arbitrary JSON, prototype keys, deep nesting, numbers at the edges. */
export const hostileJsonArb: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: fc.jsonValue({ maxDepth: 3 }), weight: 4 },
  { arbitrary: hostileStringArb, weight: 2 },
  fc.constantFrom(null, true, 0, -1, 1e308, -0, 2 ** 53 + 1, [], {}, [[[[[[[[[[]]]]]]]]]]),
  fc.integer({ min: 10, max: 3000 }).map((n) => JSON.parse('['.repeat(n) + ']'.repeat(n)) as unknown),
  fc.constant(JSON.parse('{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}}}') as unknown),
);

/** One edit of a record: drop a key, replace a value, add an unknown key, or edit a string in place. */
type Edit = { op: 'drop'; key: string } | { op: 'set'; key: string; value: unknown } | { op: 'extra'; key: string; value: unknown } | { op: 'text'; key: string; how: 'cut' | 'grow' | 'case' | 'flip' };

function editArb(keys: readonly string[]): fc.Arbitrary<Edit> {
  const key = fc.constantFrom(...keys);
  return fc.oneof(
    fc.record({ op: fc.constant('drop' as const), key }),
    fc.record({ op: fc.constant('set' as const), key, value: hostileJsonArb }),
    fc.record({ op: fc.constant('extra' as const), key: fc.oneof(fc.constantFrom('from', 'sig', 'extra', '__proto__', 'constructor', 'country', 'token'), fc.string({ maxLength: 8 })), value: hostileJsonArb }),
    fc.record({ op: fc.constant('text' as const), key, how: fc.constantFrom('cut' as const, 'grow' as const, 'case' as const, 'flip' as const) }),
  );
}

function applyEdit(target: Record<string, unknown>, e: Edit): void {
  if (e.op === 'drop') {
    delete target[e.key];
    return;
  }
  if (e.op === 'set' || e.op === 'extra') {
    // defineProperty: `__proto__` becomes an own key, as JSON.parse would make it.
    Object.defineProperty(target, e.key, { value: e.value, enumerable: true, configurable: true, writable: true });
    return;
  }
  const value = target[e.key];
  if (typeof value !== 'string') return;
  const edited = { cut: value.slice(0, Math.floor(value.length / 2)), grow: `${value}${value.slice(-1) || 'x'}`, case: value === value.toLowerCase() ? value.toUpperCase() : value.toLowerCase(), flip: value.length === 0 ? '\u0000' : value.slice(0, -1) + (value.endsWith('A') ? 'B' : 'A') }[e.how];
  target[e.key] = edited;
}

/**
 * Near-valid variants of `base`: 1 to 3 edits among `keys` (and nested keys written `a.b`), so
 * most cases get past the first checks and exercise the deeper ones.
 */
export function mutatedArb(base: fc.Arbitrary<Record<string, unknown>>, keys: readonly string[]): fc.Arbitrary<Record<string, unknown>> {
  return fc.tuple(base, fc.array(editArb(keys), { minLength: 1, maxLength: 3 })).map(([value, edits]) => {
    const copy = structuredClone(value);
    for (const e of edits) {
      const dot = e.key.indexOf('.');
      if (dot < 0) {
        applyEdit(copy, e);
        continue;
      }
      const inner = copy[e.key.slice(0, dot)];
      if (inner !== null && typeof inner === 'object' && !Array.isArray(inner)) applyEdit(inner as Record<string, unknown>, { ...e, key: e.key.slice(dot + 1) });
    }
    return copy;
  });
}

/** Every key an envelope may have, nested ones as `a.b`, for {@link mutatedArb}. */
export const ENVELOPE_KEYS = ['v', 'id', 'kind', 'notice', 'notice.colour', 'from', 'to', 'priority', 'handling', 'created', 'expires', 'inReplyTo', 'subject', 'body', 'encrypted', 'receipt', 'receipt.of', 'receipt.status', 'deletes', 'reason', 'sigCert', 'sig'] as const;
/** Every key a draft may have. */
export const DRAFT_KEYS = ['kind', 'notice', 'notice.colour', 'to', 'priority', 'handling', 'deletes', 'reason', 'expires', 'inReplyTo', 'subject', 'body'] as const;

/** Every assigned code, for tests that need a real one beyond {@link COUNTRIES}. */
export const ALL_CODES = countryCodes();

/** Percent-encodes the UTF-8 of `s` (a lone surrogate becomes U+FFFD's bytes, where encodeURIComponent would throw). */
export function percentEncode(s: string): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9\-_.~]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
