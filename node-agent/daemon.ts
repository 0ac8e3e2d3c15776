import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import type { Bundle } from '../protocol/bundle.js';
import { newUlid, type Envelope } from '../protocol/envelope.js';
import { closeWithin, stopInOrder, type StopStep } from '../system/lifecycle.js';
import { subjects } from '../protocol/subjects.js';
import { VERSION } from '../protocol/version.js';
import type { AgentConfig } from './config.js';
import { BodyCrypto } from './body-crypto.js';
import { brokerConnectionOptions } from './broker-connection.js';
import { MemberDirectory } from './directory.js';
import { hubJson, type HubTls } from './enroll/hub-client.js';
import { renewCertificate } from './enroll/renew.js';
import { RenewalTimer } from './enroll/renewal-timer.js';
import { LIVE_SETTINGS, changedSettings } from './config-reload.js';
import { AgentFirewall } from './firewall/agent-firewall.js';
import { PolicySync } from './firewall/policy-sync.js';
import { HeartbeatTimer, heartbeatBody } from './heartbeat.js';
import { AgentMetrics, startWantedMetricsServer, type MetricsServer } from './metrics.js';
import { buildLocalApi } from './local-api/server.js';
import { LocalAccess } from './local-api/auth.js';
import { createTokensFile } from './local-api/tokens.js';
import { localApiUsersPath } from './local-api/users.js';
import { Relay } from './relay/relay.js';
import { QueryClient } from './query/query-client.js';
import { B2bClient } from './b2b/client.js';
import { B2bOwner } from './b2b/owner.js';
import { enquiryEnvelope } from './b2b/enquiry-journal.js';
import { hitNoticeDrafts } from './query/hit-notice.js';
import { EnvelopeSigner, makeEnvelopeVerifier, pemCertificates } from './signing.js';
import { agentEndpointsPath, writeAgentEndpoints } from './runtime.js';
import { agentPaths, readBundle, writeBundle } from './state.js';
import { AgentTunnel } from './tunnel/agent-tunnel.js';

export interface AgentDaemonOptions {
  stateDir: string;
  config: AgentConfig;
  log: Logger;
  /** Network namespace for the tunnel and firewall (tests); default the process's own. */
  netns?: string;
  /** The metrics registry (default a new one: never prom-client's global registry). */
  registry?: Registry;
}


/** How often the member directory is refreshed in the background (a submit also refreshes a stale one). */
const DIRECTORY_REFRESH_MS = 5 * 60_000;
/** A directory fetch gives up quickly: a confidential submit may be waiting on it, and the cache answers otherwise. */
const DIRECTORY_TIMEOUT_MS = 3_000;


/**
 * The node agent (ARCHITECTURE, node-agent): it starts from the last-known-good bundle, never
 * from the hub, so it comes up whether the hub is there or not. Order: tunnel → firewall → relay
 * (outbox and inbox on disk; it answers the hub's probes once connected) → local API (NCB apps
 * can hand over messages at once) → metrics listener → broker connection in the background,
 * retried forever → heartbeats and certificate renewal.
 */
export class AgentDaemon {
  #o: AgentDaemonOptions;
  readonly #log: Logger;
  #bundle: Bundle | undefined;
  #tunnel: AgentTunnel | undefined;
  #firewall: AgentFirewall | undefined;
  #policySync: PolicySync | undefined;
  #relay: Relay | undefined;
  #signer: EnvelopeSigner | undefined;
  #directory: MemberDirectory | undefined;
  #bodyCrypto: BodyCrypto | undefined;
  #directoryTimer: NodeJS.Timeout | undefined;
  #api: Awaited<ReturnType<typeof buildLocalApi>> | undefined;
  #metrics: AgentMetrics | undefined;
  #metricsServer: MetricsServer | undefined;
  #nc: NatsConnection | undefined;
  #b2b: B2bOwner | undefined;
  #heartbeat: HeartbeatTimer | undefined;
  #renewal: RenewalTimer | undefined;
  #isStopping = false;
  #connecting: Promise<void> | undefined;

  constructor(opts: AgentDaemonOptions) {
    this.#o = opts;
    this.#log = opts.log;
  }

  get relay(): Relay | undefined {
    return this.#relay;
  }

  /** The agent's metrics, once start() has read the bundle. */
  get metrics(): AgentMetrics | undefined {
    return this.#metrics;
  }

  /** What `/readyz` checks (local API and metrics listener alike): tunnel up (when there is one), broker connected. */
  #readiness(): Record<string, boolean> {
    return { tunnel: this.#tunnel ? this.#tunnel.isUp() : true, broker: this.#relay?.isConnected() ?? false };
  }

