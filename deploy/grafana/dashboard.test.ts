import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { hasCommand } from '../../test/helpers/netns.js';
import { tempDir } from '../../test/helpers/tmpdir.js';
import { contractSeriesNames, promqlMetricNames, ruleFileRecords } from '../prometheus/metric-contract.js';

const DASHBOARD = new URL('ncbnet-dashboard.json', import.meta.url);
const RULES = new URL('../prometheus/ncbnet-rules.yml', import.meta.url);
const DS_UID = '${DS_PROMETHEUS}';

interface Target {
  refId?: string;
  expr?: string;
  instant?: boolean;
  format?: string;
  datasource?: { type?: string; uid?: string };
}

interface Panel {
  id?: number;
  type?: string;
  title?: string;
  datasource?: { type?: string; uid?: string };
  gridPos?: { x: number; y: number; w: number; h: number };
  targets?: Target[];
  transformations?: { id: string; options?: unknown }[];
  panels?: Panel[];
}

interface Dashboard {
  __inputs?: { name: string; type: string; pluginId: string }[];
  schemaVersion?: number;
  uid?: string;
  title?: string;
  panels?: Panel[];
  templating?: { list: { name: string; definition?: string; datasource?: { uid?: string } }[] };
}

async function loadDashboard(): Promise<Dashboard> {
  return JSON.parse(await readFile(DASHBOARD, 'utf8')) as Dashboard;
}

/** Every panel, those inside collapsed rows included; rows themselves are not panels with queries. */
function allPanels(d: Dashboard): Panel[] {
  return (d.panels ?? []).flatMap((p) => [p, ...(p.panels ?? [])]).filter((p) => p.type !== 'row');
}

/** Grafana's variables replaced by values Prometheus accepts, so promtool can parse the expression. */
function withVariablesResolved(expr: string): string {
  return expr.replaceAll('$__rate_interval', '5m').replaceAll('$country', '.*');
}

t.test('grafana dashboard: valid JSON with a Prometheus datasource input and schema 36 or later', async (t) => {
  const d = await loadDashboard();
  t.equal(d.uid, 'ncbnet-overview');
  t.ok((d.schemaVersion ?? 0) >= 36, `schemaVersion ${d.schemaVersion}`);
  t.same(d.__inputs?.map((i) => [i.name, i.type, i.pluginId]), [['DS_PROMETHEUS', 'datasource', 'prometheus']]);
  const panels = allPanels(d);
  t.ok(panels.length >= 15, `${panels.length} panels`);
  const ids = panels.map((p) => p.id);
  t.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  for (const p of panels) {
    t.ok(p.gridPos && p.gridPos.w > 0 && p.gridPos.h > 0, `${p.title}: has a position`);
    t.equal(p.datasource?.uid, DS_UID, `${p.title}: panel datasource is the input variable`);
    t.ok((p.targets ?? []).length > 0, `${p.title}: has queries`);
    for (const target of p.targets ?? []) t.equal(target.datasource?.uid, DS_UID, `${p.title} ${target.refId}: query datasource is the input variable`);
  }
  const country = d.templating?.list.find((v) => v.name === 'country');
  t.equal(country?.definition, 'label_values(ncbnet_country_info, country)', 'country variable lists the registry countries');
  t.equal(country?.datasource?.uid, DS_UID);
});

t.test('grafana dashboard: every panel expression selects only metrics of the contract (or our recording rules)', async (t) => {
  const d = await loadDashboard();
  const allowed = contractSeriesNames();
  for (const record of ruleFileRecords(await readFile(RULES, 'utf8'))) allowed.add(record);
  const used = new Set<string>();
  for (const p of allPanels(d)) {
    for (const target of p.targets ?? []) {
      const expr = target.expr ?? '';
      const names = promqlMetricNames(expr);
      t.ok(names.length > 0, `${p.title} ${target.refId}: selects a metric`);
      t.same(names.filter((n) => !allowed.has(n)), [], `${p.title} ${target.refId}: only contract metrics in ${expr}`);
      names.forEach((n) => used.add(n));
    }
  }
  for (const needed of ['ncbnet_delivery_seconds_bucket', 'ncbnet_probe_rtt_seconds_bucket', 'ncbnet_messages_total', 'ncbnet_broker_up', 'ncbnet_router_rejections_total', 'ncbnet_urgent_overdue']) {
    t.ok(used.has(needed), `some panel shows ${needed}`);
  }
});

