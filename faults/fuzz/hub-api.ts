/**
 * Fuzz target (b): the hub's enrollment API — `POST /v1/enroll` and `POST /v1/renew` — on the real
 * API server (`openHubServices`, as the daemon builds it: CA, token store, registry on a real
 * nats-server), through fastify's `inject`. Bodies are near-valid (a real unused token, a real CSR
 * for the token's country, a real WireGuard key, then 1–3 edits: a dropped or replaced field, an
 * unknown key, a string cut, grown, re-cased or flipped), other countries' CSRs, damaged CSRs,
 * random JSON and raw text; now and then another route of the API or another method.
 *
 * Oracle: no 5xx, no crash; every refusal `{code, message}` with a code the hub documents, at the
 * status `hub/api/errors.ts` maps it to. An enrollment that succeeds must have used a real token
 * with the CSR of its own country (FR), and nothing may enroll any other country.
 *
 * `inject` has no TLS socket, so `/v1/renew` always lacks a client certificate here: what is
 * fuzzed is everything before the identity check (body limits, parsing, validation).
 */
import fc from 'fast-check';
import * as hubErrors from '../../hub/errors.js';
import { statusFor } from '../../hub/api/errors.js';
import { createCountryCsr } from '../../pki/csr-create.js';
import * as pkiErrors from '../../pki/errors.js';
import { generateP256 } from '../../pki/keys.js';
import { countryKeys } from '../../test/helpers/country-identity.js';
import type { FaultContext } from '../lib/context.js';
import type { RowInput } from '../lib/report.js';
import { hostileJsonArb, hostileStringArb, mutatedArb, percentEncode } from './arbitraries.js';
import { exportedCodes, fuzzSeed, judgeAnswer, runCases, Tally, type CodeBook } from './tally.js';

/**
 * Fastify's own refusals (bad JSON, body too large, media type, bad URL…) keep their code and
 * status at the hub by design (hub/api/errors.ts), unlike the agent's local API, which renames them.
 */
const isFastifyCode = (c: string) => c.startsWith('FST_ERR_');
const CODES = new Set([...exportedCodes(hubErrors, pkiErrors), 'API_BAD_REQUEST', 'API_NOT_FOUND']);
const BOOK: CodeBook = {
  isKnown: (c) => CODES.has(c) || isFastifyCode(c),
  statusOf: (c) => (isFastifyCode(c) ? undefined : c === 'API_NOT_FOUND' ? 404 : statusFor(c)),
};
const TOKEN_POOL = 24;

interface HubCase {
  method: string;
  url: string;
  contentType: string | undefined;
  payload: string | undefined;
}

/** Flips one character in the middle of a PEM body: the DER stays base64, the signature breaks. */
function damage(pem: string): string {
  const at = Math.floor(pem.length / 2);
  return pem.slice(0, at) + (pem[at] === 'A' ? 'B' : 'A') + pem.slice(at + 1);
}

