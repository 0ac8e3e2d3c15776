/**
 * The hub's database services (issue 8): answers `ncb.query.<service>` requests as members of
 * the NATS queue group `ncbnet-db`, so several hubs can share the load (each request goes to one
 * member). A request is a signed `query` envelope whose body is a query (`protocol/query.ts`).
 *
 * Who asks is proven twice: the envelope's signature names the country (`from` must be the
 * signing certificate's country, checked like the router does, revocation included), and the
 * reply subject must be in that country's inbox (`_INBOX_<CC>.`), which the broker lets only CC
 * subscribe to. So a country can neither attribute a query to another (its signature would not
 * match `from`) nor replay another's signed query to read the answer (the reply would go to the
 * other's inbox, where it cannot listen): `QUERY_INBOX_MISMATCH`.
 *
 * The answer is plain JSON, not a hub-signed envelope: it travels over the broker's mutual TLS
 * straight into the asking country's inbox, which nobody else can read, so a signature would add
 * an ECDSA signing per lookup and prove nothing the channel does not. (When answers are relayed
 * through third parties — B2B — they will need one.)
 */
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { parseEnvelope, type Envelope } from '../../protocol/envelope.js';
import {
  MAX_QUERY_ENVELOPE_BYTES,
  MAX_QUERY_SKEW_MS,
  QUERY_INBOX_MISMATCH,
  QUERY_INVALID,
  QUERY_NO_REPLY,
  QUERY_STALE,
  QUERY_TOO_LARGE,
  QUERY_UNAVAILABLE,
  QUERY_UNKNOWN_SERVICE,
  QueryError,
  isQueryService,
  kvKey,
  parseQueryRequest,
  refusalOf,
  type QueryAnswer,
  type QueryHit,
  type QueryRequest,
  type QueryService,
  type StoredRecord,
} from '../../protocol/query.js';
import { subjects } from '../../protocol/subjects.js';
import { verifyEnvelopeSignature, type VerifyEnvelopeOptions } from '../../protocol/signature.js';
import { envelopeDigest, type AuditFields } from '../../protocol/audit.js';
import { createHash } from 'node:crypto';
import type { Registry as PromRegistry } from 'prom-client';
import { DbMetrics, type DbResult } from './metrics.js';
import { DbStore } from './store.js';

/** The queue group every hub's database service joins. */
export const DB_QUEUE_GROUP = 'ncbnet-db';
const QUERY_PREFIX = 'ncb.query.';

/** What the service needs; the daemon builds each part. */
export interface DbServiceOptions {
  nc: NatsConnection;
  store: DbStore;
  log: Logger;
  /** Checks the envelope's signature and signer (throws an `EnvelopeError`), as the router's `verify`. */
  verify: (envelope: Envelope) => Promise<void>;
  metrics?: DbMetrics;
  /**
   * Where writes are recorded (`db-stored`, `db-deleted`: who, which service, the SHA-256 of the
   * normalized key, the request's id and digest; never the key or the record). The write is
   * answered only once its record is stored; an audit outage answers `QUERY_UNAVAILABLE` (the
   * write itself may have happened: a retried put or delete by the owner is harmless).
   */
  audit?: { append(fields: AuditFields): Promise<unknown> };
  /**
   * Services whose hits on another country's record are marked `notifyOwner` in the answer (the
   * asking agent then tells the owner). Default: none (the daemon passes hub.json's list).
   */
  notifyOwnerOnHit?: ReadonlySet<QueryService>;
  /** The hub's clock (tests move it). */
  now?: () => number;
}

/** Serves the hub's databases on `ncb.query.>`; `start()` subscribes, `stop()` drains. */
export class DbService {
  readonly #o: DbServiceOptions;
  readonly #log: Logger;
  #sub: Subscription | undefined;
  readonly #inFlight = new Set<Promise<void>>();

  constructor(o: DbServiceOptions) {
    this.#o = o;
    this.#log = o.log;
  }

  get isRunning(): boolean {
    return this.#sub !== undefined && !this.#sub.isClosed();
  }

