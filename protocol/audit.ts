/**
 * The hub's audit record and its hash chain (ARCHITECTURE, "Messages": "audit record
 * (hash-chained)"). Each record names the SHA-256 of the one before it, so changing, removing or
 * reordering any stored record breaks every link after it, and {@link verifyChain} reports the
 * first place where the chain stops holding. Pure: no I/O; the stream that stores the records is
 * `hub/audit/audit-log.ts`.
 *
 * A record says what happened to a message or a member (routed, rejected, revoked…), never what a
 * message said: the envelope is represented by the SHA-256 of its bytes only.
 */
import { createHash } from 'node:crypto';
import Type, { type Static } from 'typebox';
import { Value } from 'typebox/value';
import { CountryCodeSchema, isCountryCode } from './country.js';
import { CodedError } from './errors.js';
import { JcsError, canonicalize } from './jcs.js';
import { describeValue, schemaProblems } from './validate.js';

/** Stream holding the records. (Belongs with the other names in `subjects.ts`.) */
export const AUDIT_STREAM = 'AUDIT';
/** The one subject of {@link AUDIT_STREAM}; only the hub's user may publish on it. */
export const AUDIT_SUBJECT = 'ncb.audit';

/** A failure about audit records or the chain; the hub's own audit errors extend it. */
export class AuditError extends CodedError {}
/** `chainNext` was given fields that do not make a valid record; the message lists every problem. */
export const AUDIT_RECORD_INVALID = 'AUDIT_RECORD_INVALID';
/** The chain does not verify; the message names the first broken record. */
export const AUDIT_CHAIN_BROKEN = 'AUDIT_CHAIN_BROKEN';

/** What can happen that the hub must be able to prove later. */
export const AUDIT_EVENTS = [
  'routed', 'rejected', 'deleted', 'country-added', 'token-created', 'enrolled', 'renewed', 'suspended', 'resumed', 'revoked',
  // Database services (hub/db) and B2B sharing policies (hub/api/routes-b2b.ts).
  'db-stored', 'db-deleted', 'b2b-published',
] as const;
export type AuditEvent = (typeof AUDIT_EVENTS)[number];

/** `prev` of the first record. */
export const GENESIS_PREV = '0'.repeat(64);
/** Most `problems` lines kept in one record (the router sends at most 32). */
export const MAX_AUDIT_PROBLEMS = 32;

const HEX64 = '^[0-9a-f]{64}$';
// Same pattern as the envelope's id (protocol/envelope.ts).
const ULID_PATTERN = '^[0-7][0-9A-HJKMNP-TV-Z]{25}$';
const Sha256Hex = (description: string) => Type.String({ pattern: HEX64, description });

/** The fields a caller supplies; `v`, `seq`, `at`, `prev` and `hash` are filled by {@link chainNext}. */
const FIELD_SCHEMAS = {
  event: Type.Enum([...AUDIT_EVENTS]),
  /** The envelope concerned; null when a rejected input had no well-formed id. */
  messageId: Type.Optional(Type.Union([Type.String({ pattern: ULID_PATTERN }), Type.Null()])),
  from: Type.Optional(CountryCodeSchema),
  to: Type.Optional(Type.Array(CountryCodeSchema, { maxItems: 256, uniqueItems: true })),
  /** The member country an administrative event is about (enrolled, revoked…). */
  country: Type.Optional(CountryCodeSchema),
  /** Who caused it: an operator name, or the hub for routing decisions. */
  actor: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  /** A rejection code (`ROUTER_*`, `ENVELOPE_*`) or a revocation reason. */
  code: Type.Optional(Type.String({ pattern: '^[A-Za-z][A-Za-z0-9_-]{0,63}$' })),
  problems: Type.Optional(Type.Array(Type.String({ maxLength: 512 }), { maxItems: MAX_AUDIT_PROBLEMS })),
  /** SHA-256 of the envelope bytes as submitted: proves which message without keeping its content. */
  envelopeSha256: Type.Optional(Sha256Hex('SHA-256 of the envelope bytes')),
  /**
   * `routed` only: the DELIVER stream sequence of each stored copy, in `to` order. A deletion
   * erases the copies by these numbers (DELIVER has no index by message id). Records written
   * before this field existed have none; they stay valid.
   */
  seqs: Type.Optional(Type.Array(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }), { maxItems: 256 })),
  /** `db-*`: the database service (`sltd`…); `b2b-published`: the national databases now shared. */
  service: Type.Optional(Type.String({ pattern: '^[a-z][a-z0-9-]{0,31}$' })),
  databases: Type.Optional(Type.Array(Type.String({ pattern: '^[a-z][a-z0-9-]{0,31}$' }), { maxItems: 64 })),
  /**
   * `db-*`: SHA-256 of the record's normalized key. Keys are personal data (document numbers,
   * names); the hash proves which record was written without the audit log keeping it.
   */
  keySha256: Type.Optional(Sha256Hex('SHA-256 of the normalized record key')),
};

