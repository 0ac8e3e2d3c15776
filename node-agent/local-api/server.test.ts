import t from 'tap';
import { CodedError } from '../../protocol/errors.js';
import { startLocalApiForTest } from '../../test/helpers/fake-relay.js';

interface ErrorAnswer {
  code: string;
  message: string;
  problems?: string[];
}

const DRAFT = { kind: 'message', to: ['DE', 'IT'], subject: 'stolen car', body: 'VIN WVWZZZ1JZXW000001 seen in Lyon' };

t.test('local api: health and readiness answer without a token; readyz is 503 when a check fails', async (t) => {
  let tunnel = true;
  const { app } = await startLocalApiForTest(t, { readiness: () => ({ tunnel, broker: true }) });
  const health = await app.inject({ method: 'GET', url: '/healthz' });
  t.equal(health.statusCode, 200);
  t.same(health.json(), { status: 'ok' });
  const ready = await app.inject({ method: 'GET', url: '/readyz' });
  t.equal(ready.statusCode, 200);
  t.same(ready.json(), { ready: true, checks: { tunnel: true, broker: true } });
  tunnel = false;
  const notReady = await app.inject({ method: 'GET', url: '/readyz' });
  t.equal(notReady.statusCode, 503);
  t.same(notReady.json(), { ready: false, checks: { tunnel: false, broker: true } });
});

t.test('local api: no token is 401 LOCAL_AUTH_REQUIRED, a wrong one 401 LOCAL_AUTH_BAD_TOKEN, both before the body is read', async (t) => {
  const { app, relay, token } = await startLocalApiForTest(t);
  const before = relay.snapshot();
  const post = (headers: Record<string, string>, payload: string) => app.inject({ method: 'POST', url: '/v1/messages', headers: { 'content-type': 'application/json', ...headers }, payload });

  const none = await post({}, JSON.stringify({ bad: true }));
  t.equal(none.statusCode, 401, 'an invalid body without a token is refused for the token, not the body');
  t.equal(none.json<ErrorAnswer>().code, 'LOCAL_AUTH_REQUIRED');
  t.equal(none.json<ErrorAnswer>().problems, undefined, 'no hint of the input rules');
  t.equal(none.headers['www-authenticate'], 'Bearer realm="ncbnet-agent"');

  const basic = await post({ authorization: `Basic ${Buffer.from(`operator:${token}`).toString('base64')}` }, JSON.stringify(DRAFT));
  t.equal(basic.json<ErrorAnswer>().code, 'LOCAL_AUTH_REQUIRED', 'another scheme is no bearer token');

  const wrong = await post({ authorization: `Bearer ${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}` }, '{not json');
  t.equal(wrong.statusCode, 401, 'malformed JSON with a wrong token: the token is checked first');
  t.equal(wrong.json<ErrorAnswer>().code, 'LOCAL_AUTH_BAD_TOKEN');
  t.match(wrong.headers['www-authenticate'], /error="invalid_token"/);
  t.notMatch(wrong.body, token.slice(0, 20), 'the token is not echoed');

  const short = await post({ authorization: 'Bearer x' }, JSON.stringify(DRAFT));
  t.equal(short.json<ErrorAnswer>().code, 'LOCAL_AUTH_BAD_TOKEN', 'a token of another length is compared without error');

  for (const url of ['/v1/inbox', '/v1/messages/01J0000000000000000000000A', '/v1/status', '/v1/nothing-here']) {
    const r = await app.inject({ method: 'GET', url });
    t.equal(r.statusCode, 401, `${url} needs a token`);
  }
  const unknownRoute = await app.inject({ method: 'GET', url: '/v1/nothing-here', headers: { authorization: `Bearer ${token}` } });
  t.equal(unknownRoute.statusCode, 404);
  t.equal(unknownRoute.json<ErrorAnswer>().code, 'LOCAL_NOT_FOUND');

  const right = await post({ authorization: `bearer ${token}` }, JSON.stringify(DRAFT));
  t.equal(right.statusCode, 202, 'the scheme name is case-insensitive (RFC 7235)');
  t.equal(relay.outbox.length, before.outbox + 1, 'only the authenticated request stored anything');
});

