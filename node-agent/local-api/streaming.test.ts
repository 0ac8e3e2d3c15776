import t from 'tap';
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import type { InboxItem } from '../relay/types.js';
import { startLocalApiForTest } from '../../test/helpers/fake-relay.js';
import { waitFor } from '../../test/helpers/wait.js';

/** One GET on a real loopback socket; `req` lets the test hang up early. */
function get(url: string, headers: Record<string, string>): { req: ClientRequest; response: Promise<IncomingMessage> } {
  let req!: ClientRequest;
  const response = new Promise<IncomingMessage>((resolve, reject) => {
    req = request(url, { headers }, resolve);
    req.on('error', reject);
    req.end();
  });
  return { req, response };
}

async function readJson(res: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

/** Collects server-sent events (and comments) from a stream as they come. */
function collectEvents(res: IncomingMessage): { events: InboxItem[]; ids: string[]; comments: string[] } {
  const seen = { events: [] as InboxItem[], ids: [] as string[], comments: [] as string[] };
  let buffer = '';
  res.setEncoding('utf8');
  res.on('data', (chunk: string) => {
    buffer += chunk;
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of block.split('\n')) {
        if (line.startsWith('data: ')) seen.events.push(JSON.parse(line.slice(6)) as InboxItem);
        else if (line.startsWith('id: ')) seen.ids.push(line.slice(4));
        else if (line.startsWith(':')) seen.comments.push(line);
      }
    }
  });
  return seen;
}

t.test('local api: a long poll returns as soon as an item arrives', async (t) => {
  const api = await startLocalApiForTest(t, { listen: true });
  const started = Date.now();
  const poll = get(`${api.url}/v1/inbox?wait=30`, api.auth);
  await waitFor('the poll to wait on the relay', () => api.relay.waiters.size === 1);
  const item = api.relay.deliver('DE', { subject: 'arrived' });
  const res = await poll.response;
  t.equal(res.statusCode, 200);
  const body = (await readJson(res)) as { items: InboxItem[] };
  t.same(body.items.map((i) => i.id), [item.id]);
  t.ok(Date.now() - started < 10_000, 'long before the 30 s wait');
  t.equal(api.relay.waiters.size, 0, 'no waiter left behind');
});

t.test('local api: a long poll with nothing arriving answers an empty list after the wait', async (t) => {
  const api = await startLocalApiForTest(t, { listen: true });
  const started = Date.now();
  const res = await get(`${api.url}/v1/inbox?wait=0.4`, api.auth).response;
  const elapsed = Date.now() - started;
  t.equal(res.statusCode, 200);
  t.same(await readJson(res), { items: [] });
  t.ok(elapsed >= 350, `waited the 0.4 s (${elapsed} ms)`);
});

t.test('local api: a long poll with items waiting answers at once', async (t) => {
  const api = await startLocalApiForTest(t, { listen: true });
  api.relay.deliver('DE');
  const started = Date.now();
  const res = await get(`${api.url}/v1/inbox?wait=30`, api.auth).response;
  t.equal(((await readJson(res)) as { items: unknown[] }).items.length, 1);
  t.ok(Date.now() - started < 10_000);
  t.equal(api.relay.waiters.size, 0, 'never waited');
});

t.test('local api: a long poll stops waiting when its client hangs up', async (t) => {
  const api = await startLocalApiForTest(t, { listen: true });
  const poll = get(`${api.url}/v1/inbox?wait=30`, api.auth);
  poll.response.catch(() => undefined);
  await waitFor('the poll to wait on the relay', () => api.relay.waiters.size === 1);
  poll.req.destroy();
  await waitFor('the wait to be aborted', () => api.relay.waiters.size === 0);
  t.pass('the relay wait was aborted');
  const health = await get(`${api.url}/healthz`, {}).response;
  t.equal(health.statusCode, 200, 'the server is fine afterwards');
  health.resume();
});

