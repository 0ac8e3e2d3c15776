/**
 * One view of every country's health, shared by `/metrics` and `GET /v1/admin/status` so the two
 * never disagree. The registry and heartbeats are in memory; three sources need I/O and are read
 * at collection time, concurrently, each bounded by `timeoutMs` so a slow broker never hangs a
 * scrape: the broker's `/connz` (who is connected), DELIVER's consumer list (backlogs) and the
 * hub's `wg show` dump (handshakes, bytes; only with WireGuard on). Their results are reused for
 * `cacheMs` (default 2 s) and concurrent callers share one collection, so Prometheus, a second
 * Prometheus and `ncbnet status` together cost one round of I/O per window.
 *
 * A source that fails or times out leaves its fields unknown (undefined → no series, `null` in
 * the status API), never zero, and is logged once when it starts failing.
 */
import type { Logger } from 'pino';
import type { WgPeerState } from '../../system/wg.js';
import type { CountryRecord, CountryStatus } from '../registry/record.js';
import { withTimeout } from './errors.js';

/** The scrape-time sources; `off` when not configured (WireGuard disabled). */
export type SourceName = 'connz' | 'consumers' | 'wireguard';
export type SourceState = 'ok' | 'failed' | 'off';

/** Where {@link CountryStatusCollector} reads from. */
export interface CountryStatusSources {
  /** Every registered country (the registry, in memory). */
  countries(): readonly CountryRecord[];
  /** When the hub last heard a heartbeat (ms), and the policy digest it reported. */
  presence: { lastHeardMs(country: string): number | undefined; policyHash(country: string): string | null | undefined };
  /** `policyDigest` of the policy the hub hands out now. */
  policyDigest(): string;
  /** Countries with a live broker connection. */
  connz?: (() => Promise<ReadonlySet<string>>) | undefined;
  /** Messages waiting per country in DELIVER. */
  backlog?: (() => Promise<ReadonlyMap<string, number>>) | undefined;
  /** The hub interface's peers; undefined when WireGuard is off. */
  wireguard?: (() => Promise<readonly WgPeerState[]>) | undefined;
}

/** One country's health now; undefined means unknown or never happened. Times in ms since the epoch. */
export interface CountryHealth {
  code: string;
  name: string;
  status: CountryStatus;
  connected: boolean | undefined;
  lastSeenMs: number | undefined;
  handshakeMs: number | undefined;
  rxBytes: number | undefined;
  txBytes: number | undefined;
  certNotAfterMs: number | undefined;
  policyInSync: boolean | undefined;
  deliveryPending: number | undefined;
}

/** Every registered country (sorted by code) and how each I/O source fared. */
export interface StatusSnapshot {
  atMs: number;
  countries: CountryHealth[];
  sources: Record<SourceName, SourceState>;
}

interface IoResults {
  connected: ReadonlySet<string> | undefined;
  backlog: ReadonlyMap<string, number> | undefined;
  peers: readonly WgPeerState[] | undefined;
  sources: Record<SourceName, SourceState>;
}

/** Options of {@link CountryStatusCollector}. */
export interface CountryStatusCollectorOptions {
  sources: CountryStatusSources;
  log: Logger;
  /** Time limit of each I/O source (default 2 s). */
  timeoutMs?: number;
  /** How long I/O results are reused (default 2 s; 0 = every call does I/O, concurrent calls still share). */
  cacheMs?: number;
  now?: () => number;
}

function timeOf(iso: string | undefined): number | undefined {
  if (iso === undefined) return undefined;
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? undefined : ms;
}

/** Collects {@link StatusSnapshot}s; see the module comment for timing and caching. */
export class CountryStatusCollector {
  readonly #sources: CountryStatusSources;
  readonly #log: Logger;
  readonly #timeoutMs: number;
  readonly #cacheMs: number;
  readonly #now: () => number;
  #cached: { atMs: number; io: IoResults } | undefined;
  #inflight: Promise<IoResults> | undefined;
  readonly #failing = new Set<SourceName>();

  constructor(opts: CountryStatusCollectorOptions) {
    this.#sources = opts.sources;
    this.#log = opts.log.child({ component: 'status' });
    this.#timeoutMs = opts.timeoutMs ?? 2_000;
    this.#cacheMs = opts.cacheMs ?? 2_000;
    this.#now = opts.now ?? Date.now;
  }

  /** Every registered country's health now. Never rejects: a failed source only leaves fields unknown. */
  async snapshot(): Promise<StatusSnapshot> {
    const io = await this.#io();
    const src = this.#sources;
    const digest = src.policyDigest();
    const peerByKey = new Map((io.peers ?? []).map((p) => [p.publicKey, p]));
    const countries = [...src.countries()]
      .sort((a, b) => a.code.localeCompare(b.code))
      .map((r): CountryHealth => {
        const heardMs = src.presence.lastHeardMs(r.code);
        const storedMs = timeOf(r.lastSeen);
        const lastSeenMs = heardMs === undefined ? storedMs : storedMs === undefined ? heardMs : Math.max(heardMs, storedMs);
        const hash = src.presence.policyHash(r.code);
        // A peer exists only while the country is active; its key comes from the registry.
        const peer = io.peers !== undefined && r.wgPublicKey !== undefined ? peerByKey.get(r.wgPublicKey) : undefined;
        return {
          code: r.code,
          name: r.name,
          status: r.status,
          connected: io.connected?.has(r.code),
          lastSeenMs,
          handshakeMs: peer?.latestHandshake?.getTime(),
          rxBytes: peer?.rxBytes,
          txBytes: peer?.txBytes,
          certNotAfterMs: timeOf(r.certNotAfter),
          // null: the agent runs without its firewall, so no policy is in force: not in sync.
          policyInSync: hash === undefined ? undefined : hash === digest,
          deliveryPending: io.backlog?.get(r.code),
        };
      });
    return { atMs: this.#now(), countries, sources: io.sources };
  }

  async #io(): Promise<IoResults> {
    const cached = this.#cached;
    if (cached !== undefined && this.#now() - cached.atMs < this.#cacheMs) return cached.io;
    this.#inflight ??= this.#gather().finally(() => {
      this.#inflight = undefined;
    });
    return this.#inflight;
  }

  async #gather(): Promise<IoResults> {
    const { connz, backlog, wireguard } = this.#sources;
    const [connected, back, peers] = await Promise.all([
      this.#read('connz', connz),
      this.#read('consumers', backlog),
      this.#read('wireguard', wireguard),
    ]);
    const io: IoResults = {
      connected: connected.value,
      backlog: back.value,
      peers: peers.value,
      sources: { connz: connected.state, consumers: back.state, wireguard: peers.state },
    };
    this.#cached = { atMs: this.#now(), io };
    return io;
  }

  async #read<T>(name: SourceName, read: (() => Promise<T>) | undefined): Promise<{ value: T | undefined; state: SourceState }> {
    if (read === undefined) return { value: undefined, state: 'off' };
    try {
      const value = await withTimeout(read(), this.#timeoutMs, name);
      if (this.#failing.delete(name)) this.#log.info({ source: name }, 'status source answers again');
      return { value, state: 'ok' };
    } catch (err) {
      // Logged when it starts failing, not at every scrape (Prometheus scrapes every 15 s).
      if (!this.#failing.has(name)) this.#log.warn({ err, source: name }, 'status source failed; its values are unknown until it answers');
      else this.#log.debug({ err, source: name }, 'status source still failing');
      this.#failing.add(name);
      return { value: undefined, state: 'failed' };
    }
  }
}
