// The agent's WireGuard tunnel: one interface, one peer (the hub, AllowedIPs = the hub's /32 only,
// PersistentKeepalive so the NCB's NAT keeps the mapping open), a /32 overlay address and a route
// to the hub (ARCHITECTURE, Network). Countries never get a route to each other from here.
import { access } from 'node:fs/promises';
import type { Logger } from 'pino';
import { readSecretFile } from '../../pki/files.js';
import { ValidationError } from '../../protocol/errors.js';
import { describeValue } from '../../protocol/validate.js';
import { assertNetnsName } from '../../system/exec.js';
import { ipv4ToInt, parseIpv4Cidr } from '../../system/cidr.js';
import { SystemError, WG_BAD_CONFIG, WG_TUNNEL_STATE } from '../../system/errors.js';
import { addAddress, addRoute, isIfname, setUp } from '../../system/ip.js';
import { createWgInterface, removeLeftoverInterface, type WgInterface } from '../../system/wg-interface.js';
import { assertWgKey, isWgKey, removePeer, setInterface, setPeer, show } from '../../system/wg.js';

/** The hub as the agent's bundle describes it. */
export interface AgentHubPeer {
  /** The hub's WireGuard public key. */
  publicKey: string;
  /** Where the hub listens, `host:port` (`hub.example.org:51820`, `192.0.2.1:51820`, `[2001:db8::1]:51820`). */
  endpoint: string;
  /** The hub's overlay address (`10.77.0.1`); the only address routed into the tunnel. */
  overlayAddress: string;
}

/** Options of {@link AgentTunnel}. */
export interface AgentTunnelOptions {
  /** Interface name, at most 15 characters (e.g. `ncbnet0`). */
  ifname: string;
  /** The agent's WireGuard private key, written (mode 0600) by enrollment; never created here. */
  privateKeyPath: string;
  /** The country's overlay address, `10.77.0.2` or `10.77.0.2/32`. */
  address: string;
  hub: AgentHubPeer;
  /** PersistentKeepalive towards the hub in seconds (default 25; 0 turns it off). */
  keepaliveSeconds?: number | undefined;
  /** A fixed UDP listen port (for an NCB firewall that needs one); default: chosen by wg. */
  listenPort?: number | undefined;
  /** Network namespace to create the interface in (tests; default: the process's own). */
  netns?: string | undefined;
  /** Force kernel or userspace WireGuard (default: kernel when available). */
  implementation?: 'auto' | 'kernel' | 'userspace' | undefined;
  /** How long to wait for wireguard-go to come up (default 5 s). */
  startTimeoutMs?: number | undefined;
  /** wireguard-go's socket directory, fixed in wireguard-go (default /var/run/wireguard). */
  socketDir?: string | undefined;
}

/** The tunnel as `wg show dump` reports it, for heartbeats, metrics and /readyz. */
export interface AgentTunnelState {
  /** The interface exists and (userspace) wireguard-go runs. Says nothing about the hub: see lastHandshake. */
  up: boolean;
  /** Last completed handshake with the hub; undefined when none yet (or the tunnel is down). */
  lastHandshake: Date | undefined;
  rxBytes: number;
  txBytes: number;
  /** The hub endpoint wg uses now (`host:port`, resolved); undefined when down. */
  endpoint: string | undefined;
}

/** Hub fields {@link AgentTunnel.updateHub} found changed. */
export type HubChange = 'publicKey' | 'endpoint' | 'overlayAddress';

const DEFAULT_KEEPALIVE_SECONDS = 25;
const ENDPOINT = /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]):(\d{1,5})$/;

function isPort(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535;
}

/** Every problem of a hub description, prefixed with `prefix` (`hub`). Pure. */
export function hubPeerProblems(hub: AgentHubPeer, prefix = 'hub'): string[] {
  const problems: string[] = [];
  if (typeof hub !== 'object' || hub === null) return [`${prefix}: not an object (got ${describeValue(hub)})`];
  if (typeof hub.publicKey !== 'string' || !isWgKey(hub.publicKey)) {
    problems.push(`${prefix}.publicKey: not a WireGuard key (got ${describeValue(hub.publicKey)})`);
  }
  const port = typeof hub.endpoint === 'string' ? ENDPOINT.exec(hub.endpoint)?.[1] : undefined;
  if (port === undefined || !isPort(Number(port))) {
    problems.push(`${prefix}.endpoint: not host:port with a port 1-65535 (got ${describeValue(hub.endpoint)})`);
  }
  if (typeof hub.overlayAddress !== 'string' || ipv4ToInt(hub.overlayAddress) === undefined) {
    problems.push(`${prefix}.overlayAddress: not an IPv4 address (got ${describeValue(hub.overlayAddress)})`);
  }
  return problems;
}

