/**
 * The agent's Prometheus metrics (ARCHITECTURE, Observability) and the listener serving them with
 * `/healthz` and `/readyz`, apart from the local API so monitoring needs no API token and the NCB
 * can expose one without the other.
 *
 * Everything lives in the Registry the daemon hands in (never prom-client's global one), labelled
 * `country="<CC>"`. Values that need I/O (`wg show`, `nft list`) are read at scrape time, once per
 * scrape for all the series that use them, each bounded by `collectTimeoutMs`: a stuck `wg` costs
 * its series for that scrape (absent, logged), never the scrape. A timestamp that never happened
 * (no handshake yet) is absent, never 0; so are the tunnel series of an agent run without a tunnel
 * and the firewall series of one without a firewall.
 */
import type { AddressInfo } from 'node:net';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { LogController } from 'fastify';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { POLICY_CHECK_RESULTS, type PolicyCheckResult } from './firewall/policy-sync.js';
import { AGENT_COUNTERS } from './firewall/ruleset.js';
import { registerHealthRoutes, type ReadinessCheck } from './local-api/routes-health.js';
import type { LocalApiApp } from './local-api/schemas.js';
import type { RelayStats } from './relay/types.js';
import type { NftCounter } from '../system/nft.js';
import type { AgentTunnelState } from './tunnel/agent-tunnel.js';

/** The drop rules of the agent's table whose counters add up to the firewall drop metrics. */
const DROP_COUNTERS: readonly string[] = [AGENT_COUNTERS.tunnelInputDrop, AGENT_COUNTERS.forwardFromTunnel, AGENT_COUNTERS.forwardIntoTunnel];

/** How long a scrape waits for `wg show` or `nft list` (default of {@link AgentMetricsOptions.collectTimeoutMs}). */
export const DEFAULT_COLLECT_TIMEOUT_MS = 2_000;

/**
 * Where the metrics come from. Getters, since the daemon builds its parts one after the other and
 * replaces some (renewal brings a new certificate); undefined means "not there" (absent series).
 */
export interface AgentMetricsSources {
  tunnel: () => { isUp(): boolean; state(): Promise<AgentTunnelState> } | undefined;
  firewall: () => { counters(): Promise<ReadonlyMap<string, NftCounter>> } | undefined;
  relay: () => { isConnected(): boolean; outboxDepth(): number; inboxUnacked(): number } | undefined;
  /** The `notAfter` (ISO 8601) of the certificate in force. */
  certificateNotAfter: () => string | undefined;
}

/** Options of {@link AgentMetrics}. */
export interface AgentMetricsOptions {
  /** The agent's own registry; its default labels become `{country}`. */
  registry: Registry;
  country: string;
  version: string;
  sources: AgentMetricsSources;
  log: Logger;
  /** Longest wait for one I/O source during a scrape (default {@link DEFAULT_COLLECT_TIMEOUT_MS}). */
  collectTimeoutMs?: number;
}

/** What one scrape read from the system; undefined where there was nothing to read or it failed. */
interface Readings {
  tunnel: AgentTunnelState | undefined;
  counters: ReadonlyMap<string, NftCounter> | undefined;
}

/** A gauge read at scrape time: `read` gives the value, or undefined for no sample. */
function sampledGauge(registry: Registry, name: string, help: string, read: () => number | undefined | Promise<number | undefined>): Gauge {
  return new Gauge({
    name,
    help,
    registers: [registry],
    async collect() {
      const value = await read();
      if (value === undefined) this.remove();
      else this.set(value);
    },
  });
}

/** A counter kept by someone else (wg, nft) and copied at scrape time; undefined for no sample. */
function sampledCounter(registry: Registry, name: string, help: string, read: () => Promise<number | undefined>): Counter {
  return new Counter({
    name,
    help,
    registers: [registry],
    async collect() {
      const value = await read();
      this.reset();
      if (value === undefined) this.remove();
      else this.inc(value);
    },
  });
}

/** Seconds since the epoch of a date, or undefined for none (or an unreadable one). */
function epochSeconds(date: Date | string | undefined): number | undefined {
  if (date === undefined) return undefined;
  const ms = typeof date === 'string' ? Date.parse(date) : date.getTime();
  return Number.isFinite(ms) ? ms / 1000 : undefined;
}

/** The agent's metrics; see the module comment. Event counters are fed through {@link relayStats} and {@link renewal}. */
export class AgentMetrics {
  readonly registry: Registry;
  readonly #o: AgentMetricsOptions;
  readonly #log: Logger;
  readonly #timeoutMs: number;
  readonly #renewals: Counter<'result'>;
  readonly #policyChecks: Counter<'result'>;
  readonly #messages: Counter<'direction'>;
  readonly #probes: Counter;
  readonly #storeDamaged: Counter<'store'>;
  readonly #storeFull: Counter<'store'>;
  /** The scrape in progress shares one read of wg and nft among its series. */
  #readings: Promise<Readings> | undefined;
  /** Sources failing now; a failure is logged when it starts and when it ends, not at every scrape. */
  readonly #failing = new Set<string>();

