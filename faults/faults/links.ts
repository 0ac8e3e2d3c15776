/**
 * Links down under load: the hub unreachable for every country for a long stretch (its bridge
 * down) while the agents keep accepting from their applications, then back; and one country
 * partitioned (its underlay link down) while the others' delivery latency is measured before and
 * during: it must not move (within 2x plus a little slack).
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { FaultContext } from '../lib/context.js';
import { underLoad, type FaultRun, type Injected } from '../lib/fault-run.js';
import type { Latency } from '../lib/ledger.js';
import type { RowInput } from '../lib/report.js';

const totalRefusals = (r: Record<string, number>): number => Object.values(r).reduce((a, b) => a + b, 0);

/** The hub unreachable for `outageSeconds`: every agent keeps answering 2xx; all delivered after. */
export function hubUnreachable(ctx: FaultContext): Promise<RowInput[]> {
  const seconds = ctx.faultSizes.outageSeconds;
  return underLoad(ctx, `link down: hub unreachable for ${seconds} s`, async ({ fn, ledger, flow, progress }: FaultRun): Promise<Injected> => {
    const before = totalRefusals(ledger.summary().refusals);
    const acceptedBefore = ledger.summary().messages;
    await fn.setHubLink(false);
    try {
      // The outage is the fault itself: a timed stretch, with the load running through it.
      await delay(seconds * 1000);
    } finally {
      await fn.setHubLink(true);
    }
    const during = ledger.summary().messages - acceptedBefore;
    const refused = totalRefusals(ledger.summary().refusals) - before;
    progress(`      hub back after ${seconds} s: ${during} messages accepted meanwhile, ${refused} refused`);
    await flow(20, 60_000);
    return {
      faults: 1,
      notes: [`hub bridge down ${seconds} s: the agents accepted ${during} messages meanwhile and refused ${refused}`],
      failures: {
        ...(refused > 0 ? { 'refused while the hub was unreachable': refused } : {}),
        ...(during === 0 ? { 'nothing accepted while the hub was unreachable': 1 } : {}),
      },
    };
  }).then((row) => [row]);
}

const fmt = (l: Latency): string => `p50 ${l.p50.toFixed(0)} ms, p99 ${l.p99.toFixed(0)} ms (n=${l.n})`;

/** IT partitioned for `outageSeconds`; FR, DE and ES deliver among themselves as fast as before. */
export function partitionOne(ctx: FaultContext): Promise<RowInput[]> {
  const seconds = ctx.faultSizes.outageSeconds;
  const cut = 'IT';
  return underLoad(ctx, `partition: ${cut} cut off for ${seconds} s, the others unaffected`, async ({ fn, ledger, flow, progress }: FaultRun): Promise<Injected> => {
    const others = (from: string, to: string): boolean => from !== cut && to !== cut;
    const t0 = performance.now();
    await flow(40, 30_000);
    const t1 = performance.now();
    const refusedBefore = totalRefusals(ledger.summary().refusals);
    await fn.setCountryLink(cut, false);
    try {
      await delay(seconds * 1000);
    } finally {
      await fn.setCountryLink(cut, true);
    }
    const t2 = performance.now();
    const refused = totalRefusals(ledger.summary().refusals) - refusedBefore;
    await flow(20, 60_000);
    const before = ledger.latency((f, to, at) => others(f, to) && at >= t0 && at < t1);
    const during = ledger.latency((f, to, at) => others(f, to) && at >= t1 && at < t2);
    progress(`      others' latency before ${fmt(before)}; during ${fmt(during)}`);
    const failures: Record<string, number> = {};
    // 2x plus slack: a loaded 2-core machine shifts tens of milliseconds without any fault.
    if (during.n === 0 || during.p50 > 2 * before.p50 + 100) failures["the others' p50 latency moved"] = 1;
    if (during.n === 0 || during.p99 > 2 * before.p99 + 500) failures["the others' p99 latency moved"] = 1;
    if (refused > 0) failures['refused during the partition'] = refused;
    return {
      faults: 1,
      notes: [`latency FR/DE/ES among themselves before: ${fmt(before)}; during ${cut}'s partition: ${fmt(during)} (pass: within 2x + 100 ms / 500 ms)`, `refused during the partition: ${refused}`],
      failures,
    };
  }).then((row) => [row]);
}
