// The receipt batcher alone, with a recording `send`: receipts of one moment share an envelope per
// country, a burst during a send waits for it and leaves together, chunks respect the size limit,
// and a failed envelope fails only its own receipts.
import { setImmediate as nextTurn } from 'node:timers/promises';
import t from 'tap';
import { MAX_RECEIPT_ITEMS, newUlid, type ReceiptItem } from '../../protocol/envelope.js';
import { ReceiptBatcher } from './receipt-batcher.js';

interface Sent {
  to: string;
  items: readonly ReceiptItem[];
}

function recorder(opts: { gate?: Promise<void>; failFor?: string; maxItems?: number } = {}): { batcher: ReceiptBatcher; sent: Sent[] } {
  const sent: Sent[] = [];
  const batcher = new ReceiptBatcher({
    ...(opts.maxItems === undefined ? {} : { maxItems: opts.maxItems }),
    send: async (to, items) => {
      sent.push({ to, items: [...items] });
      await opts.gate;
      if (to === opts.failFor) throw new Error(`outbox refused the envelope to ${to}`);
    },
  });
  return { batcher, sent };
}

const delivered = (): ReceiptItem => ({ of: newUlid(), status: 'delivered' });

t.test('receipt batcher: receipts queued in one turn leave in one envelope per country, in order', async (t) => {
  const { batcher, sent } = recorder();
  const fr = [delivered(), delivered(), delivered()];
  const it = [delivered()];
  await Promise.all([...fr.map((r) => batcher.queue('FR', r)), ...it.map((r) => batcher.queue('IT', r))]);
  t.same(
    sent.map((s) => [s.to, s.items]),
    [
      ['FR', fr],
      ['IT', it],
    ],
  );
  t.same(batcher.stats, { envelopes: 2, receipts: 4 });
  // Idle again: a lone receipt goes at once, alone.
  const lone = delivered();
  await batcher.queue('FR', lone);
  t.same(sent.at(-1), { to: 'FR', items: [lone] });
});

t.test('receipt batcher: receipts queued while an envelope is being written wait for it, then leave together', async (t) => {
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const { batcher, sent } = recorder({ gate });
  let isFirstDone = false;
  const first = batcher.queue('FR', delivered()).then(() => (isFirstDone = true));
  await nextTurn();
  t.equal(sent.length, 1, 'the first one is being written');
  const later = Array.from({ length: 10 }, () => delivered());
  const laterDone = Promise.all(later.map((r) => batcher.queue('FR', r)));
  await nextTurn();
  await nextTurn();
  t.equal(sent.length, 1, 'nothing else is sent while it is in flight');
  t.notOk(isFirstDone, 'a receipt does not resolve before its envelope is written');
  open();
  await first;
  await laterDone;
  t.equal(sent.length, 2);
  t.same(sent[1]?.items, later, 'the ten waited and left in one envelope');
});

t.test('receipt batcher: a burst larger than an envelope is cut into full envelopes', async (t) => {
  const { batcher, sent } = recorder({ maxItems: 4 });
  await Promise.all(Array.from({ length: 10 }, () => batcher.queue('DE', delivered())));
  t.same(
    sent.map((s) => s.items.length),
    [4, 4, 2],
  );
  const big = recorder({ maxItems: 10_000 });
  await Promise.all(Array.from({ length: MAX_RECEIPT_ITEMS + 1 }, () => big.batcher.queue('DE', delivered())));
  t.same(
    big.sent.map((s) => s.items.length),
    [MAX_RECEIPT_ITEMS, 1],
    'never more than the protocol allows, whatever the option says',
  );
});

t.test('receipt batcher: a refused envelope rejects its own receipts only, and the next ones go through', async (t) => {
  const { batcher, sent } = recorder({ failFor: 'IT' });
  const results = await Promise.allSettled([batcher.queue('IT', delivered()), batcher.queue('IT', delivered()), batcher.queue('FR', delivered())]);
  t.same(
    results.map((r) => r.status),
    ['rejected', 'rejected', 'fulfilled'],
  );
  t.match((results[0] as PromiseRejectedResult).reason, { message: /outbox refused the envelope to IT/ });
  await batcher.queue('FR', delivered());
  t.equal(sent.length, 3, 'the batcher keeps working after a failure');
  t.same(batcher.stats, { envelopes: 2, receipts: 2 }, 'only what was written is counted');
});
