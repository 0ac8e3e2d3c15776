/**
 * What every scenario is given: an owner for what it starts (a tap test, or the runner's own
 * {@link Owner}), its sizes, a progress line writer, and the shared environments, each started
 * once on first use (the hub daemon with enrolled countries costs seconds; scenarios share it).
 */
import type { DaemonOwner } from '../../test/helpers/daemon-process.js';
import { startHubServices } from '../../test/helpers/hub-inprocess.js';
import { startFaultNetwork, type FaultNetwork } from './fault-network.js';
import { QUICK_FAULT_SIZES, type FaultLoadSizes } from './fault-run.js';
import { startAttackNetwork, type AttackNetwork } from './network.js';

/** How big each scenario runs. */
export interface FaultSizes {
  /** Cases per fuzz target (10 000 in a full run, 1 000 in tests). */
  fuzzCases: number;
  /** Random well-formed tokens tried in a row against `POST /v1/enroll`. */
  bruteForceTokens: number;
  /** Fault injection: load, outage lengths, repetitions (quick sizes when absent). */
  faults?: FaultLoadSizes;
}

export type HubServices = Awaited<ReturnType<typeof startHubServices>>;

export interface FaultContext {
  owner: DaemonOwner;
  sizes: FaultSizes;
  progress(text: string): void;
  /** The real hub daemon with FR, DE and IT enrolled (attacks on the broker, tokens, envelopes, admin API). */
  network(): Promise<AttackNetwork>;
  /** The hub's services in this process on a plain nats-server (fuzzing its API with `inject`). */
  hubServices(): Promise<HubServices>;
  /** The hub and FR, DE, IT, ES in network namespaces with real tunnels (fault injection). */
  faultNetwork(): Promise<FaultNetwork>;
  /** `sizes.faults`, or the quick sizes. */
  faultSizes: FaultLoadSizes;
}

/** A context whose environments start lazily and are stopped by `owner`'s teardown. */
export function makeContext(owner: DaemonOwner, sizes: FaultSizes, progress: (text: string) => void = () => undefined): FaultContext {
  let network: Promise<AttackNetwork> | undefined;
  let services: Promise<HubServices> | undefined;
  let faultNet: Promise<FaultNetwork> | undefined;
  return {
    owner,
    sizes,
    progress,
    network: () => (network ??= startAttackNetwork(owner, progress)),
    hubServices: () => (services ??= startHubServices(owner)),
    faultNetwork: () => (faultNet ??= startFaultNetwork(owner, progress)),
    faultSizes: sizes.faults ?? QUICK_FAULT_SIZES,
  };
}
