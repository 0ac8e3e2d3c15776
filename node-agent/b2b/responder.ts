/**
 * The owner's side of B2B (issue 8): answers `ncb.b2b.<OWNER>.<db>` for each database this
 * country publishes, as a queue group (several agent processes of one NCB may share the load).
 *
 * The broker already refuses a country the policy leaves out (the hub renders the policy into
 * permissions); this side checks again, because the owner is the one who gives its data away:
 * the request is a `query` envelope to this country, signed by the asking country's key
 * (`from` is proven by the signature, against the network root), answered only into
 * `_INBOX_<from>.` (which only `from` can read), recent, and `from` must be allowed. Then the
 * answer carries only the fields the policy gives `from`: {@link filterRecord} builds it from the
 * policy's field list, never from the record. A refused request is never looked up, so a refusal
 * says nothing about what the database holds.
 *
 * The answer is a `reply` envelope signed with this country's key (`inReplyTo` the request):
 * it travels through the hub's broker, and the asker must know it is the owner's word.
 */
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import {
  B2B_INBOX_MISMATCH,
  B2B_INVALID,
  B2B_NOT_ALLOWED,
  B2B_STALE,
  B2B_TOO_LARGE,
  B2B_UNAVAILABLE,
  B2B_UNKNOWN_DB,
  B2bError,
  MAX_B2B_ENVELOPE_BYTES,
  MAX_B2B_SKEW_MS,
  b2bRefusalOf,
  fieldsFor,
  filterRecord,
  isAllowed,
  parseB2bRequest,
  type B2bAnswer,
  type B2bPolicy,
  type EnquiryNotice,
} from '../../protocol/b2b.js';
import { encodeEnvelope, newUlid, parseEnvelope, type Envelope } from '../../protocol/envelope.js';
import { subjects } from '../../protocol/subjects.js';
import type { NationalDatabase } from './national-db.js';

/** The queue group of a country's B2B responders. */
export function b2bQueueGroup(country: string): string {
  return `ncbnet-b2b-${country}`;
}

/** One published database: its policy and where its records come from. */
export interface PublishedDatabase {
  policy: B2bPolicy;
  source: NationalDatabase;
}

/** What the responder needs; the daemon builds each part. */
export interface B2bResponderOptions {
  country: string;
  databases: readonly PublishedDatabase[];
  /** Checks a request's signature against the network root (`makeEnvelopeVerifier`). */
  verify: (envelope: Envelope) => Promise<void>;
  /** Signs with this country's key. */
  sign: (envelope: Envelope) => Promise<Envelope>;
  /** Where enquiry notices go (databases with `notifyEnquiries`). */
  notify: (notice: EnquiryNotice) => Promise<void>;
  log: Logger;
  now?: () => number;
}

/** What one request came to, for the log and the notice. */
interface Outcome {
  answer: B2bAnswer;
  request?: { id: string; from: string; db: string; key: string; hit: boolean };
}

/** See the module comment. `attach(nc)` on every new connection; `stop()` drains. */
export class B2bResponder {
  readonly #o: B2bResponderOptions;
  readonly #byDb: ReadonlyMap<string, PublishedDatabase>;
  readonly #subs: Subscription[] = [];
  readonly #inFlight = new Set<Promise<void>>();

  constructor(o: B2bResponderOptions) {
    this.#o = o;
    this.#byDb = new Map(o.databases.map((d) => [d.policy.db, d]));
  }

