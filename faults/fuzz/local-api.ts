/**
 * Fuzz target (a): the agent's local API (`buildLocalApi`) on the REAL relay (`Relay.open`: outbox
 * files fsynced, inbox and status journals; not attached to a broker, so messages stay queued),
 * through fastify's `inject`. Random methods, paths (real routes, ids, traversal, encodings),
 * query strings, headers (a valid bearer token about half the time) and bodies (valid drafts,
 * near-valid ones, hostile JSON, raw text, oversized).
 *
 * Oracle: no 5xx and no crash; every refusal `{code, message}` with a documented code at its
 * status; a protected route never answers 2xx without the valid token, and a refused request never
 * stores anything; a 202 names a message the relay holds, from this agent's country.
 *
 * Left out on purpose: `Accept: text/event-stream` on `/v1/inbox` and `?wait=` > 0 hold the request
 * open by design (streaming.test.ts covers them), and would only measure the timeout.
 */
import fc from 'fast-check';
import { pino } from 'pino';
import { join } from 'node:path';
import * as localErrors from '../../node-agent/local-api/errors.js';
import { statusFor } from '../../node-agent/local-api/errors.js';
import { PUBLIC_ROUTES } from '../../node-agent/local-api/auth.js';
import { buildLocalApi } from '../../node-agent/local-api/server.js';
import { createTokensFile, loadTokens, readToken } from '../../node-agent/local-api/tokens.js';
import * as relayErrors from '../../node-agent/relay/errors.js';
import { Relay } from '../../node-agent/relay/relay.js';
import { tempDir } from '../../test/helpers/tmpdir.js';
import type { FaultContext } from '../lib/context.js';
import type { RowInput } from '../lib/report.js';
import { DRAFT_KEYS, draftArb, hostileJsonArb, hostileStringArb, mutatedArb, percentEncode, ulidArb } from './arbitraries.js';
import { exportedCodes, fuzzSeed, judgeAnswer, runCases, Tally, type CodeBook } from './tally.js';

const BODY_LIMIT_BYTES = 64 * 1024;

/** Codes the local API answers with (the client-side AGENT_* and tokens-file codes never reach a response, but are harmless here). */
const CODES = exportedCodes(localErrors, relayErrors);
const BOOK: CodeBook = { isKnown: (c) => CODES.has(c), statusOf: (c) => statusFor(c) };

interface LocalCase {
  method: string;
  url: string;
  headers: Record<string, string>;
  payload: string | undefined;
  hasValidToken: boolean;
}

/** Header values as a client can send them (no CR, LF, NUL or characters beyond Latin-1). */
function headerSafe(s: string): string {
  return s.replace(/[^\t\x20-\x7e\x80-\xff]/g, '');
}

