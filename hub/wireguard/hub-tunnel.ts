// The hub's WireGuard interface: one peer per country, AllowedIPs = its /32 (ARCHITECTURE, Network).
// The registry says which peers should exist; syncPeers() makes the interface match.
import { access } from 'node:fs/promises';
import type { Logger } from 'pino';
import { ValidationError } from '../../protocol/errors.js';
import { readSecretFile, writeSecretFile } from '../../pki/files.js';
import { SystemError, WG_BAD_CONFIG, WG_BAD_PEER, WG_TUNNEL_STATE } from '../../system/errors.js';
import { formatIpv4Network, ipv4InNetwork, parseIpv4Cidr, type Ipv4Network } from '../../system/cidr.js';
import { addAddress, setUp } from '../../system/ip.js';
import { createWgInterface, removeLeftoverInterface, type WgInterface } from '../../system/wg-interface.js';
import {
  assertWgKey, diffPeers, genKey, isWgKey, removePeer, setInterface, setPeer, show,
  type WgPeerSpec, type WgPeerState,
} from '../../system/wg.js';

/** Options of {@link HubTunnel}. */
export interface HubTunnelOptions {
  /** Interface name, at most 15 characters (e.g. `ncbnet0`). */
  ifname: string;
  /** UDP port to listen on (51820). */
  listenPort: number;
  /** The hub's WireGuard private key file; created (mode 0600) when absent. */
  privateKeyPath: string;
  /** The hub's overlay address with the overlay prefix (default `10.77.0.1/16`). */
  address?: string | undefined;
  /** Network namespace to create the interface in (tests; default: the process's own). */
  netns?: string | undefined;
  /** Force kernel or userspace WireGuard (default: kernel when available). */
  implementation?: 'auto' | 'kernel' | 'userspace' | undefined;
  /** How long to wait for wireguard-go to come up (default 5 s). */
  startTimeoutMs?: number | undefined;
}

/** A country's peer: its WireGuard public key and its overlay address (`10.77.0.7` or `10.77.0.7/32`). */
export interface HubPeer {
  publicKey: string;
  allowedIp: string;
}

/** What {@link HubTunnel.syncPeers} changed, as public keys. */
export interface PeerChanges {
  added: string[];
  updated: string[];
  removed: string[];
}

const DEFAULT_ADDRESS = '10.77.0.1/16';

/**
 * The hub's WireGuard tunnel. `start()` creates and configures the interface, `syncPeers()`
 * converges its peers on the registry's list, `stop()` removes it.
 */
export class HubTunnel {
  readonly #opts: HubTunnelOptions;
  readonly #log: Logger;
  readonly #address: string;
  readonly #hostIp: string;
  readonly #overlay: Ipv4Network;
  #iface: WgInterface | undefined;
  #publicKey: string | undefined;

  /** Throws `WG_BAD_CONFIG` when `address` is not an IPv4 address with a prefix. */
  constructor(opts: HubTunnelOptions, log: Logger) {
    this.#opts = opts;
    this.#log = log.child({ component: 'wireguard', ifname: opts.ifname });
    this.#address = opts.address ?? DEFAULT_ADDRESS;
    const [ip] = this.#address.split('/');
    const overlay = this.#address.includes('/') ? parseIpv4Cidr(this.#address) : undefined;
    if (overlay === undefined || ip === undefined) {
      throw new ValidationError(WG_BAD_CONFIG, 'hub tunnel options', [`address: not an IPv4 address/prefix (got ${JSON.stringify(this.#address)})`]);
    }
    this.#hostIp = ip;
    this.#overlay = overlay;
  }

  /** The hub's WireGuard public key (what the enrollment bundle hands to agents). Throws before start(). */
  get publicKey(): string {
    if (this.#publicKey === undefined) throw new SystemError(WG_TUNNEL_STATE, 'HubTunnel.publicKey read before start()');
    return this.#publicKey;
  }

  /** The interface name. */
  get ifname(): string {
    return this.#opts.ifname;
  }

  /** False before start(), after stop(), or when wireguard-go has died (for /readyz). */
  isUp(): boolean {
    return this.#iface?.isAlive() ?? false;
  }

  async #ensureKey(): Promise<void> {
    const path = this.#opts.privateKeyPath;
    const exists = await access(path).then(() => true, () => false);
    if (!exists) {
      await writeSecretFile(path, `${await genKey()}\n`, { exclusive: true });
      this.#log.info({ path }, 'generated WireGuard private key');
      return;
    }
    // Refuses a key others can read (treated as disclosed) and checks it before wg sees it.
    assertWgKey((await readSecretFile(path)).trim(), `${path}`);
  }