/** One audit record, version 1. Unknown keys are refused (they would be outside what is checked). */
export const AuditRecordSchema = Type.Object(
  {
    v: Type.Literal(1),
    seq: Type.Integer({ minimum: 1, description: '1-based, gapless; equals the stream sequence' }),
    at: Type.String({ format: 'date-time', maxLength: 64 }),
    ...FIELD_SCHEMAS,
    prev: Sha256Hex('hash of the previous record; 64 zeros for the first'),
    hash: Sha256Hex('SHA-256 of the canonical JSON of this record without `hash`'),
  },
  { additionalProperties: false },
);

/** A stored audit record. */
export type AuditRecord = Static<typeof AuditRecordSchema>;

const FieldsSchema = Type.Object(FIELD_SCHEMAS, { additionalProperties: false });
/** What a caller of `append`/{@link chainNext} supplies. */
export type AuditFields = Static<typeof FieldsSchema>;

/** Where the chain ends: the last record's seq and hash (seq 0 and {@link GENESIS_PREV} when empty). */
export interface ChainTail {
  seq: number;
  hash: string;
}

/** The tail of an empty chain. */
export const EMPTY_TAIL: ChainTail = Object.freeze({ seq: 0, hash: GENESIS_PREV });

/** What {@link verifyChain} found. `seq` is the first position at which the chain does not hold. */
export type ChainVerdict = { ok: true; count: number } | { ok: false; seq: number; reason: string };

/**
 * The RFC 8785 (JCS) form of `value` (`protocol/jcs.ts`, the same form envelope signatures use):
 * the same value always gives the same bytes, whatever the key order. Throws
 * `AUDIT_RECORD_INVALID` (cause: the `JCS_UNSUPPORTED_VALUE` error) for what JSON cannot carry
 * faithfully: undefined, NaN, lone surrogates and the like.
 */
export function canonicalJson(value: unknown): string {
  try {
    return canonicalize(value);
  } catch (err) {
    if (!(err instanceof JcsError)) throw err;
    throw new AuditError(AUDIT_RECORD_INVALID, `audit record: ${err.message}`, { cause: err });
  }
}

/**
 * SHA-256 (lower-case hex) over the canonical JSON of `record` without its `hash` field. A field
 * set to undefined counts as absent, as it is once stored (JSON has no undefined).
 */
export function hashRecord(record: Omit<AuditRecord, 'hash'> | AuditRecord): string {
  const body = Object.fromEntries(Object.entries(record).filter(([k, v]) => k !== 'hash' && v !== undefined));
  return createHash('sha256').update(canonicalJson(body), 'utf8').digest('hex');
}

