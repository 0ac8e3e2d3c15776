import t from 'tap';
import { FailureLimiter } from './failure-limiter.js';

t.test('failure limiter: the 10th failure in a minute throttles that address only, until the oldest leaves the window', async (t) => {
  let now = 1_000_000;
  const limiter = new FailureLimiter({ maxFailures: 10, windowMs: 60_000, now: () => now });
  const starts: boolean[] = [];
  for (let i = 0; i < 10; i++) {
    t.equal(limiter.retryAfterMs('10.0.0.1'), 0, `attempt ${i + 1} allowed`);
    starts.push(limiter.fail('10.0.0.1'));
    now += 1_000;
  }
  t.same(starts.map((s, i) => (s ? i : -1)).filter((i) => i >= 0), [9], 'throttling starts at the 10th failure, once');
  t.equal(limiter.retryAfterMs('10.0.0.1'), 50_000, 'until the first failure is 60 s old');
  t.equal(limiter.retryAfterMs('10.0.0.2'), 0, 'another address is not affected');
  now += 50_000;
  t.equal(limiter.retryAfterMs('10.0.0.1'), 0, 'allowed again once the oldest failure left the window');
});

t.test('failure limiter: the number of tracked addresses is bounded, oldest first', async (t) => {
  const limiter = new FailureLimiter({ maxFailures: 1, maxAddresses: 3, now: () => 5 });
  for (const a of ['a', 'b', 'c', 'd']) limiter.fail(a);
  t.equal(limiter.retryAfterMs('a'), 0, 'the oldest address was forgotten');
  t.ok(limiter.retryAfterMs('d') > 0, 'the newest is held');
});
