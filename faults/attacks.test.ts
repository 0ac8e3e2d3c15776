// The fault suite's attacks (faults/attacks/*) against the real hub daemon with FR, DE and IT
// enrolled, at the sizes of a test run (50 brute-force guesses): the same scenario functions
// `make faults` runs, judged by faults/lib/check-row.ts.
import t from 'tap';
import { makeContext } from './lib/context.js';
import { checkRow } from './lib/check-row.js';
import { runScenario, SCENARIOS } from './scenarios.js';

t.setTimeout(240_000);
const ctx = makeContext(t, { fuzzCases: 1_000, bruteForceTokens: 50 }, (line) => t.comment(line));

// One after another: they share the daemon, and the envelope scenario renews IT.
for (const s of SCENARIOS.filter((x) => x.kind === 'attack')) {
  t.test(`faults: ${s.title}`, async (t) => {
    const rows = await runScenario(s, ctx);
    t.ok(rows.length > 0, 'at least one row');
    for (const row of rows) {
      t.comment(`${row.verdict} ${row.scenario}: ${row.refused}/${row.attempts} refused, ${row.leaked} leaked`);
      checkRow(t, s.id, row);
    }
  });
}
