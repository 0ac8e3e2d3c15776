#!/usr/bin/env node
// Counts test cases from tap's saved per-file results (.tap/test-results/**/*.tap): each
// top-level test ("<area>: <behaviour>") of each file is one case. A file that failed without a
// failing top-level case (a crash, a timeout, a bad plan) counts as one failed case, so nothing
// that broke can be missed. Prints skipped cases on one line, then `N passed, N failed` last.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Parser } from 'tap-parser';

// Usage: count-tap-results.mjs [DIR] [--outer-status N]. With a non-zero outer status (the exit of
// `make test`) and no failed case, one failure is counted for it: type check, lint or coverage.
const args = process.argv.slice(2);
const statusAt = args.indexOf('--outer-status');
const outerStatus = statusAt >= 0 ? Number(args.splice(statusAt, 2)[1]) : 0;
const dir = args[0] ?? '.tap/test-results';

async function files(d) {
  const out = [];
  for (const e of await readdir(d, { withFileTypes: true })) {
    const p = join(d, e.name);
    if (e.isDirectory()) out.push(...(await files(p)));
    else if (e.name.endsWith('.tap')) out.push(p);
  }
  return out;
}

function parse(text) {
  return new Promise((resolve) => {
    const asserts = [];
    const p = new Parser((final) => resolve({ asserts, final }));
    p.on('assert', (a) => asserts.push(a));
    p.end(text);
  });
}

let passed = 0;
let failed = 0;
let skipped = 0;
const failures = [];
let list = [];
try {
  list = await files(dir);
} catch {
  console.log(`no test results in ${dir}`);
}
for (const f of list.sort()) {
  const { asserts, final } = await parse(await readFile(f, 'utf8'));
  let fileFailed = 0;
  for (const a of asserts) {
    if (a.skip || a.todo) skipped++;
    else if (a.ok) passed++;
    else {
      failed++;
      fileFailed++;
      failures.push(`${f}: ${a.name}`);
    }
  }
  if (!final.ok && fileFailed === 0) {
    failed++;
    failures.push(`${f}: the file failed outside its tests (crash, timeout or bad plan)`);
  }
}
if (outerStatus !== 0 && failed === 0) {
  failed++;
  failures.push(`make test exited ${outerStatus} outside the test files (type check, lint or coverage threshold)`);
}
for (const line of failures) console.log(`failed: ${line}`);
if (skipped) console.log(`${skipped} skipped`);
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed || list.length === 0 ? 1 : 0;