/** SHA-256 (lower-case hex) of envelope bytes, for {@link AuditFields.envelopeSha256}. */
export function envelopeDigest(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

// `path: problem (got X)`: the value after "got" may quote the envelope (a subject, a body), which
// the audit must never keep, so only the path and the problem are stored.
const GOT_SUFFIX = / \(got [\s\S]*\)$/;
// A lone surrogate (possible in a key name an envelope's JSON escaped) has no canonical JSON form;
// U+FFFD keeps the line readable and the record hashable.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const cleanText = (text: string): string => text.replace(GOT_SUFFIX, '').replace(LONE_SURROGATE, '\uFFFD');

/**
 * The record that follows `prev` (pure). `at` defaults to now. `problems` are stored without their
 * `(got X)` values; fields set to undefined are left out. Throws `AUDIT_RECORD_INVALID` listing every problem with the fields.
 */
export function chainNext(prev: ChainTail, fields: AuditFields, at: Date = new Date()): AuditRecord {
  // Only defined fields, so the record stored is byte for byte the record hashed.
  const cleaned = Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)) as AuditFields;
  if (cleaned.problems !== undefined) cleaned.problems = cleaned.problems.map(cleanText);
  if (cleaned.actor !== undefined) cleaned.actor = cleaned.actor.replace(LONE_SURROGATE, '\uFFFD');
  // The fast check first; the error-collecting path (slow) only to say what is wrong.
  const problems = Value.Check(FieldsSchema, cleaned) ? [] : schemaProblems(FieldsSchema, cleaned, 'fields');
  for (const key of ['from', 'country'] as const) {
    const cc = cleaned[key];
    if (cc !== undefined && !isCountryCode(cc)) problems.push(`fields.${key}: not an assigned ISO 3166-1 code (got ${describeValue(cc)})`);
  }
  cleaned.to?.forEach((cc, i) => {
    if (!isCountryCode(cc)) problems.push(`fields.to[${i}]: not an assigned ISO 3166-1 code (got ${describeValue(cc)})`);
  });
  // One sequence per copy: a list that does not line up with `to` could not say which copy is which.
  if (cleaned.seqs !== undefined && cleaned.seqs.length !== (cleaned.to?.length ?? -1)) {
    problems.push(`fields.seqs: must hold one sequence per recipient in to (got ${cleaned.seqs.length} for ${cleaned.to?.length ?? 'no'} recipients)`);
  }
  if (!Number.isSafeInteger(prev.seq) || prev.seq < 0) problems.push(`prev.seq: must be a non-negative integer (got ${describeValue(prev.seq)})`);
  if (!new RegExp(HEX64).test(prev.hash)) problems.push(`prev.hash: must be 64 lower-case hex digits (got ${describeValue(prev.hash)})`);
  if (problems.length > 0) throw new AuditError(AUDIT_RECORD_INVALID, `audit record is invalid: ${problems.join('; ')}`);
  const body = { v: 1 as const, seq: prev.seq + 1, at: at.toISOString(), ...cleaned, prev: prev.hash };
  return { ...body, hash: hashRecord(body) };
}

/**
 * Why `value`, found at position `seq` after `prev`, does not continue the chain; undefined when it
 * does. Checks, in order: shape, seq, prev, hash — so a record altered in any field is reported at
 * its own position, and a removed or moved one at the position it left.
 */
export function checkLink(prev: ChainTail, value: unknown, seq: number): string | undefined {
  if (!Value.Check(AuditRecordSchema, value)) {
    return `not a valid audit record: ${schemaProblems(AuditRecordSchema, value, 'record').slice(0, 5).join('; ')}`;
  }
  if (value.seq !== seq) return `seq gap: record says ${value.seq}, expected ${seq}`;
  if (value.prev !== prev.hash) return `bad prev: ${value.prev} is not the hash of record ${prev.seq} (${prev.hash})`;
  let computed: string;
  try {
    computed = hashRecord(value);
  } catch (err) {
    // Schema-valid but not canonicalizable (a lone surrogate): never written by chainNext.
    return `not a valid audit record: ${err instanceof Error ? err.message : String(err)}`;
  }
  if (computed !== value.hash) return `bad hash: stored ${value.hash}, computed ${computed}`;
  return undefined;
}

/**
 * Verifies records in stored order, the first at seq 1 (pure). Returns the count when every link
 * holds, else the first position where it does not and why.
 */
export function verifyChain(records: Iterable<unknown>): ChainVerdict {
  let tail: ChainTail = EMPTY_TAIL;
  for (const record of records) {
    const seq = tail.seq + 1;
    const reason = checkLink(tail, record, seq);
    if (reason !== undefined) return { ok: false, seq, reason };
    tail = { seq, hash: (record as AuditRecord).hash };
  }
  return { ok: true, count: tail.seq };
}

/**
 * Parses one stored record (UTF-8 JSON). Returns the value as parsed, or undefined when it is not
 * JSON at all; {@link checkLink} then decides whether it is a valid record.
 */
export function decodeAuditRecord(data: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(data));
  } catch {
    // Not JSON or not UTF-8: a forged or damaged entry, which checkLink reports by position.
    return undefined;
  }
}

/** The bytes stored for a record (canonical JSON, so stored bytes and hashed bytes agree). */
export function encodeAuditRecord(record: AuditRecord): Uint8Array {
  return new TextEncoder().encode(canonicalJson(record));
}
