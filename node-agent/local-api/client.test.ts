import t from 'tap';
import { closedPort } from '../../test/helpers/ports.js';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startLocalApiForTest } from '../../test/helpers/fake-relay.js';
import { LocalApiClient } from './client.js';

t.test('local api client: send, status, inbox, ack, summary and readiness round-trip', async (t) => {
  let ready = true;
  const api = await startLocalApiForTest(t, { listen: true, readiness: () => ({ broker: ready }) });
  const client = new LocalApiClient({ baseUrl: api.url, token: api.token });
  const sent = await client.send({ kind: 'message', to: ['DE'], body: 'hello' });
  t.equal(sent.status, 'queued');
  t.match(await client.status(sent.id), { id: sent.id, state: 'queued', to: ['DE'] });
  const item = api.relay.deliver('DE');
  t.same((await client.inbox({ limit: 5 })).map((i) => i.id), [item.id]);
  t.match(await client.ack(item.id), { id: item.id, ackedAt: String });
  t.same(await client.inbox({ wait: 0.1 }), [], 'long poll through the client');
  t.match(await client.summary(), { country: 'FR', outboxDepth: 1, inboxUnacked: 0 });
  t.same(await client.readiness(), { ready: true, checks: { broker: true } });
  ready = false;
  t.same(await client.readiness(), { ready: false, checks: { broker: false } }, 'a 503 from /readyz is an answer');
});

t.test('local api client: error answers keep the server code and problems; transport failures are AGENT_UNREACHABLE', async (t) => {
  const api = await startLocalApiForTest(t, { listen: true });
  const client = new LocalApiClient({ baseUrl: api.url, token: api.token });
  await t.rejects(client.send({ kind: 'message', to: ['ZZ'], body: 'x' }), { code: 'LOCAL_UNKNOWN_RECIPIENT', problems: [/^body\.to\[0\]: /] });
  await t.rejects(client.status('01J0000000000000000000000A'), { code: 'LOCAL_UNKNOWN_MESSAGE' });
  await t.rejects(new LocalApiClient({ baseUrl: api.url, token: 'wrong' }).summary(), { code: 'LOCAL_AUTH_BAD_TOKEN' });
  await t.rejects(new LocalApiClient({ baseUrl: `http://127.0.0.1:${await closedPort()}`, token: api.token }).summary(), { code: 'AGENT_UNREACHABLE', message: /ECONNREFUSED/ });
  t.throws(() => new LocalApiClient({ baseUrl: 'https://127.0.0.1:1', token: 'x' }), { code: 'AGENT_CLI_BAD_FLAG' });
  t.throws(() => new LocalApiClient({ baseUrl: 'not a url', token: 'x' }), { code: 'AGENT_CLI_BAD_FLAG' });
});

t.test('local api client: an answer that is not JSON, or a server that hangs, is reported as such', async (t) => {
  let hang = false;
  const server = createServer((req, res) => {
    if (hang) return;
    res.writeHead(200, { 'content-type': 'text/html' }).end('<html>proxy</html>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  await t.rejects(new LocalApiClient({ baseUrl: url, token: 'x' }).summary(), { code: 'AGENT_BAD_ANSWER' });
  await t.rejects(new LocalApiClient({ baseUrl: url, token: 'x' }).inbox(), { code: 'AGENT_BAD_ANSWER' });
  hang = true;
  await t.rejects(new LocalApiClient({ baseUrl: url, token: 'x', timeoutMs: 200 }).summary(), { code: 'AGENT_UNREACHABLE', message: /no answer within 200 ms/ });
});
