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

t.test('status: receipts per recipient move forward only and survive a restart', async (t) => {
  const dir = await tempDir(t);
  const store = await StatusStore.open({ dir, log: silent });
  const a = envelope({ to: ['DE', 'IT'] });
  const all = envelope({ to: '*' });
  await store.recordQueued(a, new Date().toISOString());
  await store.recordQueued(all, new Date().toISOString());
  await store.markSubmitted(a.id, new Date().toISOString());
  const [t0, t1, t2, t3] = [0, 1, 2, 3].map((s) => new Date(Date.parse('2030-01-01T00:00:00Z') + s * 1000).toISOString()) as [string, string, string, string];
  t.match(await store.markReceipt(a.id, 'DE', 'delivered', t0), { state: 'submitted', recipients: { DE: { state: 'delivered', at: t0 } } });
  t.match(await store.markReceipt(a.id, 'DE', 'read', t1), { recipients: { DE: { state: 'read', at: t1 } } });
  t.match(await store.markReceipt(a.id, 'DE', 'delivered', t2), { recipients: { DE: { state: 'read', at: t1 } } }, 'a late delivered does not undo read');
  t.match(await store.markReceipt(a.id, 'DE', 'read', t2), { recipients: { DE: { state: 'read', at: t1 } } }, 'a repeated read keeps the first time');
  t.same((await store.markReceipt(a.id, 'IT', 'rejected', t2, 'CMS_UNDECRYPTABLE'))?.recipients, {
    DE: { state: 'read', at: t1 },
    IT: { state: 'rejected', at: t2, reason: 'CMS_UNDECRYPTABLE' },
  });
  t.match(await store.markReceipt(a.id, 'IT', 'deleted', t3), { recipients: { IT: { state: 'deleted', at: t3 } } });
  t.same(Object.keys(store.get(a.id)?.recipients ?? {}).sort(), ['DE', 'IT']);
  t.match(await store.markReceipt(a.id, 'ES', 'delivered', t3), { id: a.id }, 'a country the message did not go to…');
  t.equal(store.get(a.id)?.recipients?.['ES'], undefined, '…is not recorded');
  t.match(await store.markReceipt(all.id, 'ES', 'delivered', t3), { recipients: { ES: { state: 'delivered' } } }, 'any country for a broadcast');
  t.equal(await store.markReceipt(newUlid(), 'DE', 'delivered', t3), undefined, 'unknown id');
  const reopened = await StatusStore.open({ dir, log: silent });
  t.same(reopened.get(a.id)?.recipients, { DE: { state: 'read', at: t1 }, IT: { state: 'deleted', at: t3 } });
  t.equal(reopened.get(a.id)?.state, 'submitted');
  t.same(reopened.get(all.id)?.recipients, { ES: { state: 'delivered', at: t3 } });
  t.match(await reopened.markReceipt(a.id, 'DE', 'delivered', t3), { recipients: { DE: { state: 'read' } } }, 'no going back after a restart either');
});

t.test('status: racing receipts for one recipient end at the furthest state', async (t) => {
  const dir = await tempDir(t);
  const store = await StatusStore.open({ dir, log: silent });
  const a = envelope();
  await store.recordQueued(a, new Date().toISOString());
  const now = new Date().toISOString();
  await Promise.all([store.markReceipt(a.id, 'DE', 'read', now), store.markReceipt(a.id, 'DE', 'delivered', now), store.markSubmitted(a.id, now)]);
  t.match(store.get(a.id), { state: 'submitted', recipients: { DE: { state: 'read' } } });
  t.match((await StatusStore.open({ dir, log: silent })).get(a.id), { state: 'submitted', recipients: { DE: { state: 'read' } } });
});
