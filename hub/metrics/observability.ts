/**
 * The hub's observability, composed in one place so the daemon only starts and stops it
 * (ARCHITECTURE, Observability): the metrics and their stats hooks (from construction, so every
 * service gets them), heartbeats (`ncb.heartbeat.*` → last seen, policy digest, connected and
 * disconnected log lines), the per-country status collector `/metrics` and
 * `GET /v1/admin/status` share, the synthetic probes, and the plain-HTTP `/metrics` listener.
 */
import type { JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { Registry as PromRegistry } from 'prom-client';
import { Value } from 'typebox/value';
import { policyDigest, type Policy } from '../../protocol/bundle.js';
import { HeartbeatSchema, type Heartbeat } from '../../protocol/heartbeat.js';
import { countryOfSubject, subjects } from '../../protocol/subjects.js';
import type { WgPeerState } from '../../system/wg.js';
import type { ReadinessCheck } from '../api/routes-health.js';
import type { HubConfig } from '../config.js';
import { Prober } from '../probes.js';
import type { CountryRecord } from '../registry/record.js';
import type { Registry, RegistryChange } from '../registry/registry.js';
import { deliveryBacklog } from './backlog.js';
import { fetchConnectedCountries } from './connz.js';
import { CountryStatusCollector } from './country-status.js';
import { HubMetrics } from './hub-metrics.js';
import { Presence } from './presence.js';
import { startMetricsServer, type MetricsServer } from './server.js';
import { statusJson, type HubStatus } from './status.js';

/** Time limit of each scrape-time source: a slow broker costs a scrape at most this much. */
const SOURCE_TIMEOUT_MS = 2_000;

/** What is known before the hub starts: hub-wide values read lazily, as the parts come up. */
export interface HubObservabilityOptions {
  config: HubConfig;
  log: Logger;
  /** The registry `/metrics` serves (default: a new one; never prom-client's global). */
  register?: PromRegistry | undefined;
  /** How long scrape-time I/O results are reused (default 2 s; 0 = every scrape does I/O). */
  cacheMs?: number | undefined;
  countries: () => readonly CountryRecord[];
  brokerUp: () => boolean | undefined;
  urgentOverdue: () => number | undefined;
}

/** What exists once the broker, the registry and the router run. */
export interface HubObservabilityParts {
  nc: NatsConnection;
  jsm: JetStreamManager;
  registry: Registry;
  monitorUrl: () => string;
  /** The hub interface's peers, when WireGuard is on. */
  wireguardPeers?: (() => Promise<readonly WgPeerState[]>) | undefined;
  /** The policy the hub hands out now (what agents' heartbeats must report). */
  policy: () => Policy;
}

/** Metrics, heartbeats, status, probes and the `/metrics` listener of one hub. */
export class HubObservability {
  readonly metrics: HubMetrics;
  readonly #o: HubObservabilityOptions;
  readonly #log: Logger;
  #presence: Presence | undefined;
  #collector: CountryStatusCollector | undefined;
  #prober: Prober | undefined;
  #server: MetricsServer | undefined;

  constructor(opts: HubObservabilityOptions) {
    this.#o = opts;
    this.#log = opts.log;
    this.metrics = new HubMetrics(opts.register ?? new PromRegistry(), {
      countries: opts.countries,
      snapshot: () => this.#collector?.snapshot(),
      brokerUp: opts.brokerUp,
      urgentOverdue: opts.urgentOverdue,
    });
  }

  /**
   * Starts heartbeats, the status collector and the probes over the hub's connection. Call once
   * the router runs; before it the metrics hold only what the stats hooks counted.
   */
  start(parts: HubObservabilityParts): void {
    const { config } = this.#o;
    const presence = new Presence({ timeoutMs: config.heartbeats.timeoutMs, log: this.#log });
    this.#presence = presence;
    this.#listenHeartbeats(parts.nc, parts.registry, presence);
    presence.start();
    this.#collector = new CountryStatusCollector({
      log: this.#log,
      timeoutMs: SOURCE_TIMEOUT_MS,
      ...(this.#o.cacheMs === undefined ? {} : { cacheMs: this.#o.cacheMs }),
      sources: {
        countries: () => parts.registry.list(),
        presence,
        policyDigest: () => policyDigest(parts.policy()),
        connz: () => fetchConnectedCountries(parts.monitorUrl(), SOURCE_TIMEOUT_MS),
        backlog: () => deliveryBacklog(parts.jsm),
        wireguard: parts.wireguardPeers,
      },
    });
    this.#prober = new Prober({
      nc: parts.nc,
      countries: () => parts.registry.activeCodes(),
      intervalMs: config.probes.intervalMs,
      timeoutMs: config.probes.timeoutMs,
      log: this.#log,
      stats: this.metrics.probeStats,
    });
    this.#prober.start();
  }

  /**
   * `/metrics` (and `/healthz`, `/readyz`) on `metrics.host:port`; resolves with its URL. A port
   * that cannot be bound is logged at error level and the hub runs on without it (undefined):
   * routing must not stop for want of a metrics port, and Prometheus reports the target down.
   */
  async listen(readiness: ReadinessCheck): Promise<string | undefined> {
    const { host, port } = this.#o.config.metrics;
    try {
      this.#server = await startMetricsServer({ host, port, register: this.metrics.register, readiness, log: this.#log.child({ component: 'metrics' }) });
      this.#log.info({ url: this.#server.url }, 'metrics listening');
      return this.#server.url;
    } catch (err) {
      this.#log.error({ err, host, port }, 'metrics listener not started; the hub runs without /metrics');
      return undefined;
    }
  }

  /** Closes the listener and stops the probes and the silence check. Safe to call more than once. */
  async stop(): Promise<void> {
    this.#prober?.stop();
    this.#presence?.stop();
    const server = this.#server;
    this.#server = undefined;
    await server?.close();
  }

  /** `GET /v1/admin/status`; undefined until {@link start}. */
  status(): Promise<HubStatus> | undefined {
    const snapshot = this.#collector?.snapshot();
    if (snapshot === undefined) return undefined;
    return snapshot.then((snap) => statusJson(snap, { brokerUp: this.#o.brokerUp() ?? false, urgentOverdue: this.#o.urgentOverdue() ?? 0 }));
  }

  /**
   * A registry write (its listener): metrics (revocations, series of revoked countries), and one
   * log line per lifecycle event the other services do not log (enrolled and renewed are logged
   * by enrollment, revoked by the admin service).
   */
  observe(change: RegistryChange): void {
    this.metrics.countryChanged(change);
    const { before, after } = change;
    if (before?.status === after.status) return;
    const country = after.code;
    if (after.status === 'suspended') {
      this.#log.info({ country, reason: after.statusReason }, 'country suspended');
      this.#presence?.forget(country, 'suspended');
    } else if (after.status === 'active' && before?.status === 'suspended') {
      this.#log.info({ country }, 'country resumed');
    } else if (after.status === 'revoked') {
      this.#presence?.forget(country, 'revoked');
    }
  }

  /**
   * `ncb.heartbeat.<CC>` → the registry's last seen (written at most once a minute) and, for the
   * metrics, the time and policy digest (`Presence`). The broker guarantees the subject's country
   * is the sender. A body that fails the schema still counts as heard from (its digest unknown).
   */
  #listenHeartbeats(nc: NatsConnection, registry: Registry, presence: Presence): void {
    const log = this.#log.child({ component: 'heartbeat' });
    nc.subscribe(subjects.heartbeatAll, {
      callback: (err, msg) => {
        if (err) {
          log.error({ err }, 'heartbeat subscription failed');
          return;
        }
        const country = countryOfSubject(msg.subject, 'heartbeat');
        if (!country || !registry.isActive(country)) return;
        presence.heard(country, parseHeartbeat(msg.data, country));
        registry.touch(country, new Date()).catch((e: unknown) => log.warn({ err: e, country }, 'could not record last seen'));
      },
    });
  }
}

/** A heartbeat body that passes the schema and names the subject's country, else undefined. */
function parseHeartbeat(data: Uint8Array, country: string): Heartbeat | undefined {
  try {
    const value: unknown = JSON.parse(new TextDecoder().decode(data));
    return Value.Check(HeartbeatSchema, value) && value.country === country ? value : undefined;
  } catch {
    return undefined;
  }
}
