/**
 * The fault suite (issue 9): every attack, fuzz and fault-injection scenario against real
 * components, a progress line as each finishes, then a table; `faults/results/latest.json` and
 * `latest.md` keep the run. Fault injection needs root (network namespaces, tmpfs).
 * Exits 1 when any row FAILs (something leaked, was lost or duplicated, a scenario crashed, or an
 * attempt had no explained outcome); a MISSING protection is reported in the table without failing
 * the run.
 *
 * Run: `node_modules/.bin/tsx faults/run.ts` (or `make faults`) from the repository root.
 * Settings (environment): FAULTS_QUICK=1 (1 000 fuzz cases per target, 50 brute-force guesses,
 * 6 s outages, 12 registry changes, 1 round of recipient kills), FAULTS_FUZZ_CASES (10 000), FAULTS_BRUTE_FORCE (200), FAULTS_ONLY=id,id (see
 * faults/scenarios.ts), FAULTS_SEED (replay the fuzz targets' cases from a printed seed).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { envInt, Owner } from '../bench/lib/relay-common.js';
import { machine, machineLine } from '../bench/lib/report.js';
import { KNOWN_FINDINGS, missingKey } from './findings.js';
import { makeContext } from './lib/context.js';
import { FULL_FAULT_SIZES, QUICK_FAULT_SIZES } from './lib/fault-run.js';
import { exitCodeOf, formatMarkdown, formatNotes, formatRows, summaryOf, type Row } from './lib/report.js';
import { runScenario, selectScenarios } from './scenarios.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
process.chdir(ROOT);
const quick = process.env['FAULTS_QUICK'] === '1';
const sizes = {
  fuzzCases: Math.max(1, envInt('FAULTS_FUZZ_CASES', quick ? 1_000 : 10_000)),
  bruteForceTokens: Math.max(1, envInt('FAULTS_BRUTE_FORCE', quick ? 50 : 200)),
  faults: quick ? QUICK_FAULT_SIZES : FULL_FAULT_SIZES,
};
const scenarios = selectScenarios(process.env['FAULTS_ONLY']);
const started = performance.now();
const progress = (text: string): void => void process.stderr.write(`[${((performance.now() - started) / 1000).toFixed(0).padStart(4)} s] ${text}\n`);

const owner = new Owner();
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    progress(`${signal}: stopping what the suite started`);
    void owner.close().then(() => process.exit(130));
  });
}
const ctx = makeContext(owner, sizes, progress);
progress(`fault suite: ${scenarios.length} scenarios, ${sizes.fuzzCases} fuzz cases per target, ${sizes.bruteForceTokens} brute-force guesses${quick ? ' (quick)' : ''}`);

const rows: Row[] = [];
const scenarioOf = new Map<Row, string>();
try {
  for (const [i, s] of scenarios.entries()) {
    progress(`[${i + 1}/${scenarios.length}] ${s.title}`);
    for (const row of await runScenario(s, ctx)) {
      rows.push(row);
      scenarioOf.set(row, s.id);
      // The daemons' and servers' logs are printed at the end only when a scenario crashed.
      if (row.crashed !== undefined) owner.fail();
      const counts = row.kind === 'fault' ? `${row.attempts} messages, ${row.refused} delivered, ${row.leaked} lost, ${row.duplicated} duplicated` : `${row.attempts} attempts, ${row.refused} refused${row.accepted > 0 ? ` (+${row.accepted} accepted)` : ''}, ${row.leaked} leaked${row.duplicated > 0 ? `, ${row.duplicated} duplicated` : ''}`;
      progress(`      ${row.verdict.padEnd(7)} ${row.scenario}: ${counts} in ${(row.ms / 1000).toFixed(1)} s`);
    }
  }
} finally {
  await owner.close();
}

const ms = performance.now() - started;
// Which of the failures are the open findings of faults/findings.ts (and which are new).
const open: string[] = [];
for (const s of scenarios) {
  const known = KNOWN_FINDINGS[s.id] ?? {};
  for (const row of rows.filter((r) => scenarioOf.get(r) === s.id)) {
    for (const kind of [...Object.keys(row.failures), ...(row.missing === undefined ? [] : [missingKey(row.missing)])]) {
      open.push(`${kind in known ? 'known finding' : 'NEW'}: ${row.scenario}: ${kind}${kind in known ? ` — ${known[kind]}` : ''}`);
    }
  }
}
const m = machine();
const f = sizes.faults;
const header = `### Fault suite: attacks, fuzzing and fault injection\n\n${machineLine(m)}; ${quick ? 'quick run (FAULTS_QUICK=1)' : 'full run'}: ${sizes.fuzzCases} fuzz cases per target, ${sizes.bruteForceTokens} brute-force guesses; faults under ${f.ratePerSecond} messages/s from each of 4 countries, ${f.outageSeconds} s outages, ${f.reloadChanges} registry changes, ${f.recipientKills} rounds of recipient kills (two kill -9 each); ${(ms / 1000).toFixed(0)} s in all. Real hub daemon (nats-server 2.9 with mTLS and per-country permissions, router, audit, CA) and real agents (in network namespaces with WireGuard for the faults); see faults/scenarios.ts. For fault rows, attempts = messages accepted, refused/delivered = delivered to every recipient, leaked/lost = lost.`;
const dir = join(ROOT, 'faults', 'results');
await mkdir(dir, { recursive: true });
await writeFile(join(dir, 'latest.json'), `${JSON.stringify({ machine: m, quick, sizes, durationMs: Math.round(ms), summary: summaryOf(rows), findings: open, rows }, null, 2)}\n`);
const findings = open.length === 0 ? '' : `\n\nFindings:\n\n${open.map((f) => `- ${f}`).join('\n')}\n`;
await writeFile(join(dir, 'latest.md'), formatMarkdown(rows, header) + findings);
process.stdout.write(`\n${formatRows(rows)}\n\n${formatNotes(rows).map((n) => `  ${n}`).join('\n')}\n${findings}\n${summaryOf(rows)} (${(ms / 1000).toFixed(0)} s)\n`);
process.exit(exitCodeOf(rows));
