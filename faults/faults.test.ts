// The fault suite's quick fault-injection set (scenarios marked `quick` in faults/scenarios.ts)
// against a real network in namespaces: hub daemon with WireGuard and nats-server, four agents,
// a steady load of messages, the same scenario functions `make faults` runs, judged by
// faults/lib/check-row.ts (every accepted message delivered exactly once, every check held).
// Needs root; skipped otherwise. The exactly-once ledger's definitions are checked first, alone.
import t from 'tap';
import { netnsSkipReason } from '../test/helpers/netns.js';
import { makeContext } from './lib/context.js';
import { checkRow } from './lib/check-row.js';
import { QUICK_FAULT_SIZES } from './lib/fault-run.js';
import { Ledger } from './lib/ledger.js';
import { recipientsOf } from './lib/load.js';
import { runScenario, SCENARIOS } from './scenarios.js';

t.setTimeout(300_000);

t.test('faults ledger: lost, duplicated and re-offered, message by message', async (t) => {
  const l = new Ledger();
  // Seen before its sender read the 202: matched once the acceptance is recorded.
  l.offered('DE', ['early'], 5);
  l.accepted('early', 'FR', ['DE'], 1);
  l.accepted('a', 'FR', ['DE', 'IT'], 10);
  l.accepted('b', 'FR', ['DE'], 20);
  l.accepted('c', 'IT', ['FR'], 30);
  t.notOk(l.complete(), 'not complete before the offers');
  l.offered('DE', ['a', 'b'], 40);
  // The agent restarted before the ack: offered again, which is allowed.
  l.offered('DE', ['a', 'b'], 50);
  l.acked('DE', 'a');
  l.acked('DE', 'b');
  l.offered('IT', ['a', 'old'], 60);
  l.acked('IT', 'a');
  // Offered again after its ack succeeded: a duplicate; twice in one answer: another.
  l.offered('DE', ['b'], 70);
  l.offered('IT', ['x', 'x'], 80);
  const s = l.summary();
  t.match(s, { messages: 4, pairs: 5, delivered: 3, lost: 1, duplicated: 1, reoffers: 2, foreign: 2, lostPairs: ['c→FR'] });
  l.accepted('x', 'ES', ['IT'], 75);
  t.equal(l.summary().duplicated, 2, 'the same id twice in one answer is a duplicate');
  t.equal(l.acceptedFrom('FR'), 3);
  t.equal(l.senderOf('c'), 'IT');
  const lat = l.latency((from) => from === 'FR');
  t.match(lat, { n: 4, p50: 30 }, 'latency from the POST to the first offer');
  t.same(recipientsOf('FR', ['FR', 'DE', 'IT'], 0), ['DE']);
  t.same(recipientsOf('FR', ['FR', 'DE', 'IT'], 3), ['IT', 'DE'], 'every fourth message goes to two');
});

t.test('faults: quick fault injection under load', { skip: netnsSkipReason() }, async (t) => {
  const ctx = makeContext(t, { fuzzCases: 1_000, bruteForceTokens: 50, faults: QUICK_FAULT_SIZES }, (line) => t.comment(line));
  // One after another: they share the network, and each leaves it healed.
  for (const s of SCENARIOS.filter((x) => x.kind === 'fault' && x.quick === true)) {
    await t.test(`faults: ${s.title}`, async (t) => {
      const rows = await runScenario(s, ctx);
      t.ok(rows.length > 0, 'at least one row');
      for (const row of rows) {
        t.comment(`${row.verdict} ${row.scenario}: ${row.attempts} messages, ${row.refused} delivered, ${row.leaked} lost, ${row.duplicated} duplicated`);
        for (const note of row.notes) t.comment(`  ${note}`);
        t.ok(row.attempts > 0, `${row.scenario}: messages were accepted`);
        checkRow(t, s.id, row);
      }
    });
  }
});
