import type { Logger } from 'pino';
import type { Heartbeat } from '../protocol/heartbeat.js';

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
