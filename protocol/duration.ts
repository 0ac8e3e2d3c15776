import { ValidationError } from './errors.js';

const UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses `90s`, `15m`, `1h`, `7d`, `1h30m` into milliseconds; `what` names the flag in the error. */
export function parseDuration(text: string, what: string): number {
  const parts = [...text.trim().matchAll(/(\d+)(ms|s|m|h|d)/g)];
  const whole = parts.map((p) => p[0]).join('');
  if (parts.length === 0 || whole !== text.trim()) {
    throw new ValidationError('CLI_BAD_DURATION', what, [`${what}: not a duration like 90s, 15m, 1h, 7d (got ${JSON.stringify(text)})`]);
  }
  return parts.reduce((sum, p) => sum + Number(p[1]) * (UNITS[p[2] as string] as number), 0);
}

/** Renders milliseconds as the largest whole units, e.g. `7d`, `1h30m`, `250ms`. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  let rest = Math.abs(ms);
  let out = '';
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000], ['ms', 1]] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * size;
    }
  }
  return (ms < 0 ? '-' : '') + out;
}