/** Runs `cases` generated requests against the hub's enrollment API. */
export async function fuzzHubApi(ctx: FaultContext, cases: number): Promise<RowInput[]> {
  const hub = await ctx.hubServices();
  for (const code of ['FR', 'DE']) {
    const added = await hub.admin('POST', '/countries', { code, name: `Country ${code}` });
    if (added.status !== 201 && added.status !== 409) throw new Error(`country add ${code}: ${added.status} ${added.text}`);
  }
  const tokens: string[] = [];
  for (let i = 0; i < TOKEN_POOL; i++) tokens.push(((await hub.admin('POST', '/tokens', { country: 'FR' })).json as { token: string }).token);
  const fr = await countryKeys('FR');
  const other = await countryKeys('FR');
  const de = await countryKeys('DE');
  // As the agent makes it without --country: O and OU only, no CN.
  const noCountryCsr = await createCountryCsr(await generateP256());
  const csr = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(fr.csr, other.csr) },
    { weight: 3, arbitrary: fc.constantFrom(de.csr, noCountryCsr, damage(fr.csr), fr.csr.slice(0, 200), fr.csr.replace(/-----[A-Z ]+-----/g, ''), fr.keyPem, `${fr.csr}${fr.csr}`) },
    { weight: 1, arbitrary: hostileStringArb },
  );
  // Pool tokens are written as slots and filled in when the case runs, so a token used up by a
  // successful enrollment is replaced and near-valid bodies keep reaching the CSR checks.
  const slot = (i: number) => `@@TOKEN:${i}@@`;
  const token = fc.oneof(
    { weight: 6, arbitrary: fc.nat(TOKEN_POOL - 1).map(slot) },
    { weight: 2, arbitrary: fc.constantFrom(...tokens).map((t) => t.replace(/\.[0-9a-f]{64}$/, `.${'ab'.repeat(32)}`)) },
    { weight: 2, arbitrary: fc.constantFrom(...tokens).map((t) => `${t.slice(0, 25)}${t[25] === 'A' ? 'B' : 'A'}${t.slice(26)}`) },
    { weight: 1, arbitrary: hostileStringArb },
  );
  const enrollBase = fc.record({ token, csr, wgPublicKey: fc.constantFrom(fr.wgPublicKey, other.wgPublicKey, de.wgPublicKey) });
  const body = fc.oneof(
    { weight: 2, arbitrary: enrollBase.map((b) => JSON.stringify(b)) },
    { weight: 6, arbitrary: mutatedArb(enrollBase, ['token', 'csr', 'wgPublicKey']).map((b) => JSON.stringify(b)) },
    { weight: 2, arbitrary: mutatedArb(fc.record({ csr }), ['csr']).map((b) => JSON.stringify(b)) },
    { weight: 3, arbitrary: hostileJsonArb.map((v) => JSON.stringify(v) ?? 'null') },
    { weight: 2, arbitrary: fc.oneof(hostileStringArb, fc.constantFrom('{', '{"token":', '', 'null', '[]', '{}')) },
    { weight: 1, arbitrary: fc.constant(JSON.stringify({ token: 'x', csr: 'x'.repeat(20_000), wgPublicKey: fr.wgPublicKey })) },
  );
  const url = fc.oneof(
    { weight: 8, arbitrary: fc.constant('/v1/enroll') },
    { weight: 4, arbitrary: fc.constant('/v1/renew') },
    {
      weight: 2,
      arbitrary: fc.constantFrom('/v1/enroll/', '/v1//enroll', '/V1/ENROLL', '/v1/enroll?token=x', '/v1/directory', '/v1/admin/countries', '/v1/admin/tokens', '/pki/crl?format=pem', '/pki/crl?format=%00', '/pki/ocsp', '/pki/ca', '/healthz', '/openapi.json', '/v1/enroll%00', '/v1/%ED%A0%80', `/v1/${'A'.repeat(300)}`),
    },
    { weight: 1, arbitrary: hostileStringArb.map((s) => `/v1/${percentEncode(s)}`) },
  );
  const caseArb: fc.Arbitrary<HubCase> = fc
    .record({
      method: fc.oneof({ weight: 12, arbitrary: fc.constant('POST') }, { weight: 2, arbitrary: fc.constantFrom('GET', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS') }),
      url,
      contentType: fc.oneof(
        { weight: 8, arbitrary: fc.constant('application/json') },
        { weight: 2, arbitrary: fc.constantFrom(undefined, 'text/plain', 'application/ocsp-request', 'application/json; charset=latin1', 'application/x-www-form-urlencoded') },
      ),
      body,
    })
    .map((c) => ({ method: c.method, url: c.url, contentType: c.contentType, payload: c.method === 'GET' || c.method === 'HEAD' ? undefined : c.body }));

  const tally = new Tally();
  let enrolled = 0;
  const seed = fuzzSeed();
  const started = performance.now();
  await runCases(caseArb, cases, seed, async (c) => {
    const payload = c.payload?.replace(/@@TOKEN:(\d+)@@/g, (_m, i: string) => tokens[Number(i)] ?? '');
    let res;
    try {
      res = await hub.services.api.inject({
        method: c.method as 'POST',
        url: c.url,
        headers: c.contentType === undefined ? {} : { 'content-type': c.contentType },
        ...(payload === undefined ? {} : { payload }),
      });
    } catch (err) {
      tally.fail('inject threw', `inject threw ${err instanceof Error ? err.message : String(err)}`, c);
      return;
    }
    tally.status(res.statusCode);
    const verdict = judgeAnswer(res, c.method, BOOK);
    if (verdict.ok === false) return tally.fail(verdict.kind, verdict.why, c);
    if (verdict.ok === 'refused') return tally.refuse(verdict.code);
    if (c.url === '/v1/enroll' && c.method === 'POST') {
      const country = (JSON.parse(res.body) as { country?: unknown }).country;
      if (country !== 'FR') return tally.fail('enrolled another country', `enrolled ${String(country)}`, c);
      enrolled += 1;
      const used = tokens.indexOf(String((JSON.parse(payload ?? '{}') as { token?: unknown }).token));
      if (used >= 0) tokens[used] = ((await hub.admin('POST', '/tokens', { country: 'FR' })).json as { token: string }).token;
    }
    tally.accept();
  });
  const ms = performance.now() - started;
  const pending = hub.services.registry.get('DE')?.status;
  const row = tally.row('fuzz: hub enrollment API (enroll, renew; inject)', ms, seed);
  if (pending !== 'pending') row.leaked += 1;
  row.notes = [...(row.notes ?? []), `${enrolled} enrollments of FR (pool of ${TOKEN_POOL} tokens, each replaced once used); DE (no token) ${pending ?? 'missing'}`];
  if (pending !== 'pending') row.notes.push(`FAILED: DE, which had no token, is ${pending ?? 'missing'}`);
  return [row];
}
