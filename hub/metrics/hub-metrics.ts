/**
 * The hub's Prometheus metrics (ARCHITECTURE, Observability) on a registry of its own (STYLE: never
 * prom-client's global one). Two kinds of series:
 *
 * - counted as things happen, through the stats hooks the services call (router, urgent watch,
 *   enrollment, probes, broker restarts, registry changes): messages, delivery and probe times,
 *   missed probes, overdue urgent messages, enrollments, renewals, revocations, rejections;
 * - read at scrape time in `collect()` from one shared {@link StatusSnapshot} (registry,
 *   heartbeats, `/connz`, DELIVER backlogs, `wg show`): connection, last seen, tunnel, certificate,
 *   policy and backlog per country, and the hub-wide gauges.
 *
 * Per-country series exist for every registered country that is not revoked (pending, active,
 * suspended); they are dropped when a country is revoked or removed. A time that never happened
 * (no heartbeat, no handshake) or a value a failed source could not give is absent, never 0.
 */
import { Counter, Gauge, Histogram, type Registry as PromRegistry } from 'prom-client';
import { receiptItems, ulidTime, type Envelope } from '../../protocol/envelope.js';
import type { EnrollmentStats } from '../enrollment/service.js';
import type { CountryRecord, CountryStatus } from '../registry/record.js';
import type { RegistryChange } from '../registry/registry.js';
import type { RouterStats } from '../router/router.js';
import type { UrgentWatchStats } from '../router/urgent-watch.js';
import type { SourceName, StatusSnapshot } from './country-status.js';

/** Probe outcomes (hub/probes.ts). */
export interface ProbeStats {
  onProbeAnswered(country: string, rttSeconds: number): void;
  onProbeMissed(country: string): void;
}

/** What the metrics read at scrape time; each may answer undefined before the hub has started it. */
export interface HubMetricsSources {
  /** Every registered country (the registry, in memory). */
  countries(): readonly CountryRecord[];
  /** The shared per-country snapshot (see country-status.ts). */
  snapshot(): Promise<StatusSnapshot> | undefined;
  /** Whether the supervised nats-server is up. */
  brokerUp(): boolean | undefined;
  /** Urgent (message, recipient) pairs overdue now. */
  urgentOverdue(): number | undefined;
}

const STATUSES: readonly CountryStatus[] = ['pending', 'active', 'suspended', 'revoked'];
const SOURCES: readonly SourceName[] = ['connz', 'consumers', 'wireguard'];
/** Submit → stored at the recipient: sub-second online, hours for a country that was away. */
const DELIVERY_BUCKETS = [0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 21600, 86400];
/** Hub → agent → hub over the tunnel and the broker: milliseconds, up to the probe timeout. */
const PROBE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

const seconds = (ms: number): number => ms / 1000;

/** The hub's metrics; build once in the daemon with the registry it serves on `/metrics`. */
export class HubMetrics {
  readonly register: PromRegistry;
  readonly #sources: HubMetricsSources;
  /** Countries whose per-country counters and histograms exist now. */
  #members = new Set<string>();

  readonly #messages: Counter<'country' | 'direction'>;
  readonly #delivery: Histogram<'country'>;
  readonly #probeRtt: Histogram<'country'>;
  readonly #probesMissed: Counter<'country'>;
  readonly #urgentOverdueTotal: Counter<'country'>;
  readonly #enrollments: Counter<'result'>;
  readonly #renewals: Counter<'result'>;
  readonly #revocations: Counter;
  readonly #rejections: Counter<'code'>;
  readonly #throttled: Counter<'country'>;
  readonly #brokerRestarts: Counter;

  /** Stats hooks for the router (hub/router/router.ts). */
  readonly routerStats: RouterStats;
  /** Stats hooks for the urgent watch (hub/router/urgent-watch.ts). */
  readonly urgentStats: UrgentWatchStats;
  /** Stats hooks for enrollment and renewal (hub/enrollment/service.ts). */
  readonly enrollmentStats: EnrollmentStats;
  /** Stats hooks for the synthetic probes (hub/probes.ts). */
  readonly probeStats: ProbeStats;

