/**
 * The message envelope of ARCHITECTURE, "Messages": the one shape every notice, diffusion and
 * message takes on the wire between an NCB and the hub. This is the first, basic version:
 * `encrypted` (CMS EnvelopedData) and a verified `sig` over the JCS form come with the full message
 * model; the schema is built from a field table so they can be added (and `v: 2` accepted beside
 * `v: 1`) without touching the parser. Pure: no I/O.
 */
import { webcrypto } from 'node:crypto';
import Type, { type Static, type TSchema } from 'typebox';
import { Value } from 'typebox/value';
import { CountryCodeSchema, isCountryCode } from './country.js';
import { ENVELOPE_INVALID, ENVELOPE_MALFORMED_JSON, ENVELOPE_TOO_LARGE, EnvelopeError } from './envelope-errors.js';
import { describeValue, schemaProblems } from './validate.js';

export { ENVELOPE_INVALID, ENVELOPE_MALFORMED_JSON, ENVELOPE_TOO_LARGE, EnvelopeError } from './envelope-errors.js';
export type { EnvelopeErrorCode } from './envelope-errors.js';

/** Largest envelope accepted by default: nats-server's default `max_payload` (1 MiB). */
export const MAX_ENVELOPE_BYTES = 1024 * 1024;
/** Largest `body` in characters; the byte limit above is the bound that matters on the wire. */
export const MAX_BODY_CHARS = 512 * 1024;
/** Most recipients a list may name: every assigned ISO 3166-1 code fits. */
export const MAX_RECIPIENTS = 256;

export const ENVELOPE_KINDS = ['notice', 'diffusion', 'message', 'query', 'reply', 'receipt', 'deletion'] as const;
export const NOTICE_COLOURS = ['red', 'blue', 'yellow', 'black', 'green', 'orange', 'purple', 'un-special'] as const;
export const PRIORITIES = ['urgent', 'routine'] as const;
/** `to: '*'`: every active member country except the sender. */
export const ALL_COUNTRIES = '*';

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
// 26 Crockford base32 characters; the first is at most 7 because a ULID has 128 bits, not 130.
const ULID_PATTERN = '^[0-7][0-9A-HJKMNP-TV-Z]{25}$';
const ULID_REGEX = new RegExp(ULID_PATTERN);

const UlidSchema = Type.String({ pattern: ULID_PATTERN, description: 'ULID, 26 Crockford base32 characters' });
const TimestampSchema = Type.String({ format: 'date-time', maxLength: 64, description: 'RFC 3339 date-time with offset' });
const RecipientListSchema = Type.Array(CountryCodeSchema, { minItems: 1, maxItems: MAX_RECIPIENTS, uniqueItems: true });
const AllCountriesSchema = Type.Literal(ALL_COUNTRIES);

/** The envelope's fields; `to` is replaced below to get readable problems (see envelopeProblems). */
const FIELDS = {
  v: Type.Literal(1),
  id: UlidSchema,
  kind: Type.Enum([...ENVELOPE_KINDS]),
  notice: Type.Optional(Type.Object({ colour: Type.Enum([...NOTICE_COLOURS]) }, { additionalProperties: false })),
  from: CountryCodeSchema,
  to: Type.Union([RecipientListSchema, AllCountriesSchema]),
  priority: Type.Enum([...PRIORITIES]),
  /** Handling code (dissemination restriction); the router checks it against policy later. */
  handling: Type.Optional(Type.String({ pattern: '^[A-Z][A-Z0-9-]{0,31}$' })),
  created: TimestampSchema,
  expires: Type.Optional(TimestampSchema),
  inReplyTo: Type.Optional(UlidSchema),
  subject: Type.Optional(Type.String({ maxLength: 512 })),
  body: Type.String({ maxLength: MAX_BODY_CHARS }),
  /** base64url signature; verified when the full message model lands. */
  sig: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]+$', maxLength: 4096 })),
};

const STRICT = { additionalProperties: false } as const;

