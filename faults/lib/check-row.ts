/**
 * How the tap tests judge a row: it ran to the end, every attempt has an explained outcome, and
 * nothing leaked, was lost or duplicated — except the open findings of `faults/findings.ts`, held
 * as `todo` (reported, not failing; they pass, and tap says so, once fixed).
 */
import type { Test } from 'tap';
import { KNOWN_FINDINGS, missingKey } from '../findings.js';
import type { Row } from './report.js';

export function checkRow(t: Test, scenarioId: string, row: Row): void {
  const known = KNOWN_FINDINGS[scenarioId] ?? {};
  const name = row.scenario;
  t.equal(row.crashed, undefined, `${name}: ran to the end`);
  t.equal(row.refused + row.accepted + row.leaked, row.attempts, `${name}: every one of ${row.attempts} attempts has an explained outcome`);
  const failures = row.failures;
  const knownCount = Object.entries(failures).reduce((n, [kind, count]) => n + (kind in known ? count : 0), 0);
  t.same(Object.keys(failures).filter((kind) => !(kind in known)), [], `${name}: no failure beyond the known findings`, { failures });
  t.equal(row.leaked - knownCount, 0, `${name}: nothing leaked, crashed or answered without a code`, { notes: row.notes });
  t.equal(row.duplicated, 0, `${name}: nothing duplicated`);
  for (const [kind, why] of Object.entries(known)) {
    if (kind.startsWith('rate limit') || kind.includes(': missing')) continue;
    t.equal(failures[kind] ?? 0, 0, `${name}: ${kind}`, { todo: why });
  }
  if (row.missing !== undefined) {
    const key = missingKey(row.missing);
    const why = known[key];
    if (why === undefined) t.fail(`${name}: ${row.missing}`);
    else t.equal(row.missing, undefined, `${name}: ${key}`, { todo: why });
  }
}
