/**
 * Database queries (issue 8): what an NCB asks the hub's shared databases on `ncb.query.<service>`
 * and what it gets back. The request travels as the `body` of a signed `query` envelope; the
 * answer is plain JSON (see `hub/db/service.ts` for why it is not signed). This module defines the
 * services, their keys and records, the key and name normalization, limits and error codes. Pure:
 * no I/O.
 *
 * Keys are normalized before they are stored or looked up, so `"12 AB-34"` and `"12ab34"` are the
 * same passport: document numbers, VINs, serials and object ids in upper case without spaces,
 * dashes, dots or slashes; makes of firearms the same after diacritics are removed. A normalized
 * key is also a valid JetStream KV key (letters, digits and `.` only), by construction.
 */
import { createHash } from 'node:crypto';
import Type, { type Static, type TSchema } from 'typebox';
import { Value } from 'typebox/value';
import { CountryCodeSchema, isCountryCode } from './country.js';
import { CodedError } from './errors.js';
import { describeValue, schemaProblems } from './validate.js';

/** The hub's shared databases, one `ncb.query.<service>` each. */
export const QUERY_SERVICES = ['sltd', 'smv', 'woa', 'firearms', 'nominal'] as const;
export type QueryService = (typeof QUERY_SERVICES)[number];
/** `get` by exact key; `search` by normalized name (nominal only); `put` and `delete` by the owner only. */
export const QUERY_OPS = ['get', 'search', 'put', 'delete'] as const;
export type QueryOp = (typeof QUERY_OPS)[number];

/** Largest request body (the JSON inside the envelope), in bytes. */
export const MAX_QUERY_BYTES = 16 * 1024;
/** Largest query envelope: the request plus the envelope's fields and signer certificate (~1.5 KiB). */
export const MAX_QUERY_ENVELOPE_BYTES = MAX_QUERY_BYTES + 8 * 1024;
/** Most records one answer carries; a search that finds more says `truncated`. */
export const MAX_RESULTS = 50;
/** A query envelope older than this (or this far in the future) is refused as stale. */
export const MAX_QUERY_SKEW_MS = 5 * 60_000;

/** A query failure; `problems` lists each as `path: problem (got X)` when there are several. */
export class QueryError extends CodedError {
  readonly problems: readonly string[];

  constructor(code: QueryErrorCode, message: string, options: { problems?: readonly string[]; cause?: unknown } = {}) {
    super(code, options.problems?.length ? `${message}:\n  ${options.problems.join('\n  ')}` : message, options.cause === undefined ? undefined : { cause: options.cause });
    this.problems = options.problems ?? [];
  }
}

/** No such database service. */
export const QUERY_UNKNOWN_SERVICE = 'QUERY_UNKNOWN_SERVICE';
/** The request does not have the request shape (op, fields, unknown keys). */
export const QUERY_INVALID = 'QUERY_INVALID';
/** The key is missing or malformed for the service. */
export const QUERY_BAD_KEY = 'QUERY_BAD_KEY';
/** A record to store is malformed for the service. */
export const QUERY_BAD_RECORD = 'QUERY_BAD_RECORD';
/** The operation does not exist for this service (`search` anywhere but nominal). */
export const QUERY_UNSUPPORTED_OP = 'QUERY_UNSUPPORTED_OP';
/** The request or its envelope is larger than the limits. */
export const QUERY_TOO_LARGE = 'QUERY_TOO_LARGE';
/** Only the country that stored a record may change or delete it. */
export const QUERY_NOT_OWNER = 'QUERY_NOT_OWNER';
/** The envelope's reply subject is not the inbox of its `from` country (a forged attribution). */
export const QUERY_INBOX_MISMATCH = 'QUERY_INBOX_MISMATCH';
/** A request without a reply subject: nothing to answer to. */
export const QUERY_NO_REPLY = 'QUERY_NO_REPLY';
/** The envelope's `created` is too far from the hub's clock. */
export const QUERY_STALE = 'QUERY_STALE';
/** Another writer changed the record (or name index) while this one did; retry. */
export const QUERY_CONFLICT = 'QUERY_CONFLICT';
/** The hub's store failed (KV unavailable). */
export const QUERY_UNAVAILABLE = 'QUERY_UNAVAILABLE';
/** Agent side: no broker connection, or no hub serving the service. */
export const QUERY_HUB_UNREACHABLE = 'QUERY_HUB_UNREACHABLE';
/** Agent side: no answer in time. */
export const QUERY_TIMEOUT = 'QUERY_TIMEOUT';
/** Agent side: the hub answered something that is not an answer. */
export const QUERY_BAD_ANSWER = 'QUERY_BAD_ANSWER';

