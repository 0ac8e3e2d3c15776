/**
 * The asking side of B2B (issue 8): queries another country's national database on
 * `ncb.b2b.<OWNER>.<db>` with a signed `query` envelope addressed to the owner, as
 * `node-agent/query/query-client.ts` does for the hub's databases. The answer comes back on this
 * country's inbox.
 *
 * A country the owner's policy leaves out is refused by the broker itself (a permissions
 * violation on publish, which nats.js hands to the pending request): `B2B_NOT_ALLOWED`, told
 * apart from "nobody serves it now" (`B2B_UNREACHABLE`) and "no answer in time" (`B2B_TIMEOUT`).
 *
 * A hit must come as a `reply` envelope signed by the owner, in reply to this request: the broker
 * is the hub's, and only the owner's signature says the record is the owner's. A refusal may come
 * unsigned (the owner refuses before it knows who asks, sometimes); it carries no data.
 */
import { NoRespondersError, PermissionViolationError, RequestError, TimeoutError, type NatsConnection } from '@nats-io/transport-node';
import {
  B2B_BAD_ANSWER,
  B2B_NOT_ALLOWED,
  B2B_TIMEOUT,
  B2B_UNREACHABLE,
  B2bError,
  MAX_B2B_ENVELOPE_BYTES,
  parseB2bRequest,
  type B2bHit,
} from '../../protocol/b2b.js';
import { encodeEnvelope, parseEnvelope, queryEnvelope, type Envelope } from '../../protocol/envelope.js';
import { subjects } from '../../protocol/subjects.js';

/** Default wait for the owner's answer. */
export const DEFAULT_B2B_TIMEOUT_MS = 5_000;
/** How long a request envelope is valid. */
const REQUEST_LIFETIME_MS = 60_000;
/** Largest answer read (a record filtered by the policy is small). */
const MAX_ANSWER_BYTES = 256 * 1024;

/** What the local API's B2B route calls. */
export interface B2bQueryPort {
  /** Asks `owner`'s database `db` for `key`; throws a coded error for every refusal. */
  query(owner: string, db: string, key: string): Promise<B2bHit>;
}

/** What the client needs from the daemon. */
export interface B2bClientOptions {
  country: string;
  sign: (envelope: Envelope) => Promise<Envelope>;
  /** Checks the owner's signature on an answer (`makeEnvelopeVerifier`). */
  verify: (envelope: Envelope) => Promise<void>;
  connection: () => NatsConnection | undefined;
  isConnected?: () => boolean;
  timeoutMs?: number;
}

/** See the module comment. */
export class B2bClient implements B2bQueryPort {
  readonly #o: B2bClientOptions;

  constructor(o: B2bClientOptions) {
    this.#o = o;
  }

  async query(owner: string, db: string, key: string): Promise<B2bHit> {
    // The owner's checks, made here first: a malformed key never leaves the agent.
    const request = parseB2bRequest({ v: 1, db, key });
    const subject = subjects.b2b(owner, db);
    const unsigned = queryEnvelope(this.#o.country, owner, JSON.stringify({ v: 1, db, key: request.key }), REQUEST_LIFETIME_MS);
    const signed = await this.#o.sign(unsigned);
    const data = encodeEnvelope(signed, { maxBytes: MAX_B2B_ENVELOPE_BYTES });
    const nc = this.#o.connection();
    if (nc === undefined || nc.isClosed() || this.#o.isConnected?.() === false) throw new B2bError(B2B_UNREACHABLE, 'not connected to the hub broker; retry when the agent is ready (/readyz)');
    const timeoutMs = this.#o.timeoutMs ?? DEFAULT_B2B_TIMEOUT_MS;
    let answer: Uint8Array;
    try {
      answer = (await nc.request(subject, data, { timeout: timeoutMs })).data;
    } catch (err) {
      throw requestFailure(err, owner, db, timeoutMs);
    }
    return this.#read(answer, signed, owner, db);
  }

  async #read(data: Uint8Array, request: Envelope, owner: string, db: string): Promise<B2bHit> {
    if (data.byteLength > MAX_ANSWER_BYTES) throw new B2bError(B2B_BAD_ANSWER, `${owner} answered ${data.byteLength} bytes, more than ${MAX_ANSWER_BYTES}`);
    let value: unknown;
    try {
      value = JSON.parse(Buffer.from(data).toString('utf8'));
    } catch (err) {
      throw new B2bError(B2B_BAD_ANSWER, `${owner} answered something that is not JSON`, { cause: err });
    }
    if (isRecord(value) && value['kind'] === 'reply') {
      let reply: Envelope;
      try {
        reply = parseEnvelope(data, { maxBytes: MAX_ANSWER_BYTES });
        await this.#o.verify(reply);
      } catch (err) {
        throw new B2bError(B2B_BAD_ANSWER, `${owner}'s answer is not a valid signed envelope: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
      if (reply.from !== owner || reply.inReplyTo !== request.id || reply.to === '*' || reply.to[0] !== this.#o.country) {
        throw new B2bError(B2B_BAD_ANSWER, `the answer is not ${owner}'s reply to this request (from ${reply.from}, in reply to ${reply.inReplyTo ?? 'nothing'})`);
      }
      try {
        value = JSON.parse(reply.body ?? '');
      } catch (err) {
        throw new B2bError(B2B_BAD_ANSWER, `${owner}'s reply has no JSON answer`, { cause: err });
      }
      if (!isRecord(value)) throw new B2bError(B2B_BAD_ANSWER, `${owner}'s reply has no answer`);
      if (value['ok'] === true) {
        if (value['owner'] !== owner || value['db'] !== db || typeof value['hit'] !== 'boolean') throw new B2bError(B2B_BAD_ANSWER, `${owner}'s answer is not about ${db}`);
        return value as unknown as B2bHit;
      }
    }
    if (!isRecord(value) || value['ok'] !== false) throw new B2bError(B2B_BAD_ANSWER, `${owner} answered without a signed reply`);
    const code = typeof value['code'] === 'string' && /^[A-Z][A-Z0-9_]{2,63}$/.test(value['code']) ? value['code'] : B2B_BAD_ANSWER;
    const message = typeof value['message'] === 'string' ? (value['message'].split('\n')[0] ?? '') : `${owner} refused the request`;
    const problems = Array.isArray(value['problems']) ? value['problems'].filter((p): p is string => typeof p === 'string').slice(0, 32) : [];
    throw new B2bError(code, `${owner}: ${message}`, { problems });
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function requestFailure(err: unknown, owner: string, db: string, timeoutMs: number): B2bError {
  const cause = err instanceof RequestError && err.cause !== undefined ? err.cause : err;
  if (cause instanceof PermissionViolationError || (err instanceof Error && /Permissions Violation for Publish/i.test(err.message))) {
    return new B2bError(B2B_NOT_ALLOWED, `the broker refused: ${owner}'s policy does not let this country query ${db}`, { cause: err });
  }
  if (cause instanceof NoRespondersError || (err instanceof RequestError && err.isNoResponders())) {
    return new B2bError(B2B_UNREACHABLE, `nobody serves ${owner}'s ${db} now`, { cause: err });
  }
  if (cause instanceof TimeoutError) return new B2bError(B2B_TIMEOUT, `no answer from ${owner} within ${timeoutMs} ms`, { cause: err });
  return new B2bError(B2B_UNREACHABLE, `request could not be sent: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}
