/**
 * Who is heard from, by heartbeat (`ncb.heartbeat.<CC>`, every 10 s from each agent). The first
 * heartbeat after an absence logs `country connected`; a country silent for `timeoutMs` (default
 * three heartbeats) logs `country disconnected`. Heartbeats rather than broker connections: a
 * connection can be up while the agent is wedged, and a heartbeat proves the agent runs. The
 * broker's own view (`/connz`) is the `ncbnet_country_connected` metric.
 *
 * In memory: the hub's clock when each country was last heard from and the policy digest its last
 * valid heartbeat reported. The registry keeps a coarser `lastSeen` (written at most once a
 * minute) that survives restarts.
 */
import type { Logger } from 'pino';
import type { Heartbeat } from '../../protocol/heartbeat.js';

/** Options of {@link Presence}. */
export interface PresenceOptions {
  /** Silence after which a country is logged disconnected. */
  timeoutMs: number;
  log: Logger;
  /** Current time in ms (default Date.now). */
  now?: () => number;
}

interface Heard {
  atMs: number;
  /** From the last heartbeat that passed the schema; undefined when none did. */
  policyHash: string | null | undefined;
  isPresent: boolean;
}

/** Heartbeat bookkeeping and the connected/disconnected log lines. */
export class Presence {
  readonly #log: Logger;
  readonly #timeoutMs: number;
  readonly #now: () => number;
  readonly #heard = new Map<string, Heard>();
  #timer: NodeJS.Timeout | undefined;

  constructor(opts: PresenceOptions) {
    this.#log = opts.log.child({ component: 'presence' });
    this.#timeoutMs = opts.timeoutMs;
    this.#now = opts.now ?? Date.now;
  }

  /** Starts the periodic silence check (a third of the timeout); the timer never holds the process. */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => this.check(), Math.max(50, Math.round(this.#timeoutMs / 3)));
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /**
   * A heartbeat from `country` arrived now. `heartbeat` is the parsed body when it passed the
   * schema (undefined otherwise: the country is still heard from, its policy digest unknown).
   */
  heard(country: string, heartbeat: Heartbeat | undefined): void {
    const before = this.#heard.get(country);
    const policyHash = heartbeat !== undefined ? heartbeat.policyHash : before?.policyHash;
    this.#heard.set(country, { atMs: this.#now(), policyHash, isPresent: true });
    if (before?.isPresent !== true) {
      this.#log.info({ country, ...(heartbeat ? { version: heartbeat.version } : {}) }, 'country connected');
    }
  }

  /** Logs every country silent for longer than the timeout as disconnected, once. Never throws. */
  check(): void {
    const now = this.#now();
    for (const [country, h] of this.#heard) {
      if (!h.isPresent || now - h.atMs < this.#timeoutMs) continue;
      h.isPresent = false;
      this.#log.info({ country, silentMs: now - h.atMs }, 'country disconnected');
    }
  }

  /**
   * Forgets a country taken off the network (suspended, revoked, removed); logs it disconnected
   * with `reason` if it was present.
   */
  forget(country: string, reason: string): void {
    const h = this.#heard.get(country);
    if (h?.isPresent) this.#log.info({ country, reason }, 'country disconnected');
    this.#heard.delete(country);
  }

  /** When the hub last heard from `country` (ms, hub clock), if it did since it started. */
  lastHeardMs(country: string): number | undefined {
    return this.#heard.get(country)?.atMs;
  }

  /**
   * The policy digest of `country`'s last valid heartbeat: a hex string, null when its firewall
   * is off, undefined when no valid heartbeat came yet.
   */
  policyHash(country: string): string | null | undefined {
    return this.#heard.get(country)?.policyHash;
  }
}