t.test('grafana dashboard: the per-country table merges one instant query per column', async (t) => {
  const d = await loadDashboard();
  const table = allPanels(d).find((p) => p.type === 'table' && /per-country/i.test(p.title ?? ''));
  if (!table) return t.fail('no per-country table panel');
  const targets = table.targets ?? [];
  for (const target of targets) {
    t.equal(target.instant, true, `${target.refId}: instant`);
    t.equal(target.format, 'table', `${target.refId}: table format`);
  }
  const exprs = targets.map((x) => x.expr ?? '').join('\n');
  for (const column of ['ncbnet_country_info', 'ncbnet_country_connected', 'ncbnet_country_last_seen_timestamp_seconds', 'ncbnet_wireguard_last_handshake_timestamp_seconds',
    'ncbnet_delivery_pending', 'ncbnet_certificate_expiry_timestamp_seconds', 'ncbnet_policy_in_sync']) {
    t.match(exprs, column, `a column from ${column}`);
  }
  // Merge joins the frames on their common `country` column, so each query keeps that label alone
  // (plus `status` for the info series): `max by (country)`, never the raw series with instance/job.
  for (const target of targets) t.match(target.expr ?? '', /by \(country(, status)?\)/, `${target.refId}: grouped by country`);
  t.same(table.transformations?.map((x) => x.id).slice(0, 2), ['merge', 'organize']);
});

t.test('grafana dashboard: latency quantiles and heatmaps for delivery and probe round trip', async (t) => {
  const d = await loadDashboard();
  const panels = allPanels(d);
  for (const metric of ['ncbnet_delivery_seconds', 'ncbnet_probe_rtt_seconds']) {
    const exprs = panels.flatMap((p) => (p.targets ?? []).map((x) => x.expr ?? ''));
    t.ok(exprs.some((e) => e.startsWith(`histogram_quantile(0.5, `) && e.includes(`${metric}_bucket`)), `${metric}: p50`);
    t.ok(exprs.some((e) => e.startsWith(`histogram_quantile(0.99, `) && e.includes(`${metric}_bucket`)), `${metric}: p99`);
    const heat = panels.find((p) => p.type === 'heatmap' && (p.targets ?? []).some((x) => x.expr?.includes(`${metric}_bucket`)));
    t.equal(heat?.targets?.[0]?.format, 'heatmap', `${metric}: heatmap panel with heatmap-format buckets`);
  }
  for (const title of ['Broker', 'Router rejections', 'Urgent overdue', 'Active countries connected']) {
    t.ok(panels.some((p) => p.type === 'stat' && p.title === title), `stat: ${title}`);
  }
});

t.test('grafana dashboard: promtool parses every panel expression', { skip: hasCommand('promtool') ? false : 'needs promtool (Debian package prometheus; make sysdeps installs it)' }, async (t) => {
  const d = await loadDashboard();
  const exprs = allPanels(d).flatMap((p) => (p.targets ?? []).map((x) => withVariablesResolved(x.expr ?? '')));
  // One recording rule per expression: `promtool check rules` parses them all and names the bad one.
  const rules = ['groups:', '  - name: dashboard', '    rules:', ...exprs.flatMap((e, i) => [`      - record: dashboard:expr_${i}`, `        expr: ${JSON.stringify(e)}`])].join('\n');
  const file = join(await tempDir(t, 'ncbnet-dashboard-'), 'dashboard-rules.yml');
  await writeFile(file, rules + '\n');
  const output = await new Promise<string>((resolve) => {
    execFile('promtool', ['check', 'rules', file], { encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => {
      t.equal(err, null, 'promtool check rules exits 0');
      resolve(`${stdout}${stderr}`);
    });
  });
  t.match(output, `SUCCESS: ${exprs.length} rules found`);
});