t.test('local api: a valid draft is answered 202 with its id and status only once the relay has it', async (t) => {
  const { app, relay, auth } = await startLocalApiForTest(t);
  let release: () => void = () => undefined;
  const submit = relay.submit.bind(relay);
  const held = new Promise<void>((resolve) => (release = resolve));
  relay.submit = async (draft) => {
    await held;
    return submit(draft);
  };
  let answered = false;
  const pending = app.inject({ method: 'POST', url: '/v1/messages', headers: auth, payload: DRAFT }).then((r) => {
    answered = true;
    return r;
  });
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.notOk(answered, 'no answer while the relay has not stored (fsynced) the message');
  release();
  const r = await pending;
  t.equal(r.statusCode, 202, r.body);
  const body = r.json<{ id: string; status: string }>();
  t.match(body, { id: /^[0-7][0-9A-HJKMNP-TV-Z]{25}$/, status: 'queued' });
  t.equal(r.headers.location, `/v1/messages/${body.id}`);
  const stored = relay.outbox[0];
  t.equal(stored?.from, 'FR', 'the agent sets the sender, never the caller');
  t.same(stored?.to, ['DE', 'IT']);

  const status = await app.inject({ method: 'GET', url: `/v1/messages/${body.id}`, headers: auth });
  t.equal(status.statusCode, 200);
  t.match(status.json(), { id: body.id, state: 'queued', to: ['DE', 'IT'] });

  const all = await app.inject({ method: 'POST', url: '/v1/messages', headers: auth, payload: { kind: 'notice', notice: { colour: 'red' }, to: '*', body: 'wanted', priority: 'urgent' } });
  t.equal(all.statusCode, 202, all.body);
  t.equal(relay.outbox[1]?.to, '*');
});

t.test('local api: bad drafts are refused with every problem, and nothing is stored', async (t) => {
  const { app, relay, auth } = await startLocalApiForTest(t, { bodyLimitBytes: 4096 });
  const before = relay.snapshot();
  const send = (payload: unknown, headers: Record<string, string> = {}) =>
    app.inject({ method: 'POST', url: '/v1/messages', headers: { 'content-type': 'application/json', ...auth, ...headers }, payload: typeof payload === 'string' ? payload : JSON.stringify(payload) });
  const refused = async (name: string, payload: unknown, status: number, code: string, problems?: (string | RegExp)[], headers?: Record<string, string>) => {
    const r = await send(payload, headers);
    t.equal(r.statusCode, status, `${name}: status`);
    const body = r.json<ErrorAnswer>();
    t.equal(body.code, code, `${name}: code`);
    if (problems) t.match(body.problems, problems, `${name}: problems`);
    if (problems) t.equal(body.problems?.length, problems.length, `${name}: exactly these problems`);
    t.same(relay.snapshot(), before, `${name}: nothing stored`);
  };

  await refused('missing fields', { to: ['DE'] }, 400, 'LOCAL_BAD_REQUEST', ['body.kind: required', 'body.body: required']);
  await refused('bad recipient code', { ...DRAFT, to: ['de', 'IT'] }, 400, 'LOCAL_BAD_REQUEST', [/^body\.to\[0\]: must match pattern .*\(got "de"\)$/]);
  await refused('duplicate recipients', { ...DRAFT, to: ['DE', 'DE'] }, 400, 'LOCAL_BAD_REQUEST', [/^body\.to: .*duplicate/]);
  await refused('recipients neither list nor *', { ...DRAFT, to: 'DE' }, 400, 'LOCAL_BAD_REQUEST', ['body.to: must be "*" or a list of country codes (got "DE")']);
  await refused('unknown key and wrong kind', { ...DRAFT, kind: 'gossip', from: 'DE' }, 400, 'LOCAL_BAD_REQUEST', [
    'body.from: unknown key',
    'body.kind: must be one of notice, diffusion, message, query, reply, deletion (got "gossip")',
  ]);
  await refused('bad colour and priority', { ...DRAFT, kind: 'notice', notice: { colour: 'pink' }, priority: 'now' }, 400, 'LOCAL_BAD_REQUEST', [
    /^body\.notice\.colour: must be one of red, blue, .* \(got "pink"\)$/,
    /^body\.priority: must be one of urgent, routine \(got "now"\)$/,
  ]);
  await refused('not an ISO country', { ...DRAFT, to: ['DE', 'ZZ', 'UK'] }, 422, 'LOCAL_UNKNOWN_RECIPIENT', [
    'body.to[1]: not an assigned ISO 3166-1 alpha-2 code (got "ZZ")',
    'body.to[2]: not an assigned ISO 3166-1 alpha-2 code (got "UK")',
  ]);
  await refused('notice without colour (refused by the relay)', { ...DRAFT, kind: 'notice' }, 400, 'LOCAL_BAD_REQUEST', ['body.notice: required when kind is notice']);
  await refused('too large', { ...DRAFT, body: 'x'.repeat(5000) }, 413, 'LOCAL_BODY_TOO_LARGE');
  await refused('malformed JSON', '{"kind": "message",', 400, 'LOCAL_MALFORMED_JSON');
  await refused('empty JSON body', '', 400, 'LOCAL_MALFORMED_JSON');
  await refused('not JSON at all', 'hello', 415, 'LOCAL_UNSUPPORTED_MEDIA_TYPE', undefined, { 'content-type': 'text/plain' });

  relay.failSubmit = new CodedError('RELAY_OUTBOX_WRITE_FAILED', 'disk full');
  await refused('the relay cannot store it', DRAFT, 503, 'RELAY_OUTBOX_WRITE_FAILED');
  relay.failSubmit = new Error('a bug');
  await refused('the relay fails unexpectedly', DRAFT, 500, 'INTERNAL');
});

