import { X509Certificate } from 'node:crypto';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Registry as PromRegistry } from 'prom-client';
import { writeFileDurable } from '../pki/files.js';
import { closeWithin, stopInOrder, type StopStep } from '../system/lifecycle.js';
import { subjectDn } from '../protocol/identity.js';
import { verifyEnvelopeSignature } from '../protocol/signature.js';
import { renderBrokerConfig } from './broker/config-render.js';
import { b2bGrants } from '../protocol/b2b.js';
import { pinnedCertHash } from './broker/pins.js';
import { ensureCountryConsumer, ensureStreams } from './broker/streams.js';
import { BrokerSupervisor } from './broker/supervisor.js';
import type { HubConfig } from './config.js';
import { HUB_STATE_MISSING, HubError } from './errors.js';
import type { HubNetwork } from './enrollment/service.js';
import { HubFirewall } from './firewall/hub-firewall.js';
import type { HubMetrics } from './metrics/hub-metrics.js';
import { HubObservability } from './metrics/observability.js';
import { readSnapshot, type RegistryChange } from './registry/registry.js';
import { hubAddress } from './registry/overlay.js';
import type { CountryRecord } from './registry/record.js';
import { Router } from './router/router.js';
import { startDatabaseServices, type DbService } from './db/service.js';
import { KvUrgentStore } from './router/urgent-store.js';
import { UrgentWatch, urgentForgetAfterMs } from './router/urgent-watch.js';
import { endpointsPath, type Endpoints } from './runtime.js';
import { openHubServices, snapshotPath, type HubServices } from './services.js';
import { identityPaths } from './state-init.js';
import { HubTunnel } from './wireguard/hub-tunnel.js';

