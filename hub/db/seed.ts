/**
 * Synthetic records for benchmarks and tests (issue 8: "no real personal data anywhere"). Every
 * record is computed from (seed, index) alone, so a test or benchmark can name record 123 456 of
 * a million without keeping the million, and two runs with one seed write the same data.
 * Names are made of invented syllables; document numbers carry the index, so they are unique.
 */
import { countryCodes } from '../../protocol/country.js';
import { keyOfRecord, type QueryRecord, type QueryService } from '../../protocol/query.js';
import { DB_SEED_INCOMPLETE, DbError } from './errors.js';
import type { DbStore } from './store.js';

/** 32-bit mix of (seed, index, salt): splitmix-style, enough to spread synthetic values. */
function mix(seed: number, index: number, salt: number): number {
  let x = (seed ^ Math.imul(index + 1, 0x9e3779b9) ^ Math.imul(salt + 1, 0x85ebca6b)) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d) >>> 0;
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

const COUNTRIES = countryCodes().filter((c) => c !== 'XK');
const LETTERS = 'ABCDEFGHJKLMNPRSTUVWXYZ';
const SYLLABLES = ['ka', 'lo', 'mi', 'ne', 'ru', 'sa', 'te', 'vo', 'zi', 'pa', 'do', 'ri', 'ba', 'fe', 'gu', 'ho', 'ja', 'ke', 'lu', 'ma'];
const MAKES = ['Arvena', 'Borstal', 'Corvin', 'Daltrek', 'Ermont'];

function pick<T>(list: readonly T[], n: number): T {
  return list[n % list.length] as T;
}

function word(seed: number, index: number, salt: number): string {
  const n = mix(seed, index, salt);
  const parts = 2 + (n % 2);
  let w = '';
  for (let i = 0; i < parts; i++) w += pick(SYLLABLES, mix(seed, index, salt * 7 + i));
  return w.charAt(0).toUpperCase() + w.slice(1);
}

function date(seed: number, index: number, salt: number, fromYear: number, years: number): string {
  const n = mix(seed, index, salt);
  const y = fromYear + (n % years);
  const m = 1 + ((n >>> 8) % 12);
  const d = 1 + ((n >>> 16) % 28);
  return `${y}-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')}`;
}

/** The synthetic person name of nominal record `index` (also what a test searches for). */
export function syntheticName(seed: number, index: number): string {
  return `${word(seed, index, 11)} ${word(seed, index, 12)}`;
}

/**
 * Record `index` of `service` for `seed`, with its key fields already normalized (it is stored
 * as it is). SLTD numbers are two letters and the index in nine digits: unique up to 10⁹ records.
 */
export function syntheticRecord(service: QueryService, seed: number, index: number): QueryRecord {
  const digits = String(index).padStart(9, '0');
  const letters = pick([...LETTERS], mix(seed, index, 1)) + pick([...LETTERS], mix(seed, index, 2));
  switch (service) {
    case 'sltd':
      return {
        number: `${letters}${digits}`,
        country: pick(COUNTRIES, mix(seed, index, 3)),
        type: pick(['passport', 'id-card', 'visa'] as const, mix(seed, index, 4)),
        status: pick(['stolen', 'lost', 'revoked'] as const, mix(seed, index, 5)),
        reportedOn: date(seed, index, 6, 2015, 10),
      };
    case 'smv':
      // VINs avoid I, O and Q (ISO 3779); the index keeps them unique.
      return { vin: `${letters}S${String(mix(seed, index, 7) % 100000).padStart(5, '0')}${digits}`, make: word(seed, index, 8), colour: pick(['black', 'white', 'grey', 'red', 'blue'], mix(seed, index, 9)), stolenOn: date(seed, index, 6, 2015, 10) };
    case 'woa':
      return { objectId: `${letters}${digits}`, title: `${word(seed, index, 8)} ${word(seed, index, 9)}`, artist: syntheticName(seed, index), stolenOn: date(seed, index, 6, 1980, 45) };
    case 'firearms':
      return { make: pick(MAKES, mix(seed, index, 8)).toUpperCase(), serial: `${letters}${digits}`, model: word(seed, index, 9), status: pick(['stolen', 'lost'] as const, mix(seed, index, 5)) };
    case 'nominal':
      return { id: `P${digits}`, name: syntheticName(seed, index), birthDate: date(seed, index, 6, 1950, 55), nationality: pick(COUNTRIES, mix(seed, index, 3)), notices: [] };
  }
}