  constructor(opts: AgentMetricsOptions) {
    this.#o = opts;
    this.registry = opts.registry;
    this.#log = opts.log.child({ component: 'metrics' });
    this.#timeoutMs = opts.collectTimeoutMs ?? DEFAULT_COLLECT_TIMEOUT_MS;
    const r = opts.registry;
    const { sources } = opts;
    r.setDefaultLabels({ country: opts.country });

    new Gauge({ name: 'ncbnet_agent_up', help: 'Always 1: the agent process answers scrapes.', registers: [r] }).set(1);
    new Gauge({ name: 'ncbnet_agent_info', help: 'Always 1; the agent version is in the label.', labelNames: ['version'], registers: [r] }).set({ version: opts.version }, 1);

    sampledGauge(r, 'ncbnet_agent_tunnel_up', 'Whether the WireGuard interface to the hub exists and runs (1) or not (0); absent without a tunnel.', () => {
      const tunnel = sources.tunnel();
      return tunnel === undefined ? undefined : Number(tunnel.isUp());
    });
    sampledGauge(r, 'ncbnet_agent_wireguard_last_handshake_timestamp_seconds', 'When the last WireGuard handshake with the hub completed; absent before the first one.', async () =>
      epochSeconds((await this.#read()).tunnel?.lastHandshake),
    );
    sampledCounter(r, 'ncbnet_agent_wireguard_receive_bytes_total', 'Bytes received from the hub through the tunnel (wg), since the interface was made.', async () => (await this.#read()).tunnel?.rxBytes);
    sampledCounter(r, 'ncbnet_agent_wireguard_transmit_bytes_total', 'Bytes sent to the hub through the tunnel (wg), since the interface was made.', async () => (await this.#read()).tunnel?.txBytes);

    sampledGauge(r, 'ncbnet_agent_broker_connected', "Whether the relay is connected to the hub's broker now (1) or not (0).", () => Number(sources.relay()?.isConnected() ?? false));
    sampledGauge(r, 'ncbnet_agent_outbox_depth', 'Messages accepted from local applications and waiting to be submitted to the hub.', () => sources.relay()?.outboxDepth());
    sampledGauge(r, 'ncbnet_agent_inbox_unacked', 'Delivered messages the local applications have not acked yet.', () => sources.relay()?.inboxUnacked());

    sampledCounter(r, 'ncbnet_agent_firewall_dropped_packets_total', "Packets the agent's firewall dropped on the tunnel (input and forwarding); absent without a firewall.", async () =>
      this.#dropped((await this.#read()).counters, 'packets'),
    );
    sampledCounter(r, 'ncbnet_agent_firewall_dropped_bytes_total', "Bytes of the packets the agent's firewall dropped on the tunnel; absent without a firewall.", async () =>
      this.#dropped((await this.#read()).counters, 'bytes'),
    );

    sampledGauge(r, 'ncbnet_agent_certificate_expiry_timestamp_seconds', "When the country certificate in force expires (notAfter); moves on at each renewal.", () => epochSeconds(sources.certificateNotAfter()));

    this.#renewals = new Counter({ name: 'ncbnet_agent_renewals_total', help: 'Certificate renewals attempted, by result (ok, failed).', labelNames: ['result'], registers: [r] });
    this.#policyChecks = new Counter({
      name: 'ncbnet_agent_policy_checks_total',
      help: "Checks of the hub's firewall policy (GET /v1/policy), by result (unchanged, applied, fetch-failed, invalid, refused).",
      labelNames: ['result'],
      registers: [r],
    });
    this.#messages = new Counter({
      name: 'ncbnet_agent_messages_total',
      help: 'Envelopes submitted to the hub (sent: JetStream acked, receipts included) and newly stored in the inbox (received).',
      labelNames: ['direction'],
      registers: [r],
    });
    this.#probes = new Counter({ name: 'ncbnet_agent_probes_answered_total', help: "The hub's synthetic probes answered on ncb.probe.<CC>.", registers: [r] });
    this.#storeDamaged = new Counter({
      name: 'ncbnet_agent_store_damaged_records_total',
      help: 'Damaged records found when the relay opened its stores (journal lines skipped and copied aside, damaged outbox records quarantined), by store.',
      labelNames: ['store'],
      registers: [r],
    });
    this.#storeFull = new Counter({
      name: 'ncbnet_agent_store_full_total',
      help: "Writes to the relay's stores refused because the agent's state disk is full (the local API answered 507), by store.",
      labelNames: ['store'],
      registers: [r],
    });
    // Every known label value from the start, so rate() sees the first event and alerts see a 0.
    for (const result of ['ok', 'failed']) this.#renewals.inc({ result }, 0);
    for (const result of POLICY_CHECK_RESULTS) this.#policyChecks.inc({ result }, 0);
    for (const direction of ['sent', 'received']) this.#messages.inc({ direction }, 0);
    for (const store of ['outbox', 'inbox', 'status']) {
      this.#storeDamaged.inc({ store }, 0);
      this.#storeFull.inc({ store }, 0);
    }
  }

  /** What the relay reports to (RelayOptions.stats). */
  get relayStats(): RelayStats {
    return {
      messageSent: () => this.#messages.inc({ direction: 'sent' }),
      messageReceived: () => this.#messages.inc({ direction: 'received' }),
      probeAnswered: () => this.#probes.inc(),
      storeDamaged: (store, records) => this.#storeDamaged.inc({ store }, records),
      storageFull: (store) => this.#storeFull.inc({ store }),
    };
  }

  /** One check of the hub's firewall policy ended (`firewall/policy-sync.ts`). */
  policyCheck(result: PolicyCheckResult): void {
    this.#policyChecks.inc({ result });
  }

  /** One certificate renewal attempt ended. */
  renewal(result: 'ok' | 'failed'): void {
    this.#renewals.inc({ result });
  }

  /** The exposition text of every metric (what `/metrics` serves). */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  /** The sum of the drop rules' counters; undefined when the table (or its counters) is not there. */
  #dropped(counters: ReadonlyMap<string, NftCounter> | undefined, field: keyof NftCounter): number | undefined {
    if (counters === undefined) return undefined;
    const found = DROP_COUNTERS.map((name) => counters.get(name)).filter((c): c is NftCounter => c !== undefined);
    return found.length === 0 ? undefined : found.reduce((sum, c) => sum + c[field], 0);
  }

  /** The I/O readings of the scrape in progress (one `wg show`, one `nft list` for all series). */
  #read(): Promise<Readings> {
    if (this.#readings === undefined) {
      const { tunnel, firewall } = this.#o.sources;
      const t = tunnel();
      const f = firewall();
      this.#readings = Promise.all([
        t === undefined ? undefined : this.#bounded('tunnel', () => t.state()),
        f === undefined ? undefined : this.#bounded('firewall', () => f.counters()),
      ]).then(([tunnelState, counters]) => ({ tunnel: tunnelState, counters }));
      // Forgotten once settled: the next scrape reads afresh.
      void this.#readings.finally(() => (this.#readings = undefined));
    }
    return this.#readings;
  }

  /** `read()`, or undefined when it fails or takes longer than the timeout (logged when that starts and ends). */
  async #bounded<T>(source: string, read: () => Promise<T>): Promise<T | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.#timeoutMs);
      timer.unref();
    });
    try {
      const outcome = await Promise.race([read().then((value) => ({ value })), timeout]);
      if (outcome === 'timeout') throw new Error(`no answer within ${this.#timeoutMs} ms`);
      if (this.#failing.delete(source)) this.#log.info({ source }, 'metrics source answers again');
      return outcome.value;
    } catch (err) {
      if (!this.#failing.has(source)) this.#log.warn({ err, source }, 'metrics source failed; its series are absent until it answers');
      this.#failing.add(source);
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Options of {@link startMetricsServer}. */
export interface MetricsServerOptions {
  metrics: AgentMetrics;
  /** The same checks as the local API's `/readyz`. */
  readiness: ReadinessCheck;
  host: string;
  /** 0 picks a free port. */
  port: number;
  log: Logger;
}

/** A listening metrics server. */
export interface MetricsServer {
  /** `http://host:port/metrics`, with the port actually bound. */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Serves `/metrics` (Prometheus text format), `/healthz` and `/readyz` (the local API's routes,
 * 503 naming the failing check) on plain HTTP, no token: they reveal counts, never content.
 * Rejects when it cannot listen (address in use, bad host).
 */
export async function startMetricsServer(opts: MetricsServerOptions): Promise<MetricsServer> {
  const app: LocalApiApp = Fastify({
    loggerInstance: opts.log,
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
    forceCloseConnections: true,
  }).withTypeProvider<TypeBoxTypeProvider>();
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  registerHealthRoutes(app, opts.readiness);
  app.get('/metrics', async (_req, reply) => reply.type(opts.metrics.registry.contentType).send(await opts.metrics.render()));
  try {
    await app.listen({ host: opts.host, port: opts.port });
  } catch (err) {
    await app.close();
    throw err;
  }
  const { port } = app.server.address() as AddressInfo;
  const host = opts.host === '0.0.0.0' ? '127.0.0.1' : opts.host === '::' ? '::1' : opts.host;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}/metrics`;
  opts.log.info({ url }, 'metrics listener started');
  return { url, close: () => app.close() };
}

/**
 * Starts the metrics listener when agent.json wants one. One that cannot listen (port taken) is
 * logged and the agent runs on without it (undefined): relaying messages matters more than being
 * watched, and the scrape failing tells monitoring anyway.
 */
export async function startWantedMetricsServer(
  config: { enabled: boolean; host: string; port: number },
  opts: Omit<MetricsServerOptions, 'host' | 'port'>,
): Promise<MetricsServer | undefined> {
  if (!config.enabled) return undefined;
  try {
    return await startMetricsServer({ ...opts, host: config.host, port: config.port, log: opts.log.child({ component: 'metrics-listener' }) });
  } catch (err) {
    opts.log.error({ err, host: config.host, port: config.port }, 'metrics listener not started; the agent runs without it');
    return undefined;
  }
}
