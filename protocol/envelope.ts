/**
 * The message envelope of ARCHITECTURE, "Messages": the one shape every notice, diffusion,
 * message, receipt and deletion takes on the wire between an NCB and the hub. This module checks
 * shape and per-kind rules; `signature.ts` makes and verifies `sig` (ECDSA P-256 over the JCS
 * form, `jcs.ts`). The schema is built from a field table so fields can be added (and `v: 2`
 * accepted beside `v: 1`) without touching the parser. Pure: no I/O.
 */
import { webcrypto } from 'node:crypto';
import Type, { type Static, type TSchema } from 'typebox';
import { CountryCodeSchema, isCountryCode } from './country.js';
import { ENVELOPE_INVALID, ENVELOPE_MALFORMED_JSON, ENVELOPE_TOO_LARGE, EnvelopeError } from './envelope-errors.js';
import { hasLoneSurrogate } from './jcs.js';
import { describeValue, isValid, schemaProblems } from './validate.js';

export {
  ENVELOPE_BAD_CERTIFICATE,
  ENVELOPE_BAD_SIGNATURE,
  ENVELOPE_CERT_REVOKED,
  ENVELOPE_INVALID,
  ENVELOPE_MALFORMED_JSON,
  ENVELOPE_SENDER_MISMATCH,
  ENVELOPE_SIGN_FAILED,
  ENVELOPE_TOO_LARGE,
  ENVELOPE_TRUST_CONFIG,
  ENVELOPE_UNSIGNED,
  EnvelopeError,
} from './envelope-errors.js';
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
/**
 * Handling codes (dissemination restriction). Absent means `public`. `restricted` and
 * `confidential` content never travels in plaintext: such an envelope must carry `encrypted`.
 */
export const HANDLING_CODES = ['public', 'restricted', 'confidential'] as const;
/** One of {@link HANDLING_CODES}. */
export type HandlingCode = (typeof HANDLING_CODES)[number];
/** What a receipt says happened to the message it names. */
export const RECEIPT_STATUSES = ['delivered', 'read', 'rejected', 'deleted'] as const;
/** Most receipts one receipt envelope carries (`receipt` and its `more`); ~70 bytes each. */
export const MAX_RECEIPT_ITEMS = 256;
/** Longest `encrypted` (base64 CMS) in characters: no longer than the envelope itself may be. */
export const MAX_ENCRYPTED_CHARS = MAX_ENVELOPE_BYTES;
/** Longest `sigCert` (base64 DER) in characters; a P-256 leaf is under 1 KiB, so this is generous. */
export const MAX_SIG_CERT_CHARS = 8192;
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
// Standard base64 with padding (RFC 4648 §4). A plain character class, not groups of four: a
// repeated group backtracks per group and is slow on a 1 MiB string; length % 4 is checked below.
const BASE64_PATTERN = '^[A-Za-z0-9+/]+={0,2}$';
/** A reason is an error code of the `<AREA>_<WHAT>` form (`ENVELOPE_INVALID`, `RETENTION_EXPIRED`). */
const ReasonSchema = Type.String({ pattern: '^[A-Z][A-Z0-9_]{0,63}$', description: 'reason code, <AREA>_<WHAT>' });
/** One receipt: what happened to message `of` at the recipient (`reason` a code, for `rejected` and `deleted`). */
const RECEIPT_ITEM_FIELDS = { of: UlidSchema, status: Type.Enum([...RECEIPT_STATUSES]), reason: Type.Optional(ReasonSchema) };
/**
 * base64url of the 64-byte IEEE P1363 `r || s` ECDSA P-256 signature, unpadded: 86 characters, the
 * last one holding 2 bits and 4 zero bits, so each signature has exactly one spelling.
 */
export const SIG_PATTERN = '^[A-Za-z0-9_-]{85}[AQgw]$';