  /** Joins the queue group; requests are handled concurrently as they come. */
  start(): void {
    this.#sub = this.#o.nc.subscribe(subjects.queryAll, {
      queue: DB_QUEUE_GROUP,
      callback: (err, msg) => {
        if (err) {
          this.#log.error({ err }, 'query subscription failed');
          return;
        }
        const run = this.#handle(msg).finally(() => this.#inFlight.delete(run));
        this.#inFlight.add(run);
      },
    });
    this.#log.info({ subject: subjects.queryAll, queue: DB_QUEUE_GROUP }, 'database services started');
  }

  /** Stops taking requests and waits for those being answered. */
  async stop(): Promise<void> {
    const sub = this.#sub;
    this.#sub = undefined;
    if (sub && !sub.isClosed() && !this.#o.nc.isClosed()) await sub.drain().catch((err: unknown) => this.#log.warn({ err }, 'query subscription drain failed'));
    await Promise.allSettled([...this.#inFlight]);
  }

  async #handle(msg: Msg): Promise<void> {
    const started = performance.now();
    const name = msg.subject.slice(QUERY_PREFIX.length);
    const service = isQueryService(name) ? name : 'unknown';
    let answer: QueryAnswer;
    let result: DbResult;
    let from: string | undefined;
    try {
      const checked = await this.#check(msg, name);
      from = checked.from;
      answer = await this.#execute(checked.request, checked.from);
      await this.#audit(checked, answer);
      result = resultOf(answer);
    } catch (err) {
      answer = refusalOf(err);
      result = answer.code === QUERY_UNAVAILABLE ? 'failed' : 'refused';
      if (result === 'failed') this.#log.error({ err, service, from }, 'query failed');
      else this.#log.info({ code: answer.code, service, from }, 'query refused');
    }
    if (msg.reply) {
      try {
        msg.respond(JSON.stringify(answer));
      } catch (err) {
        this.#log.warn({ err, service }, 'query answer not sent');
      }
    }
    this.#o.metrics?.observe(service, result, (performance.now() - started) / 1000);
  }

  /** Everything but the operation: size, envelope, reply inbox, freshness, signature, request. */
  async #check(msg: Msg, name: string): Promise<Checked> {
    if (!msg.reply) throw new QueryError(QUERY_NO_REPLY, 'a query needs a reply subject (use request/reply)');
    if (msg.data.byteLength > MAX_QUERY_ENVELOPE_BYTES) throw new QueryError(QUERY_TOO_LARGE, `query envelope is ${msg.data.byteLength} bytes, more than ${MAX_QUERY_ENVELOPE_BYTES}`);
    if (!isQueryService(name)) throw new QueryError(QUERY_UNKNOWN_SERVICE, `no database service ${JSON.stringify(name)}`);
    const envelope = parseEnvelope(msg.data, { maxBytes: MAX_QUERY_ENVELOPE_BYTES });
    if (envelope.kind !== 'query') throw new QueryError(QUERY_INVALID, `a database request is an envelope of kind query (got ${envelope.kind})`);
    // Before the signature (cheap first); the signature then proves `from` itself.
    if (!msg.reply.startsWith(`${subjects.inboxPrefix(envelope.from)}.`)) {
      throw new QueryError(QUERY_INBOX_MISMATCH, `the answer to a query from ${envelope.from} goes to ${subjects.inboxPrefix(envelope.from)}.…, not elsewhere`);
    }
    const now = this.#o.now?.() ?? Date.now();
    const skew = now - Date.parse(envelope.created);
    if (Math.abs(skew) > MAX_QUERY_SKEW_MS) throw new QueryError(QUERY_STALE, `created ${envelope.created} is ${Math.round(skew / 1000)} s from the hub's clock (at most ${MAX_QUERY_SKEW_MS / 1000} s)`);
    await this.#o.verify(envelope);
    const request = parseQueryRequest(envelope.body ?? '');
    if (request.service !== name) throw new QueryError(QUERY_INVALID, `query for ${request.service} sent to ${QUERY_PREFIX}${name}`, { problems: [`service: must be ${name}, the subject's service (got ${JSON.stringify(request.service)})`] });
    return { request, from: envelope.from, id: envelope.id, data: msg.data };
  }

  /** `notifyOwner` when a record found is another country's and the service notifies owners. */
  #notify(service: QueryService, from: string, found: readonly StoredRecord[]): { notifyOwner?: true } {
    if (this.#o.notifyOwnerOnHit?.has(service) !== true) return {};
    return found.some((r) => r.owner !== from) ? { notifyOwner: true } : {};
  }

  /** Records a write (see {@link DbServiceOptions.audit}); reads are counted in metrics, not audited. */
  async #audit(checked: Checked, answer: QueryHit): Promise<void> {
    const { request } = checked;
    if (this.#o.audit === undefined || (request.op !== 'put' && request.op !== 'delete')) return;
    if (request.op === 'delete' && !answer.hit) return;
    try {
      await this.#o.audit.append({
        event: request.op === 'put' ? 'db-stored' : 'db-deleted',
        messageId: checked.id,
        // The owner's record: listed with its other events by `ncbnet audit show --country`.
        country: checked.from,
        actor: checked.from,
        service: request.service,
        keySha256: createHash('sha256').update(kvKey(request.service, request.key)).digest('hex'),
        envelopeSha256: envelopeDigest(checked.data),
      });
    } catch (err) {
      throw new QueryError(QUERY_UNAVAILABLE, 'the write could not be audited; retry it', { cause: err });
    }
  }

  async #execute(request: QueryRequest, from: string): Promise<QueryHit> {
    const store = this.#o.store;
    const base = { v: 1 as const, ok: true as const, service: request.service, op: request.op };
    switch (request.op) {
      case 'get': {
        const found = await store.get(request.service, request.key);
        return { ...base, hit: found !== undefined, ...(found ? { result: found } : {}), ...this.#notify(request.service, from, found ? [found] : []) };
      }
      case 'search': {
        const { records, truncated } = await store.searchNominal(request.normalized, request.limit);
        return { ...base, hit: records.length > 0, results: records, truncated, ...this.#notify(request.service, from, records) };
      }
      case 'put': {
        const { stored, replaced } = await store.put(request.service, request.key, request.record, from);
        this.#log.info({ service: request.service, from, replaced }, 'record stored');
        return { ...base, hit: replaced, result: stored };
      }
      case 'delete': {
        const deleted = await store.delete(request.service, request.key, from);
        if (deleted) this.#log.info({ service: request.service, from }, 'record deleted');
        return { ...base, hit: deleted };
      }
    }
  }
}