/** The envelope, version 1. Unknown keys are refused. */
export const EnvelopeSchema = Type.Object(FIELDS, STRICT);

/** A validated envelope. */
export type Envelope = Static<typeof EnvelopeSchema>;

// A union reports one problem per branch ("must be string", "must be equal to constant", "must
// match a schema in anyOf"); checking against the branch the value's shape selects reports only the
// one that matters (e.g. "must not have duplicate items").
const LIST_SHAPE: TSchema = Type.Object({ ...FIELDS, to: RecipientListSchema }, STRICT);
const ALL_SHAPE: TSchema = Type.Object({ ...FIELDS, to: AllCountriesSchema }, STRICT);

/** True for a 26-character Crockford base32 ULID. */
export function isUlid(value: unknown): value is string {
  return typeof value === 'string' && ULID_REGEX.test(value);
}

/**
 * Every way `value` is not a valid envelope, one line each as `path: problem (got X)`; empty when
 * it is one. Beyond the schema: country codes must be assigned ISO codes, a notice carries its
 * colour and nothing else does, and `expires` comes after `created`.
 */
export function envelopeProblems(value: unknown): string[] {
  if (!Value.Check(EnvelopeSchema, value)) {
    const to: unknown = isRecord(value) ? value['to'] : undefined;
    if (Array.isArray(to)) return schemaProblems(LIST_SHAPE, value);
    // "must be equal to constant" would not tell the sender that a list was the other choice.
    return schemaProblems(ALL_SHAPE, value).map((p) =>
      p.startsWith('to: must be equal to constant') ? `to: must be "*" or a list of country codes (got ${describeValue(to)})` : p,
    );
  }
  const problems: string[] = [];
  if (!isCountryCode(value.from)) problems.push(`from: not an assigned ISO 3166-1 code (got ${describeValue(value.from)})`);
  if (Array.isArray(value.to)) {
    value.to.forEach((cc, i) => {
      if (!isCountryCode(cc)) problems.push(`to[${i}]: not an assigned ISO 3166-1 code (got ${describeValue(cc)})`);
    });
  }
  // typebox's `date-time` also allows RFC 9557 suffixes (`[Europe/Paris]`) and leap seconds, which
  // Date.parse cannot read; times must be comparable (expiry), so those are refused here.
  for (const key of ['created', 'expires'] as const) {
    const time = value[key];
    if (time !== undefined && Number.isNaN(Date.parse(time))) problems.push(`${key}: must be an RFC 3339 date-time without suffix (got ${describeValue(time)})`);
  }
  if (value.kind === 'notice' && value.notice === undefined) problems.push('notice: required when kind is notice');
  if (value.kind !== 'notice' && value.notice !== undefined) problems.push(`notice: only allowed when kind is notice (got ${describeValue(value.kind)})`);
  if (value.expires !== undefined && Date.parse(value.expires) <= Date.parse(value.created)) {
    problems.push(`expires: must be after created (got ${describeValue(value.expires)})`);
  }
  return problems;
}

/** Options of {@link parseEnvelope} and {@link encodeEnvelope}. */
export interface EnvelopeLimits {
  /** Largest envelope in bytes (default {@link MAX_ENVELOPE_BYTES}). */
  maxBytes?: number;
}

/**
 * Parses and validates an envelope from the wire (UTF-8 JSON bytes, or a string).
 *
 * Throws only {@link EnvelopeError}, whatever the input: `ENVELOPE_TOO_LARGE` (checked before any
 * parsing, so a huge input costs nothing), `ENVELOPE_MALFORMED_JSON` (not UTF-8 or not JSON), or
 * `ENVELOPE_INVALID` with every problem listed.
 */
