/**
 * kill -9 under load: of the hub's nats-server (the hub's supervisor must start it again), of the
 * hub daemon (started again on the same state, as systemd would), of a sending agent, and of a
 * receiving agent, several times, to land between "stored in its inbox" and "acked to JetStream".
 */
import type { FaultContext } from '../lib/context.js';
import { underLoad, type FaultRun, type Injected } from '../lib/fault-run.js';
import type { RowInput } from '../lib/report.js';
import { alive } from '../../test/helpers/netns.js';
import { waitFor } from '../../test/helpers/wait.js';

/** kill -9 of nats-server: the hub restarts it; agents reconnect and nothing is lost. */
export function killNatsServer(ctx: FaultContext): Promise<RowInput[]> {
  return underLoad(ctx, 'kill -9: nats-server (the hub restarts it)', async ({ fn, flow, progress }: FaultRun): Promise<Injected> => {
    const before = await fn.natsServerPid();
    if (before === undefined) throw new Error('no nats-server.pid under the hub state');
    const t0 = performance.now();
    process.kill(before, 'SIGKILL');
    let after: number | undefined;
    await waitFor('the hub to start nats-server again', async () => {
      after = await fn.natsServerPid();
      return after !== undefined && after !== before && alive(after);
    }, 60_000, 50);
    const restartedMs = performance.now() - t0;
    progress(`      nats-server ${before} killed, ${String(after)} running ${restartedMs.toFixed(0)} ms later`);
    await flow(20);
    return { faults: 1, notes: [`nats-server pid ${before} killed; the hub's supervisor had pid ${String(after)} running ${restartedMs.toFixed(0)} ms later`] };
  }).then((row) => [row]);
}

/** kill -9 of the hub daemon, started again on its state: agents keep accepting; nothing lost. */
export function killHub(ctx: FaultContext): Promise<RowInput[]> {
  return underLoad(ctx, 'kill -9: hub daemon (restarted on its state)', async ({ fn, flow, ledger, progress }: FaultRun): Promise<Injected> => {
    const t0 = performance.now();
    const refusedBefore = Object.values(ledger.summary().refusals).reduce((a, b) => a + b, 0);
    await fn.killHub();
    // A few messages while the hub is gone (systemd's RestartSec is about this long).
    await flow(8, 10_000);
    await fn.startHub();
    const upMs = performance.now() - t0;
    progress(`      hub killed and running again after ${upMs.toFixed(0)} ms`);
    await flow(20, 60_000);
    const refused = Object.values(ledger.summary().refusals).reduce((a, b) => a + b, 0) - refusedBefore;
    return {
      faults: 1,
      notes: [`hub pid killed; a new hub daemon wrote its endpoints ${upMs.toFixed(0)} ms later`],
      ...(refused > 0 ? { failures: { 'agents refused messages while the hub was down': refused } } : {}),
    };
  }).then((row) => [row]);
}

/** kill -9 of a sending agent, restarted at once: what it accepted before is delivered once. */
export function killSender(ctx: FaultContext): Promise<RowInput[]> {
  return underLoad(ctx, 'kill -9: sending agent FR (restarted)', async ({ fn, flow, progress }: FaultRun): Promise<Injected> => {
    const t0 = performance.now();
    await fn.killAgent('FR');
    await fn.startAgent('FR');
    progress(`      FR killed and ready again after ${(performance.now() - t0).toFixed(0)} ms`);
    await flow(20);
    return { faults: 1, notes: [`FR's agent killed and ready again after ${(performance.now() - t0).toFixed(0)} ms (its application saw "unreachable" meanwhile, not an acceptance)`] };
  }).then((row) => [row]);
}

const REDELIVERY = /duplicate delivery dropped/g;
// Logged between the inbox's fsync and the ack to JetStream: the window this row aims at.
const STORED = /stored in inbox, not yet acked/g;

/**
 * kill -9 of the receiving agent DE while messages flow to it, `recipientKills` rounds. Each round
 * aims at the window between "stored in the inbox" and "acked to JetStream": DE is killed, a
 * backlog builds up for it at the hub, and the agent started again is killed a second time as soon
 * as it logs that it stored the first item of that backlog and has not acked it yet. The
 * window was hit when a later agent logs redeliveries its inbox dropped (JetStream redelivered
 * what a killed one had stored but not acked), or the application is offered an item again
 * whose ack never happened.
 */
export function killRecipient(ctx: FaultContext): Promise<RowInput[]> {
  return underLoad(ctx, 'kill -9: receiving agent DE, repeatedly', async ({ fn, flow, ledger, progress }: FaultRun): Promise<Injected> => {
    const rounds = ctx.faultSizes.recipientKills;
    const dropped = (): number => fn.agentLogs('DE').match(REDELIVERY)?.length ?? 0;
    const before = dropped();
    let kills = 0;
    let midBacklog = 0;
    for (let i = 0; i < rounds; i++) {
      await flow(12);
      await fn.killAgent('DE');
      kills++;
      // A backlog for DE waits at the hub meanwhile.
      await flow(40, 15_000);
      const agent = await fn.startAgent('DE', { waitReady: false });
      try {
        await waitFor('DE to store its first redelivered item', () => (agent.output().match(STORED)?.length ?? 0) > 0 || agent.child.exitCode !== null, 30_000, 5);
        await fn.killAgent('DE');
        kills++;
        midBacklog++;
      } catch {
        // No delivery within 30 s: this round kills only once.
      }
      if (agent.child.exitCode !== null || agent.child.signalCode !== null) await fn.startAgent('DE');
    }
    await flow(12);
    const redelivered = dropped() - before;
    const { reoffers } = ledger.summary();
    progress(`      DE killed ${kills} times (${midBacklog} while storing a backlog): ${redelivered} redeliveries dropped by its inbox, ${reoffers} items re-offered before their ack`);
    return {
      faults: kills,
      notes: [
        `DE killed ${kills} times, ${midBacklog} of them right after it stored the first item of a backlog; window hit: ${redelivered} redeliveries of stored-but-unacked items dropped by a restarted inbox ("duplicate delivery dropped" in its log), ${reoffers} items offered again to the application before its ack`,
      ],
    };
  }).then((row) => [row]);
}
