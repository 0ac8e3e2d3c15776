import t from 'tap';
import { request, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pino } from 'pino';
import type { QueryRequestInput, QueryService } from '../../protocol/query.js';
import { FakeRelay } from '../../test/helpers/fake-relay.js';
import { tempDir, type Teardownable } from '../../test/helpers/tmpdir.js';
import { waitFor } from '../../test/helpers/wait.js';
import type { QueryPort } from '../query/query-client.js';
import type { InboxItem } from '../relay/types.js';
import { LocalAccess } from './auth.js';
import type { Role } from './roles.js';
import { buildLocalApi } from './server.js';
import { createTokensFile, readToken } from './tokens.js';
import { addUser, removeUser } from './users.js';

interface ErrorAnswer {
  code: string;
  message: string;
  problems?: string[];
}

const SECRET_SUBJECT = 'operation nightfall';

/**
 * The local API on a FakeRelay with the product's own credentials: the tokens file's operator
 * (ncb-admin) and one user per other role in the users file. The database service is a recorder:
 * these tests are about what the agent lets through, the e2e test queries a real hub.
 */
async function startWithRoles(t: Teardownable, opts: { listen?: boolean; sseKeepAliveMs?: number } = {}) {
  const dir = await tempDir(t, 'ncbnet-roles-');
  const tokensFile = join(dir, 'local-api.tokens');
  const usersFile = join(dir, 'local-api.users.json');
  await createTokensFile(tokensFile);
  const tokens: Record<Role, string> = {
    'ncb-admin': await readToken(tokensFile),
    officer: (await addUser(usersFile, { name: 'officer-1', role: 'officer' })).token,
    border: (await addUser(usersFile, { name: 'border-lyon', role: 'border' })).token,
    customs: (await addUser(usersFile, { name: 'customs-cdg', role: 'customs' })).token,
  };
  const relay = new FakeRelay('FR');
  const queries: QueryRequestInput[] = [];
  const query: QueryPort = {
    query: (r) => {
      queries.push(r);
      return Promise.resolve({ v: 1, ok: true, service: r.service as QueryService, op: r.op, hit: false });
    },
  };
  const app = await buildLocalApi({
    relay,
    tokens: await LocalAccess.load({ tokensFile, usersFile, log: pino({ level: 'silent' }) }),
    log: pino({ level: 'silent' }),
    bodyLimitBytes: 1024 * 1024,
    country: 'FR',
    readiness: () => ({ broker: true }),
    query,
    b2b: {
      client: { query: (owner, db, key) => Promise.resolve({ v: 1, ok: true, owner, db, key, hit: false }) },
      enquiries: { list: () => [] },
    },
    ...(opts.sseKeepAliveMs === undefined ? {} : { sseKeepAliveMs: opts.sseKeepAliveMs }),
  });
  t.teardown(() => app.close());
  let url = '';
  if (opts.listen) {
    await app.listen({ host: '127.0.0.1', port: 0 });
    url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  }
  await app.ready();
  const auth = (role: Role) => ({ authorization: `Bearer ${tokens[role]}` });
  return { app, relay, queries, usersFile, url, auth };
}

/** One item of each handling code, the confidential one first (so a page of one would be it). */
function deliverEach(relay: FakeRelay) {
  const confidential = relay.deliver('DE', { handling: 'confidential', subject: SECRET_SUBJECT, body: 'the informant is …' });
  const restricted = relay.deliver('IT', { handling: 'restricted', subject: 'restricted one' });
  const open = relay.deliver('ES', { subject: 'public one' });
  return { confidential, restricted, open };
}