t.test('local api: status and ack of unknown ids are 404 LOCAL_UNKNOWN_MESSAGE; malformed ids 400', async (t) => {
  const { app, auth } = await startLocalApiForTest(t);
  const unknown = await app.inject({ method: 'GET', url: '/v1/messages/01J0000000000000000000000A', headers: auth });
  t.equal(unknown.statusCode, 404);
  t.equal(unknown.json<ErrorAnswer>().code, 'LOCAL_UNKNOWN_MESSAGE');
  const ack = await app.inject({ method: 'POST', url: '/v1/inbox/01J0000000000000000000000A/ack', headers: auth });
  t.equal(ack.statusCode, 404);
  t.equal(ack.json<ErrorAnswer>().code, 'LOCAL_UNKNOWN_MESSAGE');
  const bad = await app.inject({ method: 'GET', url: `/v1/messages/${encodeURIComponent('a b')}`, headers: auth });
  t.equal(bad.statusCode, 400);
  t.match(bad.json<ErrorAnswer>().problems, [/^params\.id: /]);
});

t.test('local api: the inbox lists unacked items oldest first, limit applies, ack takes one out', async (t) => {
  const { app, relay, auth } = await startLocalApiForTest(t);
  const empty = await app.inject({ method: 'GET', url: '/v1/inbox', headers: auth });
  t.same(empty.json(), { items: [] }, 'no wait: answered at once');
  const a = relay.deliver('DE', { subject: 'first' });
  const b = relay.deliver('IT', { subject: 'second' });
  relay.deliver('ES', { subject: 'third' });
  const listed = await app.inject({ method: 'GET', url: '/v1/inbox?limit=2', headers: auth });
  t.equal(listed.statusCode, 200);
  const items = listed.json<{ items: { id: string; envelope: { subject: string } }[] }>().items;
  t.same(items.map((i) => i.envelope.subject), ['first', 'second']);

  const acked = await app.inject({ method: 'POST', url: `/v1/inbox/${a.id}/ack`, headers: auth });
  t.equal(acked.statusCode, 200, acked.body);
  t.match(acked.json(), { id: a.id, ackedAt: String });
  const after = await app.inject({ method: 'GET', url: '/v1/inbox', headers: auth });
  t.same(after.json<{ items: { id: string }[] }>().items.map((i) => i.id)[0], b.id, 'the acked item left the list');
  t.equal(after.json<{ items: unknown[] }>().items.length, 2);

  for (const [query, problem] of [
    ['wait=61', /^query\.wait: /],
    ['wait=soon', /^query\.wait: /],
    ['limit=0', /^query\.limit: /],
    ['since=1', /^query\.since: unknown key$/],
  ] as const) {
    const r = await app.inject({ method: 'GET', url: `/v1/inbox?${query}`, headers: auth });
    t.equal(r.statusCode, 400, query);
    t.equal(r.json<ErrorAnswer>().code, 'LOCAL_BAD_REQUEST');
    t.match(r.json<ErrorAnswer>().problems, [problem], query);
  }
});