/** Every problem of `opts`, one line each as `field: problem (got X)`. Pure. */
export function agentTunnelProblems(opts: AgentTunnelOptions): string[] {
  const problems: string[] = [];
  if (typeof opts.ifname !== 'string' || !isIfname(opts.ifname)) {
    problems.push(`ifname: not an interface name of 1-15 characters [A-Za-z0-9_.-] (got ${describeValue(opts.ifname)})`);
  }
  if (typeof opts.privateKeyPath !== 'string' || opts.privateKeyPath === '') {
    problems.push(`privateKeyPath: not a file path (got ${describeValue(opts.privateKeyPath)})`);
  }
  const net = typeof opts.address === 'string' ? parseIpv4Cidr(opts.address, { strict: true }) : undefined;
  if (net === undefined || net.prefix !== 32) {
    problems.push(`address: not one IPv4 address or /32 (got ${describeValue(opts.address)})`);
  }
  problems.push(...hubPeerProblems(opts.hub));
  if (net !== undefined && typeof opts.hub === 'object' && opts.hub !== null && ipv4ToInt(opts.hub.overlayAddress) === net.base) {
    problems.push(`address: the same as hub.overlayAddress (got ${describeValue(opts.address)})`);
  }
  const ka = opts.keepaliveSeconds;
  if (ka !== undefined && !(Number.isInteger(ka) && ka >= 0 && ka <= 65535)) {
    problems.push(`keepaliveSeconds: not an integer 0-65535 (got ${describeValue(ka)})`);
  }
  if (opts.listenPort !== undefined && !isPort(opts.listenPort)) {
    problems.push(`listenPort: not a port 1-65535 (got ${describeValue(opts.listenPort)})`);
  }
  if (opts.netns !== undefined) {
    try {
      assertNetnsName(opts.netns);
    } catch {
      problems.push(`netns: not a network namespace name (got ${describeValue(opts.netns)})`);
    }
  }
  return problems;
}

/**
 * The agent's WireGuard tunnel to the hub. `start()` creates and configures the interface,
 * `updateHub()` follows a new bundle, `state()` reads it back, `stop()` removes it.
 */
export class AgentTunnel {
  readonly #opts: AgentTunnelOptions;
  readonly #log: Logger;
  readonly #address: string;
  readonly #keepalive: number;
  #hub: AgentHubPeer;
  #iface: WgInterface | undefined;

  /** Throws `WG_BAD_CONFIG` (a ValidationError) listing every problem of `opts`. */
  constructor(opts: AgentTunnelOptions, log: Logger) {
    const problems = agentTunnelProblems(opts);
    if (problems.length) throw new ValidationError(WG_BAD_CONFIG, 'agent tunnel options', problems);
    this.#opts = opts;
    this.#hub = { ...opts.hub };
    this.#address = `${opts.address.split('/')[0] ?? opts.address}/32`;
    this.#keepalive = opts.keepaliveSeconds ?? DEFAULT_KEEPALIVE_SECONDS;
    this.#log = log.child({ component: 'tunnel', ifname: opts.ifname });
  }

  /** The interface name. */
  get ifname(): string {
    return this.#opts.ifname;
  }

  /** The hub the tunnel is (or will be) configured for. */
  get hub(): Readonly<AgentHubPeer> {
    return { ...this.#hub };
  }

  /** False before start(), after stop(), or when wireguard-go has died (for /readyz). */
  isUp(): boolean {
    return this.#iface?.isAlive() ?? false;
  }

  async #checkKey(): Promise<void> {
    const path = this.#opts.privateKeyPath;
    if (!(await access(path).then(() => true, () => false))) {
      throw new SystemError(WG_BAD_CONFIG, `${path}: no WireGuard private key (enrollment writes it)`);
    }
    // Refuses a key others can read (treated as disclosed, PKI_KEY_PERMISSIONS) and checks its
    // form before wg sees it; the key itself goes to wg by path and is dropped here.
    assertWgKey((await readSecretFile(path)).trim(), path);
  }

