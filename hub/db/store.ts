/**
 * The hub's shared databases in JetStream KV (issue 8): one bucket per service
 * (`ncbnet-db-<service>`, file storage, history 1, direct gets), value = {@link StoredRecord}
 * (the record, its owner country, times). Every write is a compare-and-set on the key's last
 * revision, so two countries racing on one key cannot both win, and only the owner may change or
 * delete what it stored (`QUERY_NOT_OWNER`).
 *
 * Nominal search has its own bucket, `ncbnet-db-nominal-names`: key = {@link nameHash} of the
 * normalized name (sorted tokens), value = the ids of the persons with that name. A search is one
 * direct get on the index and one per person found: a few milliseconds whatever the number of
 * persons, where a scan (or `kv.keys()`, a consumer per call) grows with the bucket. The index is
 * written before the record on a put and after it on a delete, so it may name a person who is
 * not (or no longer) there after a crash, never miss one; a search re-checks each person's name.
 */
import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import { Kvm, type KV, type KvEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  QUERY_CONFLICT,
  QUERY_NOT_OWNER,
  QUERY_SERVICES,
  QueryError,
  keyOfRecord,
  kvKey,
  nameHash,
  normalizeName,
  type NominalRecord,
  type QueryRecord,
  type QueryService,
  type StoredRecord,
} from '../../protocol/query.js';

/** The bucket of a service's records. */
export function bucketName(service: QueryService): string {
  return `ncbnet-db-${service}`;
}
/** The nominal name index (normalized-name hash → person ids). */
export const NOMINAL_NAMES_BUCKET = 'ncbnet-db-nominal-names';

/** Compare-and-set attempts before a write is answered `QUERY_CONFLICT`. */
const MAX_CAS_ATTEMPTS = 8;
/** Most ids one name keeps; a common name beyond it is refused rather than growing one value without bound. */
export const MAX_IDS_PER_NAME = 10_000;

/** Options of {@link DbStore.open}. */
export interface DbStoreOptions {
  nc: NatsConnection;
  /** Replicas of each bucket (1 on one hub, 3 in a cluster). */
  replicas?: number;
}

interface NameIndexValue {
  ids: string[];
}

function isWrongLastSequence(err: unknown): boolean {
  return err instanceof Error && /wrong last sequence|key exists/i.test(err.message);
}

const encoder = new TextEncoder();
const encode = (value: unknown): Uint8Array => encoder.encode(JSON.stringify(value));

/** The databases; open once per hub (and per seeding CLI), share between handlers. */
export class DbStore {
  readonly #buckets: ReadonlyMap<QueryService, KV>;
  readonly #names: KV;
  readonly #nc: NatsConnection;
  readonly #js: JetStreamClient;

  private constructor(nc: NatsConnection, buckets: ReadonlyMap<QueryService, KV>, names: KV) {
    this.#nc = nc;
    this.#js = jetstream(nc);
    this.#buckets = buckets;
    this.#names = names;
  }

  /** Creates the buckets that do not exist yet (idempotent) and binds to them. */
  static async open(o: DbStoreOptions): Promise<DbStore> {
    const kvm = new Kvm(o.nc);
    const opts = { history: 1, storage: 'file' as const, replicas: o.replicas ?? 1, allow_direct: true };
    const buckets = new Map<QueryService, KV>();
    for (const service of QUERY_SERVICES) buckets.set(service, await kvm.create(bucketName(service), opts));
    return new DbStore(o.nc, buckets, await kvm.create(NOMINAL_NAMES_BUCKET, opts));
  }

