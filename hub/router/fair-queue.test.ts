import t from 'tap';
import { FairQueue, type QueueItem } from './fair-queue.js';
import { TokenBucket } from './token-bucket.js';

type Item = QueueItem & { name: string };

function item(country: string, name: string, over: Partial<QueueItem> = {}): Item {
  return { country, name, id: name, isUrgent: false, isDeletion: false, isReceipt: false, ...over };
}

/** Takes everything that may start now, finishing each at once. */
function drainNames(q: FairQueue<Item>, nowMs: number): string[] {
  const out: string[] = [];
  for (let it = q.next(nowMs); it !== undefined; it = q.next(nowMs)) {
    out.push(it.name);
    q.done(it);
  }
  return out;
}

const open = { perSecond: 1000, burst: 1000 };

t.test('fair queue: countries are served round-robin, urgent before routine', async (t) => {
  const q = new FairQueue<Item>({ rate: open, laneCapacity: 100 });
  for (let i = 1; i <= 4; i++) q.push(item('FR', `fr${i}`), 0);
  q.push(item('DE', 'de1'), 0);
  q.push(item('IT', 'it1'), 0);
  q.push(item('IT', 'it-urgent', { isUrgent: true }), 0);
  t.same(drainNames(q, 0), ['it-urgent', 'fr1', 'de1', 'it1', 'fr2', 'fr3', 'fr4'], "one country's backlog costs the others one turn per round");
  t.equal(q.queued, 0);
  t.equal(q.inFlight, 0);
});

t.test('fair queue: a full lane refuses more; other lanes are not affected', async (t) => {
  const q = new FairQueue<Item>({ rate: open, laneCapacity: 2 });
  t.ok(q.push(item('FR', 'a'), 0));
  t.ok(q.push(item('FR', 'b'), 0));
  t.notOk(q.push(item('FR', 'c'), 0), 'the third waits in the broker');
  t.ok(q.push(item('DE', 'd'), 0));
  t.equal(q.queuedFor('FR'), 2);
  t.same(q.drain().map((i) => i.name), ['a', 'b', 'd']);
});

t.test('fair queue: a country over its rate waits for tokens; others go on; nothing is dropped', async (t) => {
  const held: string[] = [];
  const q = new FairQueue<Item>({ rate: { perSecond: 10, burst: 2 }, laneCapacity: 100, onHeldBack: (cc) => held.push(cc) });
  for (let i = 1; i <= 5; i++) q.push(item('FR', `fr${i}`), 0);
  q.push(item('DE', 'de1'), 0);
  t.same(drainNames(q, 0), ['fr1', 'de1', 'fr2'], 'the burst of 2, then FR waits');
  t.same(held, ['FR'], 'counted once for the submission that waits');
  t.equal(q.soonestTokenMs, 100, 'the next token in 100 ms at 10/s');
  t.equal(q.tokenWaitMs('FR', 3, false, 0), 300);
  t.same(drainNames(q, 99), []);
  t.same(drainNames(q, 100), ['fr3']);
  t.same(drainNames(q, 300), ['fr4', 'fr5']);
  t.same(held, ['FR', 'FR'], 'fr3 and fr4 each counted once; fr5 found its token when its turn came');
});

t.test('fair queue: receipts have their own bucket', async (t) => {
  const q = new FairQueue<Item>({ rate: { perSecond: 1, burst: 1 }, laneCapacity: 100 });
  q.push(item('DE', 'r1', { isReceipt: true }), 0);
  q.push(item('DE', 'r2', { isReceipt: true }), 0);
  q.push(item('DE', 'm1', { isUrgent: true }), 0);
  t.same(drainNames(q, 0), ['m1', 'r1'], "a flood of receipts does not eat the country's message allowance");
});

t.test('fair queue: a deletion waits for everything its country sent before it; one id never runs twice at once', async (t) => {
  const q = new FairQueue<Item>({ rate: open, laneCapacity: 100 });
  q.push(item('FR', 'original'), 0);
  q.push(item('FR', 'deletion', { isUrgent: true, isDeletion: true }), 0);
  q.push(item('DE', 'other'), 0);
  const first = q.next(0);
  t.equal(first?.name, 'original', 'the urgent deletion does not overtake its routine original');
  t.equal(q.next(0)?.name, 'other');
  t.equal(q.next(0), undefined, 'the deletion waits while the original is in flight');
  q.done(first as Item);
  t.equal(q.next(0)?.name, 'deletion');

  const r = new FairQueue<Item>({ rate: open, laneCapacity: 100 });
  r.push(item('FR', 'x', { id: 'SAME' }), 0);
  r.push(item('FR', 'y', { id: 'SAME' }), 0);
  const x = r.next(0);
  t.equal(r.next(0), undefined, 'a replay waits for the first');
  r.done(x as Item);
  t.equal(r.next(0)?.name, 'y');
});

t.test('token bucket: refills at its rate up to the burst', async (t) => {
  const b = new TokenBucket({ perSecond: 2, burst: 3 }, 0);
  t.ok(b.take(0) && b.take(0) && b.take(0));
  t.notOk(b.take(0));
  t.equal(b.waitMs(1, 0), 500);
  t.ok(b.take(500));
  t.notOk(b.isFull(500));
  t.ok(b.isFull(10_000));
  t.equal(b.waitMs(3, 10_000), 0);
});