/** A query error code: one of the `QUERY_*` constants above. */
export type QueryErrorCode = `QUERY_${string}`;

/** True for one of {@link QUERY_SERVICES}. */
export function isQueryService(value: unknown): value is QueryService {
  return typeof value === 'string' && (QUERY_SERVICES as readonly string[]).includes(value);
}

// ---------------------------------------------------------------------------------------------
// Normalization

/** Letters without a Unicode decomposition that people still write without the mark. */
const FOLD: Readonly<Record<string, string>> = { ø: 'o', æ: 'ae', œ: 'oe', ð: 'd', þ: 'th', ł: 'l', đ: 'd', ı: 'i', ħ: 'h', ŧ: 't' };

/**
 * A person's name as the nominal index keys it: Unicode NFKD, combining marks removed (é → e),
 * full case folding (ß → ss, via upper then lower case), a few letters without a decomposition
 * folded (ø → o, æ → ae, ł → l), everything but letters and digits turned into spaces, spaces
 * collapsed, and the tokens sorted, so "Doe, JOHN" and "john  doé" are the same name.
 */
export function normalizeName(name: string): string {
  const folded = name
    .normalize('NFKD')
    .replace(/\p{M}+/gu, '')
    .toUpperCase()
    .toLowerCase()
    .replace(/[øæœðþłđıħŧ]/g, (c) => FOLD[c] ?? c);
  return folded
    .replace(/[^\p{L}\p{N}]+/gu, ' ')
    .trim()
    .split(' ')
    .filter((t) => t !== '')
    .sort()
    .join(' ');
}

/** The index key of a normalized name: 32 hex characters of its SHA-256 (a valid KV key token). */
export function nameHash(normalized: string): string {
  return createHash('sha256').update(normalized, 'utf8').digest('hex').slice(0, 32);
}

/** Document numbers, VINs, serials, object ids: NFKC, upper case, no spaces, dashes, dots or slashes. */
export function normalizeCode(text: string): string {
  return text.normalize('NFKC').toUpperCase().replace(/[\s\-./_]+/g, '');
}

/** A make of firearm: diacritics and punctuation removed, upper case (`Heckler & Koch` → `HECKLERKOCH`). */
export function normalizeMake(text: string): string {
  return normalizeName(text).toUpperCase().replace(/[^A-Z0-9]/g, '');
}

// ---------------------------------------------------------------------------------------------
// Services: keys and records

const Text = (maxLength: number, description?: string) => Type.String({ minLength: 1, maxLength, ...(description ? { description } : {}) });
const DateOnly = Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}$', description: 'YYYY-MM-DD' });
const STRICT = { additionalProperties: false } as const;
const NoticeIdSchema = Type.String({ pattern: '^[0-7][0-9A-HJKMNP-TV-Z]{25}$', description: 'id (ULID) of a notice envelope' });

