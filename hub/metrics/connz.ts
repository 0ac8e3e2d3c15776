/**
 * Which countries hold a live connection to the broker, from nats-server's monitoring endpoint
 * `/connz?auth=true` (nats docs, "Monitoring: /connz"): with `verify_and_map` every client's
 * `authorized_user` is its certificate's RFC 2253 subject, `CN=FR,OU=ncb,O=ncbnet` for a country.
 * One HTTP call for every country at once; the endpoint is on 127.0.0.1 only.
 */
import { isCountryCode } from '../../protocol/country.js';
import { METRICS_CONNZ_BAD_ANSWER, MetricsError } from './errors.js';

/** More connections than a full membership (195 countries, the hub's own) ever holds. */
const CONNZ_LIMIT = 4096;
const COUNTRY_USER = /^CN=([A-Z]{2}),OU=ncb,O=ncbnet$/;

/** The country codes among the open connections of a `/connz` answer. Pure. */
export function countriesInConnz(body: unknown): Set<string> {
  const conns = typeof body === 'object' && body !== null ? (body as { connections?: unknown }).connections : undefined;
  // nats-server 2.9 writes `"connections": null` when there are none.
  if (conns === null) return new Set();
  if (!Array.isArray(conns)) throw new MetricsError(METRICS_CONNZ_BAD_ANSWER, 'connz: no connections list in the answer');
  const out = new Set<string>();
  for (const c of conns) {
    const user = typeof c === 'object' && c !== null ? (c as { authorized_user?: unknown }).authorized_user : undefined;
    const cc = typeof user === 'string' ? COUNTRY_USER.exec(user)?.[1] : undefined;
    if (cc !== undefined && isCountryCode(cc)) out.add(cc);
  }
  return out;
}

/** Fetches `/connz?auth=true` from the broker's monitoring URL and returns the connected countries. */
export async function fetchConnectedCountries(monitorUrl: string, timeoutMs: number): Promise<Set<string>> {
  const res = await fetch(`${monitorUrl}/connz?auth=true&limit=${CONNZ_LIMIT}`, { signal: AbortSignal.timeout(timeoutMs) });
  if (!res.ok) throw new MetricsError(METRICS_CONNZ_BAD_ANSWER, `connz: HTTP ${res.status}`);
  return countriesInConnz(await res.json());
}
