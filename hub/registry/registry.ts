import { setTimeout as delay } from 'node:timers/promises';
import type { KV } from '@nats-io/kv';
import type { Logger } from 'pino';
import { Value } from 'typebox/value';
import { isCountryCode } from '../../protocol/country.js';
import {
  HubError,
  REGISTRY_BAD_TRANSITION,
  REGISTRY_CONFLICT,
  REGISTRY_COUNTRY_EXISTS,
  REGISTRY_NOT_A_COUNTRY,
  REGISTRY_OVERLAY_FULL,
  REGISTRY_RECORD_CORRUPT,
  REGISTRY_UNAVAILABLE,
  REGISTRY_UNKNOWN_COUNTRY,
} from '../errors.js';
import { allocateAddress } from './overlay.js';
import { CountryRecordSchema, TRANSITIONS, type CountryRecord, type CountryStatus } from './record.js';
import { readSnapshot, writeSnapshot } from './snapshot.js';

/** Name of the JetStream KV bucket holding the registry (one key per country code). */
export const REGISTRY_BUCKET = 'ncbnet-registry';

export interface RegistryOptions {
  kv: KV;
  snapshotPath: string;
  log: Logger;
  now?: () => Date;
}

/** What changed, for listeners that re-render broker users and WireGuard peers. */
export interface RegistryChange {
  code: string;
  before: CountryRecord | undefined;
  after: CountryRecord;
}

type Listener = (change: RegistryChange) => Promise<void> | void;

/**
 * The country registry. The KV bucket is the truth (so a hub cluster can replicate it); memory
 * holds a copy with each key's revision, and every write is a compare-and-set on that revision,
 * so a second writer cannot silently overwrite the first. Writes are serialized here; after each
 * one the disk snapshot is rewritten and listeners run.
 */
export class Registry {
  readonly #kv: KV;
  readonly #snapshotPath: string;
  readonly #log: Logger;
  readonly #now: () => Date;
  readonly #records = new Map<string, { record: CountryRecord; revision: number }>();
  readonly #listeners: Listener[] = [];
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(opts: RegistryOptions) {
    this.#kv = opts.kv;
    this.#snapshotPath = opts.snapshotPath;
    this.#log = opts.log;
    this.#now = opts.now ?? (() => new Date());
  }

  /**
   * Loads every record from the bucket. If the bucket is empty but the snapshot is not (the
   * JetStream store was lost or moved), the snapshot seeds the bucket, so the hub never forgets
   * its countries because of a broker problem.
   */
  static async open(opts: RegistryOptions): Promise<Registry> {
    const reg = new Registry(opts);
    const keys: string[] = [];
    for await (const key of await opts.kv.keys()) keys.push(key);
    for (const key of keys) {
      const entry = await opts.kv.get(key);
      if (!entry || entry.operation !== 'PUT') continue;
      let value: unknown;
      try {
        value = entry.json();
      } catch (err) {
        throw new HubError(REGISTRY_RECORD_CORRUPT, `registry: key ${key} is not JSON`, { cause: err });
      }
      if (!Value.Check(CountryRecordSchema, value) || value.code !== key) {
        throw new HubError(REGISTRY_RECORD_CORRUPT, `registry: key ${key} does not hold a country record`);
      }
      reg.#records.set(key, { record: value, revision: entry.revision });
    }
    if (reg.#records.size === 0) {
      const snapshot = await readSnapshot(opts.snapshotPath);
      for (const record of snapshot) {
        const revision = await opts.kv.create(record.code, JSON.stringify(record));
        reg.#records.set(record.code, { record, revision });
      }
      if (snapshot.length) opts.log.warn({ countries: snapshot.length }, 'registry bucket was empty; restored from the disk snapshot');
    }
    await writeSnapshot(opts.snapshotPath, reg.list(), reg.#now());
    return reg;
  }

  /** Every country, sorted by code. */
  list(): CountryRecord[] {
    return [...this.#records.values()].map((r) => r.record).sort((a, b) => a.code.localeCompare(b.code));
  }

  get(code: string): CountryRecord | undefined {
    return this.#records.get(code)?.record;
  }

  /** Throws REGISTRY_UNKNOWN_COUNTRY when the country is not registered. */
  require(code: string): CountryRecord {
    const record = this.get(code);
    if (!record) throw new HubError(REGISTRY_UNKNOWN_COUNTRY, `country ${code} is not registered; add it with \`ncbnet country add ${code} --name …\``);
    return record;
  }

  /** Codes of the countries that may use the network now. */
  activeCodes(): string[] {
    return this.list()
      .filter((r) => r.status === 'active')
      .map((r) => r.code);
  }

  /** Same as {@link activeCodes}; the router's directory interface. */
  activeCountries(): string[] {
    return this.activeCodes();
  }

  isActive(code: string): boolean {
    return this.get(code)?.status === 'active';
  }

  /** Suspended: off the network for now, its backlog kept (the router sends it deletions only). */
  isSuspended(code: string): boolean {
    return this.get(code)?.status === 'suspended';
  }

  /** Runs after every successful write, in order; a failing listener is logged, never undoes the write. */
  onChange(listener: Listener): void {
    this.#listeners.push(listener);
  }

  /** Registers a new country as pending. A revoked one can be added again (it goes back to pending). */
  add(code: string, name: string): Promise<CountryRecord> {
    return this.#serialize(async () => {
      if (!isCountryCode(code)) throw new HubError(REGISTRY_NOT_A_COUNTRY, `country: not an ISO 3166-1 alpha-2 code (got ${JSON.stringify(code)})`);
      const existing = this.get(code);
      if (existing && existing.status !== 'revoked') {
        throw new HubError(REGISTRY_COUNTRY_EXISTS, `country ${code} is already registered (status ${existing.status})`);
      }
      const at = this.#now().toISOString();
      const record: CountryRecord = existing
        ? { ...existing, name, status: 'pending', updatedAt: at, statusReason: undefined }
        : { code, name, status: 'pending', createdAt: at, updatedAt: at };
      return this.#write(existing, clean(record));
    });
  }

