/**
 * One fault scenario's frame: start the load on the fault network, let it warm up, inject the
 * fault (the scenario's function), keep the load going a little after it healed, stop sending,
 * wait for every accepted message to reach every recipient (with a deadline), and turn the
 * {@link Ledger}'s verdict into a report row of kind `fault`: attempts = messages accepted,
 * refused = delivered, leaked = lost, duplicated, plus the scenario's own checks as failures.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { FaultContext } from './context.js';
import { FAULT_COUNTRIES, type FaultNetwork } from './fault-network.js';
import { Ledger, type LedgerSummary } from './ledger.js';
import { Load } from './load.js';
import type { RowInput } from './report.js';

/** What a fault scenario's injection hands back. */
export interface Injected {
  /** Faults injected (kills, links cut, registry changes…). */
  faults: number;
  /** Figures for the row's notes. */
  notes?: string[];
  /** Checks of the scenario that failed, by kind, with counts (the row FAILs). */
  failures?: Record<string, number>;
}

/** What the injection gets. */
export interface FaultRun {
  fn: FaultNetwork;
  load: Load;
  ledger: Ledger;
  progress: (text: string) => void;
  /** Waits until `n` more messages were accepted (or `ms` passed): load between steps, not a fixed sleep. */
  flow: (n: number, ms?: number) => Promise<void>;
}

/** How big the fault scenarios run (full run vs `FAULTS_QUICK=1` and `make test`). */
export interface FaultLoadSizes {
  /** Messages per second per sending country. */
  ratePerSecond: number;
  /** How long the hub stays unreachable, and one country partitioned. */
  outageSeconds: number;
  /** Registry changes in a row in the reload storm. */
  reloadChanges: number;
  /** Times the recipient agent is killed. */
  recipientKills: number;
  /** Deadline for every message to arrive once the fault healed. */
  convergeSeconds: number;
}

export const FULL_FAULT_SIZES: FaultLoadSizes = { ratePerSecond: 4, outageSeconds: 20, reloadChanges: 50, recipientKills: 5, convergeSeconds: 120 };
export const QUICK_FAULT_SIZES: FaultLoadSizes = { ratePerSecond: 3, outageSeconds: 6, reloadChanges: 12, recipientKills: 1, convergeSeconds: 90 };

/** Refusal notes: `507 LOCAL_STORAGE_FULL ×3, unreachable ×2`. */
export function formatCounts(counts: Record<string, number>): string {
  const entries = Object.entries(counts);
  return entries.length === 0 ? 'none' : entries.map(([k, n]) => `${k} ×${n}`).join(', ');
}

function rowOf(scenario: string, s: LedgerSummary, injected: Injected, converged: boolean, ms: number): RowInput {
  const failures: Record<string, number> = { ...injected.failures };
  if (!converged) failures['not converged by the deadline'] = s.lost;
  if (s.lost > 0) failures['lost'] = s.lost;
  if (s.duplicated > 0) failures['duplicated'] = s.duplicated;
  const notes = [
    `${injected.faults} fault(s) injected; ${s.messages} messages accepted (${s.pairs} deliveries), ${s.delivered} delivered to every recipient, ${s.lost} lost, ${s.duplicated} duplicated`,
    `re-offered before their ack (allowed): ${s.reoffers}; refused by the local API: ${formatCounts(s.refusals)}${s.foreign > 0 ? `; items of earlier scenarios acked: ${s.foreign}` : ''}`,
    ...(s.lostPairs.length > 0 ? [`first lost: ${s.lostPairs.join(', ')}`] : []),
    ...(injected.notes ?? []),
  ];
  return { scenario, kind: 'fault', attempts: s.messages, refused: s.delivered, leaked: s.lost, duplicated: s.duplicated, failures, notes, ms };
}

/** Where a failed row's evidence goes: each lost message's state at its sender, and every daemon's log. */
async function evidence(fn: FaultNetwork, ledger: Ledger, s: LedgerSummary, scenario: string): Promise<string[]> {
  const notes: string[] = [];
  for (const pair of s.lostPairs) {
    const id = pair.split('→')[0] as string;
    const from = ledger.senderOf(id) as string;
    const r = await fetch(`${fn.apiUrl(from)}/v1/messages/${id}`, { headers: { authorization: `Bearer ${fn.token(from)}` }, signal: AbortSignal.timeout(5_000) })
      .then(async (res) => `${res.status} ${await res.text()}`)
      .catch((err: unknown) => String(err));
    notes.push(`lost ${pair}: at ${from}: ${r.slice(0, 400)}`);
  }
  const dir = join(tmpdir(), 'ncbnet-faults-logs', fn.net.lab.id, scenario.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '').toLowerCase());
  const files = await fn.dumpLogs(dir);
  notes.push(`logs of every daemon (killed ones too): ${dir} (${files.length} files)`);
  return notes;
}

/** Runs `inject` under the load and judges the result; see the module comment. */
export async function underLoad(ctx: FaultContext, scenario: string, inject: (run: FaultRun) => Promise<Injected>): Promise<RowInput> {
  const started = performance.now();
  const sizes = ctx.faultSizes;
  const fn = await ctx.faultNetwork();
  const ledger = new Ledger();
  const countries = [...FAULT_COUNTRIES];
  // The cap only bounds a run gone wrong; the scenario stops the senders when its fault healed.
  const load = new Load(fn, ledger, { senders: countries, countries, ratePerSecond: sizes.ratePerSecond, maxPerSender: sizes.ratePerSecond * 900 });
  const flow = async (n: number, ms = 30_000): Promise<void> => {
    const target = ledger.summary().messages + n;
    const deadline = Date.now() + ms;
    while (ledger.summary().messages < target && Date.now() < deadline) await delay(100);
  };
  let injected: Injected;
  try {
    await flow(countries.length * sizes.ratePerSecond * 2);
    injected = await inject({ fn, load, ledger, progress: (text) => ctx.progress(text), flow });
    // Some load after the fault healed: the agents must take it and deliver it as before.
    await flow(countries.length * sizes.ratePerSecond * 2);
    await load.stopSending();
    const missing = ledger.missing();
    if (missing > 0) ctx.progress(`      waiting for ${missing} deliveries`);
    const converged = await load.converge(sizes.convergeSeconds * 1000);
    await load.stop();
    const summary = ledger.summary();
    const row = rowOf(scenario, summary, injected, converged, performance.now() - started);
    if (Object.keys(row.failures ?? {}).length > 0) row.notes?.push(...(await evidence(fn, ledger, summary, scenario)));
    return row;
  } finally {
    await load.stop();
  }
}