  /** Subscribes to each database on `nc` (after the hub has granted it: see `policy-sync.ts`). */
  attach(nc: NatsConnection): void {
    for (const sub of this.#subs.splice(0)) if (!sub.isClosed()) sub.unsubscribe();
    for (const db of this.#byDb.keys()) {
      const subject = subjects.b2b(this.#o.country, db);
      const sub = nc.subscribe(subject, {
        queue: b2bQueueGroup(this.#o.country),
        callback: (err, msg) => {
          if (err) {
            this.#o.log.error({ err, subject }, 'B2B subscription failed');
            return;
          }
          const run = this.#handle(msg).finally(() => this.#inFlight.delete(run));
          this.#inFlight.add(run);
        },
      });
      this.#subs.push(sub);
      // A refused subscription (the hub has not granted the database) ends here, not in the callback.
      void sub.closed.then((err) => {
        if (err) this.#o.log.error({ err, subject }, 'B2B subscription refused by the broker; the database is not served');
      });
    }
    this.#o.log.info({ databases: [...this.#byDb.keys()] }, 'B2B databases served');
  }

  /** Stops taking requests and waits for those being answered. */
  async stop(): Promise<void> {
    for (const sub of this.#subs.splice(0)) if (!sub.isClosed()) sub.unsubscribe();
    await Promise.allSettled([...this.#inFlight]);
  }

  async #handle(msg: Msg): Promise<void> {
    const db = msg.subject.slice(msg.subject.lastIndexOf('.') + 1);
    let outcome: Outcome;
    try {
      outcome = await this.#answer(msg, db);
    } catch (err) {
      outcome = { answer: b2bRefusalOf(err) };
      if (outcome.answer.ok === false && outcome.answer.code === B2B_UNAVAILABLE) this.#o.log.error({ err, db }, 'B2B lookup failed');
    }
    const { answer, request } = outcome;
    if (answer.ok) this.#o.log.info({ db, from: request?.from, hit: answer.hit }, 'B2B enquiry answered');
    else this.#o.log.info({ db, from: request?.from, code: answer.code }, 'B2B enquiry refused');
    if (msg.reply) {
      try {
        msg.respond(await this.#sealed(answer, request));
      } catch (err) {
        this.#o.log.warn({ err, db }, 'B2B answer not sent');
      }
    }
    const published = this.#byDb.get(db);
    if (request && published?.policy.notifyEnquiries) {
      const notice: EnquiryNotice = { v: 1, id: request.id, at: new Date(this.#now()).toISOString(), db, from: request.from, key: request.key, hit: request.hit };
      await this.#o.notify(notice).catch((err: unknown) => this.#o.log.error({ err, db }, 'B2B enquiry notice not kept'));
    }
  }

  #now(): number {
    return this.#o.now?.() ?? Date.now();
  }

  /** Every check, then the lookup; throws a coded error for each refusal. */
  async #answer(msg: Msg, db: string): Promise<Outcome> {
    if (msg.data.byteLength > MAX_B2B_ENVELOPE_BYTES) throw new B2bError(B2B_TOO_LARGE, `request envelope is ${msg.data.byteLength} bytes, more than ${MAX_B2B_ENVELOPE_BYTES}`);
    const published = this.#byDb.get(db);
    if (!published) throw new B2bError(B2B_UNKNOWN_DB, `${this.#o.country} publishes no database ${JSON.stringify(db)}`);
    const envelope = parseEnvelope(msg.data, { maxBytes: MAX_B2B_ENVELOPE_BYTES });
    if (envelope.kind !== 'query') throw new B2bError(B2B_INVALID, `a B2B request is an envelope of kind query (got ${envelope.kind})`);
    if (envelope.to === '*' || envelope.to.length !== 1 || envelope.to[0] !== this.#o.country) {
      throw new B2bError(B2B_INVALID, `a request to ${this.#o.country}'s database is addressed to ${this.#o.country} alone`);
    }
    if (!msg.reply?.startsWith(`${subjects.inboxPrefix(envelope.from)}.`)) {
      throw new B2bError(B2B_INBOX_MISMATCH, `the answer to ${envelope.from} goes to ${subjects.inboxPrefix(envelope.from)}.…, not elsewhere`);
    }
    const skew = this.#now() - Date.parse(envelope.created);
    if (Math.abs(skew) > MAX_B2B_SKEW_MS) throw new B2bError(B2B_STALE, `created ${envelope.created} is ${Math.round(skew / 1000)} s from ${this.#o.country}'s clock`);
    await this.#o.verify(envelope);
    // Defence in depth: the broker refuses these already. Before the lookup, so nothing leaks.
    if (!isAllowed(published.policy, envelope.from)) throw new B2bError(B2B_NOT_ALLOWED, `${envelope.from} may not query ${this.#o.country}'s ${db}`);
    const request = parseB2bRequest(envelope.body ?? '');
    if (request.db !== db) throw new B2bError(B2B_INVALID, `request for ${request.db} sent to ${db}`, { problems: [`db: must be ${db}, the subject's database (got ${JSON.stringify(request.db)})`] });
    let found: Readonly<Record<string, unknown>> | undefined;
    try {
      found = await published.source.lookup(request.key);
    } catch (err) {
      throw new B2bError(B2B_UNAVAILABLE, 'the database failed; retry later', { cause: err });
    }
    const hit = found !== undefined;
    const answer: B2bAnswer = { v: 1, ok: true, owner: this.#o.country, db, key: request.key, hit, ...(found ? { record: filterRecord(found, fieldsFor(published.policy, envelope.from)) } : {}) };
    return { answer, request: { id: envelope.id, from: envelope.from, db, key: request.key, hit } };
  }

  /** The answer as a `reply` envelope signed by this country; plain JSON when the request was not an envelope. */
  async #sealed(answer: B2bAnswer, request: Outcome['request']): Promise<Uint8Array | string> {
    if (!request) return JSON.stringify(answer);
    const created = new Date(this.#now());
    const reply: Envelope = {
      v: 1,
      id: newUlid(created.getTime()),
      kind: 'reply',
      from: this.#o.country,
      to: [request.from],
      priority: 'routine',
      created: created.toISOString(),
      inReplyTo: request.id,
      body: JSON.stringify(answer),
    };
    return encodeEnvelope(await this.#o.sign(reply));
  }
}
