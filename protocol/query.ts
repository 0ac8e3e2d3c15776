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
import Type, { type Static } from 'typebox';
import { Value } from 'typebox/value';
import { CodedError } from './errors.js';
import { describeValue, schemaProblems } from './validate.js';
import { SPECS, keyOfRecord, normalizeName, type NominalRecord, type QueryRecord } from './query-records.js';

export * from './query-records.js';

const STRICT = { additionalProperties: false } as const;

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
