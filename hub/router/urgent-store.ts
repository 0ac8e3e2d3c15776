/**
 * The urgent watch's memory across hub restarts (`urgent-watch.ts`): one JetStream KV entry per
 * watched message in the bucket `ncbnet_urgent`, holding when it was routed and which recipients
 * have not confirmed yet (and whether each was already reported overdue, so a restart does not
 * report it twice).
 *
 * Write-behind: the watch records a change with {@link UrgentWatchStore.save} (never waiting), and
 * the latest state of each changed message is written once a second. A broadcast's 194 receipts
 * therefore cost a few writes, not 194, and the router never waits on the store. A crash loses at
 * most the last second: a recipient that confirmed in it may be reported overdue after the
 * restart, a message routed in it is not watched. Entries expire with the bucket's max age (the
 * watch forgets a message after 24 h anyway); an entry that does not match the schema is skipped
 * at load and logged.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { Kvm, type KV } from '@nats-io/kv';
import type { Logger } from 'pino';
import Type, { type Static } from 'typebox';
import { Value } from 'typebox/value';
import { CountryCodeSchema } from '../../protocol/country.js';

/** The bucket. */
export const URGENT_BUCKET = 'ncbnet_urgent';

/** One watched message as stored: `pending` maps each recipient not confirmed yet to "already reported overdue". */
export const WatchedRecordSchema = Type.Object(
  {
    id: Type.String({ minLength: 1, maxLength: 64 }),
    from: CountryCodeSchema,
    routedAtMs: Type.Integer({ minimum: 0 }),
    pending: Type.Record(Type.String({ pattern: '^[A-Z]{2}$' }), Type.Boolean()),
  },
  { additionalProperties: false },
);
export type WatchedRecord = Static<typeof WatchedRecordSchema>;

/** What the watch needs of its store. */
export interface UrgentWatchStore {
  /** Every message watched when the hub stopped (or crashed), by key. */
  load(): Promise<Map<string, WatchedRecord>>;
  /** Records the state of `key`; undefined when it is no longer watched. Returns at once. */
  save(key: string, record: WatchedRecord | undefined): void;
  /** Writes what is pending now (at stop). */
  flush(): Promise<void>;
}

/** Options of {@link KvUrgentStore.open}. */
export interface KvUrgentStoreOptions {
  nc: NatsConnection;
  log: Logger;
  /** Entries older than this expire (the watch's forget age plus a margin). */
  maxAgeMs: number;
  /** How often pending changes are written (default 1 s). */
  flushEveryMs?: number;
}

/** See the module comment. */
export class KvUrgentStore implements UrgentWatchStore {
  readonly #kv: KV;
  readonly #log: Logger;
  /** Latest state per changed key, not written yet (undefined: delete). */
  #dirty = new Map<string, WatchedRecord | undefined>();
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;

  private constructor(kv: KV, log: Logger, flushEveryMs: number) {
    this.#kv = kv;
    this.#log = log;
    this.#timer = setInterval(() => void this.flush(), flushEveryMs);
    this.#timer.unref();
  }

  static async open(o: KvUrgentStoreOptions): Promise<KvUrgentStore> {
    const kv = await new Kvm(o.nc).create(URGENT_BUCKET, { history: 1, ttl: o.maxAgeMs, storage: 'file' });
    return new KvUrgentStore(kv, o.log.child({ component: 'urgent-store' }), o.flushEveryMs ?? 1_000);
  }

  async load(): Promise<Map<string, WatchedRecord>> {
    const out = new Map<string, WatchedRecord>();
    const keys = await this.#kv.keys();
    for await (const key of keys) {
      const entry = await this.#kv.get(key);
      if (entry === null || entry.operation !== 'PUT') continue;
      let value: unknown;
      try {
        value = entry.json();
      } catch {
        value = undefined;
      }
      if (Value.Check(WatchedRecordSchema, value)) out.set(key, value);
      else this.#log.warn({ key }, 'urgent watch entry not understood; skipped');
    }
    return out;
  }

  save(key: string, record: WatchedRecord | undefined): void {
    this.#dirty.set(key, record);
  }

  /** One flush at a time; a failed write is logged and its change kept for the next flush. */
  flush(): Promise<void> {
    this.#flushing ??= this.#flush().finally(() => (this.#flushing = undefined));
    return this.#flushing;
  }

  /** Stops the timer after a last flush. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.flush();
  }

  async #flush(): Promise<void> {
    if (this.#dirty.size === 0) return;
    const batch = this.#dirty;
    this.#dirty = new Map();
    await Promise.all(
      [...batch].map(async ([key, record]) => {
        try {
          if (record === undefined) await this.#kv.delete(key);
          else await this.#kv.put(key, JSON.stringify(record));
        } catch (err) {
          // Unless a newer change came meanwhile, retry this one next time.
          if (!this.#dirty.has(key)) this.#dirty.set(key, record);
          this.#log.warn({ err, key }, 'urgent watch entry not written; will retry');
        }
      }),
    );
  }
}
