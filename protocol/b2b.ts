/**
 * B2B national databases (issue 8): a country's agent publishes one of its own databases on
 * `ncb.b2b.<OWNER>.<db>` under a sharing policy — which countries may query it, which fields each
 * of them sees, whether the owner wants a notice of every enquiry. The hub renders the policy's
 * `allow` list into broker permissions (a country outside it cannot even publish the request);
 * the owner's agent filters every answer down to the fields the policy gives the asking country.
 * This module holds the policy, request, answer and notice shapes, the field filter, and the
 * B2B_* codes. Pure: no I/O.
 *
 * A request travels as the body of a signed `query` envelope, as the hub's database queries do
 * (`protocol/query.ts`): the signature names the asking country, the reply subject must be in
 * that country's inbox. Unlike the hub's answers, a B2B answer comes from another member, over
 * the broker straight into the asker's inbox, which only it can read.
 */
import Type, { type Static } from 'typebox';
import { Value } from 'typebox/value';
import { CountryCodeSchema, isCountryCode } from './country.js';
import { CodedError } from './errors.js';
import { normalizeCode } from './query.js';
import { describeValue, schemaProblems } from './validate.js';

/** A database name in `ncb.b2b.<CC>.<db>`: lower-case word, no dots or wildcards. */
export const B2B_DB_PATTERN = /^[a-z][a-z0-9-]{0,31}$/;
/** A field name a policy may list: a plain identifier (never `__proto__` and the like). */
export const B2B_FIELD_PATTERN = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
/** Most databases one country may publish. */
export const MAX_B2B_DATABASES = 16;
/** Most fields a policy lists per country. */
export const MAX_B2B_FIELDS = 64;
/** Largest request body (the JSON inside the envelope), in bytes: a key is short. */
export const MAX_B2B_REQUEST_BYTES = 1024;
/** Largest request envelope: the request plus envelope fields and signer certificate. */
export const MAX_B2B_ENVELOPE_BYTES = MAX_B2B_REQUEST_BYTES + 8 * 1024;
/** A request envelope older than this (or this far in the future) is refused as stale. */
export const MAX_B2B_SKEW_MS = 5 * 60_000;

/** The policy is malformed (schema, unknown countries, fields for countries it does not allow). */
export const B2B_POLICY_INVALID = 'B2B_POLICY_INVALID';
/** The request does not have the request shape. */
export const B2B_INVALID = 'B2B_INVALID';
/** The key is missing or malformed. */
export const B2B_BAD_KEY = 'B2B_BAD_KEY';
/** The owner publishes no database of this name. */
export const B2B_UNKNOWN_DB = 'B2B_UNKNOWN_DB';
/** The policy does not let the asking country query this database (the broker refused, or the owner did). */
export const B2B_NOT_ALLOWED = 'B2B_NOT_ALLOWED';
/** The reply subject is not the inbox of the envelope's `from` country. */
export const B2B_INBOX_MISMATCH = 'B2B_INBOX_MISMATCH';
/** A request without a reply subject. */
export const B2B_NO_REPLY = 'B2B_NO_REPLY';
/** The envelope's `created` is too far from the owner's clock. */
export const B2B_STALE = 'B2B_STALE';
/** The request or its envelope is larger than the limits. */
export const B2B_TOO_LARGE = 'B2B_TOO_LARGE';
/** The owner's database failed (file unreadable, backend down). */
export const B2B_UNAVAILABLE = 'B2B_UNAVAILABLE';
/** Asker side: not connected, or nobody serves this database now (owner offline). */
export const B2B_UNREACHABLE = 'B2B_UNREACHABLE';
/** Asker side: no answer in time. */
export const B2B_TIMEOUT = 'B2B_TIMEOUT';
/** Asker side: the owner answered something that is not an answer. */
export const B2B_BAD_ANSWER = 'B2B_BAD_ANSWER';

/** A B2B failure; `problems` lists each as `path: problem (got X)` when there are several. */
export class B2bError extends CodedError {
  readonly problems: readonly string[];

  constructor(code: string, message: string, options: { problems?: readonly string[]; cause?: unknown } = {}) {
    super(code, options.problems?.length ? `${message}:\n  ${options.problems.join('\n  ')}` : message, options.cause === undefined ? undefined : { cause: options.cause });
    this.problems = options.problems ?? [];
  }
}

const STRICT = { additionalProperties: false } as const;
const DbName = Type.String({ pattern: B2B_DB_PATTERN.source, description: 'database name, [a-z][a-z0-9-]{0,31}' });
const FieldList = Type.Array(Type.String({ pattern: B2B_FIELD_PATTERN.source }), { maxItems: MAX_B2B_FIELDS, uniqueItems: true });

/**
 * A sharing policy. `allow`: the countries that may query, or `'*'` for every member.
 * `fields.default`: what an allowed country sees of a record; `fields.perCountry[CC]` replaces it
 * for CC (never adds to it implicitly). A field not listed is never sent.
 */
