import { request } from 'node:https';
import { CodedError, ValidationError } from '../../protocol/errors.js';
import { AGENT_HUB_REFUSED, AGENT_HUB_UNREACHABLE, AgentError } from '../errors.js';

/** TLS for one call to the hub: the pinned root, and the country's identity for mTLS calls. */
export interface HubTls {
  ca?: string;
  cert?: string;
  key?: string;
  /**
   * Only for the first call of an enrollment (fetching the CA chain, whose root is then checked
   * against the token's fingerprint); never for a call that sends anything.
   */
  insecureForPinning?: boolean;
}

/** A raw answer (status and body). */
export interface HubAnswer {
  status: number;
  body: Buffer;
}

/** One HTTPS call to the hub's API. Network failures are `AGENT_HUB_UNREACHABLE`. */
export function hubCall(url: string, tls: HubTls, method: 'GET' | 'POST', json?: unknown, timeoutMs = 30_000): Promise<HubAnswer> {
  const payload = json === undefined ? undefined : JSON.stringify(json);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method,
        ...(tls.ca ? { ca: tls.ca } : {}),
        ...(tls.cert ? { cert: tls.cert, key: tls.key } : {}),
        rejectUnauthorized: !tls.insecureForPinning,
        timeout: timeoutMs,
        headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err) => reject(new AgentError(AGENT_HUB_UNREACHABLE, `cannot reach the hub at ${url}: ${err.message}`, { cause: err })));
    req.end(payload);
  });
}

/** Calls the hub and parses a JSON answer; an error answer becomes a CodedError with the hub's own code. */
export async function hubJson<T>(url: string, tls: HubTls, method: 'GET' | 'POST', json?: unknown, timeoutMs?: number): Promise<T> {
  const answer = await hubCall(url, tls, method, json, timeoutMs);
  let value: unknown;
  try {
    value = JSON.parse(answer.body.toString('utf8'));
  } catch (err) {
    throw new AgentError(AGENT_HUB_REFUSED, `hub answered ${answer.status} with non-JSON from ${url}`, { cause: err });
  }
  if (answer.status >= 200 && answer.status < 300) return value as T;
  const e = value as { code?: string; message?: string; problems?: string[] };
  const code = e.code ?? AGENT_HUB_REFUSED;
  if (e.problems?.length) throw new ValidationError(code, `hub refused the request (${answer.status})`, e.problems);
  throw new CodedError(code, `hub refused the request (${answer.status}): ${e.message ?? 'no reason given'}`);
}
