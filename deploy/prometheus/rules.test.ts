import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { hasCommand } from '../../test/helpers/netns.js';
import { contractSeriesNames, promqlMetricNames, ruleFileExprs, ruleFileRecords } from './metric-contract.js';

const DIR = fileURLToPath(new URL('.', import.meta.url));
const RULES = 'ncbnet-rules.yml';
const RULE_TESTS = 'ncbnet-rules.test.yml';
const PROMTOOL_SKIP = hasCommand('promtool') ? false : 'needs promtool (Debian package prometheus; make sysdeps installs it)';

/** Alerts without a country: they concern the hub as a whole. */
const HUB_WIDE_ALERTS = new Set(['NcbnetUrgentOverdue', 'NcbnetBrokerDown', 'NcbnetBrokerRestarts', 'NcbnetHubDown']);

interface Run {
  code: number;
  output: string;
}

/** Runs promtool in this directory (the files name each other by relative path). */
function promtool(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile('promtool', args, { cwd: DIR, encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => {
      const output = `${stdout}${stderr}`;
      if (err === null) return resolve({ code: 0, output });
      // Killed by the timeout or not started: no exit code; the message says why.
      resolve({ code: typeof err.code === 'number' ? err.code : -1, output: `${output}${err.message}` });
    });
  });
}

/** The rules file cut into one text per alert, keyed by alert name. */
function alertBlocks(yamlText: string): Map<string, string> {
  const blocks = new Map<string, string>();
  for (const part of yamlText.split(/^\s*- (?=alert:|record:)/m).slice(1)) {
    const name = /^alert:\s*(\S+)/.exec(part)?.[1];
    if (name !== undefined) blocks.set(name, part);
  }
  return blocks;
}

t.test('prometheus config: promtool check config passes (rules and agents.json included)', { skip: PROMTOOL_SKIP }, async (t) => {
  const run = await promtool(['check', 'config', 'prometheus.yml']);
  t.equal(run.code, 0, run.output);
  t.match(run.output, /SUCCESS: prometheus\.yml is valid prometheus config file syntax/);
  t.match(run.output, /SUCCESS: \d+ rules found/);
});

t.test('prometheus rules: promtool check rules passes', { skip: PROMTOOL_SKIP }, async (t) => {
  const run = await promtool(['check', 'rules', RULES]);
  t.equal(run.code, 0, run.output);
  t.match(run.output, /SUCCESS: \d+ rules found/);
});

t.test('prometheus rules: promtool test rules passes (each alert fires where it should, and only there)', { skip: PROMTOOL_SKIP }, async (t) => {
  const run = await promtool(['test', 'rules', RULE_TESTS]);
  t.equal(run.code, 0, run.output);
  t.match(run.output, /SUCCESS/);
  t.notMatch(run.output, /FAILED/);
});

t.test('prometheus rules: every expression selects only metrics of the contract', async (t) => {
  const text = await readFile(new URL(RULES, import.meta.url), 'utf8');
  const allowed = contractSeriesNames();
  for (const record of ruleFileRecords(text)) allowed.add(record);
  const exprs = ruleFileExprs(text);
  t.ok(exprs.length >= 15, `found ${exprs.length} expressions`);
  for (const expr of exprs) {
    const names = promqlMetricNames(expr);
    t.ok(names.length > 0, `selects a metric: ${expr}`);
    t.same(names.filter((n) => !allowed.has(n)), [], `only contract metrics in: ${expr}`);
  }
});

t.test('prometheus rules: every alert has a severity, a summary and a description, naming its country', async (t) => {
  const text = await readFile(new URL(RULES, import.meta.url), 'utf8');
  const blocks = alertBlocks(text);
  for (const name of ['NcbnetCountryDown', 'NcbnetNoHandshake', 'NcbnetBacklogGrowing', 'NcbnetCertificateExpiring', 'NcbnetPolicyDrift',
    'NcbnetBrokerRestarts', 'NcbnetBrokerDown', 'NcbnetUrgentUndelivered', 'NcbnetProbesFailing', 'NcbnetAgentDown', 'NcbnetHubDown']) {
    t.ok(blocks.has(name), `${name} is defined`);
  }
  for (const [name, block] of blocks) {
    t.match(block, /\n\s+severity: (critical|warning)\n/, `${name}: severity critical or warning`);
    const summary = /\n\s+summary: (.*)\n/.exec(block)?.[1] ?? '';
    const description = /\n\s+description: >-\n([\s\S]*)$/.exec(block)?.[1] ?? '';
    t.not(summary, '', `${name}: summary`);
    t.not(description, '', `${name}: description`);
    if (!HUB_WIDE_ALERTS.has(name)) {
      t.match(summary, '$labels.country', `${name}: summary names the country`);
      t.match(description, '$labels.country', `${name}: description names the country`);
    }
  }
});

t.test('prometheus rules: the unit tests cover every alert, firing and not firing', async (t) => {
  const rules = await readFile(new URL(RULES, import.meta.url), 'utf8');
  const tests = await readFile(new URL(RULE_TESTS, import.meta.url), 'utf8');
  // Each `alertname:` case, with whether it expects no alert (`exp_alerts: []`) or some.
  const cases = [...tests.matchAll(/alertname: (\w+)\n\s+exp_alerts:( \[\])?/g)].map((m) => ({ name: m[1], quiet: m[2] !== undefined }));
  for (const name of alertBlocks(rules).keys()) {
    t.ok(cases.some((c) => c.name === name && !c.quiet), `${name}: a case where it fires`);
    t.ok(cases.some((c) => c.name === name && c.quiet), `${name}: a case where it does not`);
  }
});
