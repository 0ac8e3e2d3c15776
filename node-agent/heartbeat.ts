import type { Logger } from 'pino';
import type { Bundle } from '../protocol/bundle.js';
import type { Heartbeat } from '../protocol/heartbeat.js';
import type { AgentFirewall } from './firewall/agent-firewall.js';
import type { Relay } from './relay/relay.js';
import type { AgentTunnel } from './tunnel/agent-tunnel.js';

/** What a heartbeat reports, from the parts the agent has running (any may be absent). */
export async function heartbeatBody(parts: { bundle: Bundle; version: string; tunnel?: AgentTunnel | undefined; firewall?: AgentFirewall | undefined; relay?: Relay | undefined }): Promise<Heartbeat> {
  const { bundle } = parts;
  const tunnel = parts.tunnel ? await parts.tunnel.state() : { up: false, lastHandshake: undefined, rxBytes: 0, txBytes: 0 };
  return {
    v: 1,
    country: bundle.country,
    version: parts.version,
    at: new Date().toISOString(),
    tunnel: { up: tunnel.up, lastHandshake: tunnel.lastHandshake?.toISOString() ?? null, rxBytes: tunnel.rxBytes, txBytes: tunnel.txBytes },
    certSerial: bundle.serial,
    certNotAfter: bundle.notAfter,
    // The digest of the policy the firewall applied: the hub compares it with the one it hands out.
    policyHash: parts.firewall?.policyDigest ?? null,
    outboxDepth: parts.relay?.outboxDepth() ?? 0,
  };
}

export interface HeartbeatOptions {
  intervalMs: number;
  /** Gathers the current facts; called at every beat. */
  collect: () => Promise<Heartbeat>;
  /** Sends one heartbeat; may throw when the broker is away (logged, the next beat tries again). */
  publish: (beat: Heartbeat) => void;
  log: Logger;
}

/** Publishes a heartbeat at a fixed interval, the first at once; never two at the same time. */
export class HeartbeatTimer {
  readonly #o: HeartbeatOptions;
  #timer: NodeJS.Timeout | undefined;
  #isBeating = false;
  #failures = 0;

  constructor(opts: HeartbeatOptions) {
    this.#o = opts;
  }

  start(): void {
    if (this.#timer) return;
    void this.beat();
    this.#timer = setInterval(() => void this.beat(), this.#o.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One beat now (also what the timer calls). */
  async beat(): Promise<void> {
    if (this.#isBeating) return;
    this.#isBeating = true;
    try {
      this.#o.publish(await this.#o.collect());
      if (this.#failures > 0) this.#o.log.info({ after: this.#failures }, 'heartbeats flowing again');
      this.#failures = 0;
    } catch (err) {
      // Logged on the first failure and then every 30th, so a long outage does not flood the log.
      if (this.#failures++ % 30 === 0) this.#o.log.warn({ err, failures: this.#failures }, 'heartbeat not sent');
    } finally {
      this.#isBeating = false;
    }
  }
}