t.test('local api: /v1/status summarises the agent', async (t) => {
  const { app, relay, auth } = await startLocalApiForTest(t, { country: 'PT' });
  relay.deliver('DE');
  await app.inject({ method: 'POST', url: '/v1/messages', headers: auth, payload: DRAFT });
  relay.connected = false;
  const r = await app.inject({ method: 'GET', url: '/v1/status', headers: auth });
  t.equal(r.statusCode, 200);
  t.match(r.json(), { country: 'PT', version: String, connected: false, outboxDepth: 1, inboxUnacked: 1 });
});

t.test('local api: the OpenAPI document lists every route, with bearer security on all but the probes', async (t) => {
  const { app } = await startLocalApiForTest(t);
  const r = await app.inject({ method: 'GET', url: '/openapi.json' });
  t.equal(r.statusCode, 200);
  const doc = r.json<{ openapi: string; paths: Record<string, Record<string, { security?: unknown[] }>>; components: { securitySchemes: Record<string, unknown> } }>();
  t.equal(doc.openapi, '3.0.3');
  t.same(Object.keys(doc.paths).sort(), ['/healthz', '/readyz', '/v1/inbox', '/v1/inbox/{id}', '/v1/inbox/{id}/ack', '/v1/messages', '/v1/messages/{id}', '/v1/status']);
  t.match(doc.components.securitySchemes, { bearerAuth: { type: 'http', scheme: 'bearer' } });
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      if (path.startsWith('/v1/')) t.same(op.security, [{ bearerAuth: [] }], `${method} ${path} needs a token`);
      else t.equal(op.security, undefined, `${method} ${path} is open`);
    }
  }
  t.ok(doc.paths['/v1/messages']?.['post'], 'POST /v1/messages');
});

t.test('local api: a URL the router cannot take apart is refused with a local code, after the token check', async (t) => {
  const { app, token } = await startLocalApiForTest(t);
  const auth = { authorization: `Bearer ${token}` };
  const badEncoding = '/v1/messages/%ED%A0%80';
  const anonymous = await app.inject({ method: 'GET', url: badEncoding });
  t.equal(anonymous.statusCode, 401, 'no token: nothing else is said');
  t.equal(anonymous.json<ErrorAnswer>().code, 'LOCAL_AUTH_REQUIRED');
  const bad = await app.inject({ method: 'GET', url: badEncoding, headers: auth });
  t.equal(bad.statusCode, 400);
  t.equal(bad.json<ErrorAnswer>().code, 'LOCAL_BAD_REQUEST');
  const overLong = await app.inject({ method: 'POST', url: `/v1/inbox/${'a'.repeat(300)}/ack`, headers: auth });
  t.equal(overLong.json<ErrorAnswer>().code, 'LOCAL_BAD_REQUEST', 'a parameter past the router limit');
  const longId = await app.inject({ method: 'GET', url: `/v1/messages/${'a'.repeat(120)}`, headers: auth });
  t.equal(longId.statusCode, 404, 'an id of 120 characters (the schema allows 128) reaches its route');
  t.equal(longId.json<ErrorAnswer>().code, 'LOCAL_UNKNOWN_MESSAGE');
});
