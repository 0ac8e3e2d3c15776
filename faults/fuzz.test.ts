// The fault suite's fuzz targets (faults/fuzz/*) at 1 000 cases each (10 000 in `make faults`):
// the envelope validator, the agent's local API on a real relay, the hub's enrollment API on the
// real API server; judged by faults/lib/check-row.ts.
import t from 'tap';
import { makeContext } from './lib/context.js';
import { checkRow } from './lib/check-row.js';
import { runScenario, SCENARIOS } from './scenarios.js';

t.setTimeout(240_000);
const ctx = makeContext(t, { fuzzCases: 1_000, bruteForceTokens: 50 }, (line) => t.comment(line));

for (const s of SCENARIOS.filter((x) => x.kind === 'fuzz')) {
  t.test(`faults: ${s.title}`, async (t) => {
    const rows = await runScenario(s, ctx);
    for (const row of rows) {
      t.comment(`${row.verdict} ${row.scenario}: ${row.attempts} cases, ${row.refused} refused, ${row.accepted} accepted, ${row.leaked} failed; ${row.notes[0] ?? ''}`);
      t.equal(row.attempts, 1_000, `${row.scenario}: 1 000 cases run`);
      t.ok(row.refused > 0 && row.accepted > 0, `${row.scenario}: both refusals and acceptances were exercised`);
      checkRow(t, s.id, row);
    }
  });
}