t.test('roles api: border may send a public message but neither a Red Notice nor a confidential message; officer may send a Red Notice', async (t) => {
  const { app, relay, auth } = await startWithRoles(t);
  const red = { kind: 'notice', notice: { colour: 'red' }, to: ['DE'], subject: 'wanted: J. Doe', body: 'provisional arrest requested' };
  const refused = await app.inject({ method: 'POST', url: '/v1/messages', headers: auth('border'), payload: red });
  t.equal(refused.statusCode, 403);
  t.same(refused.json(), { code: 'LOCAL_ROLE_FORBIDDEN', message: 'role border may not send kind notice' });
  const confidential = await app.inject({ method: 'POST', url: '/v1/messages', headers: auth('border'), payload: { kind: 'message', handling: 'confidential', to: ['DE'], body: 'x' } });
  t.equal(confidential.statusCode, 403);
  t.equal(confidential.json<ErrorAnswer>().message, 'role border may not send handling confidential');
  const diffusion = await app.inject({ method: 'POST', url: '/v1/messages', headers: auth('customs'), payload: { kind: 'diffusion', to: ['DE'], body: 'x' } });
  t.equal(diffusion.json<ErrorAnswer>().code, 'LOCAL_ROLE_FORBIDDEN', 'customs: no diffusion');
  const badRecipient = await app.inject({ method: 'POST', url: '/v1/messages', headers: auth('border'), payload: { ...red, to: ['ZZ'] } });
  t.equal(badRecipient.json<ErrorAnswer>().code, 'LOCAL_ROLE_FORBIDDEN', 'the role is checked before the recipients');
  t.equal(relay.outbox.length, 0, 'nothing refused was stored');

  const ok = await app.inject({ method: 'POST', url: '/v1/messages', headers: auth('border'), payload: { kind: 'message', to: ['DE'], subject: 'passport hit', body: 'seen at Lyon airport' } });
  t.equal(ok.statusCode, 202, ok.body);
  const officer = await app.inject({ method: 'POST', url: '/v1/messages', headers: auth('officer'), payload: red });
  t.equal(officer.statusCode, 202, officer.body);
  const admin = await app.inject({ method: 'POST', url: '/v1/messages', headers: auth('ncb-admin'), payload: red });
  t.equal(admin.statusCode, 202, admin.body);
  t.same(
    relay.outbox.map((e) => e.kind),
    ['message', 'notice', 'notice'],
  );
});

t.test('roles api: the inbox shows each role only what it may read, in lists, pages, by id and on ack', async (t) => {
  const { app, relay, auth } = await startWithRoles(t);
  const { confidential, restricted, open } = deliverEach(relay);
  const list = async (role: Role, query = '') => {
    const r = await app.inject({ method: 'GET', url: `/v1/inbox${query}`, headers: auth(role) });
    t.equal(r.statusCode, 200);
    return r;
  };
  const ids = (body: string) => (JSON.parse(body) as { items: InboxItem[] }).items.map((i) => i.id);
  t.same(ids((await list('ncb-admin')).body), [confidential.id, restricted.id, open.id]);
  t.same(ids((await list('officer')).body), [confidential.id, restricted.id, open.id]);
  const border = await list('border');
  t.same(ids(border.body), [restricted.id, open.id], 'border: no confidential item');
  t.notMatch(border.body, confidential.id, 'not its id');
  t.notMatch(border.body, SECRET_SUBJECT, 'nor its subject');
  t.same(ids((await list('customs')).body), [restricted.id, open.id]);
  t.same(ids((await list('border', '?limit=1')).body), [restricted.id], 'a page of one is the first readable item: the hidden one takes no place');
  t.same(ids((await list('ncb-admin', '?limit=1')).body), [confidential.id]);

  // By id: a hidden item is answered exactly as an id that does not exist (404, same words).
  const unknownId = '01JZZZZZZZZZZZZZZZZZZZZZZZ';
  for (const [method, suffix] of [
    ['GET', ''],
    ['POST', '/ack'],
  ] as const) {
    const hidden = await app.inject({ method, url: `/v1/inbox/${confidential.id}${suffix}`, headers: auth('border') });
    const unknown = await app.inject({ method, url: `/v1/inbox/${unknownId}${suffix}`, headers: auth('border') });
    t.equal(hidden.statusCode, 404, `${method} hidden`);
    t.equal(unknown.statusCode, 404, `${method} unknown`);
    t.equal(hidden.json<ErrorAnswer>().code, 'LOCAL_UNKNOWN_MESSAGE');
    t.equal(hidden.body.replace(confidential.id, 'ID'), unknown.body.replace(unknownId, 'ID'), `${method}: the same answer as for an unknown id`);
    t.notMatch(hidden.body, SECRET_SUBJECT);
  }
  t.equal(confidential.ackedAt, undefined, 'the hidden item was not acked');
  const got = await app.inject({ method: 'GET', url: `/v1/inbox/${restricted.id}`, headers: auth('border') });
  t.equal(got.statusCode, 200);
  t.equal(got.json<InboxItem>().envelope.subject, 'restricted one');
  const acked = await app.inject({ method: 'POST', url: `/v1/inbox/${open.id}/ack`, headers: auth('border') });
  t.equal(acked.statusCode, 200);
  t.ok(open.ackedAt, 'border acked a public item');
  const adminGet = await app.inject({ method: 'GET', url: `/v1/inbox/${confidential.id}`, headers: auth('officer') });
  t.equal(adminGet.json<InboxItem>().envelope.subject, SECRET_SUBJECT, 'an officer reads the confidential item');
  const adminAck = await app.inject({ method: 'POST', url: `/v1/inbox/${confidential.id}/ack`, headers: auth('ncb-admin') });
  t.equal(adminAck.statusCode, 200);
});