// The issuing country is checked (and upper-cased) by the normalization, so `fr` finds `FR`.
export const SltdKeySchema = Type.Object({ number: Text(64, 'travel document number'), country: Type.String({ minLength: 2, maxLength: 2, description: 'issuing country, ISO 3166-1 alpha-2' }) }, STRICT);
export const SmvKeySchema = Type.Object({ vin: Text(64, 'vehicle identification number (ISO 3779)') }, STRICT);
export const WoaKeySchema = Type.Object({ objectId: Text(96, 'object id or inventory number') }, STRICT);
export const FirearmsKeySchema = Type.Object({ serial: Text(64, 'serial number'), make: Text(64, 'manufacturer') }, STRICT);
export const NominalKeySchema = Type.Object({ id: Text(64, 'person id') }, STRICT);

export const SltdRecordSchema = Type.Object(
  {
    ...SltdKeySchema.properties,
    type: Type.Enum(['passport', 'id-card', 'visa', 'residence-permit', 'other']),
    status: Type.Enum(['stolen', 'lost', 'revoked', 'invalidated']),
    reportedOn: Type.Optional(DateOnly),
    holderName: Type.Optional(Text(256)),
  },
  STRICT,
);
export const SmvRecordSchema = Type.Object(
  { ...SmvKeySchema.properties, make: Type.Optional(Text(64)), model: Type.Optional(Text(64)), colour: Type.Optional(Text(32)), plate: Type.Optional(Text(32)), stolenOn: Type.Optional(DateOnly) },
  STRICT,
);
export const WoaRecordSchema = Type.Object(
  { ...WoaKeySchema.properties, title: Text(256), artist: Type.Optional(Text(256)), category: Type.Optional(Text(64)), stolenOn: Type.Optional(DateOnly) },
  STRICT,
);
export const FirearmsRecordSchema = Type.Object(
  { ...FirearmsKeySchema.properties, model: Type.Optional(Text(64)), calibre: Type.Optional(Text(32)), status: Type.Enum(['stolen', 'lost', 'trafficked', 'used-in-crime']) },
  STRICT,
);
export const NominalRecordSchema = Type.Object(
  {
    ...NominalKeySchema.properties,
    name: Text(256, 'full name as written'),
    birthDate: Type.Optional(DateOnly),
    nationality: Type.Optional(CountryCodeSchema),
    /** The notices (envelope ids) that concern this person. */
    notices: Type.Array(NoticeIdSchema, { maxItems: 64 }),
  },
  STRICT,
);

export type SltdRecord = Static<typeof SltdRecordSchema>;
export type SmvRecord = Static<typeof SmvRecordSchema>;
export type WoaRecord = Static<typeof WoaRecordSchema>;
export type FirearmsRecord = Static<typeof FirearmsRecordSchema>;
export type NominalRecord = Static<typeof NominalRecordSchema>;
/** A record of any service. */
export type QueryRecord = SltdRecord | SmvRecord | WoaRecord | FirearmsRecord | NominalRecord;

/** How one service's keys are checked and normalized. */
interface ServiceSpec {
  key: TSchema;
  record: TSchema;
  /** The fields of the key, in KV key order. */
  keyFields: readonly string[];
  /** Normalizes the key fields; returns problems for those that stay malformed. */
  normalize(key: Record<string, string>): { key: Record<string, string>; problems: string[] };
}

const CODE = /^[A-Z0-9]+$/;
const VIN = /^[A-HJ-NPR-Z0-9]{5,17}$/;

function codeField(field: string, value: string, max: number, out: string[]): string {
  const n = normalizeCode(value);
  if (n.length === 0 || n.length > max || !CODE.test(n)) {
    out.push(`key.${field}: must be 1 to ${max} letters A-Z or digits once spaces, dashes, dots and slashes are removed (got ${describeValue(value)})`);
  }
  return n;
}