export const B2bPolicySchema = Type.Object(
  {
    db: DbName,
    allow: Type.Union([Type.Literal('*'), Type.Array(CountryCodeSchema, { maxItems: 250, uniqueItems: true })]),
    fields: Type.Object({ default: FieldList, perCountry: Type.Optional(Type.Record(Type.String(), FieldList)) }, STRICT),
    notifyEnquiries: Type.Boolean({ description: 'the owner is told of every enquiry: who, when, key, hit or no hit' }),
  },
  STRICT,
);
export type B2bPolicy = Static<typeof B2bPolicySchema>;

/** What an owner sends the hub (`PUT /v1/b2b`): the whole set, so a database left out is unpublished. */
export const B2bPolicySetSchema = Type.Object({ databases: Type.Array(B2bPolicySchema, { maxItems: MAX_B2B_DATABASES }) }, STRICT);
export type B2bPolicySet = Static<typeof B2bPolicySetSchema>;

/** The problems of a policy beyond its schema (`owner` is the publishing country). */
function policyProblems(policy: B2bPolicy, owner: string, path: string): string[] {
  const problems: string[] = [];
  if (policy.allow !== '*') {
    policy.allow.forEach((cc, i) => {
      if (!isCountryCode(cc)) problems.push(`${path}.allow[${i}]: not an assigned ISO 3166-1 alpha-2 code (got ${describeValue(cc)})`);
      else if (cc === owner) problems.push(`${path}.allow[${i}]: the owner queries its own database locally, not over the network (got ${describeValue(cc)})`);
    });
  }
  for (const cc of Object.keys(policy.fields.perCountry ?? {})) {
    if (!isCountryCode(cc)) problems.push(`${path}.fields.perCountry: ${describeValue(cc)} is not an assigned ISO 3166-1 alpha-2 code`);
    else if (!isAllowed(policy, cc)) problems.push(`${path}.fields.perCountry.${cc}: ${cc} is not in allow; fields for a country that may not query are a mistake`);
  }
  return problems;
}

/**
 * Checks a set of policies for `owner`: schema (unknown keys refused), assigned country codes,
 * per-country fields only for allowed countries, each database once. Throws {@link B2bError}
 * `B2B_POLICY_INVALID` with every problem.
 */
export function parseB2bPolicySet(value: unknown, owner: string): B2bPolicySet {
  if (!Value.Check(B2bPolicySetSchema, value)) throw new B2bError(B2B_POLICY_INVALID, 'B2B policy set is invalid', { problems: schemaProblems(B2bPolicySetSchema, value, 'b2b') });
  const problems: string[] = [];
  const seen = new Set<string>();
  value.databases.forEach((p, i) => {
    if (seen.has(p.db)) problems.push(`b2b.databases[${i}].db: duplicate (got ${describeValue(p.db)})`);
    seen.add(p.db);
    problems.push(...policyProblems(p, owner, `b2b.databases[${i}]`));
  });
  if (problems.length) throw new B2bError(B2B_POLICY_INVALID, 'B2B policy set is invalid', { problems });
  return value;
}

/** Whether `country` may query under `policy`. */
export function isAllowed(policy: B2bPolicy, country: string): boolean {
  return policy.allow === '*' ? isCountryCode(country) : policy.allow.includes(country);
}

/** The fields `country` sees; empty when it is not allowed at all. */
export function fieldsFor(policy: B2bPolicy, country: string): readonly string[] {
  if (!isAllowed(policy, country)) return [];
  const own = policy.fields.perCountry !== undefined && Object.hasOwn(policy.fields.perCountry, country) ? policy.fields.perCountry[country] : undefined;
  return own ?? policy.fields.default;
}

/**
 * A copy of `record` with only `fields` (own properties only; nothing inherited, nothing else).
 * Built from the field list, not the record, so a record can never add a key the policy lacks.
 */
export function filterRecord(record: Readonly<Record<string, unknown>>, fields: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of fields) {
    if (B2B_FIELD_PATTERN.test(f) && Object.hasOwn(record, f) && record[f] !== undefined) out[f] = record[f];
  }
  return out;
}

/** The owners' grants the broker needs: who may publish a request to which database. */
export interface B2bGrant {
  owner: string;
  db: string;
  /** Concrete countries (`'*'` already expanded to the active members). */
  allow: readonly string[];
}

/**
 * Grants for the broker from each active owner's policies: `'*'` becomes every active country
 * but the owner; countries not active are dropped (they have no broker user). Sorted, so the
 * rendered config is the same for the same registry.
 */
