/**
 * One HTTP call to an agent's local API as an NCB application makes it: bearer token, JSON body.
 * Shared by the e2e tests and the fault suite's load generator, which all drive agents this way.
 */

/** What came back: the status, the body as text, and as JSON (undefined when it is not JSON). */
export interface LocalApiAnswer {
  status: number;
  json: unknown;
  text: string;
}

export interface LocalApiCallOptions {
  /** A body sent as is (malformed JSON on purpose), instead of `body` encoded. */
  raw?: string;
  /** Abort the call after this long (default: no limit). */
  timeoutMs?: number;
}

/** `method url` with `Authorization: Bearer <token>` (none when undefined) and `body` as JSON. */
export async function localApiCall(url: string, token: string | undefined, method: string, body?: unknown, opts: LocalApiCallOptions = {}): Promise<LocalApiAnswer> {
  const payload = opts.raw ?? (body === undefined ? undefined : JSON.stringify(body));
  const res = await fetch(url, {
    method,
    headers: { ...(token === undefined ? {} : { authorization: `Bearer ${token}` }), ...(payload === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(payload === undefined ? {} : { body: payload }),
    ...(opts.timeoutMs === undefined ? {} : { signal: AbortSignal.timeout(opts.timeoutMs) }),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}
