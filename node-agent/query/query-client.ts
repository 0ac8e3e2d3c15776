/**
 * The agent's side of the hub's database services (issue 8): checks a query here (bad keys are
 * refused without a round trip), wraps it in a `query` envelope from this country, signs it with
 * the country key, and sends it with NATS request/reply on `ncb.query.<service>`. The answer
 * comes back on this country's inbox (`_INBOX_<CC>`), which only it may read.
 */
import { NoRespondersError, RequestError, TimeoutError, type NatsConnection } from '@nats-io/transport-node';
import { encodeEnvelope, queryEnvelope, type Envelope } from '../../protocol/envelope.js';
import {
  MAX_QUERY_ENVELOPE_BYTES,
  QUERY_BAD_ANSWER,
  QUERY_HUB_UNREACHABLE,
  QUERY_TIMEOUT,
  QueryError,
  encodeQueryRequest,
  parseQueryRequest,
  type QueryErrorCode,
  type QueryHit,
  type QueryRequestInput,
} from '../../protocol/query.js';
import { subjects } from '../../protocol/subjects.js';
import { CodedError } from '../../protocol/errors.js';

/** Default wait for the hub's answer: lookups take milliseconds; seconds mean the hub is struggling. */
export const DEFAULT_QUERY_TIMEOUT_MS = 5_000;
/** How long a query envelope is valid: a query is answered now or never. */
const QUERY_LIFETIME_MS = 60_000;

/** What the local API's query route calls. */
export interface QueryPort {
  /** Sends `request` and resolves with the hub's answer; throws a coded error for every refusal. */
  query(request: QueryRequestInput): Promise<QueryHit>;
}

/** What the client needs from the daemon. */
export interface QueryClientOptions {
  country: string;
  /** Signs with the country key (the daemon's `EnvelopeSigner`). */
  sign: (envelope: Envelope) => Promise<Envelope>;
  /** The broker connection now, or undefined while there is none. */
  connection: () => NatsConnection | undefined;
  /**
   * Whether the connection is up now (default: it exists and is not closed). While it is
   * reconnecting a request would only wait for its timeout; refusing at once tells the
   * application to retry later without holding it.
   */
  isConnected?: () => boolean;
  timeoutMs?: number;
  /**
   * Told of every answer that asks for the owner to be notified (`notifyOwner`), before the
   * answer is returned: the daemon sends the hit notices (`hit-notice.ts`). A failure there is
   * the callee's to log; the lookup's answer stands.
   */
  onNotifyOwner?: (answer: QueryHit) => Promise<void>;
}

/** A refusal from the hub, with the hub's code (which need not be a QUERY_* one: `ENVELOPE_BAD_SIGNATURE`…). */
export class HubRefusal extends CodedError {
  readonly problems: readonly string[];

  constructor(code: string, message: string, problems: readonly string[]) {
    super(code, message);
    this.problems = problems;
  }
}

/** Sends queries to the hub for one country. */
export class QueryClient implements QueryPort {
  readonly #o: QueryClientOptions;

  constructor(o: QueryClientOptions) {
    this.#o = o;
  }

  async query(request: QueryRequestInput): Promise<QueryHit> {
    // The same checks the hub makes: a malformed key never leaves the agent.
    parseQueryRequest(request);
    const body = encodeQueryRequest(request);
    const unsigned = queryEnvelope(this.#o.country, this.#o.country, body, QUERY_LIFETIME_MS);
    const data = encodeEnvelope(await this.#o.sign(unsigned), { maxBytes: MAX_QUERY_ENVELOPE_BYTES });
    const nc = this.#o.connection();
    if (nc === undefined || nc.isClosed() || this.#o.isConnected?.() === false) throw new QueryError(QUERY_HUB_UNREACHABLE, 'not connected to the hub broker; retry when the agent is ready (/readyz)');
    const timeoutMs = this.#o.timeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS;
    let text: string;
    try {
      text = (await nc.request(subjects.query(request.service), data, { timeout: timeoutMs })).string();
    } catch (err) {
      throw requestFailure(err, request.service, timeoutMs);
    }
    const answer = readAnswer(text);
    if (answer.notifyOwner === true) await this.#o.onNotifyOwner?.(answer);
    return answer;
  }
}

function requestFailure(err: unknown, service: string, timeoutMs: number): QueryError {
  const cause = err instanceof RequestError && err.cause !== undefined ? err.cause : err;
  if (cause instanceof NoRespondersError || (err instanceof RequestError && err.isNoResponders())) {
    return new QueryError(QUERY_HUB_UNREACHABLE, `no hub serves ${service} now`, { cause: err });
  }
  if (cause instanceof TimeoutError) return new QueryError(QUERY_TIMEOUT, `no answer from the hub within ${timeoutMs} ms`, { cause: err });
  return new QueryError(QUERY_HUB_UNREACHABLE, `query could not be sent: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}

function readAnswer(text: string): QueryHit {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new QueryError(QUERY_BAD_ANSWER, 'the hub answered something that is not JSON', { cause: err });
  }
  if (typeof value !== 'object' || value === null || !('ok' in value)) throw new QueryError(QUERY_BAD_ANSWER, 'the hub answered without ok');
  const answer = value as { ok: unknown; code?: unknown; message?: unknown; problems?: unknown };
  if (answer.ok === true) return value as QueryHit;
  const code = typeof answer.code === 'string' ? answer.code : QUERY_BAD_ANSWER;
  const problems = Array.isArray(answer.problems) ? answer.problems.filter((p): p is string => typeof p === 'string') : [];
  const message = typeof answer.message === 'string' ? answer.message : 'the hub refused the query';
  if (code.startsWith('QUERY_')) return throwQuery(code as QueryErrorCode, message, problems);
  throw new HubRefusal(code, message, problems);
}

function throwQuery(code: QueryErrorCode, message: string, problems: string[]): never {
  // The hub's message already lists the problems; keep its first line.
  throw new QueryError(code, message.split('\n')[0] ?? message, { problems });
}
