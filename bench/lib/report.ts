import { cpus, totalmem } from 'node:os';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { formatTable } from '../../protocol/text-table.js';

/** One timed round: how many operations, how long, and each operation's latency (ms). */
export interface Round {
  ops: number;
  ms: number;
  latencies: number[];
}

/** A benchmark row: a figure, its baseline measured in the same run, and the target. */
export interface Row {
  figure: string;
  unit: string;
  rounds: Round[];
  baseline?: string;
  target?: { min?: number; label: string };
}

export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i] as number;
}

export function rates(row: Row): number[] {
  return row.rounds.map((r) => (r.ops * 1000) / r.ms).sort((a, b) => a - b);
}

/** Runs `op` `ops` times per round for `roundCount` rounds, timing each call. */
export async function measure(ops: number, roundCount: number, op: (i: number) => Promise<unknown>, progress?: (round: number) => void): Promise<Round[]> {
  const out: Round[] = [];
  for (let r = 0; r < roundCount; r++) {
    const latencies: number[] = [];
    const start = performance.now();
    for (let i = 0; i < ops; i++) {
      const t0 = performance.now();
      await op(i);
      latencies.push(performance.now() - t0);
    }
    out.push({ ops, ms: performance.now() - start, latencies });
    progress?.(r + 1);
  }
  return out;
}

export function machine(): { date: string; cpu: string; cores: number; memoryGiB: number; node: string } {
  return {
    date: new Date().toISOString().slice(0, 10),
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
  };
}

/** Prints the markdown table (figure, median and worst round rate, latency p50/p99, ratio to baseline, target) and writes JSON. */
export async function report(title: string, rows: readonly Row[], jsonPath: string): Promise<string> {
  const byName = new Map(rows.map((r) => [r.figure, r]));
  const f = (n: number) => (n >= 100 ? n.toFixed(0) : n.toFixed(2));
  const table = rows.map((row) => {
    const rs = rates(row);
    const lat = row.rounds.flatMap((r) => r.latencies).sort((a, b) => a - b);
    const median = quantile(rs, 0.5);
    const base = row.baseline ? byName.get(row.baseline) : undefined;
    const ratio = base ? `${(median / quantile(rates(base), 0.5)).toFixed(2)}× of "${base.figure}"` : 'baseline';
    const met = row.target?.min === undefined ? '' : median >= row.target.min ? ' (met)' : ' (NOT met)';
    return [row.figure, `${f(median)} ${row.unit}`, `${f(rs[0] ?? NaN)} ${row.unit}`, `${lat.length}`, `${quantile(lat, 0.5).toFixed(3)} / ${quantile(lat, 0.99).toFixed(3)}`, ratio, (row.target?.label ?? '') + met];
  });
  const m = machine();
  const headers = ['figure', 'median of rounds', 'worst round', 'ops', 'latency p50 / p99 ms', 'vs baseline (same run)', 'target'];
  const md = markdownTable(title, `${machineLine(m)}; ${rows[0]?.rounds.length ?? 0} rounds per figure.`, headers, table);
  await mkdir(dirname(jsonPath), { recursive: true });
  await writeFile(jsonPath, JSON.stringify({ title, machine: m, rows: rows.map((r) => ({ figure: r.figure, unit: r.unit, baseline: r.baseline, target: r.target, rates: rates(r), latencyMs: { p50: quantile(r.rounds.flatMap((x) => x.latencies).sort((a, b) => a - b), 0.5), p99: quantile(r.rounds.flatMap((x) => x.latencies).sort((a, b) => a - b), 0.99) } })) }, null, 2));
  console.log(formatTable(headers, table));
  return md;
}

/** The machine, as the first line under a table's title. */
export function machineLine(m: ReturnType<typeof machine>): string {
  return `${m.date}, ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node}`;
}

/** A titled markdown table: `### title`, a line of context, then the rows. */
export function markdownTable(title: string, intro: string, headers: readonly string[], rows: readonly (readonly string[])[]): string {
  return [`### ${title}`, '', intro, '', `| ${headers.join(' | ')} |`, `|${headers.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

/** A latency benchmark row: each operation's time (ms), optionally its payload size, baseline and limits. */
export interface LatencyRow {
  figure: string;
  latencies: number[];
  /** Bytes each operation moved (the largest seen), when that matters. */
  bytes?: number;
  baseline?: string;
  target?: { maxMs?: number; maxBytes?: number; label: string };
}

/**
 * Prints and returns the markdown table of latency rows (median and p99 time, payload bytes, ratio
 * of medians to the baseline measured in the same run, target met or not) and writes JSON. The
 * target is met when the median is within `maxMs` and the payload within `maxBytes`; p99 is shown
 * beside it.
 */
export async function reportLatency(title: string, rows: readonly LatencyRow[], jsonPath: string, note = ''): Promise<string> {
  const byName = new Map(rows.map((r) => [r.figure, r]));
  const sorted = (r: LatencyRow) => [...r.latencies].sort((a, b) => a - b);
  const ms = (n: number) => (n >= 100 ? n.toFixed(0) : n.toFixed(2));
  const table = rows.map((row) => {
    const lat = sorted(row);
    const median = quantile(lat, 0.5);
    const base = row.baseline ? byName.get(row.baseline) : undefined;
    const isBaseline = rows.some((r) => r.baseline === row.figure);
    const ratio = base ? `${(median / quantile(sorted(base), 0.5)).toFixed(1)}× "${base.figure}"` : isBaseline ? 'baseline' : '';
    const t = row.target;
    const isMet = t === undefined || ((t.maxMs === undefined || median <= t.maxMs) && (t.maxBytes === undefined || (row.bytes ?? 0) <= t.maxBytes));
    return [row.figure, `${lat.length}`, ms(median), ms(quantile(lat, 0.99)), row.bytes === undefined ? '' : `${row.bytes}`, ratio, t === undefined ? '' : `${t.label} (${isMet ? 'met' : 'NOT met'})`];
  });
  const m = machine();
  const headers = ['figure', 'samples', 'median ms', 'p99 ms', 'payload bytes', 'vs baseline (same run)', 'target'];
  const md = markdownTable(title, `${machineLine(m)}.${note ? ` ${note}` : ''}`, headers, table);
  await mkdir(dirname(jsonPath), { recursive: true });
  const json = rows.map((r) => {
    const lat = sorted(r);
    return { figure: r.figure, samples: lat.length, latencyMs: { p50: quantile(lat, 0.5), p99: quantile(lat, 0.99), max: lat[lat.length - 1] }, bytes: r.bytes, baseline: r.baseline, target: r.target };
  });
  await writeFile(jsonPath, JSON.stringify({ title, machine: m, note, rows: json }, null, 2));
  console.log(formatTable(headers, table));
  return md;
}
