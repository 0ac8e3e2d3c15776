/**
 * The benchmark summary `make bench` ends with: reads what each benchmark of this run wrote
 * (`bench/results/{pki,metrics,relay,scale,query}-latest.json`), writes `bench/results/latest.json` with
 * the figures issue 10 names, and `latest.md`, the table the README shows. Each figure was measured
 * in the same run as its baseline by the benchmark that made it; this only gathers them and says,
 * for each target, met or not.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatTable } from '../protocol/text-table.js';
import { machine, machineLine, markdownTable } from './lib/report.js';

const RESULTS = join(fileURLToPath(new URL('.', import.meta.url)), 'results');

type Json = Record<string, unknown>;

async function read(name: string): Promise<Json> {
  try {
    return JSON.parse(await readFile(join(RESULTS, `${name}-latest.json`), 'utf8')) as Json;
  } catch {
    return {};
  }
}

function num(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

function round(value: number | undefined): number | undefined {
  return value === undefined ? undefined : Math.round(value * 10) / 10;
}

interface Figure {
  key: string;
  label: string;
  value: number | undefined;
  unit: string;
  baseline?: string;
  target: string;
  met: (v: number) => boolean;
}

const relay = await read('relay');
const scale = await read('scale');
const query = await read('query');
// bench/query.ts: rows in order agent, signed request without agent, direct KV get (the baseline).
const queryRows = Array.isArray(query['rows']) ? (query['rows'] as { figure?: string; latencyMs?: { p99?: unknown } }[]) : [];
const kvRow = queryRows.find((r) => r.figure?.startsWith('direct KV get'));
const rates = (query['lookupsPerSecond'] ?? {}) as Record<string, unknown>;
const agentRate = num(Object.entries(rates).find(([k]) => k.startsWith('lookup through the agent'))?.[1]);
const kvRate = num(Object.entries(rates).find(([k]) => k.startsWith('direct KV get'))?.[1]);
const agentRss = Math.max(num(relay['agent_rss_mib']) ?? 0, num(relay['agent_rss_idle_mib']) ?? 0) || undefined;
const figures: Figure[] = [
  { key: 'relay_p50_ms', label: 'relay latency p50, 1 KiB, agent API → recipient inbox', value: num(relay['relay_p50_ms']), unit: 'ms', baseline: `raw JetStream two-hop ${num(relay['relay_baseline_p50_ms']) ?? '?'} ms`, target: '< 5 ms', met: (v) => v < 5 },
  { key: 'relay_p50_ratio', label: 'relay latency p50 ÷ raw JetStream two-hop', value: num(relay['relay_p50_ratio']), unit: '×', target: '≤ 3×', met: (v) => v <= 3 },
  { key: 'relay_throughput_ratio', label: 'relay throughput ÷ raw JetStream two-hop', value: num(relay['relay_throughput_ratio']), unit: '', baseline: `${num(relay['relay_throughput_msgs']) ?? '?'} vs ${num(relay['relay_baseline_throughput_msgs']) ?? '?'} msg/s`, target: '≥ 0.5', met: (v) => v >= 0.5 },
  { key: 'fanout_195_p99_ms', label: 'Red Notice to 195: last country stored, p99', value: num(scale['fanout_195_p99_ms']), unit: 'ms', baseline: `raw JetStream fan-out p99 ${num(scale['fanout_baseline_p99_ms']) ?? '?'} ms`, target: '< 250 ms', met: (v) => v < 250 },
  { key: 'receipts_195_p99_ms', label: 'Red Notice to 195: last receipt back, p99', value: num(scale['receipts_195_p99_ms']), unit: 'ms', target: '< 500 ms', met: (v) => v < 500 },
  { key: 'enroll_195_s', label: 'enroll 195 countries from tokens', value: num(scale['enroll_195_s']), unit: 's', target: '< 60 s (stretch 20 s)', met: (v) => v < 60 },
  { key: 'revoke_propagation_ms', label: 'revoke → connection dropped', value: num(scale['revoke_propagation_ms']), unit: 'ms', target: '< 500 ms', met: (v) => v < 500 },
  { key: 'reload_lost_messages', label: 'broker reloads under traffic: messages lost', value: num(scale['reload_lost_messages']), unit: '', baseline: `p99 ${num(scale['reload_p99_ratio']) ?? '?'}× without reloads`, target: '0, p99 < 2×', met: (v) => v === 0 && (num(scale['reload_p99_ratio']) ?? Infinity) < 2 },
  { key: 'sign_ratio_vs_openssl', label: 'certificates signed/s ÷ openssl x509 -req loop', value: num(scale['sign_ratio_vs_openssl']), unit: '×', target: '≥ 1×', met: (v) => v >= 1 },
  { key: 'agent_rss_mib', label: 'agent RSS (largest of idle and under load)', value: agentRss, unit: 'MiB', target: '< 100 MiB', met: (v) => v < 100 },
  { key: 'db_lookup_p99_ms', label: `SLTD lookup through an agent, ${num(query['records'])?.toLocaleString('en') ?? '?'} records, p99 (issue 8)`, value: round(num(query['agentP99Ms'])), unit: 'ms', baseline: `direct KV get p99 ${round(num(kvRow?.latencyMs?.p99)) ?? '?'} ms`, target: '< 100 ms', met: (v) => v < 100 },
  { key: 'db_lookups_per_s', label: 'SLTD lookups/s through an agent (16 clients)', value: agentRate, unit: '/s', baseline: `direct KV get ${kvRate ?? '?'}/s`, target: 'reported', met: () => true },
  { key: 'hub_rss_mib', label: 'hub RSS with 195 countries (nats-server apart)', value: num(scale['hub_rss_mib']), unit: 'MiB', baseline: `nats-server ${num(scale['nats_server_rss_mib']) ?? '?'} MiB`, target: '< 250 MiB', met: (v) => v < 250 },
];

const m = machine();
const latest: Json = Object.fromEntries(figures.map((f) => [f.key, f.value ?? null]));
latest['date'] = m.date;
latest['machine'] = m;
latest['sources'] = { relay: relay['date'] ?? null, scale: scale['date'] ?? null, query: (query['machine'] as Json | undefined)?.['date'] ?? null };
const rows = figures.map((f) => [f.label, f.value === undefined ? 'not measured' : `${f.value}${f.unit ? ` ${f.unit}` : ''}`, f.baseline ?? '', f.target, f.value === undefined ? '–' : f.target === 'reported' ? '' : f.met(f.value) ? 'met' : 'NOT met']);
const headers = ['figure', 'this run', 'baseline (same run)', 'target', ''];
await writeFile(join(RESULTS, 'latest.json'), `${JSON.stringify(latest, null, 2)}\n`);
await writeFile(join(RESULTS, 'latest.md'), `${markdownTable('ncbnet benchmarks', `${machineLine(m)}. Sources: bench/results/{relay,scale,query}-latest.md.`, headers, rows)}\n`);
console.log(formatTable(headers, rows));
