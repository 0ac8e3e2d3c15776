/**
 * The hub's database services, part one: how keys and names are normalized, and each service's
 * key and record schemas (`protocol/query.ts` re-exports everything here; requests, answers and
 * error codes are there). Pure, no I/O.
 */
import { createHash } from 'node:crypto';
import Type, { type Static, type TSchema } from 'typebox';
import { CountryCodeSchema, isCountryCode } from './country.js';
import type { QueryService } from './query.js';
import { describeValue } from './validate.js';
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
/** What the request parser needs of each service: its key fields, schemas and normalization. */
export interface ServiceSpec {
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

export const SPECS: Readonly<Record<QueryService, ServiceSpec>> = {
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
