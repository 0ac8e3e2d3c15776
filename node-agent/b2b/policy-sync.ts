/**
 * Sends this country's B2B policies to the hub (`PUT /v1/b2b` over mutual TLS with the country
 * certificate), which renders them into broker permissions before it answers. The whole set goes
 * every time, so a database removed from agent.json is unpublished at the next start.
 */
import { request } from 'node:https';
import { CodedError } from '../../protocol/errors.js';
import { B2B_UNREACHABLE, B2bError, type B2bPolicy } from '../../protocol/b2b.js';

/** TLS of the call: the network root and this country's identity (leaf + chain, key). */
export interface PolicySyncTls {
  ca: string;
  cert: string;
  key: string;
}

/** Puts `databases` at the hub; resolves once the hub has stored them and reloaded its broker. */
export function putB2bPolicies(apiUrl: string, tls: PolicySyncTls, databases: readonly B2bPolicy[], timeoutMs = 30_000): Promise<void> {
  const url = `${apiUrl}/v1/b2b`;
  const payload = JSON.stringify({ databases });
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: 'PUT', ca: tls.ca, cert: tls.cert, key: tls.key, timeout: timeoutMs, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) return resolve();
          let body: { code?: unknown; message?: unknown; problems?: unknown } = {};
          try {
            body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof body;
          } catch {
            // The status says enough.
          }
          const code = typeof body.code === 'string' ? body.code : `HTTP_${status}`;
          const problems = Array.isArray(body.problems) ? body.problems.filter((p): p is string => typeof p === 'string') : [];
          reject(new B2bError(code, `the hub refused the B2B policies (${status}): ${typeof body.message === 'string' ? body.message : 'no reason given'}`, { problems }));
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err) => reject(err instanceof CodedError ? err : new B2bError(B2B_UNREACHABLE, `cannot reach the hub at ${url}: ${err.message}`, { cause: err })));
    req.end(payload);
  });
}