t.test('local api: server-sent events deliver the unacked items, then new ones, and unsubscribe on close', async (t) => {
  const api = await startLocalApiForTest(t, { listen: true, sseKeepAliveMs: 50 });
  const first = api.relay.deliver('DE', { subject: 'one' });
  const acked = api.relay.deliver('IT', { subject: 'acked before' });
  await api.relay.ack(acked.id);
  const second = api.relay.deliver('ES', { subject: 'two' });

  const stream = get(`${api.url}/v1/inbox`, { ...api.auth, accept: 'text/event-stream' });
  const res = await stream.response;
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^text\/event-stream/);
  t.equal(res.headers['cache-control'], 'no-store');
  const seen = collectEvents(res);
  await waitFor('the backlog', () => seen.events.length === 2);
  t.same(seen.events.map((e) => e.envelope.subject), ['one', 'two'], 'unacked items in arrival order, the acked one left out');
  t.same(seen.ids, [first.id, second.id], 'each event carries the item id');
  t.equal(api.relay.listeners.size, 1, 'subscribed');

  const third = api.relay.deliver('PT', { subject: 'three', body: 'line one\nline two' });
  await waitFor('the new item', () => seen.events.length === 3);
  t.same(seen.events[2], JSON.parse(JSON.stringify(third)), 'the whole item, a multi-line body in one data line');

  await waitFor('a keep-alive comment', () => seen.comments.length >= 1);
  t.equal(seen.comments[0], ': keep-alive');

  stream.req.destroy();
  await waitFor('the stream to unsubscribe', () => api.relay.listeners.size === 0);
  t.pass('unsubscribed when the client went away');
});

t.test('local api: an event stream needs a token like the rest', async (t) => {
  const api = await startLocalApiForTest(t, { listen: true });
  const res = await get(`${api.url}/v1/inbox`, { accept: 'text/event-stream' }).response;
  t.equal(res.statusCode, 401);
  t.match(await readJson(res), { code: 'LOCAL_AUTH_REQUIRED' });
  t.equal(api.relay.listeners.size, 0);
});

t.test('local api: close ends open event streams and long polls instead of waiting for their clients', async (t) => {
  const api = await startLocalApiForTest(t, { listen: true });
  const stream = get(`${api.url}/v1/inbox`, { ...api.auth, accept: 'text/event-stream' });
  const res = await stream.response;
  const ended = new Promise<void>((resolve) => res.on('close', () => resolve()));
  res.resume();
  const poll = get(`${api.url}/v1/inbox?wait=60`, api.auth);
  const pollDone = poll.response.then(
    () => 'answered',
    () => 'dropped',
  );
  await waitFor('stream and poll to be open', () => api.relay.listeners.size === 1 && api.relay.waiters.size === 1);
  const started = Date.now();
  await api.app.close();
  t.ok(Date.now() - started < 5000, 'close did not wait for the clients');
  await ended;
  t.ok(['answered', 'dropped'].includes(await pollDone), 'the poll ended');
  await waitFor('everything released', () => api.relay.listeners.size === 0 && api.relay.waiters.size === 0);
  t.pass('listener and waiter released');
});

t.test('local api: a client that does not read its stream is cut off, not buffered without end', async (t) => {
  const { streamInbox } = await import('./sse.js');
  const { FakeRelay } = await import('../../test/helpers/fake-relay.js');
  const { pino } = await import('pino');
  const { PassThrough } = await import('node:stream');
  const relay = new FakeRelay();
  // A response stand-in whose socket never drains.
  const sink = new PassThrough({ highWaterMark: 16 });
  let destroyed = false;
  const res = Object.assign(sink, {
    writeHead: () => res,
    flushHeaders: () => undefined,
    destroy: () => {
      destroyed = true;
      sink.emit('close');
      return res;
    },
  });
  streamInbox(res as unknown as Parameters<typeof streamInbox>[0], { relay, log: pino({ level: 'silent' }), maxQueued: 5, keepAliveMs: 60_000 });
  for (let i = 0; i < 10 && !destroyed; i++) relay.deliver('DE');
  t.ok(destroyed, 'the stream was closed once too many items queued');
  t.equal(relay.listeners.size, 0, 'and unsubscribed');
});
