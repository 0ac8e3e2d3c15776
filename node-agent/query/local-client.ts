/**
 * `POST /v1/query/{service}` on the agent's local API, for the `ncbnet-agent query` command. An
 * error answer becomes a CodedError with the API's code and message (which lists the problems); a connection that fails
 * is `AGENT_UNREACHABLE`, as with the other commands' client.
 */
import { CodedError } from '../../protocol/errors.js';
import type { B2bHit } from '../../protocol/b2b.js';
import type { QueryHit, QueryOp } from '../../protocol/query.js';

/** AGENT_UNREACHABLE and AGENT_BAD_ANSWER, as `local-api/errors.ts` names them. */
const AGENT_UNREACHABLE = 'AGENT_UNREACHABLE';
const AGENT_BAD_ANSWER = 'AGENT_BAD_ANSWER';

/** The body of the query route (the service is in the path). */
export interface LocalQuery {
  op?: QueryOp;
  key?: Record<string, string>;
  record?: Record<string, unknown>;
  name?: string;
  limit?: number;
}

/** Sends one query through the running agent and resolves with the hub's answer. */
export async function localQuery(baseUrl: string, token: string, service: string, body: LocalQuery, timeoutMs = 30_000): Promise<QueryHit> {
  const url = new URL(`/v1/query/${encodeURIComponent(service)}`, baseUrl);
  return (await postJson(url, token, body, timeoutMs)) as QueryHit;
}

/** POSTs `body` to the local API; the answer's JSON, or a CodedError with the API's code. */
async function postJson(url: URL, token: string, body: unknown, timeoutMs: number): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    throw new CodedError(AGENT_UNREACHABLE, `cannot reach the agent at ${url.origin}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  let value: unknown;
  try {
    value = await res.json();
  } catch (err) {
    throw new CodedError(AGENT_BAD_ANSWER, `the agent answered ${res.status} without JSON`, { cause: err });
  }
  if (res.ok) return value;
  const answer = (value !== null && typeof value === 'object' ? value : {}) as { code?: unknown; message?: unknown };
  const code = typeof answer.code === 'string' ? answer.code : `HTTP_${res.status}`;
  // The API's message already lists every problem, one a line.
  throw new CodedError(code, typeof answer.message === 'string' ? answer.message : `the agent answered ${res.status}`);
}

/** Sends one B2B lookup (`POST /v1/b2b/{owner}/{db}`) through the running agent. */
export async function localB2bQuery(baseUrl: string, token: string, owner: string, db: string, key: string, timeoutMs = 30_000): Promise<B2bHit> {
  const url = new URL(`/v1/b2b/${encodeURIComponent(owner)}/${encodeURIComponent(db)}`, baseUrl);
  return (await postJson(url, token, { key }, timeoutMs)) as B2bHit;
}