function caseArb(token: string, knownId: () => string | undefined): fc.Arbitrary<LocalCase> {
  const id = fc.oneof(ulidArb, hostileStringArb.map(percentEncode), fc.constant('KNOWN'));
  const route = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom('/v1/messages', '/v1/inbox', '/v1/status', '/healthz', '/readyz', '/openapi.json') },
    { weight: 4, arbitrary: id.map((i) => `/v1/messages/${i}`) },
    { weight: 3, arbitrary: id.map((i) => `/v1/inbox/${i}/ack`) },
    {
      weight: 2,
      arbitrary: fc.constantFrom('/', '/v1', '/v1/', '//v1//status', '/v1/status/', '/V1/STATUS', '/v1/../v1/status', '/v1/%2e%2e/status', '/v1/status%00', '/v1/messages/', '/v1/inbox/x/ack/', '/v1/admin/countries', '/metrics', '/v1/messages?x=%zz', '/v1/messages/%ED%A0%80', '/v1/inbox/%C0%AF/ack'),
    },
    { weight: 1, arbitrary: hostileStringArb.map((s) => `/${percentEncode(s)}`) },
  );
  const queryValue = fc.oneof(fc.constantFrom('0', '1', '-1', '1000', '1001', '1e9', 'abc', 'true', '', '%00', '1.5'), hostileStringArb.map(percentEncode));
  const query = fc.option(
    fc.array(
      fc.oneof(
        fc.tuple(fc.constantFrom('limit', 'includeAcked', 'x', '__proto__', 'limit[]'), queryValue),
        // Only waits that answer at once: 0, or values the schema refuses.
        fc.tuple(fc.constant('wait'), fc.constantFrom('0', '-1', 'abc', '61', '1e400', '')),
      ),
      { minLength: 1, maxLength: 3 },
    ).map((pairs) => `?${pairs.map(([k, v]) => `${k}=${v}`).join('&')}`),
    { nil: '' },
  );
  const validBearer = new RegExp(`^bearer +${token} *$`, 'i');
  const wrong = `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`;
  const auth = fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom(`Bearer ${token}`, `bearer ${token}`) },
    { weight: 6, arbitrary: fc.constantFrom(undefined, `Bearer ${wrong}`, `Basic ${Buffer.from(`operator:${token}`).toString('base64')}`, token, `Bearer ${token} extra`, `Bearer  ${token}`, 'Bearer', `Bearer ${token.slice(0, 10)}`) },
    { weight: 2, arbitrary: hostileStringArb.map((s) => `Bearer ${s}`) },
  );
  const contentType = fc.oneof(
    { weight: 6, arbitrary: fc.constant('application/json') },
    { weight: 3, arbitrary: fc.constantFrom(undefined, 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/JSON', 'application/json; charset=utf-16') },
    { weight: 1, arbitrary: hostileStringArb },
  );
  const body = fc.oneof(
    { weight: 4, arbitrary: draftArb.map((d) => JSON.stringify(d)) },
    { weight: 6, arbitrary: mutatedArb(draftArb, DRAFT_KEYS).map((d) => JSON.stringify(d)) },
    { weight: 3, arbitrary: hostileJsonArb.map((v) => JSON.stringify(v) ?? 'null') },
    { weight: 2, arbitrary: fc.oneof(hostileStringArb, fc.constantFrom('{', '{"kind":', '[]', 'null', '"x"', '{}', '\u0000')) },
    { weight: 2, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: fc.constantFrom(BODY_LIMIT_BYTES + 1, BODY_LIMIT_BYTES * 4).map((n) => JSON.stringify({ kind: 'message', to: ['DE'], body: 'x'.repeat(n) })) },
  );
  const accept = fc.option(fc.oneof(fc.constantFrom('application/json', '*/*', 'text/html'), hostileStringArb), { nil: undefined });
  const extra = fc.array(fc.tuple(fc.constantFrom('x-forwarded-for', 'host', 'content-length', 'transfer-encoding', 'x-ncb-country', 'cookie', 'origin'), hostileStringArb), { maxLength: 2 });
  const anything = fc.record({
    method: fc.oneof({ weight: 10, arbitrary: fc.constantFrom('GET', 'POST') }, { weight: 3, arbitrary: fc.constantFrom('PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS') }),
    route,
    query,
    auth,
    contentType,
    body,
    accept,
    extra,
  });
  // Half the cases are submissions as an application makes them (mostly authenticated JSON), so
  // the draft checks behind the token see thousands of valid and near-valid drafts.
  const submission = fc.record({
    method: fc.constant('POST'),
    route: fc.constant('/v1/messages'),
    query: fc.constant(''),
    auth: fc.oneof({ weight: 9, arbitrary: fc.constant(`Bearer ${token}`) }, { weight: 1, arbitrary: auth }),
    contentType: fc.oneof({ weight: 9, arbitrary: fc.constant('application/json') }, { weight: 1, arbitrary: contentType }),
    body,
    accept: fc.constant(undefined),
    extra: fc.constant([] as [string, string][]),
  });
  return fc
    .oneof(anything, submission)
    .map((c) => {
      const headers: Record<string, string> = {};
      for (const [k, v] of c.extra) {
        // A content-length that lies is inject's problem, not the server's; a transfer-encoding beside a payload is refused by the client library.
        if (k === 'content-length' || k === 'transfer-encoding') continue;
        headers[k] = headerSafe(v);
      }
      if (c.auth !== undefined) headers['authorization'] = headerSafe(c.auth);
      if (c.contentType !== undefined) headers['content-type'] = headerSafe(c.contentType);
      if (c.accept !== undefined && !/event-stream/i.test(c.accept)) headers['accept'] = headerSafe(c.accept);
      const url = c.route.replace('KNOWN', knownId() ?? 'KNOWN') + c.query;
      // RFC 7235: the scheme is case-insensitive and followed by one or more spaces.
      const hasValidToken = c.auth !== undefined && validBearer.test(headerSafe(c.auth));
      return { method: c.method, url, headers, payload: c.method === 'GET' || c.method === 'HEAD' ? undefined : c.body, hasValidToken };
    });
}

/** Runs `cases` generated requests against the local API on a real relay. */
export async function fuzzLocalApi(ctx: FaultContext, cases: number): Promise<RowInput[]> {
  const dir = await tempDir(ctx.owner, 'ncbnet-faults-agent-');
  const tokensPath = join(dir, 'local-api.tokens');
  await createTokensFile(tokensPath);
  const token = await readToken(tokensPath);
  const log = pino({ level: 'silent' });
  const relay = await Relay.open({ country: 'FR', stateDir: dir, log });
  ctx.owner.teardown(() => relay.stop());
  const app = await buildLocalApi({ relay, tokens: await loadTokens(tokensPath), log, bodyLimitBytes: BODY_LIMIT_BYTES, country: 'FR', readiness: () => ({ tunnel: true, broker: true }) });
  ctx.owner.teardown(() => app.close());
  await app.ready();

  const tally = new Tally();
  let lastAccepted: string | undefined;
  const seed = fuzzSeed();
  const started = performance.now();
  await runCases(caseArb(token, () => lastAccepted), cases, seed, async (c) => {
    const depth = relay.outboxDepth();
    let res;
    try {
      res = await app.inject({ method: c.method as 'GET', url: c.url, headers: c.headers, ...(c.payload === undefined ? {} : { payload: c.payload }) });
    } catch (err) {
      tally.fail('inject threw', `inject threw ${err instanceof Error ? err.message : String(err)}`, c);
      return;
    }
    tally.status(res.statusCode);
    const path = c.url.split('?')[0] ?? '';
    const verdict = judgeAnswer(res, c.method, BOOK);
    if (verdict.ok === false) return tally.fail(verdict.kind, verdict.why, c);
    const isProtected = !PUBLIC_ROUTES.has(path);
    if (verdict.ok === 'accepted' && isProtected && !c.hasValidToken) return tally.fail('answered without a valid token', `answered ${res.statusCode} without a valid token`, c);
    if (verdict.ok === 'refused' && relay.outboxDepth() !== depth) return tally.fail('outbox changed by a refused request', `refused with ${verdict.code} but the outbox changed`, c);
    if (res.statusCode === 202) {
      const id = (JSON.parse(res.body) as { id?: string }).id;
      const status = id === undefined ? undefined : relay.status(id);
      if (status === undefined || relay.outboxDepth() !== depth + 1) return tally.fail('202 without a queued message', '202 without a queued message', c);
      lastAccepted = id;
    }
    if (verdict.ok === 'refused') tally.refuse(verdict.code);
    else tally.accept();
  });
  const ms = performance.now() - started;
  const row = tally.row('fuzz: agent local API (real relay, inject)', ms, seed);
  row.notes = [...(row.notes ?? []), `${relay.outboxDepth()} messages queued by accepted drafts`];
  return [row];
}