/** The envelope's fields; `to` is replaced below to get readable problems (see envelopeProblems). */
const FIELDS = {
  v: Type.Literal(1),
  id: UlidSchema,
  kind: Type.Enum([...ENVELOPE_KINDS]),
  notice: Type.Optional(Type.Object({ colour: Type.Enum([...NOTICE_COLOURS]) }, { additionalProperties: false })),
  from: CountryCodeSchema,
  to: Type.Union([RecipientListSchema, AllCountriesSchema]),
  priority: Type.Enum([...PRIORITIES]),
  // A pattern rather than Type.Enum: the static type stays `string`, so drafts typed elsewhere
  // (node-agent/relay/types.ts) still assign to Envelope; the values are checked all the same.
  /** Handling code, one of {@link HANDLING_CODES}; absent means public. */
  handling: Type.Optional(Type.String({ pattern: `^(${HANDLING_CODES.join('|')})$` })),
  created: TimestampSchema,
  expires: Type.Optional(TimestampSchema),
  inReplyTo: Type.Optional(UlidSchema),
  subject: Type.Optional(Type.String({ maxLength: 512 })),
  /** Plaintext content; exactly one of `body` and `encrypted` (neither for a receipt). */
  body: Type.Optional(Type.String({ maxLength: MAX_BODY_CHARS })),
  /** base64 CMS EnvelopedData (DER) to the recipients' certificates, instead of `body`. */
  encrypted: Type.Optional(Type.String({ pattern: BASE64_PATTERN, maxLength: MAX_ENCRYPTED_CHARS })),
  /**
   * Kind `receipt` only: what happened to message `of` at the recipient; `more` carries further
   * receipts to the same sender in the same signed envelope (an agent batches the receipts of a
   * burst, {@link MAX_RECEIPT_ITEMS} at most in all; see {@link receiptItems}).
   */
  receipt: Type.Optional(
    Type.Object(
      {
        ...RECEIPT_ITEM_FIELDS,
        more: Type.Optional(Type.Array(Type.Object(RECEIPT_ITEM_FIELDS, { additionalProperties: false }), { minItems: 1, maxItems: MAX_RECEIPT_ITEMS - 1 })),
      },
      { additionalProperties: false },
    ),
  ),
  /** Kind `deletion` only: the id of the message every recipient must purge. */
  deletes: Type.Optional(UlidSchema),
  /** Kind `deletion` only: why, as a code. */
  reason: Type.Optional(ReasonSchema),
  /** base64 DER of the signer's leaf certificate, so a recipient can verify without a directory. */
  sigCert: Type.Optional(Type.String({ pattern: BASE64_PATTERN, maxLength: MAX_SIG_CERT_CHARS })),
  /** ECDSA P-256/SHA-256 signature over `canonicalize(envelope without sig)`; see `signature.ts`. */
  sig: Type.Optional(Type.String({ pattern: SIG_PATTERN })),
};

const STRICT = { additionalProperties: false } as const;

/** The envelope, version 1. Unknown keys are refused. */
export const EnvelopeSchema = Type.Object(FIELDS, STRICT);

/** A validated envelope. */
export type Envelope = Static<typeof EnvelopeSchema>;
/** One receipt of a receipt envelope, as {@link receiptItems} lists them. */
export type ReceiptItem = Omit<NonNullable<Envelope['receipt']>, 'more'>;

/**
 * Every receipt a receipt envelope carries, in order: `receipt` itself, then its `more`. Empty
 * for any other kind. Consumers (the sender's status store, the hub's urgent watch and delivery
 * metrics) read receipts only through this, so a batched envelope counts as its receipts.
 */
export function receiptItems(envelope: Envelope): ReceiptItem[] {
  const receipt = envelope.receipt;
  if (envelope.kind !== 'receipt' || receipt === undefined) return [];
  const { more, ...first } = receipt;
  return more === undefined ? [first] : [first, ...more];
}

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
 * it is one. Beyond the schema: country codes must be assigned ISO codes, `expires` comes after
 * `created`, text is Unicode, and the per-kind rules of {@link kindProblems} hold.
 */