const SPECS: Readonly<Record<QueryService, ServiceSpec>> = {
  sltd: {
    key: SltdKeySchema,
    record: SltdRecordSchema,
    keyFields: ['country', 'number'],
    normalize: (k) => {
      const problems: string[] = [];
      const number = codeField('number', k['number'] ?? '', 32, problems);
      const country = (k['country'] ?? '').toUpperCase();
      if (!isCountryCode(country)) problems.push(`key.country: not an assigned ISO 3166-1 alpha-2 code (got ${describeValue(k['country'])})`);
      return { key: { number, country }, problems };
    },
  },
  smv: {
    key: SmvKeySchema,
    record: SmvRecordSchema,
    keyFields: ['vin'],
    normalize: (k) => {
      const problems: string[] = [];
      const vin = normalizeCode(k['vin'] ?? '');
      // ISO 3779: 17 characters without I, O and Q; older vehicles carry shorter numbers.
      if (!VIN.test(vin)) problems.push(`key.vin: must be 5 to 17 letters and digits without I, O or Q (got ${describeValue(k['vin'])})`);
      return { key: { vin }, problems };
    },
  },
  woa: {
    key: WoaKeySchema,
    record: WoaRecordSchema,
    keyFields: ['objectId'],
    normalize: (k) => {
      const problems: string[] = [];
      const objectId = codeField('objectId', k['objectId'] ?? '', 64, problems);
      return { key: { objectId }, problems };
    },
  },
  firearms: {
    key: FirearmsKeySchema,
    record: FirearmsRecordSchema,
    keyFields: ['make', 'serial'],
    normalize: (k) => {
      const problems: string[] = [];
      const serial = codeField('serial', k['serial'] ?? '', 32, problems);
      const make = normalizeMake(k['make'] ?? '');
      if (make.length === 0 || make.length > 32) problems.push(`key.make: must have 1 to 32 letters or digits once accents and punctuation are removed (got ${describeValue(k['make'])})`);
      return { key: { serial, make }, problems };
    },
  },
  nominal: {
    key: NominalKeySchema,
    record: NominalRecordSchema,
    keyFields: ['id'],
    normalize: (k) => {
      const problems: string[] = [];
      const id = codeField('id', k['id'] ?? '', 40, problems);
      return { key: { id }, problems };
    },
  },
};

/**
 * The KV key of a normalized key: its fields in a fixed order joined with dots
 * (`FR.12AB34567` for a French passport, `HECKLERKOCH.G123` for a firearm).
 */
export function kvKey(service: QueryService, key: Readonly<Record<string, string>>): string {
  return SPECS[service].keyFields.map((f) => key[f] ?? '').join('.');
}

/** The key fields of a record (its key is part of it). */
export function keyOfRecord(service: QueryService, record: QueryRecord): Record<string, string> {
  const fields = record as unknown as Record<string, unknown>;
  return Object.fromEntries(SPECS[service].keyFields.map((f) => [f, String(fields[f])]));
}

// ---------------------------------------------------------------------------------------------
// Requests and answers

/** A request as it travels in the envelope body; `key`, `record` and `name` are checked per service. */
export const QueryRequestSchema = Type.Object(
  {
    v: Type.Literal(1),
    service: Type.String({ maxLength: 32 }),
    op: Type.Enum([...QUERY_OPS]),
    key: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    record: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_RESULTS })),
  },
  STRICT,
);
export type QueryRequestInput = Static<typeof QueryRequestSchema>;

/** A checked request: keys and names normalized, records validated and their keys normalized. */
export type QueryRequest =
  | { v: 1; service: QueryService; op: 'get' | 'delete'; key: Record<string, string> }
  | { v: 1; service: 'nominal'; op: 'search'; name: string; normalized: string; limit: number }
  | { v: 1; service: QueryService; op: 'put'; key: Record<string, string>; record: QueryRecord };

/** What the hub keeps per record: the record, its owner country and times. */
export interface StoredRecord {
  v: 1;
  service: QueryService;
  record: QueryRecord;
  owner: string;
  createdAt: string;
  updatedAt: string;
}