  /** Changes a country's status, checking the transition is allowed. */
  setStatus(code: string, status: CountryStatus, reason?: string): Promise<CountryRecord> {
    return this.update(code, (r) => {
      if (!TRANSITIONS[r.status].includes(status) || r.status === status) {
        throw new HubError(REGISTRY_BAD_TRANSITION, `country ${code} is ${r.status}; it cannot become ${status}`);
      }
      if (status === 'active' && !r.certSerial) {
        throw new HubError(REGISTRY_BAD_TRANSITION, `country ${code} has never enrolled; it becomes active by enrolling with a token`);
      }
      return { ...r, status, statusReason: reason };
    });
  }

  /** Applies `change` to a registered country as one compare-and-set write. */
  update(code: string, change: (record: CountryRecord) => CountryRecord): Promise<CountryRecord> {
    return this.#serialize(async () => {
      const before = this.require(code);
      const after = clean({ ...change(before), code, updatedAt: this.#now().toISOString() });
      return this.#write(before, after);
    });
  }

  /** The country's overlay address, allocating the lowest free one on first use. */
  overlayAddressFor(code: string, cidr: string): string {
    const own = this.get(code)?.overlayAddress;
    if (own) return own;
    const used = new Set(this.list().flatMap((r) => (r.overlayAddress ? [r.overlayAddress] : [])));
    const address = allocateAddress(cidr, used);
    if (!address) throw new HubError(REGISTRY_OVERLAY_FULL, `overlay ${cidr} has no free address left`);
    return address;
  }

  /** Records that a country was heard from (heartbeat). Not written to KV more than once a minute. */
  async touch(code: string, at: Date): Promise<void> {
    const r = this.get(code);
    if (!r || (r.lastSeen && at.getTime() - Date.parse(r.lastSeen) < 60_000)) return;
    await this.update(code, (rec) => ({ ...rec, lastSeen: at.toISOString() }));
  }

  #serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /**
   * One compare-and-set write to the bucket. A broker that is restarting (timeout, no
   * responders) is waited for; an attempt that timed out may still have landed, so a later
   * "wrong last sequence" is checked against what is stored before it is called a conflict.
   */
  async #store(after: CountryRecord): Promise<number> {
    const known = this.#records.get(after.code);
    const value = JSON.stringify(after);
    let lastError: unknown;
    for (let attempt = 1; attempt <= WRITE_ATTEMPTS; attempt++) {
      try {
        return known ? await this.#kv.update(after.code, value, known.revision) : await this.#kv.create(after.code, value);
      } catch (err) {
        lastError = err;
        if (isWrongSequence(err) || (err instanceof Error && /exists/i.test(err.message))) {
          const stored = await this.#kv.get(after.code).catch(() => null);
          if (attempt > 1 && stored?.operation === 'PUT' && stored.string() === value) return stored.revision;
          throw new HubError(REGISTRY_CONFLICT, `registry: ${after.code} was changed by someone else; reload and retry`, { cause: err });
        }
        this.#log.warn({ err, country: after.code, attempt }, 'registry write failed; retrying');
        await delay(WRITE_RETRY_MS);
      }
    }
    throw new HubError(REGISTRY_UNAVAILABLE, `registry: the broker did not confirm the write of ${after.code}; retry shortly`, { cause: lastError });
  }

  async #write(before: CountryRecord | undefined, after: CountryRecord): Promise<CountryRecord> {
    const code = after.code;
    if (!Value.Check(CountryRecordSchema, after)) throw new HubError(REGISTRY_RECORD_CORRUPT, `registry: refusing to store an invalid record for ${code}`);
    const revision = await this.#store(after);
    this.#records.set(after.code, { record: after, revision });
    await writeSnapshot(this.#snapshotPath, this.list(), this.#now());
    this.#log.info({ country: after.code, status: after.status, revision }, 'registry updated');
    for (const listener of this.#listeners) {
      try {
        await listener({ code: after.code, before, after });
      } catch (err) {
        this.#log.error({ err, country: after.code }, 'registry listener failed');
      }
    }
    return after;
  }
}

/** How often and how long a registry write is retried while the broker is briefly away. */
const WRITE_ATTEMPTS = 4;
const WRITE_RETRY_MS = 1000;

function isWrongSequence(err: unknown): boolean {
  return err instanceof Error && /wrong last sequence/i.test(err.message);
}

/** Drops keys whose value is undefined, so records compare and serialize cleanly. */
function clean(record: CountryRecord): CountryRecord {
  return Object.fromEntries(Object.entries(record).filter(([, v]) => v !== undefined)) as CountryRecord;
}

export { readSnapshot };