export function parseEnvelope(input: Uint8Array | string, limits: EnvelopeLimits = {}): Envelope {
  const maxBytes = limits.maxBytes ?? MAX_ENVELOPE_BYTES;
  const size = typeof input === 'string' ? Buffer.byteLength(input, 'utf8') : input.byteLength;
  if (size > maxBytes) throw new EnvelopeError(ENVELOPE_TOO_LARGE, [`(root): larger than ${maxBytes} bytes (got ${size} bytes)`]);
  let value: unknown;
  try {
    // fatal: a lone surrogate or stray byte is refused rather than silently replaced with U+FFFD.
    const text = typeof input === 'string' ? input : new TextDecoder('utf-8', { fatal: true }).decode(input);
    value = JSON.parse(text);
  } catch (err) {
    const why = err instanceof TypeError ? 'not UTF-8' : 'not JSON';
    throw new EnvelopeError(ENVELOPE_MALFORMED_JSON, [`(root): ${why} (${err instanceof Error ? err.message : describeValue(err)})`], { cause: err });
  }
  let problems: string[];
  try {
    problems = envelopeProblems(value);
  } catch (err) {
    // Validation of parsed JSON is not expected to throw; if some input finds a way (e.g. a nesting
    // deep enough to exhaust the stack), it is still that input's fault, so it is reported as such.
    throw new EnvelopeError(ENVELOPE_INVALID, ['(root): could not be validated'], { cause: err });
  }
  if (problems.length > 0) {
    const id: unknown = isRecord(value) ? value['id'] : undefined;
    throw new EnvelopeError(ENVELOPE_INVALID, problems, { envelopeId: isUlid(id) ? id : undefined });
  }
  return value as Envelope;
}

/**
 * Serialises an envelope to UTF-8 JSON bytes after checking it, so nothing invalid is ever sent.
 * Throws {@link EnvelopeError} (`ENVELOPE_INVALID`, `ENVELOPE_TOO_LARGE`).
 */
export function encodeEnvelope(envelope: Envelope, limits: EnvelopeLimits = {}): Uint8Array {
  const problems = envelopeProblems(envelope);
  if (problems.length > 0) throw new EnvelopeError(ENVELOPE_INVALID, problems, { envelopeId: isUlid(envelope.id) ? envelope.id : undefined });
  const bytes = new TextEncoder().encode(JSON.stringify(envelope));
  const maxBytes = limits.maxBytes ?? MAX_ENVELOPE_BYTES;
  if (bytes.byteLength > maxBytes) {
    throw new EnvelopeError(ENVELOPE_TOO_LARGE, [`(root): larger than ${maxBytes} bytes (got ${bytes.byteLength} bytes)`], { envelopeId: envelope.id });
  }
  return bytes;
}

/**
 * A new ULID (https://github.com/ulid/spec): 48-bit millisecond time then 80 random bits from the
 * system CSPRNG, Crockford base32. Not monotonic within a millisecond; ids only need to be unique.
 * Throws RangeError when `nowMs` is not a time a ULID can hold (0 … 2^48-1 ms).
 */
export function newUlid(nowMs: number = Date.now()): string {
  if (!Number.isSafeInteger(nowMs) || nowMs < 0 || nowMs >= 2 ** 48) throw new RangeError(`newUlid: time out of range (got ${nowMs})`);
  let time = '';
  let t = nowMs;
  for (let i = 0; i < 10; i++) {
    time = CROCKFORD.charAt(t % 32) + time;
    t = Math.floor(t / 32);
  }
  let random = 0n;
  for (const byte of webcrypto.getRandomValues(new Uint8Array(10))) random = (random << 8n) | BigInt(byte);
  let tail = '';
  for (let i = 0; i < 16; i++) {
    tail = CROCKFORD.charAt(Number(random & 31n)) + tail;
    random >>= 5n;
  }
  return time + tail;
}

/** The millisecond time a ULID carries, or NaN when `ulid` is not one. */
export function ulidTime(ulid: string): number {
  if (!isUlid(ulid)) return Number.NaN;
  let ms = 0;
  for (const ch of ulid.slice(0, 10)) ms = ms * 32 + CROCKFORD.indexOf(ch);
  return ms;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
