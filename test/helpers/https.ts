import { request } from 'node:https';

/** One HTTPS answer, body as text and parsed JSON when it is JSON. */
export interface HttpsAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  body: Buffer;
  json: unknown;
}

export interface HttpsCall {
  method?: string;
  body?: unknown;
  /** Raw body sent as is (bad JSON, binary OCSP requests). */
  raw?: string | Uint8Array;
  contentType?: string;
  ca: string;
  cert?: string;
  key?: string;
}

/** Calls an HTTPS endpoint of a server a test started (loopback only), with or without a client certificate. */
export function httpsCall(url: string, call: HttpsCall): Promise<HttpsAnswer> {
  const payload = call.raw ?? (call.body === undefined ? undefined : JSON.stringify(call.body));
  const type = call.contentType ?? (call.raw === undefined ? 'application/json' : 'application/octet-stream');
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: call.method ?? (payload === undefined ? 'GET' : 'POST'),
        ca: call.ca,
        ...(call.cert ? { cert: call.cert, key: call.key } : {}),
        headers: payload === undefined ? {} : { 'content-type': type, 'content-length': Buffer.byteLength(payload) },
        timeout: 15_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          const text = body.toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body, json });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${url}: timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}