export function b2bGrants(owners: readonly { code: string; b2b?: readonly B2bPolicy[] | undefined }[], active: readonly string[]): B2bGrant[] {
  const members = new Set(active);
  const grants: B2bGrant[] = [];
  for (const o of owners) {
    if (!members.has(o.code)) continue;
    for (const p of o.b2b ?? []) {
      const allow = (p.allow === '*' ? [...members] : p.allow.filter((cc) => members.has(cc))).filter((cc) => cc !== o.code).sort();
      grants.push({ owner: o.code, db: p.db, allow });
    }
  }
  return grants.sort((a, b) => (a.owner === b.owner ? (a.db < b.db ? -1 : 1) : a.owner < b.owner ? -1 : 1));
}

// ---------------------------------------------------------------------------------------------
// Requests, answers, notices

/** A request as it travels in the envelope body. */
export const B2bRequestSchema = Type.Object({ v: Type.Literal(1), db: DbName, key: Type.String({ minLength: 1, maxLength: 128 }) }, STRICT);
export type B2bRequest = Static<typeof B2bRequestSchema>;

/** A key as databases index it: `normalizeCode` (upper case, no spaces, dashes, dots, slashes). */
export function normalizeB2bKey(key: string): string {
  return normalizeCode(key);
}

const KEY = /^[A-Z0-9]{1,64}$/;

/** Checks a request (parsed JSON or its text) and normalizes its key. Throws `B2B_TOO_LARGE`, `B2B_INVALID`, `B2B_BAD_KEY`. */
export function parseB2bRequest(input: unknown): B2bRequest {
  let value = input;
  if (typeof input === 'string') {
    const size = Buffer.byteLength(input, 'utf8');
    if (size > MAX_B2B_REQUEST_BYTES) throw new B2bError(B2B_TOO_LARGE, `request is ${size} bytes, more than ${MAX_B2B_REQUEST_BYTES}`);
    try {
      value = JSON.parse(input);
    } catch (err) {
      throw new B2bError(B2B_INVALID, 'request is not JSON', { cause: err });
    }
  }
  if (!Value.Check(B2bRequestSchema, value)) throw new B2bError(B2B_INVALID, 'request is invalid', { problems: schemaProblems(B2bRequestSchema, value) });
  const key = normalizeB2bKey(value.key);
  if (!KEY.test(key)) throw new B2bError(B2B_BAD_KEY, 'key is invalid', { problems: [`key: must be 1 to 64 letters A-Z or digits once spaces, dashes, dots and slashes are removed (got ${describeValue(value.key)})`] });
  return { v: 1, db: value.db, key };
}

/** An answer that was served; `hit: false` is not an error. `record` has the policy's fields only. */
export interface B2bHit {
  v: 1;
  ok: true;
  owner: string;
  db: string;
  key: string;
  hit: boolean;
  record?: Record<string, unknown>;
}

/** A refused request. */
export interface B2bRefusal {
  v: 1;
  ok: false;
  code: string;
  message: string;
  problems?: readonly string[];
}

export type B2bAnswer = B2bHit | B2bRefusal;

/** The answer for an error; anything uncoded is the owner's fault, `B2B_UNAVAILABLE`, without details. */
export function b2bRefusalOf(err: unknown): B2bRefusal {
  if (err instanceof CodedError) {
    const problems = (err as { problems?: unknown }).problems;
    return { v: 1, ok: false, code: err.code, message: err.message, ...(Array.isArray(problems) && problems.length ? { problems: problems as string[] } : {}) };
  }
  return { v: 1, ok: false, code: B2B_UNAVAILABLE, message: 'the database failed; retry later' };
}

/** A notice of one enquiry, kept by the owner's agent: who asked, when, which key, hit or not. */
export const EnquiryNoticeSchema = Type.Object(
  {
    v: Type.Literal(1),
    id: Type.String({ description: 'id (ULID) of the request envelope' }),
    at: Type.String({ format: 'date-time' }),
    db: DbName,
    from: CountryCodeSchema,
    key: Type.String(),
    hit: Type.Boolean(),
  },
  STRICT,
);
export type EnquiryNotice = Static<typeof EnquiryNoticeSchema>;

/** HTTP status of the agent's local API for a B2B code. */
export function b2bHttpStatus(code: string): number | undefined {
  const table: Readonly<Record<string, number>> = {
    [B2B_POLICY_INVALID]: 400,
    [B2B_INVALID]: 400,
    [B2B_BAD_KEY]: 400,
    [B2B_TOO_LARGE]: 413,
    [B2B_UNKNOWN_DB]: 404,
    [B2B_NOT_ALLOWED]: 403,
    [B2B_UNREACHABLE]: 503,
    [B2B_UNAVAILABLE]: 503,
    [B2B_TIMEOUT]: 504,
    // The owner refused what this agent built: this agent's fault, a bad gateway answer.
    [B2B_INBOX_MISMATCH]: 502,
    [B2B_NO_REPLY]: 502,
    [B2B_STALE]: 502,
    [B2B_BAD_ANSWER]: 502,
  };
  return table[code];
}