  async start(): Promise<{ localApiUrl: string; metricsUrl: string | undefined }> {
    const { stateDir, config } = this.#o;
    const paths = agentPaths(stateDir);
    const bundle = await readBundle(stateDir);
    this.#bundle = bundle;
    const log = this.#log.child({ country: bundle.country });
    this.#metrics = new AgentMetrics({
      registry: this.#o.registry ?? new Registry(),
      country: bundle.country,
      version: VERSION,
      log,
      sources: {
        tunnel: () => this.#tunnel,
        firewall: () => this.#firewall,
        relay: () => this.#relay,
        certificateNotAfter: () => this.#bundle?.notAfter,
      },
    });

    if (bundle.hub.wgPublicKey && bundle.hub.wgEndpoint) {
      this.#tunnel = new AgentTunnel(
        {
          ifname: config.tunnel.interface,
          privateKeyPath: paths.wgKey,
          address: bundle.overlayAddress,
          hub: { publicKey: bundle.hub.wgPublicKey, endpoint: bundle.hub.wgEndpoint, overlayAddress: bundle.hub.overlayAddress },
          implementation: config.tunnel.implementation,
          ...(this.#o.netns ? { netns: this.#o.netns } : {}),
        },
        log,
      );
      await this.#tunnel.start();
      if (config.firewall.enabled) {
        this.#firewall = new AgentFirewall(
          {
            wgInterface: config.tunnel.interface,
            hubAddress: bundle.policy.hubAddress,
            allowFromHubTcp: bundle.policy.allowFromHubTcp,
            agentAddress: bundle.overlayAddress,
            policy: bundle.policy,
            ...(this.#o.netns ? { netns: this.#o.netns } : {}),
          },
          log,
        );
        await this.#firewall.start();
      }
    } else {
      log.warn('the bundle has no hub WireGuard peer; connecting to the broker without a tunnel');
    }

    this.#signer = new EnvelopeSigner(paths);
    await this.#signer.reload();
    this.#directory = await MemberDirectory.open({
      country: bundle.country,
      cachePath: join(stateDir, 'directory.json'),
      // Short timeout: a submit may be waiting for it.
      fetch: () => this.#hubGet('/v1/directory', DIRECTORY_TIMEOUT_MS),
      trust: { trustedRoots: [bundle.caCertificate], intermediates: pemCertificates(bundle.chain) },
      log,
    });
    const bodyCrypto = new BodyCrypto({ paths, directory: this.#directory, log });
    this.#bodyCrypto = bodyCrypto;
    await bodyCrypto.reload();
    const sign = (envelope: Envelope): Promise<Envelope> => (this.#signer as EnvelopeSigner).sign(envelope);
    const verify = makeEnvelopeVerifier(bundle.caCertificate, bundle.chain);
    this.#relay = await Relay.open({
      country: bundle.country,
      stateDir,
      log,
      sign,
      verify,
      encryptBody: (to, plaintext) => bodyCrypto.encrypt(to, plaintext),
      decryptBody: (envelope) => bodyCrypto.decrypt(envelope),
      stats: this.#metrics.relayStats,
    });
    const tokensFile = config.localApi.tokensFile ?? paths.tokens;
    if (await createTokensFile(tokensFile)) log.info({ tokensFile }, 'local API token file created (name operator)');
    // B2B national databases (issue 8): this country's own (policies, sources, enquiry notices).
    this.#b2b = await B2bOwner.open({
      country: bundle.country,
      stateDir,
      databases: config.b2b.databases,
      verify,
      sign,
      hub: () => this.#hubTls(),
      log,
    });
    // Each enquiry to a database whose policy asks for it also becomes a message in our own inbox.
    const relay = this.#relay;
    this.#b2b.journal.onNotice((notice) => {
      void sign(enquiryEnvelope(bundle.country, notice, newUlid()))
        .then((envelope) => relay.putLocal(envelope))
        .catch((err: unknown) => log.error({ err, db: notice.db, from: notice.from }, 'B2B enquiry notice not put in the inbox (kept in the enquiry journal)'));
    });
    this.#api = await buildLocalApi({
      relay: this.#relay,
      // The tokens file (every entry ncb-admin) and the users with roles, re-read when it changes.
      tokens: await LocalAccess.load({ tokensFile, usersFile: localApiUsersPath(stateDir), log: log.child({ component: 'local-api-access' }) }),
      log: log.child({ component: 'local-api' }),
      bodyLimitBytes: config.localApi.bodyLimitBytes,
      country: bundle.country,
      readiness: () => this.#readiness(),
      query: new QueryClient({
        country: bundle.country,
        sign,
        connection: () => this.#nc,
        isConnected: () => this.#relay?.isConnected() ?? false,
        // A hit on another country's record: tell its owner (node-agent/query/hit-notice.ts).
        onNotifyOwner: async (answer) => {
          for (const draft of hitNoticeDrafts(bundle.country, answer)) {
            await relay.submit(draft).then(
              (status) => log.info({ id: status.id, to: draft.to, service: answer.service }, 'hit notice queued for the record owner'),
              (err: unknown) => log.error({ err, to: draft.to, service: answer.service }, 'hit notice not queued'),
            );
          }
        },
      }),
      b2b: {
        client: new B2bClient({ country: bundle.country, sign, verify, connection: () => this.#nc, isConnected: () => this.#relay?.isConnected() ?? false, timeoutMs: config.b2b.requestTimeoutMs }),
        enquiries: this.#b2b.journal,
      },
    });
    await this.#api.listen({ host: config.localApi.host, port: config.localApi.port });
    const port = (this.#api.server.address() as AddressInfo).port;
    const host = config.localApi.host === '0.0.0.0' ? '127.0.0.1' : config.localApi.host;
    const localApiUrl = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
    this.#metricsServer = await startWantedMetricsServer(config.metrics, { metrics: this.#metrics, readiness: () => this.#readiness(), log });
    const metricsUrl = this.#metricsServer?.url;

    this.#connecting = this.#connect();
    this.#heartbeat = new HeartbeatTimer({
      intervalMs: config.heartbeatIntervalMs,
      collect: () => heartbeatBody({ bundle: this.#bundle as Bundle, version: VERSION, tunnel: this.#tunnel, firewall: this.#firewall, relay: this.#relay }),
      publish: (beat) => {
        if (!this.#nc || this.#nc.isClosed() || !this.#relay?.isConnected()) throw new Error('not connected to the broker');
        this.#nc.publish(subjects.heartbeat(beat.country), JSON.stringify(beat));
      },
      log: log.child({ component: 'heartbeat' }),
    });
    this.#heartbeat.start();
    // Renews at 2/3 of the lifetime (config), retrying with back-off; a new certificate means a new connection.
    this.#renewal = new RenewalTimer({
      certificate: () => (this.#bundle as Bundle).certificate,
      fraction: config.renewAtFraction,
      renew: () => this.renewNow(),
      log: log.child({ component: 'renewal', country: bundle.country }),
    });
    this.#renewal.start();
    this.#directoryTimer = setInterval(() => void this.#directory?.refresh(), DIRECTORY_REFRESH_MS);
    this.#directoryTimer.unref();
    this.#policySync = new PolicySync({
      fetch: () => this.#hubGet('/v1/policy', DIRECTORY_TIMEOUT_MS),
      current: () => (this.#bundle as Bundle).policy,
      apply: async (policy) => this.#firewall?.update(policy),
      persist: async (policy) => {
        this.#bundle = { ...(this.#bundle as Bundle), policy };
        await writeBundle(stateDir, this.#bundle);
      },
      intervalMs: config.firewall.policyRefreshMs,
      log: log.child({ component: 'policy-sync', country: bundle.country }),
      onResult: (result) => this.#metrics?.policyCheck(result),
    });
    this.#policySync.start();

    await writeAgentEndpoints(stateDir, {
      pid: process.pid,
      localApiUrl,
      startedAt: new Date().toISOString(),
      country: bundle.country,
      ...(metricsUrl === undefined ? {} : { metricsUrl }),
    });
    log.info({ localApiUrl, metricsUrl, overlayAddress: bundle.overlayAddress, natsUrl: bundle.hub.natsUrl, outboxDepth: this.#relay.outboxDepth() }, 'agent started');
    return { localApiUrl, metricsUrl };
  }

  /**
   * Connects to the broker over the tunnel with the country certificate and its own inbox prefix,
   * waiting as long as it takes for the first connection (`waitOnFirstConnect`) and reconnecting
   * forever after; the relay follows the connection's ups and downs by itself.
   */
  async #connect(): Promise<void> {
    const bundle = this.#bundle as Bundle;
    const log = this.#log.child({ component: 'broker-connection', country: bundle.country });
    const options = await brokerConnectionOptions(this.#o.stateDir, bundle);
    try {
      const nc = await connect(options);
      if (this.#isStopping) {
        await nc.close();
        return;
      }
      this.#nc = nc;
      log.info({ server: nc.getServer() }, 'connected to the broker');
      await this.#relay?.attach(nc);
      // Policies to the hub first (it grants the subscriptions), then serve; retried in the background.
      void this.#b2b?.attach(nc);
      // The hub is reachable now: have the member directory fresh before someone needs to encrypt,
      // and follow its firewall policy, now and after every reconnection (a restarted hub may
      // hand out another one).
      void this.#directory?.refresh();
      void this.#policySync?.check();
      void (async () => {
        for await (const s of nc.status()) if (s.type === 'reconnect') void this.#policySync?.check();
      })().catch(() => undefined);
    } catch (err) {
      if (!this.#isStopping) log.error({ err }, 'broker connection failed for good; the agent keeps its outbox and retries on restart');
    }
  }

  /** The hub API's URL and the mTLS identity in force now (read at each call: renewal changes it). */
  async #hubTls(): Promise<{ apiUrl: string; tls: Required<Omit<HubTls, 'insecureForPinning'>> }> {
    const bundle = this.#bundle as Bundle;
    const paths = agentPaths(this.#o.stateDir);
    const [cert, key] = await Promise.all([readFile(paths.countryCert, 'utf8'), readFile(paths.countryKey, 'utf8')]);
    return { apiUrl: bundle.hub.apiUrl, tls: { ca: bundle.caCertificate, cert: cert + bundle.chain, key } };
  }

  /** A GET on the hub API over mTLS (directory, policy); the answer is not yet checked. */
  async #hubGet(path: string, timeoutMs: number): Promise<unknown> {
    const { apiUrl, tls } = await this.#hubTls();
    return hubJson<unknown>(`${apiUrl}${path}`, tls, 'GET', undefined, timeoutMs);
  }

  /** Renews the certificate now and reconnects to the broker with it. */
  async renewNow(): Promise<Bundle> {
    let next: Bundle;
    try {
      next = await renewCertificate(this.#o.stateDir, this.#bundle as Bundle);
    } catch (err) {
      this.#metrics?.renewal('failed');
      throw err;
    }
    this.#metrics?.renewal('ok');
    this.#bundle = next;
    await this.#signer?.reload();
    await this.#bodyCrypto?.reload();
    this.#log.child({ component: 'renewal', country: next.country }).info({ serial: next.serial, notAfter: next.notAfter }, 'certificate renewed');
    // The live TLS session keeps the old certificate; reconnect so the next handshake uses the new one.
    const old = this.#nc;
    this.#nc = undefined;
    await closeWithin(old, 5000);
    this.#connecting = this.#connect();
    return next;
  }

  /**
   * agent.json read again (SIGHUP; `config-reload.ts`): applies `b2b.databases` to the running
   * agent and names the other changed settings, which keep their values until the next restart.
   * Throws (and changes nothing) when the new databases cannot be loaded.
   */
  async reload(next: AgentConfig): Promise<{ applied: string[]; needRestart: string[] }> {
    const changed = changedSettings(this.#o.config, next);
    const applied = changed.filter((k) => LIVE_SETTINGS.includes(k));
    if (applied.includes('b2b.databases')) await this.#b2b?.reconfigure(next.b2b.databases);
    this.#o = { ...this.#o, config: { ...this.#o.config, b2b: { ...this.#o.config.b2b, databases: next.b2b.databases } } };
    return { applied, needRestart: changed.filter((k) => !applied.includes(k)) };
  }

  async stop(): Promise<void> {
    this.#isStopping = true;
    this.#renewal?.stop();
    clearInterval(this.#directoryTimer);
    this.#policySync?.stop();
    this.#heartbeat?.stop();
    const steps: StopStep[] = [
      ['local API', () => this.#api?.close()],
      ['metrics listener', () => this.#metricsServer?.close()],
      // Connected: the relay stops cleanly (naks what it pulled, finishes a publish). Not
      // connected: its pending requests would wait for a broker that is away, so the connection
      // goes first and they fail at once; nothing is lost (outbox on disk, DELIVER on the hub).
      ['relay', async () => {
        if (!this.#relay?.isConnected()) await closeWithin(this.#nc, 1000);
        await this.#relay?.stop();
      }],
      ['b2b', () => this.#b2b?.stop()],
      ['broker connection', () => closeWithin(this.#nc, 3000)],
      ['firewall', () => this.#firewall?.stop()],
      ['tunnel', () => this.#tunnel?.stop()],
      ['endpoints file', () => rm(agentEndpointsPath(this.#o.stateDir), { force: true })],
    ];
    await stopInOrder(steps, this.#log);
    void this.#connecting;
    this.#log.info('agent stopped');
  }
}
