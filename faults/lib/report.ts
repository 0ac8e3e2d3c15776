/**
 * The fault suite's result model: one {@link Row} per scenario outcome, whatever its kind, so
 * attacks, fuzzing and (later) fault injection print in one table and one JSON file.
 *
 * - attack: `attempts` tries something that must be refused; `refused` counts those refused the
 *   way they must be (the right error or code); `leaked` counts those that got through.
 * - fuzz: `attempts` is the number of generated cases; `refused` counts coded rejections and
 *   `accepted` the valid inputs handled normally; `leaked` counts crashes, 5xx and uncoded answers.
 * - fault: `attempts` messages accepted by the agents through a fault; `refused` is read as
 *   delivered (to every recipient), `leaked` as lost; `failures` holds the scenario's own checks
 *   that failed (e.g. an agent that refused while the hub was away), which fail the row too.
 */
import { formatTable } from '../../protocol/text-table.js';

export type RowKind = 'attack' | 'fuzz' | 'fault';
export type Verdict = 'pass' | 'FAIL' | 'MISSING';

/** What a scenario measured; {@link finishRow} adds the verdict. */
export interface RowInput {
  /** `<area>: <what was tried>`, e.g. `broker: FR's certificate on other countries' subjects`. */
  scenario: string;
  kind: RowKind;
  /** Attempts (attack), generated cases (fuzz) or messages (fault). */
  attempts: number;
  /** Refused as required (attack, fuzz), or delivered (fault). */
  refused: number;
  /** Fuzz only: valid inputs accepted and handled normally. */
  accepted?: number;
  /** Got through (attack); crashed, 5xx or uncoded (fuzz); lost (fault). */
  leaked: number;
  /** Delivered or stored more than once. */
  duplicated?: number;
  /** What failed, by kind, with counts (e.g. `unknown code FST_ERR_BAD_URL: 12`); tests compare the kinds with the known findings. */
  failures?: Record<string, number>;
  /** The scenario itself threw before it finished: its counts are partial. */
  crashed?: string;
  /** A protection that does not exist (nothing leaked, but the row fails), e.g. `rate limit: missing`. */
  missing?: string;
  /** Findings and figures worth reading (first examples of a leak, codes seen, rates). */
  notes?: string[];
  /** Wall time of the scenario. */
  ms: number;
}

export interface Row extends Required<Omit<RowInput, 'crashed' | 'missing'>> {
  crashed?: string;
  missing?: string;
  verdict: Verdict;
}

/**
 * The verdict: FAIL when anything leaked, was lost or duplicated, the scenario crashed, some
 * attempt had no explained outcome (refused + accepted short of attempts), or a fault row has a
 * failed check; MISSING when only a protection is missing; pass otherwise.
 */
export function verdictOf(r: RowInput): Verdict {
  const explained = r.refused + (r.accepted ?? 0) + r.leaked;
  if (r.crashed !== undefined || r.leaked > 0 || (r.duplicated ?? 0) > 0 || explained !== r.attempts) return 'FAIL';
  // Attack and fuzz rows count every failure in `leaked`; a fault row's checks go beyond delivery.
  if (r.kind === 'fault' && Object.keys(r.failures ?? {}).length > 0) return 'FAIL';
  if (r.missing !== undefined) return 'MISSING';
  return 'pass';
}

export function finishRow(r: RowInput): Row {
  return { accepted: 0, duplicated: 0, failures: {}, notes: [], ...r, verdict: verdictOf(r) };
}

/** A row for a scenario that threw: what it had counted so far, and why it stopped. */
export function crashedRow(scenario: string, kind: RowKind, err: unknown, ms: number): Row {
  const why = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return finishRow({ scenario, kind, attempts: 0, refused: 0, leaked: 0, crashed: why.split('\n')[0] ?? why, ms });
}

/** Exit status of a run: 1 when any row failed (leak, loss, duplicate, crash, unexplained outcome). */
export function exitCodeOf(rows: readonly Row[]): number {
  return rows.some((r) => r.verdict === 'FAIL') ? 1 : 0;
}

const HEADERS = ['scenario', 'kind', 'attempts', 'refused/delivered', 'leaked/lost', 'duplicated', 'verdict', 'time'] as const;

function refusedCell(r: Row): string | number {
  return r.accepted > 0 ? `${r.refused} (+${r.accepted} accepted)` : r.refused;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** The plain-text table for people (STYLE: numbers right-aligned, no colours). */
export function formatRows(rows: readonly Row[]): string {
  return formatTable(
    HEADERS,
    rows.map((r) => [r.scenario, r.kind, r.attempts, refusedCell(r), r.leaked, r.duplicated, r.verdict, seconds(r.ms)]),
  );
}

/** Every note and failure reason, one line each, for below the table. */
export function formatNotes(rows: readonly Row[]): string[] {
  const out: string[] = [];
  for (const r of rows) {
    if (r.crashed !== undefined) out.push(`${r.scenario}: crashed: ${r.crashed}`);
    if (r.missing !== undefined) out.push(`${r.scenario}: ${r.missing}`);
    for (const n of r.notes) out.push(`${r.scenario}: ${n}`);
  }
  return out;
}

/** One line saying how the run went. */
export function summaryOf(rows: readonly Row[]): string {
  const count = (v: Verdict) => rows.filter((r) => r.verdict === v).length;
  const attempts = rows.reduce((n, r) => n + r.attempts, 0);
  const leaked = rows.reduce((n, r) => n + r.leaked, 0);
  return `${rows.length} rows, ${attempts} attempts/cases: ${count('pass')} pass, ${count('FAIL')} FAIL, ${count('MISSING')} missing protection; ${leaked} leaked/lost`;
}

function mdCell(value: string | number): string {
  return String(value).replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

/** The same table as Markdown, with the notes as a list (results/latest.md). */
export function formatMarkdown(rows: readonly Row[], header: string): string {
  const lines = [header, '', `| ${HEADERS.join(' | ')} |`, `|${HEADERS.map((h) => (h === 'scenario' || h === 'kind' || h === 'verdict' ? '---' : '---:')).join('|')}|`];
  for (const r of rows) {
    lines.push(`| ${[r.scenario, r.kind, r.attempts, refusedCell(r), r.leaked, r.duplicated, r.verdict === 'pass' ? 'pass' : `**${r.verdict}**`, seconds(r.ms)].map(mdCell).join(' | ')} |`);
  }
  const notes = formatNotes(rows);
  if (notes.length > 0) lines.push('', 'Notes and findings:', '', ...notes.map((n) => `- ${mdCell(n)}`));
  lines.push('', summaryOf(rows), '');
  return lines.join('\n');
}
