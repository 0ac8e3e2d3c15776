import t from 'tap';
import { pino } from 'pino';
import { newUlid, type Envelope } from '../../protocol/envelope.js';
import { waitFor } from '../../test/helpers/wait.js';
import { UrgentWatch, type UrgentWatchOptions } from './urgent-watch.js';

type Line = Record<string, unknown>;

function urgent(over: Partial<Envelope> = {}): Envelope {
  return { v: 1, id: newUlid(), kind: 'notice', notice: { colour: 'red' }, from: 'FR', to: ['DE', 'IT'], priority: 'urgent', created: new Date().toISOString(), body: 'wanted', ...over };
}

function receipt(of: Envelope, from: string, status: 'delivered' | 'read' | 'rejected' | 'deleted'): Envelope {
  return { v: 1, id: newUlid(), kind: 'receipt', from, to: [of.from], priority: 'routine', created: new Date().toISOString(), receipt: { of: of.id, status } };
}

/** A watch on a fake clock (no timer: the tests call check()), its log lines and stats calls. */
function watch(opts: Partial<UrgentWatchOptions> = {}) {
  const clock = { ms: 1_000_000 };
  const lines: Line[] = [];
  const overdue: [string, string][] = [];
  const late: [string, string, number][] = [];
  const w = new UrgentWatch({
    deadlineMs: 1_000,
    log: pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Line) }),
    stats: { onUrgentOverdue: (from, to) => void overdue.push([from, to]), onUrgentDeliveredLate: (from, to, ms) => void late.push([from, to, ms]) },
    now: () => clock.ms,
    ...opts,
  });
  return { w, clock, lines, overdue, late, warns: () => lines.filter((l) => l['msg'] === 'urgent message not delivered within deadline') };
}

t.test('urgent watch: each recipient not confirmed by the deadline is logged and counted once; a late receipt clears it', async (t) => {
  const { w, clock, lines, overdue, late, warns } = watch();
  const msg = urgent();
  w.routed(msg, ['DE', 'IT']);
  w.routed(receipt(msg, 'IT', 'delivered'), ['FR']);
  clock.ms += 999;
  w.check();
  t.same(warns(), [], 'not before the deadline');
  clock.ms += 1;
  w.check();
  w.check();
  t.match(warns(), [{ level: 40, component: 'urgent-watch', id: msg.id, from: 'FR', to: 'DE', ageMs: 1_000 }], 'one line, for DE only: IT confirmed in time');
  t.same(overdue, [['FR', 'DE']]);
  t.equal(w.overdue(), 1);
  w.routed(receipt(msg, 'DE', 'rejected'), ['FR']);
  t.equal(w.overdue(), 1, 'a rejected receipt is not a delivery');
  clock.ms += 500;
  w.routed(receipt(msg, 'DE', 'read'), ['FR']);
  t.equal(w.overdue(), 0);
  t.same(late, [['FR', 'DE', 1_500]]);
  t.match(lines.at(-1), { level: 30, msg: 'urgent message delivered after deadline', id: msg.id, to: 'DE', ageMs: 1_500, status: 'read' });
  t.equal(w.tracked(), 0, 'forgotten once everyone confirmed');
});

t.test('urgent watch: one batched receipt envelope confirms every watched message it names', async (t) => {
  const { w, clock, overdue } = watch();
  const [a, b, c] = [urgent(), urgent(), urgent()];
  for (const m of [a, b, c]) w.routed(m, ['DE', 'IT']);
  const batch: Envelope = { ...receipt(a, 'DE', 'delivered'), receipt: { of: a.id, status: 'delivered', more: [{ of: b.id, status: 'read' }, { of: c.id, status: 'rejected', reason: 'PKI_CMS_NOT_RECIPIENT' }] } };
  w.routed(batch, ['FR']);
  clock.ms += 1_000;
  w.check();
  t.same(
    overdue.sort(),
    [
      ['FR', 'DE'],
      ['FR', 'IT'],
      ['FR', 'IT'],
      ['FR', 'IT'],
    ],
    'DE confirmed a and b in one envelope; its rejection of c is not a delivery',
  );
});

t.test('urgent watch: routine messages, receipts and deletions are never watched; a deletion forgets its message', async (t) => {
  const { w, clock, warns } = watch();
  w.routed(urgent({ priority: 'routine' }), ['DE']);
  w.routed(receipt(urgent(), 'DE', 'delivered'), ['FR']);
  w.routed({ ...receipt(urgent(), 'DE', 'delivered'), priority: 'urgent' }, ['FR']);
  t.equal(w.tracked(), 0);
  const msg = urgent();
  w.routed(msg, ['DE']);
  clock.ms += 1_000;
  w.check();
  t.equal(w.overdue(), 1);
  const del: Envelope = { v: 1, id: newUlid(), kind: 'deletion', from: 'FR', to: ['DE'], priority: 'urgent', created: new Date().toISOString(), deletes: msg.id, body: 'wrong person' };
  w.routed(del, ['DE']);
  t.equal(w.overdue(), 0, 'a deleted message is no longer overdue');
  t.equal(w.tracked(), 0);
  t.equal(warns().length, 1);
});

t.test('urgent watch: two senders may use one id; a receipt only confirms the copy of the country it is addressed to', async (t) => {
  const { w, clock } = watch();
  const fr = urgent({ to: ['DE'] });
  const it = urgent({ id: fr.id, from: 'IT', to: ['DE'] });
  w.routed(fr, ['DE']);
  w.routed(it, ['DE']);
  w.routed(receipt(fr, 'DE', 'delivered'), ['FR']);
  clock.ms += 1_000;
  w.check();
  t.equal(w.overdue(), 1, "IT's message is still unconfirmed");
  w.routed(urgent({ id: fr.id, from: 'IT', to: ['DE'] }), ['DE']);
  t.equal(w.tracked(), 1, 'routed again (a redelivery): still one entry, its first time kept');
});

t.test('urgent watch: memory is bounded by age and by count', async (t) => {
  const { w, clock, lines } = watch({ maxTracked: 2 });
  const [a, b, c] = [urgent(), urgent(), urgent()];
  w.routed(a, ['DE']);
  clock.ms += 1_000;
  w.check();
  t.equal(w.overdue(), 1);
  w.routed(b, ['DE']);
  w.routed(c, ['DE']);
  t.equal(w.tracked(), 2);
  t.equal(w.overdue(), 0, 'the oldest, overdue, was forgotten to make room');
  t.match(lines.at(-1), { level: 40, msg: 'urgent watch full; forgetting the oldest message', id: a.id });
  clock.ms += 24 * 3600_000;
  w.check();
  t.equal(w.tracked(), 0, 'forgotten after 24 h');
  t.equal(w.overdue(), 0);
});

t.test('urgent watch: the timer checks at deadline/10 within 1 s … 30 s and keeps no process alive', async (t) => {
  const w = new UrgentWatch({ deadlineMs: 200, log: pino({ level: 'silent' }) });
  t.equal(w.deadlineMs, 200);
  w.start();
  w.start();
  t.teardown(() => w.stop());
  w.routed(urgent(), ['DE']);
  const started = Date.now();
  await waitFor('the timer to find the message overdue', () => w.overdue() === 1, 5_000);
  t.ok(Date.now() - started >= 900, 'not before the first check, 1 s in');
  t.equal(new UrgentWatch({ log: pino({ level: 'silent' }) }).deadlineMs, 600_000, 'default deadline 10 min');
});