/** An address a local client can dial for a listener bound to `host` (wildcards mean loopback). */
function localHost(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

export interface HubDaemonOptions {
  stateDir: string;
  config: HubConfig;
  log: Logger;
  /** The Prometheus registry `/metrics` serves (default: a new one; never prom-client's global). */
  metricsRegistry?: PromRegistry;
  /**
   * How long scrape-time I/O results (connz, consumer list, `wg show`) are reused, default 2 s;
   * 0 makes every scrape do its own I/O (the benchmark measures both).
   */
  metricsCacheMs?: number;
}

/**
 * The hub (ARCHITECTURE): supervised nats-server, country registry, enrollment and admin API,
 * router and WireGuard hub, composed in dependency order and stopped in reverse. Registry changes
 * flow one way: a write → broker users re-rendered and reloaded → consumer ensured → tunnel peers
 * synced; each step is idempotent, so a crash in the middle is repaired by the next start.
 */
export class HubDaemon {
  readonly #o: HubDaemonOptions;
  readonly #log: Logger;
  #broker: BrokerSupervisor | undefined;
  #nc: NatsConnection | undefined;
  #jsm: JetStreamManager | undefined;
  #services: HubServices | undefined;
  #router: Router | undefined;
  #db: DbService | undefined;
  #urgentWatch: UrgentWatch | undefined;
  #urgentStore: KvUrgentStore | undefined;
  #tunnel: HubTunnel | undefined;
  #firewall: HubFirewall | undefined;
  #countries: readonly CountryRecord[] = [];
  #endpoints: Endpoints | undefined;
  /** Whether the hub's own broker connection is up now (it reconnects by itself after a restart). */
  #isConnected = false;
  /** The client port in use once the broker first listened; later renders keep it (see start()). */
  #brokerPort: number | undefined;
  readonly #obs: HubObservability;
  readonly #metrics: HubMetrics;

  constructor(opts: HubDaemonOptions) {
    this.#o = opts;
    this.#log = opts.log;
    // Built first so every service gets its stats hooks; what it reads at scrape time is filled
    // in as start() goes (before that a scrape shows only the counters).
    this.#obs = new HubObservability({
      config: opts.config,
      log: opts.log,
      register: opts.metricsRegistry,
      cacheMs: opts.metricsCacheMs,
      countries: () => this.#services?.registry.list() ?? [],
      brokerUp: () => this.#broker?.isRunning,
      urgentOverdue: () => this.#urgentWatch?.overdue(),
    });
    this.#metrics = this.#obs.metrics;
  }

  /** The hub's metrics (its Prometheus registry is `metrics.register`). */
  get metrics(): HubMetrics {
    return this.#metrics;
  }

  get services(): HubServices | undefined {
    return this.#services;
  }

  get endpoints(): Endpoints | undefined {
    return this.#endpoints;
  }

  get broker(): BrokerSupervisor | undefined {
    return this.#broker;
  }

  get tunnel(): HubTunnel | undefined {
    return this.#tunnel;
  }

  /** Urgent messages not confirmed within `router.urgentDeadlineMs` (`overdue()` feeds `ncbnet_urgent_overdue`). */
  get urgentWatch(): UrgentWatch | undefined {
    return this.#urgentWatch;
  }

  async start(): Promise<Endpoints> {
    const { stateDir, config } = this.#o;
    const ids = identityPaths(stateDir);
    const rootPath = join(stateDir, 'pki', 'root.crt');
    const brokerDir = join(stateDir, 'broker');
    await mkdir(brokerDir, { recursive: true, mode: 0o700 });

    // 0. The tunnel first: the broker may listen on the hub's overlay address only.
    const overlayHub = hubAddress(config.wireguard.overlayCidr);
    if (config.wireguard.enabled) {
      this.#tunnel = new HubTunnel(
        {
          ifname: config.wireguard.interface,
          listenPort: config.wireguard.listenPort,
          privateKeyPath: join(stateDir, 'wireguard', 'hub.key'),
          address: `${overlayHub}/${config.wireguard.overlayCidr.split('/')[1] ?? '16'}`,
        },
        this.#log,
      );
      await mkdir(join(stateDir, 'wireguard'), { recursive: true, mode: 0o700 });
      await this.#tunnel.start();
    }

    // 1. The broker, rendered from the disk snapshot: JetStream (and the registry bucket in it)
    //    only exists once nats-server runs.
    try {
      this.#countries = await readSnapshot(snapshotPath(stateDir));
    } catch (err) {
      this.#log.error({ err }, 'registry snapshot unreadable; starting the broker with no countries until the registry is open');
    }
    const hubCertPem = await readFile(ids.hubCert, 'utf8').catch((err: unknown) => {
      throw new HubError(HUB_STATE_MISSING, `${stateDir}: no hub identity (${ids.hubCert}); run \`ncbnet hub init --state ${stateDir}\` first`, { cause: err });
    });
    // The hub's name is its certificate's, so the broker user always matches the identity in use.
    const hubName = new X509Certificate(hubCertPem).subject.match(/^CN=(.+)$/m)?.[1] ?? 'hub';
    const hubDn = subjectDn('hub', hubName);
    const hubPin = pinnedCertHash(hubCertPem);
    this.#broker = new BrokerSupervisor({
      dir: brokerDir,
      ...(config.broker.binary ? { binary: config.broker.binary } : {}),
      clientHost: localHost(config.broker.host),
      logger: this.#log.child({ component: 'broker' }),
      render: () =>
        renderBrokerConfig({
          serverName: hubName,
          host: config.broker.host,
          port: this.#brokerPort ?? config.broker.port,
          monitorPort: config.broker.monitorPort,
          portsFileDir: brokerDir,
          jetstream: { storeDir: join(brokerDir, 'jetstream'), maxMemoryBytes: 256 * 1024 * 1024, maxFileBytes: 64 * 1024 * 1024 * 1024 },
          tls: { certFile: ids.hubCert, keyFile: ids.hubKey, caFile: rootPath },
          hubUser: hubDn,
          countries: this.#countries.filter((c) => c.status === 'active').map((c) => c.code),
          maxPayloadBytes: config.broker.maxPayloadBytes,
          pinnedCerts: this.#pins(hubPin),
          // B2B national databases (issue 8): who may ask which owner's database.
          b2b: b2bGrants(this.#countries, this.#countries.filter((c) => c.status === 'active').map((c) => c.code)),
        }),
    });
    this.#broker.on('restart', () => this.#metrics.brokerRestarted());
    await this.#broker.start();
    // With port 0 (any free port) a restarted nats-server would come back elsewhere and every
    // client, the hub's own included, would lose it: keep the port it got the first time.
    this.#brokerPort = Number(new URL(this.#broker.url).port);

    // 2. The hub's own broker connection, streams, and the services on top.
    this.#nc = await connect({
      servers: this.#broker.url,
      name: hubName,
      tls: { cert: hubCertPem, key: await readFile(ids.hubKey, 'utf8'), ca: await readFile(rootPath, 'utf8') },
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
      // Every request would otherwise build a stack trace up front (a tenth of the hub's CPU under load).
      noAsyncTraces: true,
    });
    this.#isConnected = true;
    void this.#watchConnection(this.#nc);
    this.#jsm = await jetstreamManager(this.#nc);
    await ensureStreams(this.#jsm, { deliverMaxAgeMs: config.broker.deliverMaxAgeMs, maxMsgBytes: config.broker.maxPayloadBytes });

    this.#services = await openHubServices({
      stateDir,
      config,
      nc: this.#nc,
      log: this.#log,
      network: () => this.#network(overlayHub),
      readiness: () => this.#readiness(),
      status: () => this.#obs.status(),
      enrollmentStats: this.#metrics.enrollmentStats,
    });
    const registry = this.#services.registry;
    this.#countries = registry.list();
    registry.onChange((change) => this.#obs.observe(change));
    registry.onChange((change) => this.#apply(change));

    // 3. Converge everything on the registry as it is now (repairs a crash mid-change).
    await this.#broker.reload();
    for (const code of registry.activeCodes()) await ensureCountryConsumer(this.#jsm, code);
    if (this.#tunnel) {
      await this.#tunnel.syncPeers(this.#peers());
      this.#firewall = new HubFirewall(
        {
          wgInterface: config.wireguard.interface,
          wgPort: config.wireguard.listenPort,
          overlayCidr: config.wireguard.overlayCidr,
          hubAddress: overlayHub,
          allowedTcpPorts: [],
        },
        this.#log,
      );
    }

    const ca = this.#services.ca;
    const trust = { trustedRoots: [ca.root.toString('pem')], intermediates: [ca.issuer.toString('pem')] };
    // Kept in a KV bucket across restarts; entries expire an hour after the watch forgets them.
    this.#urgentStore = await KvUrgentStore.open({ nc: this.#nc, log: this.#log, maxAgeMs: urgentForgetAfterMs(config.router.urgentDeadlineMs) + 3600_000 });
    this.#urgentWatch = new UrgentWatch({ deadlineMs: config.router.urgentDeadlineMs, log: this.#log, stats: this.#metrics.urgentStats, store: this.#urgentStore });
    await this.#urgentWatch.restore();
    this.#urgentWatch.start();
    this.#router = new Router({
      nc: this.#nc,
      directory: registry,
      log: this.#log,
      audit: this.#services.audit,
      // The audit log is the hub's memory of what it routed: deletions are checked against it.
      history: this.#services.audit,
      urgent: this.#urgentWatch,
      stats: this.#metrics.routerStats,
      maxInFlight: config.router.maxInFlight,
      ratePerCountry: config.router.ratePerCountry,
      // TLS does not read our CRL; the ledger does: a revoked sender's envelopes are refused here.
      verify: async (envelope) => {
        await verifyEnvelopeSignature(envelope, { ...trust, isRevoked: (serial) => Boolean(ca.ledger.get(serial)?.revokedAt) });
      },
    });
    await this.#router.start();
    // Database services (issue 8): the same trust and revocation check as the router's.
    this.#db = await startDatabaseServices({ nc: this.#nc, log: this.#log, register: this.#metrics.register, audit: this.#services.audit, notifyOwnerOnHit: config.databases.notifyOwnerOnHit, trust: { ...trust, isRevoked: (serial) => Boolean(ca.ledger.get(serial)?.revokedAt) } });
    const broker = this.#broker;
    const tunnel = this.#tunnel;
    this.#obs.start({
      nc: this.#nc,
      jsm: this.#jsm,
      registry,
      monitorUrl: () => broker.monitorUrl,
      wireguardPeers: tunnel ? () => tunnel.peers() : undefined,
      policy: () => this.#network(overlayHub).policy,
    });

    await this.#services.api.listen({ host: config.api.host, port: config.api.port });
    const apiPort = (this.#services.api.server.address() as AddressInfo).port;
    const natsPort = Number(new URL(this.#broker.url).port);
    if (this.#firewall) await this.#firewall.apply({ allowedTcpPorts: [natsPort, apiPort] });
    const metricsUrl = await this.#obs.listen(() => this.#readiness());
    this.#endpoints = {
      pid: process.pid,
      apiUrl: `https://${localHost(config.api.host)}:${apiPort}`,
      natsUrl: this.#broker.url,
      monitorUrl: this.#broker.monitorUrl,
      ...(metricsUrl === undefined ? {} : { metricsUrl }),
      startedAt: new Date().toISOString(),
    };
    await writeFileDurable(endpointsPath(stateDir), `${JSON.stringify(this.#endpoints, null, 2)}\n`, { mode: 0o644 });
    this.#log.info({ ...this.#endpoints, countries: registry.list().length, active: registry.activeCodes().length }, 'hub started');
    return this.#endpoints;
  }

  /** Stops everything in reverse order; safe to call more than once and after a failed start. */
  async stop(): Promise<void> {
    const steps: StopStep[] = [
      ['api', () => this.#services?.api.close()],
      ['metrics and probes', () => this.#obs.stop()],
      ['router', () => this.#router?.stop()],
      ['database services', () => this.#db?.stop()],
      ['urgent watch', () => {
        this.#urgentWatch?.stop();
        return this.#urgentStore?.close();
      }],
      ['audit', () => this.#services?.audit.close()],
      // The broker may listen on the tunnel's address: close the connection and the broker
      // before the tunnel goes, or the drain would wait on a dead interface.
      ['nats connection', () => closeWithin(this.#nc, 5000)],
      ['broker', () => this.#broker?.stop()],
      ['firewall', () => this.#firewall?.stop()],
      ['tunnel', () => this.#tunnel?.stop()],
      ['endpoints file', () => rm(endpointsPath(this.#o.stateDir), { force: true })],
    ];
    await stopInOrder(steps, this.#log);
    this.#log.info('hub stopped');
  }

  /** What the enrollment bundle tells agents about the hub. */
  #network(overlayHub: string): HubNetwork {
    const { config } = this.#o;
    const natsPort = this.#broker ? Number(new URL(this.#broker.url).port) : config.broker.port;
    const apiPort = this.#endpoints ? Number(new URL(this.#endpoints.apiUrl).port) : config.api.port;
    return {
      overlayCidr: config.wireguard.overlayCidr,
      hubAddress: overlayHub,
      wgPublicKey: this.#tunnel?.publicKey ?? null,
      wgEndpoint: config.wireguard.endpoint ?? null,
      apiUrl: config.api.publicUrl ?? `https://${overlayHub}:${apiPort}`,
      natsUrl: config.broker.natsUrlForAgents ?? `tls://${overlayHub}:${natsPort}`,
      policy: { version: 1, hubAddress: overlayHub, natsPort, apiPort, allowFromHubTcp: [...config.agentFirewall.allowFromHubTcp] },
    };
  }

  /**
   * `pinned_certs`: the hub's key and each active country's current key, so that a certificate of
   * a revoked or superseded key fails the TLS handshake itself (ARCHITECTURE, Broker). A live
   * connection is dropped by removing the country's user; pins guard the reconnect.
   */
  #pins(hubPin: string): string[] {
    const active = this.#countries.filter((c) => c.status === 'active');
    return [hubPin, ...active.flatMap((c) => (c.certPin ? [c.certPin] : []))];
  }

  async #watchConnection(nc: NatsConnection): Promise<void> {
    const log = this.#log.child({ component: 'broker-connection' });
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') {
        this.#isConnected = false;
        log.warn('hub lost its broker connection; reconnecting');
      } else if (s.type === 'reconnect') {
        this.#isConnected = true;
        log.info('hub reconnected to the broker');
      }
    }
  }

  #readiness(): Record<string, boolean> {
    return {
      broker: this.#broker?.isRunning ?? false,
      brokerConnection: this.#nc !== undefined && !this.#nc.isClosed() && this.#isConnected,
      router: this.#router?.isRunning ?? false,
      ...(this.#o.config.wireguard.enabled ? { tunnel: this.#tunnel?.isUp() ?? false } : {}),
    };
  }

  #peers() {
    return (this.#services?.registry.list() ?? []).flatMap((c) =>
      c.status === 'active' && c.wgPublicKey && c.overlayAddress ? [{ publicKey: c.wgPublicKey, allowedIp: `${c.overlayAddress}/32` }] : [],
    );
  }

  /**
   * Applies one registry change to the broker and the tunnel. Access-relevant fields only: a
   * heartbeat's `lastSeen` changes nothing here.
   */
  async #apply(change: RegistryChange): Promise<void> {
    const before = change.before;
    const after = change.after;
    const relevant =
      before?.status !== after.status ||
      before.certSerial !== after.certSerial ||
      before.certPin !== after.certPin ||
      before.wgPublicKey !== after.wgPublicKey ||
      before.overlayAddress !== after.overlayAddress ||
      JSON.stringify(before.b2b) !== JSON.stringify(after.b2b);
    if (!relevant) return;
    this.#countries = this.#services?.registry.list() ?? this.#countries;
    // Broker users, pins and tunnel peers are made of active countries only: a country added as
    // pending, or re-added after a revocation, changes none of them (195 additions used to mean
    // 195 reloads of nats-server).
    if (before?.status !== 'active' && after.status !== 'active') return;
    if (after.status === 'active' && this.#jsm) await ensureCountryConsumer(this.#jsm, after.code);
    await this.#broker?.reload();
    if (this.#tunnel) {
      const changes = await this.#tunnel.syncPeers(this.#peers());
      this.#log.info({ country: after.code, ...changes }, 'tunnel peers synced');
    }
  }
}

