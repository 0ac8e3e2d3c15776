/**
 * Counting fuzz outcomes, and the oracle every HTTP fuzz target shares: no 5xx, every refusal a
 * JSON body `{code, message}` with a code the API documents, at the status that code maps to.
 */
import fc from 'fast-check';
import type { RowInput } from '../lib/report.js';

/** Cases by outcome, with the first few bad ones kept as examples. */
export class Tally {
  cases = 0;
  refused = 0;
  accepted = 0;
  bad = 0;
  readonly codes = new Map<string, number>();
  readonly statuses = new Map<number, number>();
  /** Failures by kind (`5xx`, `unknown code X`, `answered without a token`, …). */
  readonly failures = new Map<string, number>();
  readonly examples: string[] = [];

  refuse(code: string): void {
    this.cases += 1;
    this.refused += 1;
    this.codes.set(code, (this.codes.get(code) ?? 0) + 1);
  }

  accept(): void {
    this.cases += 1;
    this.accepted += 1;
  }

  /** A case that broke the oracle: `kind` groups it (the row lists counts by kind), `why` and the input are kept for the first few of each kind. */
  fail(kind: string, why: string, input: unknown): void {
    this.cases += 1;
    this.bad += 1;
    const seen = this.failures.get(kind) ?? 0;
    this.failures.set(kind, seen + 1);
    if (seen < 2 && this.examples.length < 8) this.examples.push(`${why} — input ${preview(input)}`);
  }

  status(code: number): void {
    this.statuses.set(code, (this.statuses.get(code) ?? 0) + 1);
  }

  /** The row for this target: cases, refusals, acceptances, failures, rate and the commonest codes. */
  row(scenario: string, ms: number, seed: number): RowInput {
    const top = [...this.codes.entries()].sort((a, b) => b[1] - a[1]).slice(0, 6).map(([c, n]) => `${c} ${n}`);
    const statuses = [...this.statuses.entries()].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}:${n}`);
    const notes = [`${Math.round((this.cases * 1000) / Math.max(ms, 1))} cases/s, seed ${seed}; codes: ${top.join(', ') || 'none'}${statuses.length > 0 ? `; statuses ${statuses.join(' ')}` : ''}`];
    if (this.failures.size > 0) notes.push(`failures by kind: ${[...this.failures.entries()].map(([k, n]) => `${k} ×${n}`).join(', ')}`);
    for (const e of this.examples) notes.push(`FAILED: ${e}`);
    return { scenario, kind: 'fuzz', attempts: this.cases, refused: this.refused, accepted: this.accepted, leaked: this.bad, failures: Object.fromEntries(this.failures), notes, ms };
  }
}

/** A short, printable view of an input for a failure note. */
export function preview(input: unknown): string {
  let text: string;
  try {
    text = typeof input === 'string' ? JSON.stringify(input) : input instanceof Uint8Array ? `bytes ${Buffer.from(input).toString('hex').slice(0, 120)}` : (JSON.stringify(input) ?? String(input));
  } catch {
    text = String(input);
  }
  // STYLE: tokens are redacted, even a throwaway test's (results/latest.md is kept).
  const redacted = text.replace(/(ncbnet1\.[0-9a-f]{16}\.)[A-Za-z0-9_-]{43}/g, '$1<secret>').replace(/(bearer +)[A-Za-z0-9_-]{20,}/gi, '$1<token>');
  return redacted.length > 300 ? `${redacted.slice(0, 300)}… (${redacted.length} chars)` : redacted;
}

/** An HTTP answer as `inject` gives it. */
export interface Answer {
  statusCode: number;
  body: string;
  headers: Record<string, unknown>;
}

/** What an API says about its own codes. */
export interface CodeBook {
  /** Whether `code` is one this API documents. */
  isKnown(code: string): boolean;
  /** The status `code` must come with, or undefined when any 4xx will do (framework codes). */
  statusOf(code: string): number | undefined;
}

/** 'accepted' for a 1xx–3xx answer, the code for a well-formed refusal, else why it is wrong. */
export type Judgement = { ok: 'accepted' } | { ok: 'refused'; code: string } | { ok: false; kind: string; why: string };

export function judgeAnswer(a: Answer, method: string, book: CodeBook): Judgement {
  if (a.statusCode >= 500) return { ok: false, kind: `status ${a.statusCode}`, why: `status ${a.statusCode}: ${a.body.slice(0, 200)}` };
  if (a.statusCode < 400) return { ok: 'accepted' };
  // HEAD answers carry no body (RFC 9110 §9.3.2): the status is all there is to judge.
  if (method === 'HEAD') return { ok: 'refused', code: `HEAD ${a.statusCode}` };
  let body: unknown;
  try {
    body = JSON.parse(a.body);
  } catch {
    return { ok: false, kind: 'refusal without a JSON body', why: `status ${a.statusCode} without a JSON body: ${a.body.slice(0, 120)}` };
  }
  const code = (body as { code?: unknown } | null)?.code;
  const message = (body as { message?: unknown } | null)?.message;
  if (typeof code !== 'string' || typeof message !== 'string') return { ok: false, kind: 'refusal without {code, message}', why: `status ${a.statusCode} without {code, message}: ${a.body.slice(0, 120)}` };
  if (!book.isKnown(code)) return { ok: false, kind: `unknown code ${code}`, why: `unknown code ${code} (status ${a.statusCode}): ${message.slice(0, 120)}` };
  const expected = book.statusOf(code);
  if (expected !== undefined && expected !== a.statusCode) return { ok: false, kind: `wrong status for ${code}`, why: `${code} answered with ${a.statusCode}, its status is ${expected}` };
  return { ok: 'refused', code };
}

/** The codes exported as constants by `modules` (every `export const X = 'X'` whose value looks like a code). */
export function exportedCodes(...modules: Record<string, unknown>[]): Set<string> {
  const out = new Set<string>();
  for (const m of modules) for (const v of Object.values(m)) if (typeof v === 'string' && /^[A-Z][A-Z0-9]*(_[A-Z0-9]+)+$/.test(v)) out.add(v);
  return out;
}

/** The seed of this run: `FAULTS_SEED` when set (to replay a failure), else fresh. */
export function fuzzSeed(): number {
  const raw = process.env['FAULTS_SEED'];
  return raw !== undefined && raw !== '' ? Number(raw) : Math.floor(Math.random() * 2 ** 31);
}

/** Runs `property` for `numRuns` cases with `seed`; the property records outcomes and never fails. */
export async function runCases<T>(arb: fc.Arbitrary<T>, numRuns: number, seed: number, each: (value: T) => Promise<void> | void): Promise<void> {
  await fc.assert(
    fc.asyncProperty(arb, async (value) => {
      await each(value);
    }),
    { numRuns, seed, endOnFailure: true },
  );
}