  #bucket(service: QueryService): KV {
    const kv = this.#buckets.get(service);
    if (kv === undefined) throw new Error(`no bucket for ${service}`);
    return kv;
  }

  /** The record under a normalized key, or undefined (never stored, or deleted). */
  async get(service: QueryService, key: Readonly<Record<string, string>>): Promise<StoredRecord | undefined> {
    return live(await this.#bucket(service).get(kvKey(service, key)));
  }

  /**
   * Stores `record` for `owner`: a new key, or a key `owner` already holds. Resolves with the
   * stored value and whether it replaced one. Throws `QUERY_NOT_OWNER` when another country holds
   * the key, `QUERY_CONFLICT` when other writers kept winning the compare-and-set.
   */
  async put(service: QueryService, key: Readonly<Record<string, string>>, record: QueryRecord, owner: string, now = new Date()): Promise<{ stored: StoredRecord; replaced: boolean }> {
    const kv = this.#bucket(service);
    const k = kvKey(service, key);
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const entry = await kv.get(k);
      const before = live(entry);
      if (before !== undefined && before.owner !== owner) throw notOwner(service, k, before.owner, owner);
      const at = now.toISOString();
      const stored: StoredRecord = { v: 1, service, record, owner, createdAt: before?.createdAt ?? at, updatedAt: at };
      if (service === 'nominal') await this.#indexAdd(record as NominalRecord);
      try {
        if (entry === null) await kv.create(k, encode(stored));
        else await kv.update(k, encode(stored), entry.revision);
      } catch (err) {
        if (isWrongLastSequence(err)) continue;
        throw err;
      }
      if (service === 'nominal' && before !== undefined) {
        const old = before.record as NominalRecord;
        if (normalizeName(old.name) !== normalizeName((record as NominalRecord).name)) await this.#indexRemove(old.name, old.id);
      }
      return { stored, replaced: before !== undefined };
    }
    throw new QueryError(QUERY_CONFLICT, `${service} ${k}: changed by others ${MAX_CAS_ATTEMPTS} times while storing; retry`);
  }

  /**
   * Deletes what `owner` stored under the key; resolves false when there was nothing. Throws
   * `QUERY_NOT_OWNER` for another country's record, `QUERY_CONFLICT` as {@link put}.
   */
  async delete(service: QueryService, key: Readonly<Record<string, string>>, owner: string): Promise<boolean> {
    const kv = this.#bucket(service);
    const k = kvKey(service, key);
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const entry = await kv.get(k);
      const before = live(entry);
      if (entry === null || before === undefined) return false;
      if (before.owner !== owner) throw notOwner(service, k, before.owner, owner);
      try {
        await kv.delete(k, { previousSeq: entry.revision });
      } catch (err) {
        if (isWrongLastSequence(err)) continue;
        throw err;
      }
      if (service === 'nominal') {
        const old = before.record as NominalRecord;
        await this.#indexRemove(old.name, old.id);
      }
      return true;
    }
    throw new QueryError(QUERY_CONFLICT, `${service} ${k}: changed by others ${MAX_CAS_ATTEMPTS} times while deleting; retry`);
  }

  /**
   * Persons whose normalized name is `normalized` (see `normalizeName`), at most `limit`, in id
   * order; `truncated` when more matched.
   */
  async searchNominal(normalized: string, limit: number): Promise<{ records: StoredRecord[]; truncated: boolean }> {
    const index = await this.#names.get(nameHash(normalized));
    const ids = index?.operation === 'PUT' ? (index.json<NameIndexValue>().ids ?? []) : [];
    const found = await Promise.all(ids.slice(0, limit).map((id) => this.get('nominal', { id })));
    // The index may still name someone renamed or deleted mid-crash (see the module comment).
    const records = found.filter((r): r is StoredRecord => r !== undefined && normalizeName((r.record as NominalRecord).name) === normalized);
    return { records, truncated: ids.length > limit };
  }

  /**
   * Writes a record with no owner check (the operator's seeding and bulk loads): a plain put, so
   * many can be in flight at once. Nominal records also go into the name index (compare-and-set).
   */
  async write(service: QueryService, key: Readonly<Record<string, string>>, record: QueryRecord, owner: string, at: string): Promise<void> {
    if (service === 'nominal') await this.#indexAdd(record as NominalRecord);
    const stored: StoredRecord = { v: 1, service, record, owner, createdAt: at, updatedAt: at };
    await this.#bucket(service).put(kvKey(service, key), encode(stored));
  }

  /**
   * Writes many records at once with no owner check (bulk loads of services other than nominal,
   * whose index needs a compare-and-set per name): every record but the last is a plain publish
   * to the bucket's subject, the last one waits for JetStream's ack. The server stores one
   * connection's messages in order, so that ack comes after the others were stored; a message the
   * server refused silently (a limit) shows as a stream sequence short of the count, which
   * {@link streamSequence} lets the caller check. An ack per record would cost five times as much.
   */
  async writeBatch(service: Exclude<QueryService, 'nominal'>, records: readonly QueryRecord[], owner: string, at: string): Promise<void> {
    const bucket = bucketName(service);
    const last = records.length - 1;
    for (let i = 0; i < last; i++) {
      const record = records[i] as QueryRecord;
      this.#nc.publish(`$KV.${bucket}.${kvKey(service, keyOfRecord(service, record))}`, encode({ v: 1, service, record, owner, createdAt: at, updatedAt: at } satisfies StoredRecord));
    }
    const tail = records[last];
    if (tail === undefined) return;
    await this.#js.publish(`$KV.${bucket}.${kvKey(service, keyOfRecord(service, tail))}`, encode({ v: 1, service, record: tail, owner, createdAt: at, updatedAt: at } satisfies StoredRecord));
  }

  /** The last sequence of a service's bucket stream: how many writes it ever stored. */
  async streamSequence(service: QueryService): Promise<number> {
    return (await this.#js.jetstreamManager()).streams.info(`KV_${bucketName(service)}`).then((i) => i.state.last_seq);
  }

  /** Records in a service's bucket (deleted keys' markers included), from the stream's state. */
  async count(service: QueryService): Promise<number> {
    return (await this.#bucket(service).status()).values;
  }

  async #indexAdd(record: NominalRecord): Promise<void> {
    await this.#indexUpdate(normalizeName(record.name), (ids) => {
      if (ids.includes(record.id)) return undefined;
      if (ids.length >= MAX_IDS_PER_NAME) throw new QueryError(QUERY_CONFLICT, `name index: more than ${MAX_IDS_PER_NAME} persons share this name`);
      return [...ids, record.id].sort();
    });
  }

  async #indexRemove(name: string, id: string): Promise<void> {
    await this.#indexUpdate(normalizeName(name), (ids) => (ids.includes(id) ? ids.filter((x) => x !== id) : undefined));
  }

  /** Read-modify-write of one name's ids; `change` answers undefined when there is nothing to do. */
  async #indexUpdate(normalized: string, change: (ids: string[]) => string[] | undefined): Promise<void> {
    const k = nameHash(normalized);
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS * 4; attempt++) {
      const entry = await this.#names.get(k);
      const ids = entry?.operation === 'PUT' ? (entry.json<NameIndexValue>().ids ?? []) : [];
      const next = change(ids);
      if (next === undefined) return;
      try {
        if (entry === null) await this.#names.create(k, encode({ ids: next } satisfies NameIndexValue));
        else await this.#names.update(k, encode({ ids: next } satisfies NameIndexValue), entry.revision);
        return;
      } catch (err) {
        if (!isWrongLastSequence(err)) throw err;
      }
    }
    throw new QueryError(QUERY_CONFLICT, 'name index: changed by others too many times; retry');
  }
}

function live(entry: KvEntry | null): StoredRecord | undefined {
  if (entry === null || entry.operation !== 'PUT') return undefined;
  return entry.json<StoredRecord>();
}

function notOwner(service: QueryService, key: string, owner: string, caller: string): QueryError {
  return new QueryError(QUERY_NOT_OWNER, `${service} ${key} belongs to ${owner}; only its owner may change or delete it (got ${caller})`);
}
