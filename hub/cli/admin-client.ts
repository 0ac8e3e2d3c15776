import { readFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { CodedError, ValidationError } from '../../protocol/errors.js';
import { identityPaths } from '../state-init.js';
import { readEndpoints } from '../runtime.js';

export const CLI_HUB_UNREACHABLE = 'CLI_HUB_UNREACHABLE';
export const CLI_NO_CREDENTIALS = 'CLI_NO_CREDENTIALS';
export const CLI_BAD_ANSWER = 'CLI_BAD_ANSWER';

/** How the CLI reaches the hub's admin API: URL plus the operator's certificate, key and root CA. */
export interface AdminConnection {
  url: string;
  cert: string;
  key: string;
  ca: string;
}

export interface ConnectionFlags {
  state?: string;
  hub?: string;
  operatorDir?: string;
}

async function readCredential(path: string, flag: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new CodedError(CLI_NO_CREDENTIALS, `${flag}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'}); run on the hub with --state DIR, or pass --operator-dir`, { cause: err });
  }
}

/**
 * Resolves the connection: the operator directory (`--operator-dir`, else `DIR/operator` of
 * `--state`) holds operator.crt, operator.key and ca.crt as `ncbnet hub init` wrote them; the URL
 * is `--hub`, else the one the running hub wrote into `DIR/run/endpoints.json`.
 */
export async function resolveConnection(flags: ConnectionFlags): Promise<AdminConnection> {
  const dir = flags.operatorDir ?? (flags.state ? join(flags.state, 'operator') : undefined);
  if (!dir) throw new CodedError(CLI_NO_CREDENTIALS, 'pass --state DIR (on the hub) or --operator-dir DIR with operator.crt, operator.key and ca.crt');
  let url = flags.hub;
  if (!url && flags.state) url = (await readEndpoints(flags.state))?.apiUrl;
  if (!url) throw new CodedError(CLI_HUB_UNREACHABLE, `no hub URL: pass --hub https://HOST:8443, or start the hub on ${flags.state ?? 'its state directory'}`);
  const paths = flags.operatorDir ? { operatorCert: join(dir, 'operator.crt'), operatorKey: join(dir, 'operator.key'), operatorCa: join(dir, 'ca.crt') } : identityPaths(flags.state ?? '');
  return {
    url: url.replace(/\/+$/, ''),
    cert: await readCredential(paths.operatorCert, 'operator certificate'),
    key: await readCredential(paths.operatorKey, 'operator key'),
    ca: await readCredential(paths.operatorCa, 'hub root CA'),
  };
}

/**
 * One admin API call over mutual TLS. An error answer becomes a CodedError with the hub's code
 * and problems, so the CLI prints the same code the API sent and picks the exit code from it.
 */
export function adminRequest<T>(conn: AdminConnection, method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise<T>((resolve, reject) => {
    const req = request(
      `${conn.url}${path}`,
      {
        method,
        cert: conn.cert,
        key: conn.key,
        ca: conn.ca,
        timeout: 30_000,
        headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let value: unknown;
          try {
            value = text ? JSON.parse(text) : undefined;
          } catch (err) {
            reject(new CodedError(CLI_BAD_ANSWER, `hub answered ${res.statusCode ?? '?'} with non-JSON`, { cause: err }));
            return;
          }
          if ((res.statusCode ?? 500) < 300) {
            resolve(value as T);
            return;
          }
          const e = (value ?? {}) as { code?: string; message?: string; problems?: string[] };
          const code = e.code ?? `HTTP_${res.statusCode ?? 0}`;
          reject(e.problems?.length ? new ValidationError(code, e.message?.split('\n')[0]?.replace(/ is invalid:$/, '') ?? 'request', e.problems) : new CodedError(code, e.message ?? `hub answered ${res.statusCode ?? '?'}`));
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out after 30 s')));
    req.on('error', (err) => reject(new CodedError(CLI_HUB_UNREACHABLE, `cannot reach the hub at ${conn.url}: ${err.message}`, { cause: err })));
    req.end(payload);
  });
}
