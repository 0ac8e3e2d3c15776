// The status store: transitions, persistence across restarts, retention, races between the
// publish ack and the router's rejection event.
import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { newUlid, type Envelope } from '../../protocol/envelope.js';
import { tempDir } from '../../test/helpers/tmpdir.js';
import { STATUS_FILE, StatusStore } from './status.js';

const silent = pino({ level: 'silent' });
const DAY = 24 * 3600 * 1000;

function envelope(over: Partial<Envelope> = {}): Envelope {
  return { v: 1, id: newUlid(), kind: 'message', from: 'FR', to: ['DE'], priority: 'routine', created: new Date().toISOString(), body: 'x', ...over };
}

t.test('status: queued → submitted → rejected, kept across a restart', async (t) => {
  const dir = await tempDir(t);
  const store = await StatusStore.open({ dir, log: silent });
  const a = envelope();
  const b = envelope({ to: '*' });
  const [t0, t1, t2] = [0, 1, 2].map((s) => new Date(Date.now() + s * 1000).toISOString());
  t.match(await store.recordQueued(a, t0 ?? ''), { id: a.id, state: 'queued', to: ['DE'], acceptedAt: t0 });
  await store.recordQueued(b, new Date().toISOString());
  t.match(await store.markSubmitted(a.id, t1 ?? ''), { state: 'submitted', submittedAt: t1 });
  t.match(await store.markRejected(a.id, { code: 'ROUTER_UNKNOWN_RECIPIENT', problems: ['to[0]: …'] }, t2 ?? ''), {
    state: 'rejected',
    submittedAt: t1,
    rejection: { code: 'ROUTER_UNKNOWN_RECIPIENT', problems: ['to[0]: …'] },
  });
  t.equal(await store.markSubmitted(newUlid(), new Date().toISOString()), undefined, 'unknown id');
  t.equal(await store.markRejected(newUlid(), { code: 'X', problems: [] }, new Date().toISOString()), undefined, 'unknown id');
  const copy = store.get(b.id);
  if (copy !== undefined) copy.state = 'rejected';
  t.equal(store.get(b.id)?.state, 'queued', 'callers get copies');
  await appendFile(join(dir, STATUS_FILE), '{"status":{"id":"torn'); // a crash mid-append
  const reopened = await StatusStore.open({ dir, log: silent });
  t.match(reopened.get(a.id), { state: 'rejected', rejection: { code: 'ROUTER_UNKNOWN_RECIPIENT' } });
  t.match(reopened.get(b.id), { state: 'queued', to: '*' });
  t.same(reopened.queuedIds(), [b.id]);
});

t.test('status: a rejection that overtakes the publish ack stays rejected', async (t) => {
  const dir = await tempDir(t);
  const store = await StatusStore.open({ dir, log: silent });
  const a = envelope();
  await store.recordQueued(a, new Date().toISOString());
  const now = new Date().toISOString();
  await Promise.all([store.markRejected(a.id, { code: 'ROUTER_EXPIRED', problems: [] }, now), store.markSubmitted(a.id, now)]);
  t.match(store.get(a.id), { state: 'rejected', submittedAt: now, rejectedAt: now });
  t.match(await store.markRejected(a.id, { code: 'OTHER', problems: [] }, now), { rejection: { code: 'ROUTER_EXPIRED' } }, 'the first rejection stands');
  t.match(await store.markSubmitted(a.id, new Date(0).toISOString()), { submittedAt: now }, 'the first submission time stands');
});

t.test('status: finished statuses expire, queued ones never; many updates compact the journal', async (t) => {
  const dir = await tempDir(t);
  let now = Date.now();
  const opts = { dir, log: silent, now: () => now, retentionMs: DAY };
  const store = await StatusStore.open(opts);
  const [done, waiting] = [envelope(), envelope()];
  await store.recordQueued(done, new Date(now).toISOString());
  await store.recordQueued(waiting, new Date(now).toISOString());
  await store.markSubmitted(done.id, new Date(now).toISOString());
  now += 2 * DAY;
  const later = await StatusStore.open(opts);
  t.equal(later.get(done.id), undefined);
  t.equal(later.get(waiting.id)?.state, 'queued');
  for (let i = 0; i < 600; i++) {
    const env = envelope();
    await later.recordQueued(env, new Date(now).toISOString());
    await later.markSubmitted(env.id, new Date(now).toISOString());
  }
  const reopened = await StatusStore.open(opts);
  t.equal(reopened.queuedIds().length, 1);
});