  // An agent killed with SIGKILL leaves its interface (kernel, or a wireguard-go orphan still
  // holding the tun) and possibly a dead socket; creating the interface again would fail on both.
  async #removeLeftover(): Promise<void> {
    const { ifname, netns, socketDir } = this.#opts;
    if (await removeLeftoverInterface(ifname, { netns, socketDir })) this.#log.warn('removed an interface left by an earlier run');
  }


  #peerSpec(hub: AgentHubPeer) {
    return {
      publicKey: hub.publicKey,
      allowedIps: [`${hub.overlayAddress}/32`],
      endpoint: hub.endpoint,
      persistentKeepaliveSeconds: this.#keepalive,
    };
  }

  /**
   * Creates the interface, sets key (and listen port), address `/32`, the hub as the only peer,
   * brings it up and routes the hub's /32 into it. Repairs after a crash: an interface of this
   * name left behind (by a killed agent, or this one's dead wireguard-go) is removed and made
   * again. On any failure the new interface is removed before the error propagates. Throws
   * `WG_TUNNEL_STATE` when the tunnel is already up, `PKI_KEY_PERMISSIONS` for a key file that
   * group or others can read, `WG_BAD_KEY`, `WG_USERSPACE_FAILED`, `WG_APPLY_FAILED`, `IP_FAILED`.
   */
  async start(): Promise<void> {
    if (this.#iface?.isAlive()) throw new SystemError(WG_TUNNEL_STATE, 'AgentTunnel already started');
    const { ifname, netns } = this.#opts;
    const dead = this.#iface;
    this.#iface = undefined;
    if (dead) {
      this.#log.warn({ pid: dead.pid }, 'wireguard-go died; recreating the interface');
      await dead.close();
    }
    await this.#checkKey();
    await this.#removeLeftover();
    const iface = await createWgInterface(ifname, {
      netns, implementation: this.#opts.implementation, startTimeoutMs: this.#opts.startTimeoutMs, socketDir: this.#opts.socketDir,
    });
    try {
      await setInterface(ifname, { privateKeyPath: this.#opts.privateKeyPath, listenPort: this.#opts.listenPort }, { netns });
      await addAddress(ifname, this.#address, { netns });
      await setPeer(ifname, this.#peerSpec(this.#hub), { netns });
      // Up before the route: the kernel refuses a route through a link that is down.
      await setUp(ifname, { netns });
      await addRoute(`${this.#hub.overlayAddress}/32`, ifname, { netns });
    } catch (err) {
      await iface.close();
      throw err;
    }
    this.#iface = iface;
    this.#log.info({ implementation: iface.implementation, address: this.#address, hub: this.#hub }, 'tunnel up');
  }

  /**
   * Follows a new bundle's hub (re-keyed hub, moved endpoint) and resolves with what changed.
   * A new key replaces the peer (the old one is removed first, so no packet goes to a stale
   * key); a new endpoint is set in place; a new overlay address re-creates the interface, since
   * the old route must not outlive it. Before start() the hub is only kept for start().
   * An invalid hub throws `WG_BAD_CONFIG` listing every problem, and nothing changes; wg or ip
   * failing throws like {@link start}.
   */
  async updateHub(hub: AgentHubPeer): Promise<HubChange[]> {
    const problems = hubPeerProblems(hub);
    if (problems.length) throw new ValidationError(WG_BAD_CONFIG, 'agent tunnel hub', problems);
    const old = this.#hub;
    const changes: HubChange[] = [];
    if (hub.publicKey !== old.publicKey) changes.push('publicKey');
    if (hub.endpoint !== old.endpoint) changes.push('endpoint');
    if (hub.overlayAddress !== old.overlayAddress) changes.push('overlayAddress');
    if (changes.length === 0) return changes;
    if (!this.#iface) {
      this.#hub = { ...hub };
      return changes;
    }
    const { ifname, netns } = this.#opts;
    if (changes.includes('overlayAddress') || !this.#iface.isAlive()) {
      // Kept first so start() uses it; if start() fails the tunnel is down and the next
      // start() brings it up with this hub.
      this.#hub = { ...hub };
      await this.stop();
      await this.start();
    } else {
      // Kept only once wg has it: after a failure midway the same call finds the change again
      // and converges (removing an absent peer is a no-op for wg).
      if (changes.includes('publicKey')) await removePeer(ifname, old.publicKey, { netns });
      await setPeer(ifname, this.#peerSpec(hub), { netns });
      this.#hub = { ...hub };
    }
    this.#log.info({ changes, hub }, 'hub updated');
    return changes;
  }

  /**
   * The tunnel's state from `wg show dump`. A tunnel that is not started or whose wireguard-go
   * died reports `up: false` without asking wg (there is nothing to ask).
   */
  async state(): Promise<AgentTunnelState> {
    if (!this.isUp()) return { up: false, lastHandshake: undefined, rxBytes: 0, txBytes: 0, endpoint: undefined };
    const dump = await show(this.#opts.ifname, { netns: this.#opts.netns });
    const peer = dump.peers.find((p) => p.publicKey === this.#hub.publicKey);
    return {
      up: true,
      lastHandshake: peer?.latestHandshake,
      rxBytes: peer?.rxBytes ?? 0,
      txBytes: peer?.txBytes ?? 0,
      endpoint: peer?.endpoint,
    };
  }

  /** Removes the interface (and stops wireguard-go), nothing else. Safe to call twice or before start(). */
  async stop(): Promise<void> {
    const iface = this.#iface;
    this.#iface = undefined;
    if (!iface) return;
    await iface.close();
    this.#log.info('tunnel down');
  }
}