/** The answer to a request that was served. `hit: false` is not an error: nothing matched. */
export interface QueryHit {
  v: 1;
  ok: true;
  service: QueryService;
  op: QueryOp;
  hit: boolean;
  /** `get`, `put`: the record (after a put, as stored). */
  result?: StoredRecord;
  /** `search`: every match up to the limit. */
  results?: StoredRecord[];
  /** `search`: more matched than were returned. */
  truncated?: boolean;
  /**
   * `get`, `search`: a record found belongs to another country, and the hub's configuration
   * (`databases.notifyOwnerOnHit`) says its owner is to be told: the asking agent sends the owner
   * a hit notice ({@link HitNotice}) as a message.
   */
  notifyOwner?: boolean;
}

/** The body of a hit notice: which record of the owner's was found, by whom, when (JSON). */
export interface HitNotice {
  type: 'ncbnet-db-hit';
  service: QueryService;
  /** The record's normalized key, as stored. */
  key: Record<string, string>;
  /** The country that looked it up. */
  by: string;
  at: string;
}

/** The answer to a refused request. */
export interface QueryRefusal {
  v: 1;
  ok: false;
  code: string;
  message: string;
  problems?: readonly string[];
}

export type QueryAnswer = QueryHit | QueryRefusal;

/** The answer for a coded error (any other error is the hub's fault: `QUERY_UNAVAILABLE`). */
export function refusalOf(err: unknown): QueryRefusal {
  if (err instanceof QueryError) return { v: 1, ok: false, code: err.code, message: err.message, ...(err.problems.length ? { problems: err.problems } : {}) };
  if (err instanceof CodedError) {
    const problems = (err as { problems?: unknown }).problems;
    return { v: 1, ok: false, code: err.code, message: err.message, ...(Array.isArray(problems) && problems.length ? { problems: problems as string[] } : {}) };
  }
  return { v: 1, ok: false, code: QUERY_UNAVAILABLE, message: 'the database service failed; retry later' };
}

/** Bytes of a request body as sent (UTF-8 JSON). */
export function encodeQueryRequest(request: QueryRequestInput): string {
  const text = JSON.stringify(request);
  const size = Buffer.byteLength(text, 'utf8');
  if (size > MAX_QUERY_BYTES) throw new QueryError(QUERY_TOO_LARGE, `query is ${size} bytes, more than ${MAX_QUERY_BYTES}`);
  return text;
}

/**
 * Checks a request (parsed JSON, or its text) and normalizes it. Throws {@link QueryError}:
 * `QUERY_TOO_LARGE` (text over {@link MAX_QUERY_BYTES}), `QUERY_INVALID` (not JSON or not the
 * request shape), `QUERY_UNKNOWN_SERVICE`, `QUERY_UNSUPPORTED_OP`, `QUERY_BAD_KEY`,
 * `QUERY_BAD_RECORD`; every problem at once as `path: problem (got X)`.
 */
