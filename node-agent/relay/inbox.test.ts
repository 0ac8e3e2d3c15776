// The inbox on a real file system: put is durable before it resolves, dedup by id survives acks,
// restarts and compaction, arrival order is kept, torn tails are repaired and damaged records skipped.
import { appendFile, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { newUlid, type Envelope } from '../../protocol/envelope.js';
import { tempDir } from '../../test/helpers/tmpdir.js';
import { INBOX_FILE, Inbox } from './inbox.js';
import type { InboxItem } from './types.js';

const silent = pino({ level: 'silent' });
const DAY = 24 * 3600 * 1000;

function envelope(over: Partial<Envelope> = {}): Envelope {
  return { v: 1, id: newUlid(), kind: 'message', from: 'DE', to: ['FR'], priority: 'routine', created: new Date().toISOString(), body: 'hallo', ...over };
}

t.test('inbox: put is stored once, duplicates (also after ack and across restarts) are recognised', async (t) => {
  const dir = await tempDir(t);
  const inbox = await Inbox.open({ dir, log: silent });
  const [a, b, c] = [envelope({ body: 'a' }), envelope({ body: 'b' }), envelope({ body: 'c' })];
  // Arrival order, not id order: c arrives first.
  t.equal(await inbox.put(c), 'stored');
  t.equal(await inbox.put(a), 'stored');
  t.equal(await inbox.put(b), 'stored');
  t.equal(await inbox.put(a), 'duplicate');
  t.same(inbox.list().map((i) => i.envelope.body), ['c', 'a', 'b']);
  const acked = await inbox.ack(a.id);
  t.type(acked.ackedAt, 'string');
  t.equal((await inbox.ack(a.id)).ackedAt, acked.ackedAt, 'ack is idempotent');
  t.equal(await inbox.put(a), 'duplicate', 'an acked message delivered again is still a duplicate');
  t.same(inbox.list().map((i) => i.envelope.body), ['c', 'b']);
  t.same(inbox.list({ includeAcked: true, limit: 2 }).map((i) => i.envelope.body), ['c', 'a']);
  t.same(
    inbox.list({ includeAcked: true, limit: 1, filter: (i) => i.envelope.body !== 'c' }).map((i) => i.envelope.body),
    ['a'],
    'the limit counts only the items the filter keeps',
  );
  const copy = inbox.list({ filter: (i) => i.envelope.body === 'b' })[0];
  if (copy) copy.envelope = envelope({ body: 'changed' });
  t.equal(inbox.get(b.id)?.envelope.body, 'b', 'a listed item is a copy');
  t.equal(inbox.get(a.id)?.ackedAt, acked.ackedAt, 'get finds an acked item by id');
  await t.rejects(inbox.ack(newUlid()), { code: 'RELAY_UNKNOWN_MESSAGE' });

  // "Crash": drop the object; everything comes back, duplicates still recognised.
  const reopened = await Inbox.open({ dir, log: silent });
  t.same(reopened.list({ includeAcked: true }).map((i) => [i.envelope.body, i.ackedAt !== undefined]), [['c', false], ['a', true], ['b', false]]);
  for (const env of [a, b, c]) t.equal(await reopened.put(env), 'duplicate', `${env.body} is a duplicate after restart`);
  t.equal(reopened.pendingCount, 2);
});

t.test('inbox: a concurrent redelivery waits for the first write before saying duplicate', async (t) => {
  const dir = await tempDir(t);
  const inbox = await Inbox.open({ dir, log: silent });
  const env = envelope();
  const order: string[] = [];
  const first = inbox.put(env).then((r) => order.push(`first:${r}`));
  const second = inbox.put(env).then((r) => order.push(`second:${r}`));
  await Promise.all([first, second]);
  t.same(order, ['first:stored', 'second:duplicate']);
  t.equal((await readFile(join(dir, INBOX_FILE), 'utf8')).split('\n').filter((l) => l.includes('"put"')).length, 1, 'one record on disk');
});

t.test('inbox: notifications for long poll and listeners; close releases waiters and refuses writes', async (t) => {
  const dir = await tempDir(t);
  const inbox = await Inbox.open({ dir, log: silent });
  const seen: InboxItem[] = [];
  const off = inbox.onArrival((item) => seen.push(item));
  inbox.onArrival(() => {
    throw new Error('a broken listener does not stop the others');
  });
  const waiting = inbox.waitForArrival(10_000);
  const env = envelope();
  await inbox.put(env);
  await waiting;
  await inbox.put(env); // duplicates are not announced
  off();
  await inbox.put(envelope());
  t.same(seen.map((i) => i.id), [env.id]);
  const start = Date.now();
  await inbox.waitForArrival(30);
  t.ok(Date.now() - start >= 25, 'times out without an arrival');
  const aborted = new AbortController();
  const abortedWait = inbox.waitForArrival(10_000, aborted.signal);
  aborted.abort();
  await abortedWait;
  const released = inbox.waitForArrival(10_000);
  inbox.close();
  await released;
  await inbox.waitForArrival(10_000); // closed: returns at once
  await t.rejects(inbox.put(envelope()), { code: 'RELAY_STOPPED' });
  await t.rejects(inbox.ack(env.id), { code: 'RELAY_STOPPED' });
});

t.test('inbox: compaction forgets old acked items but keeps their ids for dedup, then forgets those too', async (t) => {
  const dir = await tempDir(t);
  let now = Date.now();
  const opts = { dir, log: silent, now: () => now, ackedRetentionMs: DAY, dedupRetentionMs: 10 * DAY };
  const inbox = await Inbox.open(opts);
  const [old, pending] = [envelope({ body: 'old' }), envelope({ body: 'pending' })];
  await inbox.put(old);
  await inbox.put(pending);
  await inbox.ack(old.id);
  now += 2 * DAY;
  const later = await Inbox.open(opts);
  t.same(later.list({ includeAcked: true }).map((i) => i.envelope.body), ['pending'], 'the old acked item is gone');
  t.notOk((await readFile(join(dir, INBOX_FILE), 'utf8')).includes('"old"'), 'its body is no longer on disk');
  t.equal(await later.put(old), 'duplicate', 'but its id still drops a redelivery');
  await t.rejects(later.ack(old.id), { code: 'RELAY_UNKNOWN_MESSAGE' });
  now += 10 * DAY;
  const muchLater = await Inbox.open(opts);
  t.notOk(muchLater.has(old.id), 'the id is forgotten after the dedup retention');
  t.ok(muchLater.has(pending.id), 'an unacked item is never forgotten');
});

t.test('inbox: a long-running inbox compacts on its interval without losing anything', async (t) => {
  const dir = await tempDir(t);
  let now = Date.now();
  const opts = { dir, log: silent, now: () => now, ackedRetentionMs: DAY, compactIntervalMs: 3600_000 };
  const inbox = await Inbox.open(opts);
  const envs = Array.from({ length: 300 }, (_, i) => envelope({ body: String(i) }));
  for (const env of envs) await inbox.put(env);
  for (const env of envs.slice(0, 200)) await inbox.ack(env.id);
  const bodiesOnDisk = async (): Promise<number> => (await readFile(join(dir, INBOX_FILE), 'utf8')).split('\n').filter((l) => l.includes('"op":"put"')).length;
  t.equal(await bodiesOnDisk(), 300);
  now += 2 * DAY;
  await inbox.put(envelope({ body: 'late' })); // the interval has passed: this compacts
  t.equal(await bodiesOnDisk(), 101, 'expired acked bodies left the file while running');
  t.equal(await inbox.put(envs[0] ?? envelope()), 'duplicate', 'their ids still drop redeliveries');
  const reopened = await Inbox.open(opts);
  t.same(reopened.list().map((i) => i.envelope.body), [...envs.slice(200).map((e) => e.body), 'late']);
});

t.test('inbox: a torn last line is cut off with a log line; damaged records are skipped, reported and the rest kept', async (t) => {
  const dir = await tempDir(t);
  const inbox = await Inbox.open({ dir, log: silent });
  const [a, b, c] = [envelope(), envelope(), envelope()];
  for (const env of [a, b, c]) await inbox.put(env);
  await inbox.ack(a.id);
  await inbox.ack(b.id);
  await appendFile(join(dir, INBOX_FILE), '{"op":"put","id":"01J');
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const reopened = await Inbox.open({ dir, log });
  t.same(reopened.list({ includeAcked: true }).map((i) => i.id), [a.id, b.id, c.id]);
  t.match(lines, [{ level: 40, msg: 'journal repaired' }]);

  // Damage two lines: the put of c (lost for good) and the ack of a (a shows as unacked again).
  const records = (await readFile(join(dir, INBOX_FILE), 'utf8')).split('\n').filter((l) => l !== '');
  const damagedText = records.map((l) => {
    const r = JSON.parse(l) as { op: string; id: string };
    if (r.op === 'put' && r.id === c.id) return `${l.slice(0, 30)}\u0000\u0000`;
    if (r.op === 'ack' && r.id === a.id) return l.replace('"op":"ack"', '"op":"akc"');
    return l;
  });
  await writeFile(join(dir, INBOX_FILE), `${damagedText.join('\n')}\n`);
  const damaged: number[] = [];
  const after = await Inbox.open({ dir, log: silent, stats: { storeDamaged: (store, n) => void (store === 'inbox' && damaged.push(n)) } });
  t.same(damaged, [2], 'two damaged records counted');
  t.same(after.list().map((i) => i.id), [a.id], 'a lost ack: a is unacked again (a duplicate for the app)');
  t.equal(after.get(b.id)?.ackedAt !== undefined, true, 'b is intact');
  t.equal(after.get(c.id), undefined, 'a lost put: c is gone from this agent');
  t.equal((await readdir(dir)).filter((n) => n.startsWith(`${INBOX_FILE}.damaged-`)).length, 1, 'the damaged lines were copied aside');
  await after.put(envelope());
  t.equal((await Inbox.open({ dir, log: silent, stats: { storeDamaged: () => t.fail('reported twice') } })).list().length, 2, 'compaction at open dropped the damage');
});

t.test('inbox: purge on the originator\'s order erases the content from the journal and keeps the id as seen', async (t) => {
  const dir = await tempDir(t);
  const inbox = await Inbox.open({ dir, log: silent });
  const secret = envelope({ body: 'secret-body-to-erase' });
  const keep = envelope({ body: 'kept-body' });
  await inbox.put(secret, 'secret-plaintext-to-erase');
  await inbox.put(keep);
  await inbox.ack(secret.id); // an acked item is purged too
  const journal = (): Promise<string> => readFile(join(dir, INBOX_FILE), 'utf8');
  t.ok((await journal()).includes('secret-body-to-erase'), 'on disk before');

  t.equal(await inbox.purge(secret.id, 'DE'), 'purged');
  t.notOk((await journal()).includes('secret-body-to-erase'), 'the body is no longer in the journal file');
  t.notOk((await journal()).includes('secret-plaintext-to-erase'), 'nor the decrypted text');
  t.ok((await journal()).includes('kept-body'), 'other items are kept');
  t.equal(inbox.get(secret.id), undefined);
  t.same(inbox.list({ includeAcked: true }).map((i) => i.id), [keep.id]);
  t.ok(inbox.has(secret.id), 'the id is still known');
  await t.rejects(inbox.ack(secret.id), { code: 'RELAY_UNKNOWN_MESSAGE' });
  t.equal(await inbox.put(secret), 'duplicate', 'a late redelivery is dropped');
  t.equal(await inbox.purge(secret.id, 'DE'), 'absent', 'a second purge finds nothing');
  t.notOk((await journal()).includes('secret-body-to-erase'), 'the duplicate did not write the body back');

  const reopened = await Inbox.open({ dir, log: silent });
  t.equal(reopened.get(secret.id), undefined, 'still gone after reopen');
  t.same(reopened.list({ includeAcked: true }).map((i) => i.id), [keep.id]);
  t.equal(await reopened.put(secret), 'duplicate', 'still a duplicate after reopen');
  t.notOk((await journal()).includes('secret-body-to-erase'));
});

t.test('inbox: purge by another country than the originator changes nothing', async (t) => {
  const dir = await tempDir(t);
  const inbox = await Inbox.open({ dir, log: silent });
  const env = envelope({ from: 'DE', body: 'not yours to delete' });
  await inbox.put(env, 'plain');
  const before = await readFile(join(dir, INBOX_FILE), 'utf8');
  t.equal(await inbox.purge(env.id, 'NL'), 'not-originator');
  t.equal(await readFile(join(dir, INBOX_FILE), 'utf8'), before, 'the journal is untouched');
  t.same(inbox.get(env.id), { id: env.id, envelope: env, receivedAt: inbox.get(env.id)?.receivedAt, plaintext: 'plain' });
  t.same(inbox.list().map((i) => i.id), [env.id]);
  const reopened = await Inbox.open({ dir, log: silent });
  t.same(reopened.list().map((i) => i.envelope.body), ['not yours to delete']);
});

t.test('inbox: purge of a message never received leaves a tombstone, so the message arriving later is dropped', async (t) => {
  const dir = await tempDir(t);
  const inbox = await Inbox.open({ dir, log: silent });
  const late = envelope({ body: 'arrives after its deletion' });
  t.notOk(inbox.has(late.id));
  t.equal(await inbox.purge(late.id, 'DE'), 'absent');
  t.ok(inbox.has(late.id));
  t.equal(await inbox.purge(late.id, 'DE'), 'absent', 'idempotent');
  t.equal((await readFile(join(dir, INBOX_FILE), 'utf8')).split('\n').filter((l) => l.includes(late.id)).length, 1, 'one tombstone on disk');
  t.equal(await inbox.put(late), 'duplicate');
  t.same(inbox.list(), []);
  const reopened = await Inbox.open({ dir, log: silent });
  t.equal(await reopened.put(late), 'duplicate', 'the tombstone survives a restart');
  t.same(reopened.list(), []);
  t.notOk((await readFile(join(dir, INBOX_FILE), 'utf8')).includes('arrives after its deletion'));
});

t.test('inbox: a purge waits for a put of the same message still being written', async (t) => {
  const dir = await tempDir(t);
  const inbox = await Inbox.open({ dir, log: silent });
  const env = envelope({ body: 'racing' });
  const [put, purge] = await Promise.all([inbox.put(env), inbox.purge(env.id, 'DE')]);
  t.same([put, purge], ['stored', 'purged']);
  t.equal(inbox.get(env.id), undefined);
  t.notOk((await readFile(join(dir, INBOX_FILE), 'utf8')).includes('racing'));
});

t.test('inbox: the decrypted plaintext given to put is kept with the item, across acks, compaction and restarts', async (t) => {
  const dir = await tempDir(t);
  const inbox = await Inbox.open({ dir, log: silent });
  const encrypted = envelope({ body: undefined, handling: 'restricted', encrypted: 'TUlJQg==' });
  const plain = envelope({ body: 'public' });
  const arrivals: InboxItem[] = [];
  inbox.onArrival((item) => arrivals.push(item));
  t.equal(await inbox.put(encrypted, 'Notice rouge — ✓'), 'stored');
  t.equal(await inbox.put(plain), 'stored');
  t.equal(inbox.get(encrypted.id)?.plaintext, 'Notice rouge — ✓');
  t.notOk('plaintext' in (inbox.get(plain.id) ?? {}), 'no plaintext key when none was given');
  t.same(inbox.list().map((i) => i.plaintext), ['Notice rouge — ✓', undefined]);
  t.equal(arrivals[0]?.plaintext, 'Notice rouge — ✓', 'listeners see it');
  t.equal((await inbox.ack(encrypted.id)).plaintext, 'Notice rouge — ✓');
  await inbox.compact();
  const reopened = await Inbox.open({ dir, log: silent });
  t.equal(reopened.get(encrypted.id)?.plaintext, 'Notice rouge — ✓', 'persisted');
  t.type(reopened.get(encrypted.id)?.ackedAt, 'string');
  t.same(reopened.list({ includeAcked: true }).map((i) => i.plaintext), ['Notice rouge — ✓', undefined]);
  t.notOk('plaintext' in (reopened.get(plain.id) ?? {}));
});

t.test('inbox: purge on a closed inbox is refused', async (t) => {
  const inbox = await Inbox.open({ dir: await tempDir(t), log: silent });
  inbox.close();
  await t.rejects(inbox.purge(newUlid(), 'DE'), { code: 'RELAY_STOPPED' });
});