  constructor(register: PromRegistry, sources: HubMetricsSources) {
    this.register = register;
    this.#sources = sources;
    const registers = [register];
    // Per-country counters and histograms follow the membership before they are read.
    const collect = (): void => this.#syncMembers();

    // Counted as things happen.
    this.#messages = new Counter({ name: 'ncbnet_messages_total', help: 'Envelopes routed (receipts and deletions included), by country and direction: sent by it, or a copy received for it.', labelNames: ['country', 'direction'], registers, collect });
    this.#delivery = new Histogram({
      name: 'ncbnet_delivery_seconds',
      help: 'Submit to stored at the recipient, from delivered receipts: receipt created (recipient clock) minus the original id time (sender clock); country is the recipient.',
      labelNames: ['country'],
      buckets: DELIVERY_BUCKETS,
      registers, collect,
    });
    this.#probeRtt = new Histogram({ name: 'ncbnet_probe_rtt_seconds', help: 'Round trip of answered synthetic probes (hub to agent to hub, hub monotonic clock).', labelNames: ['country'], buckets: PROBE_BUCKETS, registers, collect });
    this.#probesMissed = new Counter({ name: 'ncbnet_probes_missed_total', help: 'Synthetic probes to an active country not answered within probes.timeoutMs.', labelNames: ['country'], registers, collect });
    this.#urgentOverdueTotal = new Counter({ name: 'ncbnet_urgent_overdue_total', help: 'Urgent messages this recipient country had not confirmed within router.urgentDeadlineMs (once per message).', labelNames: ['country'], registers, collect });
    this.#enrollments = new Counter({ name: 'ncbnet_enrollments_total', help: 'Enrollments: ok, refused (a coded error: token, CSR, status) or failed (unexpected error).', labelNames: ['result'], registers });
    this.#renewals = new Counter({ name: 'ncbnet_renewals_total', help: 'Certificate renewals: ok, refused (a coded error) or failed (unexpected error).', labelNames: ['result'], registers });
    this.#revocations = new Counter({ name: 'ncbnet_revocations_total', help: 'Countries revoked since the hub started.', registers });
    this.#rejections = new Counter({ name: 'ncbnet_router_rejections_total', help: 'Submissions the router refused, by error code.', labelNames: ['code'], registers });
    this.#throttled = new Counter({ name: 'ncbnet_router_throttled_total', help: 'Times a submission of this sending country was held back because the country was over router.ratePerCountry (held, never dropped).', labelNames: ['country'], registers, collect });
    this.#brokerRestarts = new Counter({ name: 'ncbnet_broker_restarts_total', help: 'Times the supervised nats-server died and was started again.', registers });
    for (const result of ['ok', 'refused']) {
      this.#enrollments.inc({ result }, 0);
      this.#renewals.inc({ result }, 0);
    }

    // Read at scrape time.
    // `collect` runs with `this` bound to its metric; the hub's snapshot is reached through this.
    const snapshot = (): Promise<StatusSnapshot | undefined> => this.#snapshot();
    type CountryRow = StatusSnapshot['countries'][number];
    // One series per country that is not revoked, read from the snapshot at scrape time; a value
    // the sources could not give (undefined) has no series. Counters are set through inc() after
    // a reset, as prom-client has no set() for them.
    const perCountryMetric = (kind: 'gauge' | 'counter', name: string, help: string, value: (c: CountryRow) => number | undefined): void => {
      const opts = { name, help, labelNames: ['country'] as const, registers };
      async function fill(metric: { reset(): void }, put: (country: string, v: number) => void): Promise<void> {
        const snap = await snapshot();
        metric.reset();
        for (const c of snap?.countries ?? []) {
          const v = c.status === 'revoked' ? undefined : value(c);
          if (v !== undefined) put(c.code, v);
        }
      }
      if (kind === 'gauge') {
        new Gauge({ ...opts, async collect() { await fill(this, (country, v) => this.set({ country }, v)); } });
      } else {
        new Counter({ ...opts, async collect() { await fill(this, (country, v) => this.inc({ country }, v)); } });
      }
    };
    const perCountry = (name: string, help: string, value: (c: CountryRow) => number | undefined): void => perCountryMetric('gauge', name, help, value);
    perCountry('ncbnet_country_connected', 'Whether the country holds a live connection to the broker (nats-server /connz), 1 or 0.', (c) => (c.connected === undefined ? undefined : Number(c.connected)));
    perCountry('ncbnet_country_last_seen_timestamp_seconds', 'When the hub last received a heartbeat from the country (hub clock).', (c) => (c.lastSeenMs === undefined ? undefined : seconds(c.lastSeenMs)));
    perCountry('ncbnet_wireguard_last_handshake_timestamp_seconds', "Last completed WireGuard handshake with the country's peer (hub interface).", (c) => (c.handshakeMs === undefined ? undefined : seconds(c.handshakeMs)));
    perCountry('ncbnet_certificate_expiry_timestamp_seconds', "When the country's current certificate expires.", (c) => (c.certNotAfterMs === undefined ? undefined : seconds(c.certNotAfterMs)));
    perCountry('ncbnet_policy_in_sync', "Whether the firewall policy digest in the country's last heartbeat equals the policy the hub hands out now, 1 or 0.", (c) => (c.policyInSync === undefined ? undefined : Number(c.policyInSync)));
    perCountry('ncbnet_delivery_pending', "Messages waiting on the country's consumer deliver-<CC>: pending plus handed out and not acked.", (c) => c.deliveryPending);
    const wgBytes = (name: string, help: string, value: (c: CountryRow) => number | undefined): void => perCountryMetric('counter', name, help, value);
    wgBytes('ncbnet_wireguard_receive_bytes_total', "Bytes received from the country's WireGuard peer (resets when the peer is re-added).", (c) => c.rxBytes);
    wgBytes('ncbnet_wireguard_transmit_bytes_total', "Bytes sent to the country's WireGuard peer (resets when the peer is re-added).", (c) => c.txBytes);
    new Gauge({
      name: 'ncbnet_country_info',
      help: 'Every registered country that is not revoked, with its registry status; always 1.',
      labelNames: ['country', 'status'],
      registers,
      async collect() {
        await snapshot();
        this.reset();
        for (const r of sources.countries()) if (r.status !== 'revoked') this.set({ country: r.code, status: r.status }, 1);
      },
    });
    new Gauge({
      name: 'ncbnet_registry_countries',
      help: 'Registered countries by status.',
      labelNames: ['status'],
      registers,
      collect() {
        const counts = new Map<string, number>(STATUSES.map((s) => [s, 0]));
        for (const r of sources.countries()) counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
        for (const [status, n] of counts) this.set({ status }, n);
      },
    });
    new Gauge({
      name: 'ncbnet_broker_up',
      help: 'Whether the supervised nats-server is running, 1 or 0.',
      registers,
      collect() {
        const up = sources.brokerUp();
        this.reset();
        if (up !== undefined) this.set(Number(up));
      },
    });
    new Gauge({
      name: 'ncbnet_urgent_overdue',
      help: 'Urgent (message, recipient) pairs past router.urgentDeadlineMs and not confirmed, now.',
      registers,
      collect() {
        const n = sources.urgentOverdue();
        this.reset();
        if (n !== undefined) this.set(n);
      },
    });
    new Gauge({
      name: 'ncbnet_metrics_source_up',
      help: 'Whether a scrape-time source answered within its time limit (connz, consumers, wireguard), 1 or 0; absent when not configured.',
      labelNames: ['source'],
      registers,
      async collect() {
        const snap = await snapshot();
        this.reset();
        for (const s of SOURCES) {
          const state = snap?.sources[s];
          if (state === 'ok' || state === 'failed') this.set({ source: s }, state === 'ok' ? 1 : 0);
        }
      },
    });

    // Per-country series only for members: a probe swept or a message routed just after a
    // revocation must not bring a revoked country's series back.
    this.routerStats = {
      onRouted: (from, to) => {
        if (this.#isMember(from)) this.#messages.inc({ country: from, direction: 'sent' });
        for (const cc of to) if (this.#isMember(cc)) this.#messages.inc({ country: cc, direction: 'received' });
      },
      onRejected: (_from, code) => this.#rejections.inc({ code }),
      onReceipt: (receipt) => this.#receipt(receipt),
      onThrottled: (country) => {
        if (this.#isMember(country)) this.#throttled.inc({ country });
      },
    };
    this.urgentStats = {
      // The recipient that has not confirmed is the one to look at.
      onUrgentOverdue: (_from, to) => {
        if (this.#isMember(to)) this.#urgentOverdueTotal.inc({ country: to });
      },
    };
    this.enrollmentStats = {
      onEnroll: (result) => this.#enrollments.inc({ result }),
      onRenew: (result) => this.#renewals.inc({ result }),
    };
    this.probeStats = {
      onProbeAnswered: (country, rtt) => {
        if (this.#isMember(country)) this.#probeRtt.observe({ country }, rtt);
      },
      onProbeMissed: (country) => {
        if (this.#isMember(country)) this.#probesMissed.inc({ country });
      },
    };
  }

  /** The supervised nats-server came back after dying (its `restart` event). */
  brokerRestarted(): void {
    this.#brokerRestarts.inc();
  }

  /** A registry write (its listener): counts revocations and drops a revoked country's series at once. */
  countryChanged(change: RegistryChange): void {
    if (change.after.status === 'revoked' && change.before?.status !== 'revoked') this.#revocations.inc();
    this.#syncMembers();
  }

  /**
   * The snapshot for this scrape; first brings the per-country counters and histograms in line
   * with the registry (zero series for new members, none for revoked ones), so that `increase()`
   * sees a country's first message and a revoked country disappears.
   */
  async #snapshot(): Promise<StatusSnapshot | undefined> {
    this.#syncMembers();
    return this.#sources.snapshot();
  }

  /** Whether `cc` is registered and not revoked (the membership is refreshed on a miss). */
  #isMember(cc: string): boolean {
    if (!this.#members.has(cc)) this.#syncMembers();
    return this.#members.has(cc);
  }

  #syncMembers(): void {
    const now = new Set(this.#sources.countries().flatMap((r) => (r.status === 'revoked' ? [] : [r.code])));
    for (const cc of this.#members) {
      if (now.has(cc)) continue;
      for (const direction of ['sent', 'received']) this.#messages.remove({ country: cc, direction });
      this.#delivery.remove({ country: cc });
      this.#probeRtt.remove({ country: cc });
      this.#probesMissed.remove({ country: cc });
      this.#urgentOverdueTotal.remove({ country: cc });
      this.#throttled.remove({ country: cc });
    }
    for (const cc of now) {
      if (this.#members.has(cc)) continue;
      for (const direction of ['sent', 'received']) this.#messages.inc({ country: cc, direction }, 0);
      this.#probesMissed.inc({ country: cc }, 0);
      this.#urgentOverdueTotal.inc({ country: cc }, 0);
      this.#throttled.inc({ country: cc }, 0);
    }
    this.#members = now;
  }

  /**
   * `delivered` receipts: the recipient (`from`) stored each one's `of` by `created` (a batched
   * envelope is made when its batch is flushed, a few milliseconds at most after the store).
   */
  #receipt(receipt: Envelope): void {
    if (!this.#isMember(receipt.from)) return;
    const storedMs = Date.parse(receipt.created);
    for (const item of receiptItems(receipt)) {
      if (item.status !== 'delivered') continue;
      const delta = storedMs - ulidTime(item.of);
      // Two clocks (sender's id, recipient's receipt): a negative time is skew, not a delivery.
      if (Number.isFinite(delta) && delta >= 0) this.#delivery.observe({ country: receipt.from }, seconds(delta));
    }
  }
}