t.test('roles api: /v1/status (which counts all the traffic) is ncb-admin only', async (t) => {
  const { app, relay, auth } = await startWithRoles(t);
  deliverEach(relay);
  for (const role of ['officer', 'border', 'customs'] as const) {
    const r = await app.inject({ method: 'GET', url: '/v1/status', headers: auth(role) });
    t.equal(r.statusCode, 403, role);
    t.same(r.json(), { code: 'LOCAL_ROLE_FORBIDDEN', message: `role ${role} may not read the agent status` });
  }
  const admin = await app.inject({ method: 'GET', url: '/v1/status', headers: auth('ncb-admin') });
  t.match(admin.json(), { inboxUnacked: 3 });
});

t.test('roles api: queries are limited per service and operation, and refused before they leave the agent', async (t) => {
  const { app, queries, auth } = await startWithRoles(t);
  const post = (role: Role, service: string, payload: object) => app.inject({ method: 'POST', url: `/v1/query/${service}`, headers: auth(role), payload });
  const sltd = { key: { number: 'X1234567', country: 'FR' } };
  const ok = await post('border', 'sltd', sltd);
  t.equal(ok.statusCode, 200, ok.body);
  t.match(ok.json(), { ok: true, service: 'sltd', op: 'get' });
  const cases: [Role, string, object, string][] = [
    ['border', 'sltd', { op: 'put', record: { number: 'X1', country: 'FR' } }, 'role border may not put in sltd (allowed: get)'],
    ['border', 'sltd', { op: 'delete', key: sltd.key }, 'role border may not delete in sltd (allowed: get)'],
    ['border', 'woa', { key: { objectId: 'W1' } }, 'role border may not query woa'],
    ['customs', 'sltd', sltd, 'role customs may not query sltd'],
    ['officer', 'sltd', { op: 'put', record: {} }, 'role officer may not put in sltd (allowed: get, search)'],
  ];
  for (const [role, service, payload, message] of cases) {
    const r = await post(role, service, payload);
    t.equal(r.statusCode, 403, `${role} ${service}`);
    t.same(r.json(), { code: 'LOCAL_ROLE_FORBIDDEN', message });
  }
  t.equal((await post('border', 'nominal', { name: 'Doe' })).statusCode, 200, 'border searches nominal');
  t.equal((await post('customs', 'firearms', { key: { serial: 'S1', make: 'Acme' } })).statusCode, 200, 'customs queries firearms');
  t.equal((await post('ncb-admin', 'sltd', { op: 'delete', key: sltd.key })).statusCode, 200, 'ncb-admin deletes');
  const unknown = await post('border', 'dmv', sltd);
  t.equal(unknown.json<ErrorAnswer>().code, 'QUERY_UNKNOWN_SERVICE', 'an unknown service is unknown for every role');
  t.same(
    queries.map((q) => `${q.service}:${q.op}`),
    ['sltd:get', 'nominal:search', 'firearms:get', 'sltd:delete'],
    'only the allowed queries reached the hub',
  );
});