  /**
   * Creates the interface, sets key and listen port, gives it the hub's address and brings it
   * up. On any failure the interface is removed again before the error propagates.
   */
  async start(): Promise<void> {
    if (this.#iface) throw new SystemError(WG_TUNNEL_STATE, 'HubTunnel already started');
    const { ifname, netns } = this.#opts;
    await this.#ensureKey();
    // A hub killed with SIGKILL (or OOM) leaves its interface behind; creating it again would
    // fail with "File exists" and the hub could not restart (found by the fault suite's kill-hub).
    if (await removeLeftoverInterface(ifname, { netns })) this.#log.warn({ ifname }, 'removed a WireGuard interface left by an earlier run');
    const iface = await createWgInterface(ifname, { netns, implementation: this.#opts.implementation, startTimeoutMs: this.#opts.startTimeoutMs });
    try {
      await setInterface(ifname, { privateKeyPath: this.#opts.privateKeyPath, listenPort: this.#opts.listenPort }, { netns });
      await addAddress(ifname, this.#address, { netns });
      await setUp(ifname, { netns });
      this.#publicKey = (await show(ifname, { netns })).publicKey;
    } catch (err) {
      await iface.close();
      throw err;
    }
    this.#iface = iface;
    this.#log.info({ implementation: iface.implementation, listenPort: this.#opts.listenPort, address: this.#address, publicKey: this.#publicKey }, 'tunnel up');
  }

  #toSpecs(desired: readonly HubPeer[]): WgPeerSpec[] {
    const problems: string[] = [];
    const ips = new Map<string, number>();
    const specs = desired.map((peer, i) => {
      if (!isWgKey(peer.publicKey)) problems.push(`[${i}].publicKey: not a WireGuard key (got ${JSON.stringify(String(peer.publicKey).slice(0, 60))})`);
      const net = parseIpv4Cidr(peer.allowedIp);
      const ip = net === undefined ? undefined : formatIpv4Network(net).split('/')[0];
      if (net === undefined || net.prefix !== 32 || ip === undefined) {
        problems.push(`[${i}].allowedIp: not one IPv4 address or /32 (got ${JSON.stringify(peer.allowedIp)})`);
      } else if (!ipv4InNetwork(ip, this.#overlay) || ip === this.#hostIp) {
        problems.push(`[${i}].allowedIp: not a country address in ${formatIpv4Network(this.#overlay)} (got ${JSON.stringify(peer.allowedIp)})`);
      } else if (ips.has(ip)) {
        problems.push(`[${i}].allowedIp: already given to peer [${ips.get(ip)}] (got ${JSON.stringify(peer.allowedIp)})`);
      } else {
        ips.set(ip, i);
      }
      return { publicKey: peer.publicKey, allowedIps: [`${ip ?? peer.allowedIp}/32`] };
    });
    const keys = new Set<string>();
    specs.forEach((s, i) => {
      if (keys.has(s.publicKey)) problems.push(`[${i}].publicKey: listed twice (got ${JSON.stringify(s.publicKey)})`);
      keys.add(s.publicKey);
    });
    if (problems.length) throw new ValidationError(WG_BAD_PEER, 'hub peers', problems);
    return specs;
  }

  #requireStarted(): string {
    if (!this.#iface) throw new SystemError(WG_TUNNEL_STATE, 'HubTunnel is not started');
    return this.#opts.ifname;
  }

  /**
   * Makes the interface's peers exactly `desired` and returns what changed. All of `desired` is
   * validated first (`WG_BAD_PEER` lists every problem; nothing is changed then). Removals go
   * first so an address moving from an old key to a new one is never held by both. If `wg`
   * fails midway the error propagates; calling again converges from wherever it stopped.
   */
  async syncPeers(desired: readonly HubPeer[]): Promise<PeerChanges> {
    const ifname = this.#requireStarted();
    const netns = this.#opts.netns;
    const specs = this.#toSpecs(desired);
    const diff = diffPeers((await show(ifname, { netns })).peers, specs);
    for (const key of diff.remove) await removePeer(ifname, key, { netns });
    for (const spec of [...diff.add, ...diff.update]) await setPeer(ifname, spec, { netns });
    const changes: PeerChanges = {
      added: diff.add.map((p) => p.publicKey),
      updated: diff.update.map((p) => p.publicKey),
      removed: diff.remove,
    };
    if (changes.added.length + changes.updated.length + changes.removed.length > 0) {
      this.#log.info({ ...changes, peers: specs.length }, 'peers synced');
    }
    return changes;
  }

  /** Removes one peer (revocation). Resolves whether it was there. */
  async removePeer(publicKey: string): Promise<boolean> {
    const ifname = this.#requireStarted();
    const netns = this.#opts.netns;
    assertWgKey(publicKey, 'peer public key', { isPublic: true });
    const present = (await show(ifname, { netns })).peers.some((p) => p.publicKey === publicKey);
    if (present) {
      await removePeer(ifname, publicKey, { netns });
      this.#log.info({ publicKey }, 'peer removed');
    }
    return present;
  }

  /** The peers as WireGuard reports them now (handshake times and byte counts for metrics). */
  async peers(): Promise<WgPeerState[]> {
    return (await show(this.#requireStarted(), { netns: this.#opts.netns })).peers;
  }

  /** Removes the interface (and stops wireguard-go). Safe to call twice or before start(). */
  async stop(): Promise<void> {
    const iface = this.#iface;
    this.#iface = undefined;
    if (!iface) return;
    await iface.close();
    this.#log.info('tunnel down');
  }
}