/** Progress of {@link seedRecords}, reported about once a second. */
export interface SeedProgress {
  written: number;
  count: number;
  elapsedMs: number;
}

/** What {@link seedRecords} did. */
export interface SeedSummary {
  service: QueryService;
  count: number;
  seed: number;
  owner: string;
  elapsedMs: number;
  recordsPerSecond: number;
}

/** Options of {@link seedRecords}. */
export interface SeedOptions {
  store: DbStore;
  service: QueryService;
  count: number;
  /** Country recorded as the owner of every record. */
  owner: string;
  seed?: number;
  /** First index (default 0): several runs can fill one bucket in parts. */
  from?: number;
  /** Writes in flight at once (default 1000): each awaits its JetStream ack, so the window keeps the pipe full. */
  window?: number;
  onProgress?: (p: SeedProgress) => void;
}

/**
 * Writes `count` synthetic records straight into the service's bucket. Nominal records go one by
 * one (`window` at once, each acked: the name index is a compare-and-set per name); the others in
 * batches of `window`, each batch plain publishes closed by one acked publish, a few batches in
 * flight (see `DbStore.writeBatch`), then the stream's sequence is checked against the count.
 * Stops at the first failed write; throws `DB_SEED_INCOMPLETE` when writes went missing.
 */
export async function seedRecords(o: SeedOptions): Promise<SeedSummary> {
  const seed = o.seed ?? 1;
  const from = o.from ?? 0;
  const window = Math.max(1, o.window ?? 1000);
  const at = new Date().toISOString();
  const started = performance.now();
  let written = 0;
  let lastReport = started;
  const progress = (): void => {
    const now = performance.now();
    if (o.onProgress && now - lastReport >= 1000) {
      lastReport = now;
      o.onProgress({ written, count: o.count, elapsedMs: now - started });
    }
  };
  if (o.service === 'nominal') await seedOneByOne(o, seed, from, window, at, () => {
    written++;
    progress();
  });
  else {
    const service = o.service;
    const before = await o.store.streamSequence(service);
    const inFlight = new Set<Promise<void>>();
    for (let start = 0; start < o.count; start += window) {
      const batch = Array.from({ length: Math.min(window, o.count - start) }, (_, i) => syntheticRecord(service, seed, from + start + i));
      const sent = o.store.writeBatch(service, batch, o.owner, at).then(() => {
        written += batch.length;
        progress();
      });
      inFlight.add(sent);
      void sent.finally(() => inFlight.delete(sent)).catch(() => undefined);
      // A few batches in flight keep the connection busy while acks come back; more only queue.
      if (inFlight.size >= BATCHES_IN_FLIGHT) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    const stored = (await o.store.streamSequence(service)) - before;
    if (stored < o.count) throw new DbError(DB_SEED_INCOMPLETE, `${service}: ${o.count} records sent, the bucket stored ${stored}; check the stream's limits and the broker log`);
  }
  const elapsedMs = performance.now() - started;
  return { service: o.service, count: written, seed, owner: o.owner, elapsedMs: Math.round(elapsedMs), recordsPerSecond: Math.round(written / (elapsedMs / 1000)) };
}

/** Batches of plain publishes awaiting their closing ack at once. */
const BATCHES_IN_FLIGHT = 4;

async function seedOneByOne(o: SeedOptions, seed: number, from: number, window: number, at: string, onWritten: () => void): Promise<void> {
  let next = 0;
  let isFailed = false;
  const worker = async (): Promise<void> => {
    while (next < o.count && !isFailed) {
      const record = syntheticRecord(o.service, seed, from + next++);
      try {
        await o.store.write(o.service, keyOfRecord(o.service, record), record, o.owner, at);
      } catch (err) {
        isFailed = true;
        throw err;
      }
      onWritten();
    }
  };
  await Promise.all(Array.from({ length: Math.min(window, o.count) }, worker));
}
