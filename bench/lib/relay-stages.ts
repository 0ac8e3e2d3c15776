/**
 * Where a relayed message's time goes, from the daemons' own debug logs (RELAY_STAGES=1 runs them
 * at `debug`; the logging itself costs a little). For each latency sample: the POST's start and
 * the event's arrival at DE (this process), FR's `message accepted` (signed, outbox and status
 * fsynced), FR's drain `submitted` (PubAck from SUBMIT, status fsynced, outbox file removed), the
 * hub router's `routed` (its `ms` gives when it took the message), all as ms after the POST's
 * start. pino's `time` is epoch milliseconds, so every mark is ±1 ms.
 */
import { median, percentile } from './relay-common.js';

export interface Sample {
  id: string;
  /** Epoch ms (performance.timeOrigin + performance.now()). */
  postAt: number;
  arrivedAt: number;
}

interface LogLine {
  time?: number;
  msg?: string;
  id?: string;
  ms?: number;
}

function lines(output: string): LogLine[] {
  const out: LogLine[] = [];
  for (const line of output.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as LogLine);
    } catch {
      // not a log line
    }
  }
  return out;
}

/** First time each id was logged with `msg`. */
function marks(output: string, msg: string): Map<string, LogLine> {
  const out = new Map<string, LogLine>();
  for (const l of lines(output)) if (l.msg === msg && l.id !== undefined && !out.has(l.id)) out.set(l.id, l);
  return out;
}

/** Rows `[stage, median ms after POST start, p90]` over the samples found in every log. */
export function stageTimeline(samples: readonly Sample[], logs: { fr: string; hub: string }): string[][] {
  const accepted = marks(logs.fr, 'message accepted');
  const submitted = marks(logs.fr, 'submitted');
  const routed = marks(logs.hub, 'routed');
  const cols: Record<string, number[]> = { accepted: [], submitted: [], routerStart: [], routerEnd: [], routerMs: [], arrived: [] };
  for (const s of samples) {
    const a = accepted.get(s.id)?.time;
    const sub = submitted.get(s.id)?.time;
    const r = routed.get(s.id);
    if (a === undefined || sub === undefined || r?.time === undefined || r.ms === undefined) continue;
    cols['accepted']?.push(a - s.postAt);
    cols['submitted']?.push(sub - s.postAt);
    cols['routerStart']?.push(r.time - r.ms - s.postAt);
    cols['routerEnd']?.push(r.time - s.postAt);
    cols['routerMs']?.push(r.ms);
    cols['arrived']?.push(s.arrivedAt - s.postAt);
  }
  const row = (label: string, v: number[]): string[] => [label, median(v).toFixed(2), percentile(v, 0.9).toFixed(2)];
  return [
    row(`FR accepted: signed, outbox + status fsynced (n=${cols['accepted']?.length ?? 0})`, cols['accepted'] ?? []),
    row('FR drain logged submitted: PubAck, status fsync, outbox unlink', cols['submitted'] ?? []),
    row('hub router took it from SUBMIT', cols['routerStart'] ?? []),
    row('hub router done: verified, DELIVER PubAck, audit PubAck, acked', cols['routerEnd'] ?? []),
    row('  router handling alone (ms, not a mark)', cols['routerMs'] ?? []),
    row('DE event at the app: fetched, verified, inbox fsynced', cols['arrived'] ?? []),
  ];
}
