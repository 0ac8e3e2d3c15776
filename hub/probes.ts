/**
 * Synthetic probes (contract: `protocol/probe.ts`). Every `intervalMs` the hub publishes a
 * {@link ProbeRequest} to each active country on `ncb.event.<CC>` (core NATS: a country that is
 * away must miss it, not get it later) and listens on `ncb.probe.*` for answers. The round trip
 * is measured on the hub's monotonic clock (`performance.now()`), so no clock skew enters; a probe
 * not answered within `timeoutMs` counts as missed. The broker lets a country publish only its
 * own `ncb.probe.<CC>`, and an answer is taken only when the subject's country is the answer's
 * `country` and the probe with that id went to that country.
 */
import { randomBytes } from 'node:crypto';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { Value } from 'typebox/value';
import { ProbeAnswerSchema, type ProbeRequest } from '../protocol/probe.js';
import { countryOfSubject, subjects } from '../protocol/subjects.js';
import type { ProbeStats } from './metrics/hub-metrics.js';

export interface ProberOptions {
  /** The hub's own connection (its user may publish every event subject). */
  nc: NatsConnection;
  /** The countries to probe now: the active ones. */
  countries: () => readonly string[];
  intervalMs: number;
  /** Less than `intervalMs` (hub.json checks it), so each country has at most one probe in flight. */
  timeoutMs: number;
  log: Logger;
  stats?: ProbeStats;
}

interface InFlight {
  country: string;
  sentAtMs: number;
}

/** Probes every active country periodically; `start()` / `stop()`. */
export class Prober {
  readonly #o: ProberOptions;
  readonly #log: Logger;
  readonly #inFlight = new Map<string, InFlight>();
  readonly #sweeps = new Set<NodeJS.Timeout>();
  #timer: NodeJS.Timeout | undefined;
  #sub: Subscription | undefined;

  constructor(opts: ProberOptions) {
    this.#o = opts;
    this.#log = opts.log.child({ component: 'probes' });
  }

  /** Subscribes to answers and starts the rounds (the first one interval from now). Idempotent. */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#sub = this.#o.nc.subscribe(subjects.probeAll, {
      callback: (err, msg) => {
        if (err) {
          this.#log.error({ err }, 'probe answer subscription failed');
          return;
        }
        this.#answer(msg.subject, msg.data);
      },
    });
    this.#timer = setInterval(() => this.round(), this.#o.intervalMs);
    this.#timer.unref();
    this.#log.info({ intervalMs: this.#o.intervalMs, timeoutMs: this.#o.timeoutMs }, 'probes started');
  }

  /** Stops the rounds and forgets probes in flight (they are neither answered nor missed). */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    for (const t of this.#sweeps) clearTimeout(t);
    this.#sweeps.clear();
    this.#inFlight.clear();
    try {
      this.#sub?.unsubscribe();
    } catch (err) {
      // The connection may already be closed; nothing is left to undo then.
      this.#log.debug({ err }, 'probe subscription already gone');
    }
    this.#sub = undefined;
  }

  /** Sends one probe to every active country now (the timer calls it). Never throws. */
  round(): void {
    const { nc, timeoutMs } = this.#o;
    const ids: string[] = [];
    for (const country of this.#o.countries()) {
      const id = randomBytes(12).toString('base64url');
      const probe: ProbeRequest = { type: 'probe', id, sentAt: new Date().toISOString() };
      try {
        nc.publish(subjects.event(country), JSON.stringify(probe));
      } catch (err) {
        // A closed or draining connection: the round is over for everyone.
        this.#log.warn({ err, country }, 'probe not sent');
        break;
      }
      this.#inFlight.set(id, { country, sentAtMs: performance.now() });
      ids.push(id);
    }
    if (ids.length === 0) return;
    const sweep = setTimeout(() => {
      this.#sweeps.delete(sweep);
      for (const id of ids) {
        const p = this.#inFlight.get(id);
        if (p === undefined) continue;
        this.#inFlight.delete(id);
        this.#o.stats?.onProbeMissed(p.country);
        this.#log.debug({ country: p.country, id, timeoutMs }, 'probe missed');
      }
    }, timeoutMs);
    sweep.unref();
    this.#sweeps.add(sweep);
  }

  #answer(subject: string, data: Uint8Array): void {
    const atMs = performance.now();
    const country = countryOfSubject(subject, 'probe');
    let value: unknown;
    try {
      value = JSON.parse(new TextDecoder().decode(data));
    } catch {
      this.#log.debug({ country, subject }, 'probe answer ignored: not JSON');
      return;
    }
    if (!Value.Check(ProbeAnswerSchema, value)) {
      this.#log.debug({ country, subject }, 'probe answer ignored: does not match the schema');
      return;
    }
    if (country === undefined || value.country !== country) {
      this.#log.debug({ country, claimed: value.country, subject }, 'probe answer ignored: subject and country differ');
      return;
    }
    const p = this.#inFlight.get(value.id);
    if (p === undefined || p.country !== country) {
      // Late (already counted missed), a duplicate, or an id that went to someone else.
      this.#log.debug({ country, id: value.id }, 'probe answer ignored: no such probe in flight');
      return;
    }
    this.#inFlight.delete(value.id);
    this.#o.stats?.onProbeAnswered(country, (atMs - p.sentAtMs) / 1000);
  }
}
