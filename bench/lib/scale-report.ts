/**
 * Report of the 195-country benchmark in the house format (bench/lib/report.ts): a table printed
 * for people, markdown for bench/results, JSON with fixed keys for machines.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { formatTable } from '../../protocol/text-table.js';
import { machine } from './report.js';

export { machine };

/** As bench/lib/report.ts: the smallest value with at least `q` of the samples at or below it. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i] as number;
}

export function sortedCopy(values: readonly number[]): number[] {
  return [...values].sort((a, b) => a - b);
}


/** One line of the result table. `met` undefined: no target, or not measured. */
export interface ScaleRow {
  figure: string;
  ours: string;
  baseline: string;
  ratio: string;
  target: string;
  met: boolean | undefined;
  /** Why a figure is missing or partial. */
  note?: string;
}

export function fmtMs(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return 'n/a';
  return n >= 100 ? `${n.toFixed(0)} ms` : `${n.toFixed(1)} ms`;
}

export function metText(met: boolean | undefined): string {
  return met === undefined ? '' : met ? 'met' : 'NOT met';
}

/** Prints the table and writes the JSON (`json` as given) and the markdown (`sections` appended after the table). */
export async function writeScaleReport(opts: { title: string; note: string; rows: readonly ScaleRow[]; json: Record<string, unknown>; jsonPath: string; mdPath: string; sections: readonly string[] }): Promise<void> {
  const headers = ['figure', 'ours', 'baseline (same run)', 'ratio', 'target', 'met?'];
  const cells = opts.rows.map((r) => [r.figure, r.ours, r.baseline, r.ratio, r.target, metText(r.met)]);
  const m = machine();
  const notes = opts.rows.filter((r) => r.note).map((r) => `- ${r.figure}: ${r.note}`);
  const md = [
    `### ${opts.title}`,
    '',
    `${m.date}, ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node}. ${opts.note}`,
    '',
    `| ${headers.join(' | ')} |`,
    `|${headers.map(() => '---').join('|')}|`,
    ...cells.map((r) => `| ${r.join(' | ')} |`),
    ...(notes.length > 0 ? ['', ...notes] : []),
    ...opts.sections.flatMap((s) => ['', s]),
  ].join('\n');
  await mkdir(dirname(opts.jsonPath), { recursive: true });
  await writeFile(opts.jsonPath, `${JSON.stringify(opts.json, null, 2)}\n`);
  await writeFile(opts.mdPath, `${md}\n`);
  console.log(formatTable(headers, cells));
  for (const n of notes) console.log(n);
}