export function parseQueryRequest(input: unknown): QueryRequest {
  let value = input;
  if (typeof input === 'string') {
    const size = Buffer.byteLength(input, 'utf8');
    if (size > MAX_QUERY_BYTES) throw new QueryError(QUERY_TOO_LARGE, `query is ${size} bytes, more than ${MAX_QUERY_BYTES}`);
    try {
      value = JSON.parse(input);
    } catch (err) {
      throw new QueryError(QUERY_INVALID, 'query is not JSON', { problems: [`(root): not JSON (got ${describeValue(input)})`], cause: err });
    }
  }
  if (!Value.Check(QueryRequestSchema, value)) throw new QueryError(QUERY_INVALID, 'query is invalid', { problems: schemaProblems(QueryRequestSchema, value) });
  const { service, op } = value;
  if (!isQueryService(service)) throw new QueryError(QUERY_UNKNOWN_SERVICE, `no database service ${describeValue(service)}; known: ${QUERY_SERVICES.join(', ')}`);
  const spec = SPECS[service];
  const needs = (field: 'key' | 'record' | 'name', code: QueryErrorCode): void => {
    if (value[field] === undefined) throw new QueryError(code, `${op} needs ${field}`, { problems: [`${field}: required when op is ${op}`] });
  };
  const refuseExtra = (fields: readonly ('key' | 'record' | 'name' | 'limit')[]): void => {
    const extra = fields.filter((f) => value[f] !== undefined);
    if (extra.length) throw new QueryError(QUERY_INVALID, 'query is invalid', { problems: extra.map((f) => `${f}: not allowed when op is ${op}`) });
  };
  if (op === 'search') {
    if (service !== 'nominal') throw new QueryError(QUERY_UNSUPPORTED_OP, `search is by name, on nominal only (got service ${service}); use get with a key`);
    refuseExtra(['key', 'record']);
    needs('name', QUERY_INVALID);
    const name = value.name as string;
    const normalized = normalizeName(name);
    if (normalized === '') throw new QueryError(QUERY_BAD_KEY, 'name has no letters', { problems: [`name: must contain letters or digits (got ${describeValue(name)})`] });
    return { v: 1, service, op, name, normalized, limit: value.limit ?? MAX_RESULTS };
  }
  if (op === 'put') {
    refuseExtra(['key', 'name', 'limit']);
    needs('record', QUERY_BAD_RECORD);
    const record: unknown = value.record;
    const problems = schemaProblems(spec.record, record, 'record');
    if (problems.length) throw new QueryError(QUERY_BAD_RECORD, `record is invalid for ${service}`, { problems });
    const checked = record as QueryRecord;
    const { key, problems: keyProblems } = spec.normalize(keyOfRecord(service, checked));
    if (keyProblems.length) throw new QueryError(QUERY_BAD_RECORD, `record is invalid for ${service}`, { problems: keyProblems.map((p) => p.replace(/^key\./, 'record.')) });
    if (service === 'nominal' && normalizeName((checked as NominalRecord).name) === '') {
      throw new QueryError(QUERY_BAD_RECORD, 'record is invalid for nominal', { problems: [`record.name: must contain letters or digits (got ${describeValue((checked as NominalRecord).name)})`] });
    }
    // The stored record carries the normalized key, so what a get returns is what it matched.
    return { v: 1, service, op, key, record: { ...checked, ...key } };
  }
  refuseExtra(['record', 'name', 'limit']);
  needs('key', QUERY_BAD_KEY);
  const problems = schemaProblems(spec.key, value.key, 'key');
  if (problems.length) throw new QueryError(QUERY_BAD_KEY, `key is invalid for ${service}`, { problems });
  const { key, problems: keyProblems } = spec.normalize(value.key as Record<string, string>);
  if (keyProblems.length) throw new QueryError(QUERY_BAD_KEY, `key is invalid for ${service}`, { problems: keyProblems });
  return { v: 1, service, op, key };
}

/** HTTP status of the local API for a query code (the agent's `routes-query.ts`). */
export function queryHttpStatus(code: string): number | undefined {
  const table: Readonly<Record<string, number>> = {
    [QUERY_UNKNOWN_SERVICE]: 404,
    [QUERY_INVALID]: 400,
    [QUERY_BAD_KEY]: 400,
    [QUERY_BAD_RECORD]: 400,
    [QUERY_UNSUPPORTED_OP]: 400,
    [QUERY_TOO_LARGE]: 413,
    [QUERY_NOT_OWNER]: 403,
    [QUERY_CONFLICT]: 409,
    [QUERY_HUB_UNREACHABLE]: 503,
    [QUERY_UNAVAILABLE]: 503,
    [QUERY_TIMEOUT]: 504,
    // The hub refused what this agent built: the agent's fault, reported as a bad gateway answer.
    [QUERY_INBOX_MISMATCH]: 502,
    [QUERY_NO_REPLY]: 502,
    [QUERY_STALE]: 502,
    [QUERY_BAD_ANSWER]: 502,
  };
  return table[code];
}