export function envelopeProblems(value: unknown): string[] {
  if (!isValid(EnvelopeSchema, value)) {
    const to: unknown = isRecord(value) ? value['to'] : undefined;
    if (Array.isArray(to)) return schemaProblems(LIST_SHAPE, value).map(reword(value));
    // "must be equal to constant" would not tell the sender that a list was the other choice.
    return schemaProblems(ALL_SHAPE, value).map((p) =>
      p.startsWith('to: must be equal to constant') ? `to: must be "*" or a list of country codes (got ${describeValue(to)})` : reword(value)(p),
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
  if (value.expires !== undefined && Date.parse(value.expires) <= Date.parse(value.created)) {
    problems.push(`expires: must be after created (got ${describeValue(value.expires)})`);
  }
  // JSON.parse turns a "\ud800" escape into a lone surrogate: not Unicode, not I-JSON (RFC 7493
  // §2.1), and without a canonical form, so such an envelope could never be signed or verified.
  for (const key of ['subject', 'body'] as const) {
    const text = value[key];
    if (text !== undefined && hasLoneSurrogate(text)) problems.push(`${key}: contains a lone UTF-16 surrogate, not Unicode text (got ${describeValue(text)})`);
  }
  for (const key of ['encrypted', 'sigCert'] as const) {
    const text = value[key];
    if (text !== undefined && text.length % 4 !== 0) problems.push(`${key}: base64 length must be a multiple of 4 (got ${text.length} characters)`);
  }
  return [...problems, ...kindProblems(value)];
}

/**
 * The rules that depend on `kind` and `handling` (ARCHITECTURE, "Messages"):
 * - only a notice carries `notice` (its colour), and a notice must;
 * - a reply names the message it answers (`inReplyTo`);
 * - a receipt carries `receipt` and no content, and goes to exactly one country: the sender of
 *   the message it reports on (which only the hub and that sender can check against their records);
 * - a deletion names the message to purge (`deletes`), may say why (`reason`), and nothing else does;
 * - every other kind carries exactly one of `body` and `encrypted`;
 * - `restricted` and `confidential` content is encrypted, never a plaintext `body`.
 */
function kindProblems(value: Envelope): string[] {
  const problems: string[] = [];
  const kind = describeValue(value.kind);
  const only = (key: 'notice' | 'receipt' | 'deletes' | 'reason', allowed: Envelope['kind']): void => {
    if (value.kind === allowed && key !== 'reason' && value[key] === undefined) problems.push(`${key}: required when kind is ${allowed}`);
    if (value.kind !== allowed && value[key] !== undefined) problems.push(`${key}: only allowed when kind is ${allowed} (got ${kind})`);
  };
  only('notice', 'notice');
  only('receipt', 'receipt');
  only('deletes', 'deletion');
  only('reason', 'deletion');
  if (value.kind === 'reply' && value.inReplyTo === undefined) problems.push('inReplyTo: required when kind is reply');
  if (value.deletes !== undefined && value.deletes === value.id) problems.push(`deletes: must name another message than the deletion itself (got ${describeValue(value.deletes)})`);
  const handling: string = value.handling ?? 'public';
  if (value.kind === 'receipt') {
    if (value.to === ALL_COUNTRIES || value.to.length !== 1) {
      problems.push(`to: a receipt goes to exactly one country, the original sender (got ${describeValue(value.to)})`);
    }
    if (value.receipt !== undefined && value.receipt.of === value.id) problems.push(`receipt.of: must name another message than the receipt itself (got ${describeValue(value.receipt.of)})`);
    value.receipt?.more?.forEach((item, i) => {
      if (item.of === value.id) problems.push(`receipt.more[${i}].of: must name another message than the receipt itself (got ${describeValue(item.of)})`);
    });
    for (const key of ['body', 'encrypted'] as const) {
      if (value[key] !== undefined) problems.push(`${key}: not allowed when kind is receipt, which carries no content (got ${describeValue(value[key])})`);
    }
    if (handling !== 'public') problems.push(`handling: must be public for a receipt, which carries no content (got ${describeValue(handling)})`);
    return problems;
  }
  if (value.body !== undefined && value.encrypted !== undefined) problems.push('encrypted: only one of body and encrypted may be given (got both)');
  if (value.body === undefined && value.encrypted === undefined) problems.push(`body: required, or encrypted instead (got nothing)`);
  if (handling !== 'public' && value.body !== undefined) {
    problems.push(`body: plaintext not allowed when handling is ${handling}; send the content as encrypted (got ${value.body.length} characters)`);
  }
  return problems;
}

// Patterns that stand for a short list or an encoding read better named than quoted.
const REWORDED: Readonly<Record<string, string>> = {
  handling: `must be one of ${HANDLING_CODES.join(', ')}`,
  sig: 'must be base64url (86 characters) of a 64-byte P-256 signature',
  sigCert: 'must be base64 (DER certificate)',
  encrypted: 'must be base64 (CMS EnvelopedData)',
};

function reword(value: unknown): (problem: string) => string {
  return (problem) => {
    const key = problem.slice(0, problem.indexOf(':'));
    const better = REWORDED[key];
    if (better === undefined || !problem.startsWith(`${key}: must match pattern`)) return problem;
    return `${key}: ${better} (got ${describeValue(isRecord(value) ? value[key] : undefined)})`;
  };
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

/**
 * An unsigned `query` envelope, as database requests travel (`ncb.query.<service>` to the hub,
 * `ncb.b2b.<CC>.<db>` to a country): routine, created now, expiring `lifetimeMs` later, the request
 * as its body. `to` is whom the query is for (the asker itself for the hub's services, so the
 * envelope could reach nobody else if it were ever submitted as a message).
 */
export function queryEnvelope(from: string, to: string, body: string, lifetimeMs: number, now = new Date()): Envelope {
  return {
    v: 1,
    id: newUlid(now.getTime()),
    kind: 'query',
    from,
    to: [to],
    priority: 'routine',
    created: now.toISOString(),
    expires: new Date(now.getTime() + lifetimeMs).toISOString(),
    body,
  };
}
