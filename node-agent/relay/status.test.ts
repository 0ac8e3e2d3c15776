// The status store: transitions, persistence across restarts, retention, races between the
// publish ack and the router's rejection event.
import { appendFile, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
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

t.test('status: a receipt appends a small delta, not the whole status; 195 concurrent receipts share fdatasyncs', async (t) => {
  const dir = await tempDir(t);
  const store = await StatusStore.open({ dir, log: silent });
  const all = envelope({ to: '*' });
  await store.recordQueued(all, new Date().toISOString());
  await store.markSubmitted(all.id, new Date().toISOString());
  const countries: string[] = [];
  for (let i = 0; countries.length < 195; i++) countries.push(String.fromCharCode(65 + Math.floor(i / 26), 65 + (i % 26)));
  const at = new Date().toISOString();
  const before = store.ioStats;
  const sizeBefore = (await stat(join(dir, STATUS_FILE))).size;
  const results = await Promise.all(countries.map((cc) => store.markReceipt(all.id, cc, 'delivered', at)));
  const io = store.ioStats;
  t.equal(io.records - before.records, 195, 'one record per receipt');
  t.ok(io.syncs - before.syncs <= 3, `coalesced: ${io.syncs - before.syncs} fdatasyncs for 195 receipts`);
  const grown = (await stat(join(dir, STATUS_FILE))).size - sizeBefore;
  t.ok(grown < 195 * 150, `each receipt is a short line (${grown} bytes for 195)`);
  t.equal(Object.keys(results.at(-1)?.recipients ?? {}).length, 195, 'the last answer shows every receipt');
  for (const [i, r] of results.entries()) t.equal(r?.recipients?.[countries[i] ?? '']?.state, 'delivered');
  const last = (await readFile(join(dir, STATUS_FILE), 'utf8')).trimEnd().split('\n').at(-1) ?? '';
  t.same(JSON.parse(last), { op: 'receipt', id: all.id, from: countries[194], state: 'delivered', at });
  const reopened = await StatusStore.open({ dir, log: silent });
  t.same(reopened.get(all.id), store.get(all.id), 'replaying the deltas gives the same status');
  t.equal(reopened.get(all.id)?.state, 'submitted');
});

t.test('status: a write that fails leaves the durable status as it was, and a retry writes it', async (t) => {
  const dir = await tempDir(t);
  const store = await StatusStore.open({ dir, log: silent });
  const a = envelope();
  await store.recordQueued(a, new Date().toISOString());
  // Make the journal unwritable: replace it by a directory (the next append cannot open it).
  await rm(join(dir, STATUS_FILE));
  await store.close();
  await mkdir(join(dir, STATUS_FILE));
  await t.rejects(store.markSubmitted(a.id, new Date().toISOString()), { code: 'RELAY_STORE_FAILED' });
  t.equal(store.get(a.id)?.state, 'queued', 'not submitted in memory');
  await rm(join(dir, STATUS_FILE), { recursive: true });
  t.match(await store.markSubmitted(a.id, new Date().toISOString()), { state: 'submitted' }, 'the retry is not skipped as "already submitted"');
});

t.test('status: damaged records are skipped and reported; the rest replays', async (t) => {
  const dir = await tempDir(t);
  const store = await StatusStore.open({ dir, log: silent });
  const [a, b] = [envelope({ to: ['DE', 'IT'] }), envelope()];
  const at = new Date().toISOString();
  await store.recordQueued(a, at);
  await store.recordQueued(b, at);
  await store.markSubmitted(a.id, at);
  await store.markReceipt(a.id, 'DE', 'read', at);
  await store.markSubmitted(b.id, at);
  const lines = (await readFile(join(dir, STATUS_FILE), 'utf8')).trimEnd().split('\n');
  // Line 3 is a's submission: damaged, a looks queued again; b and a's receipt are intact.
  t.match(lines[2], /"op":"submitted"/);
  lines[2] = '{"op":"submitted","id":';
  await writeFile(join(dir, STATUS_FILE), `${lines.join('\n')}\n`);
  const damaged: number[] = [];
  const reopened = await StatusStore.open({ dir, log: silent, stats: { storeDamaged: (store, n) => void (store === 'status' && damaged.push(n)) } });
  t.same(damaged, [1]);
  t.match(reopened.get(a.id), { state: 'queued', recipients: { DE: { state: 'read' } } }, 'one step behind, receipts kept');
  t.equal(reopened.get(b.id)?.state, 'submitted');
  t.match(await reopened.markSubmitted(a.id, at), { state: 'submitted' }, 'the next event brings it up to date');
});
