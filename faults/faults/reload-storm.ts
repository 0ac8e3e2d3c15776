/**
 * Reload storm: registry changes in a row through the operator's admin API while traffic flows —
 * countries added, tokens created, and the idle enrolled country suspended and resumed (each of
 * those rewrites the broker's users and pins, and the hub's WireGuard peers, and reloads them).
 * Every change must be answered 2xx, and the traffic between the others must not lose a message.
 */
import type { FaultContext } from '../lib/context.js';
import { IDLE_COUNTRY } from '../lib/fault-network.js';
import { formatCounts, underLoad, type FaultRun, type Injected } from '../lib/fault-run.js';
import type { RowInput } from '../lib/report.js';

/** Codes the storm adds (never used by the fault network); each run of the suite starts a fresh hub. */
const NEW_CODES = ['AT', 'BE', 'BG', 'HR', 'CY', 'CZ', 'DK', 'EE', 'FI', 'GR', 'HU', 'IE', 'LV', 'LT', 'LU', 'MT', 'NL', 'PL', 'RO', 'SK', 'SI', 'SE', 'NO', 'CH', 'IS'];

const RELOADED = /nats-server reloaded/g;

export function reloadStorm(ctx: FaultContext): Promise<RowInput[]> {
  const changes = ctx.faultSizes.reloadChanges;
  return underLoad(ctx, `reload storm: ${changes} registry changes in a row`, async ({ fn, progress }: FaultRun): Promise<Injected> => {
    const reloadsBefore = fn.net.hub.output().match(RELOADED)?.length ?? 0;
    const answers: Record<string, number> = {};
    let made = 0;
    let added = 0;
    const t0 = performance.now();
    const change = async (what: string, method: string, path: string, body?: unknown): Promise<void> => {
      const r = await fn.admin(method, path, body).catch((err: unknown) => ({ status: 0, text: String(err) }));
      const k = r.status >= 200 && r.status < 300 ? '2xx' : `${what} ${r.status}`;
      answers[k] = (answers[k] ?? 0) + 1;
      made++;
    };
    // In fours: add a country, create its token, suspend the idle one, resume it.
    while (made < changes) {
      const code = NEW_CODES[added % NEW_CODES.length] as string;
      const steps: [string, string, string, unknown?][] = [
        ['country add', 'POST', '/countries', { code, name: `Storm ${code}` }],
        ['token create', 'POST', '/tokens', { country: code }],
        ['suspend', 'POST', `/countries/${IDLE_COUNTRY}/suspend`, { reason: 'reload storm' }],
        ['resume', 'POST', `/countries/${IDLE_COUNTRY}/resume`],
      ];
      added++;
      for (const [what, method, path, body] of steps) {
        if (made >= changes) break;
        await change(what, method, path, body);
      }
    }
    // A suspend without its resume would leave PT suspended for later scenarios.
    if (made % 4 === 3) await fn.admin('POST', `/countries/${IDLE_COUNTRY}/resume`);
    const ms = performance.now() - t0;
    const reloads = (fn.net.hub.output().match(RELOADED)?.length ?? 0) - reloadsBefore;
    progress(`      ${made} changes in ${(ms / 1000).toFixed(1)} s: ${formatCounts(answers)}; ${reloads} nats-server reloads logged`);
    const failures = Object.fromEntries(Object.entries(answers).filter(([k]) => k !== '2xx'));
    return { faults: made, notes: [`${made} registry changes in ${(ms / 1000).toFixed(1)} s (answers: ${formatCounts(answers)}); the hub logged ${reloads} nats-server reloads meanwhile`], failures };
  }).then((row) => [row]);
}