t.test('roles api: a long poll does not end for an item the role may not read', async (t) => {
  const { url, relay, auth } = await startWithRoles(t, { listen: true });
  const started = Date.now();
  const answer = getJson(`${url}/v1/inbox?wait=1`, auth('border'));
  await waitFor('the poll to wait', () => relay.waiters.size === 1);
  relay.deliver('DE', { handling: 'confidential', subject: SECRET_SUBJECT });
  await waitFor('the poll to wait again', () => relay.waiters.size === 1);
  const { status, body } = await answer;
  const elapsed = Date.now() - started;
  t.equal(status, 200);
  t.same(body, { items: [] });
  t.ok(elapsed >= 950, `held to the deadline (${elapsed} ms): an early answer would tell of the hidden item`);

  const second = getJson(`${url}/v1/inbox?wait=30`, auth('border'));
  await waitFor('the second poll to wait', () => relay.waiters.size === 1);
  relay.deliver('DE', { handling: 'confidential', subject: SECRET_SUBJECT });
  await waitFor('the poll to wait again', () => relay.waiters.size === 1);
  const visible = relay.deliver('IT', { subject: 'for border' });
  const got = await second;
  t.same(
    (got.body as { items: InboxItem[] }).items.map((i) => i.id),
    [visible.id],
    'a readable item ends the wait, alone',
  );
});

t.test('roles api: the event stream carries only what the role may read', async (t) => {
  const { url, relay, auth } = await startWithRoles(t, { listen: true, sseKeepAliveMs: 60_000 });
  const backlog = deliverEach(relay);
  const stream = await openStream(`${url}/v1/inbox`, auth('border'));
  t.teardown(() => stream.res.destroy());
  await waitFor('the backlog', () => stream.ids.length === 2);
  t.same(stream.ids, [backlog.restricted.id, backlog.open.id]);
  relay.deliver('DE', { handling: 'confidential', subject: SECRET_SUBJECT });
  const later = relay.deliver('DE', { subject: 'after' });
  await waitFor('the new public item', () => stream.ids.length === 3);
  t.same(stream.ids, [backlog.restricted.id, backlog.open.id, later.id]);
  t.notMatch(stream.raw(), SECRET_SUBJECT, 'nothing of the confidential items went down the stream');
  t.notMatch(stream.raw(), backlog.confidential.id);
});

t.test('roles api: a user added or removed while the agent runs counts from the next request', async (t) => {
  const { app, usersFile, auth } = await startWithRoles(t);
  const { token } = await addUser(usersFile, { name: 'customs-2', role: 'customs' });
  const withNew = await app.inject({ method: 'GET', url: '/v1/inbox', headers: { authorization: `Bearer ${token}` } });
  t.equal(withNew.statusCode, 200, 'a new user works without a restart');
  await removeUser(usersFile, 'border-lyon');
  const removed = await app.inject({ method: 'GET', url: '/v1/inbox', headers: auth('border') });
  t.equal(removed.statusCode, 401);
  t.equal(removed.json<ErrorAnswer>().code, 'LOCAL_AUTH_BAD_TOKEN', 'a removed user is refused at once');
});

function getJson(url: string, headers: Record<string, string>): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Opens an event stream and records the ids of its events and everything it carried. */
function openStream(url: string, headers: Record<string, string>): Promise<{ res: IncomingMessage; ids: string[]; raw: () => string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { ...headers, accept: 'text/event-stream' } }, (res) => {
      const ids: string[] = [];
      let all = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        all += chunk;
        for (const m of chunk.matchAll(/^id: (.+)$/gm)) if (m[1] !== undefined) ids.push(m[1]);
      });
      resolve({ res, ids, raw: () => all });
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('roles api: B2B queries for ncb-admin and officer only; enquiry notices for ncb-admin only', async (t) => {
  const { app, auth } = await startWithRoles(t);
  const ask = (role: Role) => app.inject({ method: 'POST', url: '/v1/b2b/DE/vehicles', headers: auth(role), payload: { key: 'WVW-1' } });
  const enquiries = (role: Role) => app.inject({ method: 'GET', url: '/v1/b2b/enquiries', headers: auth(role) });
  for (const role of ['ncb-admin', 'officer'] as const) t.equal((await ask(role)).statusCode, 200, `${role} may query`);
  for (const role of ['border', 'customs'] as const) {
    const refused = await ask(role);
    t.same([refused.statusCode, refused.json<ErrorAnswer>().code], [403, 'LOCAL_ROLE_FORBIDDEN'], `${role} may not query B2B`);
  }
  t.equal((await enquiries('ncb-admin')).statusCode, 200);
  for (const role of ['officer', 'border', 'customs'] as const) {
    const refused = await enquiries(role);
    t.same([refused.statusCode, refused.json<ErrorAnswer>().code], [403, 'LOCAL_ROLE_FORBIDDEN'], `${role} may not read who enquired`);
  }
});