function resultOf(answer: QueryHit): DbResult {
  if (answer.op === 'put') return 'stored';
  if (answer.op === 'delete') return answer.hit ? 'deleted' : 'miss';
  return answer.hit ? 'hit' : 'miss';
}

/** A request that passed every check but the operation. */
interface Checked {
  request: QueryRequest;
  from: string;
  /** The envelope's id and bytes, for the audit record of a write (hashed only then). */
  id: string;
  data: Uint8Array;
}

/** What the daemon hands over to start the database services. */
export interface StartDatabaseOptions {
  nc: NatsConnection;
  log: Logger;
  /** The hub's Prometheus registry (the metrics go there). */
  register: PromRegistry;
  /** Trust for the signatures: the router's (roots, intermediates, the CA ledger's revocations). */
  trust: VerifyEnvelopeOptions;
  /** The hub's audit log: writes are recorded there. */
  audit?: DbServiceOptions['audit'];
  /** hub.json `databases.notifyOwnerOnHit`. */
  notifyOwnerOnHit?: readonly QueryService[];
  replicas?: number;
}

/** Opens the buckets and starts the service: one call for the daemon. */
export async function startDatabaseServices(o: StartDatabaseOptions): Promise<DbService> {
  const store = await DbStore.open({ nc: o.nc, ...(o.replicas === undefined ? {} : { replicas: o.replicas }) });
  const service = new DbService({
    nc: o.nc,
    store,
    log: o.log.child({ component: 'db' }),
    metrics: new DbMetrics(o.register),
    ...(o.audit === undefined ? {} : { audit: o.audit }),
    ...(o.notifyOwnerOnHit === undefined ? {} : { notifyOwnerOnHit: new Set(o.notifyOwnerOnHit) }),
    verify: async (envelope) => {
      await verifyEnvelopeSignature(envelope, o.trust);
    },
  });
  service.start();
  return service;
}
