// Typed wrapper over wireguard-tools' `wg` (wg(8)). Private keys travel on stdin or as a file path,
// never in argv (visible in /proc to every user) and never in logs or error messages.
import { run } from './exec.js';
import { SystemError, WG_APPLY_FAILED, WG_BAD_KEY, WG_BAD_PEER, WG_PARSE_FAILED } from './errors.js';
import { assertIfname } from './ip.js';
import { canonicalAllowedIp } from './cidr.js';

/** Options shared by every `wg` call. */
export interface WgOptions {
  /** Network namespace to act in (default: the caller's). */
  netns?: string | undefined;
}

/** One peer as `wg show IFNAME dump` reports it. */
export interface WgPeerState {
  publicKey: string;
  /** Whether a preshared key is set (the key itself is never returned). */
  hasPresharedKey: boolean;
  /** `host:port` (IPv6 as `[addr]:port`) of the last packet or the configured endpoint. */
  endpoint: string | undefined;
  /** Canonical CIDRs, in the order wg prints them. */
  allowedIps: string[];
  /** Time of the last completed handshake; undefined when none happened yet. */
  latestHandshake: Date | undefined;
  rxBytes: number;
  txBytes: number;
  /** Persistent keepalive interval; undefined when off. */
  persistentKeepaliveSeconds: number | undefined;
}

/** An interface as `wg show IFNAME dump` reports it, without its private key. */
export interface WgInterfaceState {
  /** Undefined until a private key is set. */
  publicKey: string | undefined;
  /** 0 until the interface listens (wg picks a port once it is up or one is set). */
  listenPort: number;
  fwmark: number | undefined;
  peers: WgPeerState[];
}

/** What a peer should look like; fields left undefined are not compared nor changed. */
export interface WgPeerSpec {
  publicKey: string;
  allowedIps: readonly string[];
  endpoint?: string | undefined;
  persistentKeepaliveSeconds?: number | undefined;
}

/** What {@link diffPeers} says to do to go from the current peers to the desired ones. */
export interface WgPeerDiff {
  add: WgPeerSpec[];
  update: WgPeerSpec[];
  /** Public keys of peers to remove. */
  remove: string[];
}

// 32 bytes in base64 is 43 characters and one '='; the last character carries 4 bits and 2
// padding bits that must be zero, hence the restricted class (as wg's key_from_base64 checks).
const WG_KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

/** True when `text` is a WireGuard key: 44 characters of base64 encoding exactly 32 bytes. */
export function isWgKey(text: string): boolean {
  return WG_KEY.test(text) && Buffer.from(text, 'base64').length === 32;
}

/**
 * Throws `WG_BAD_KEY` unless `text` is a WireGuard key. `what` names it in the message; the value
 * itself is shown only when `what` says it is public (`isPublic`), so a private key never leaks.
 */
export function assertWgKey(text: string, what: string, opts: { isPublic?: boolean } = {}): void {
  if (isWgKey(text)) return;
  const got = opts.isPublic ? ` (got ${JSON.stringify(text.slice(0, 60))})` : ` (${text.length} characters)`;
  throw new SystemError(WG_BAD_KEY, `${what}: not a WireGuard key, 44 characters of base64 encoding 32 bytes${got}`);
}

/** A fresh private key from `wg genkey`. Keep it in memory as briefly as possible. */
export async function genKey(opts: WgOptions = {}): Promise<string> {
  const { stdout } = await run('wg', ['genkey'], { netns: opts.netns, errorCode: WG_APPLY_FAILED });
  const key = stdout.trim();
  assertWgKey(key, 'wg genkey output');
  return key;
}

/** The public key of `privateKey`, computed by `wg pubkey` with the private key on stdin. */
export async function pubKey(privateKey: string, opts: WgOptions = {}): Promise<string> {
  assertWgKey(privateKey, 'private key');
  const { stdout } = await run('wg', ['pubkey'], { netns: opts.netns, input: `${privateKey}\n`, errorCode: WG_APPLY_FAILED });
  const key = stdout.trim();
  assertWgKey(key, 'wg pubkey output', { isPublic: true });
  return key;
}

/** Interface settings for {@link setInterface}; give at most one of the two private key forms. */
export interface WgInterfaceSettings {
  /** Path of a file holding the private key (mode 0600); wg reads it itself. */
  privateKeyPath?: string | undefined;
  /** The private key itself; piped to wg (through bash's `<(cat)`), never in argv nor on disk. */
  privateKey?: string | undefined;
  listenPort?: number | undefined;
}

function assertPort(port: number, what: string): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new SystemError(WG_APPLY_FAILED, `${what}: must be an integer from 1 to 65535 (got ${port})`);
  }
}

/** Sets an interface's private key and/or listen port (`wg set IFNAME private-key … listen-port …`). */
export async function setInterface(ifname: string, settings: WgInterfaceSettings, opts: WgOptions = {}): Promise<void> {
  assertIfname(ifname);
  if (settings.privateKey !== undefined && settings.privateKeyPath !== undefined) {
    throw new SystemError(WG_APPLY_FAILED, 'give privateKey or privateKeyPath, not both');
  }
  const rest: string[] = [];
  if (settings.privateKeyPath !== undefined) rest.push('private-key', settings.privateKeyPath);
  if (settings.listenPort !== undefined) {
    assertPort(settings.listenPort, 'listen port');
    rest.push('listen-port', String(settings.listenPort));
  }
  if (settings.privateKey !== undefined) {
    assertWgKey(settings.privateKey, 'private key');
    // wg(8) reads private-key only from a file. Node's stdin for a child is a socketpair, which
    // open("/dev/stdin") refuses (ENXIO); bash's <(cat) turns it into a real pipe, so the key
    // goes from our memory to wg's without touching disk or argv.
    const script = 'exec wg set "$1" private-key <(cat) "${@:2}"';
    await run('bash', ['-c', script, 'wg-set', ifname, ...rest], { netns: opts.netns, input: `${settings.privateKey}\n`, errorCode: WG_APPLY_FAILED });
    return;
  }
  if (rest.length === 0) return;
  await run('wg', ['set', ifname, ...rest], { netns: opts.netns, errorCode: WG_APPLY_FAILED });
}

function peerProblems(peer: WgPeerSpec): string[] {
  const problems: string[] = [];
  if (!isWgKey(peer.publicKey)) problems.push(`publicKey: not a WireGuard key (got ${JSON.stringify(peer.publicKey.slice(0, 60))})`);
  peer.allowedIps.forEach((ip, i) => {
    if (canonicalAllowedIp(ip) === undefined) problems.push(`allowedIps[${i}]: not an IP address or CIDR (got ${JSON.stringify(ip)})`);
  });
  if (peer.endpoint !== undefined && !/^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):\d{1,5}$/.test(peer.endpoint)) {
    problems.push(`endpoint: not host:port (got ${JSON.stringify(peer.endpoint)})`);
  }
  const ka = peer.persistentKeepaliveSeconds;
  if (ka !== undefined && (!Number.isInteger(ka) || ka < 0 || ka > 65535)) {
    problems.push(`persistentKeepaliveSeconds: must be an integer from 0 to 65535 (got ${ka})`);
  }
  return problems;
}

/** Throws `WG_BAD_PEER` listing every problem of `peer` at once. */
export function assertPeerSpec(peer: WgPeerSpec): void {
  const problems = peerProblems(peer);
  if (problems.length) throw new SystemError(WG_BAD_PEER, `WireGuard peer is invalid:\n  ${problems.join('\n  ')}`);
}

/**
 * Adds a peer or replaces its settings: allowed IPs are replaced as a whole, endpoint and
 * keepalive only when given (`wg set IFNAME peer PUB allowed-ips … endpoint … persistent-keepalive …`).
 */
export async function setPeer(ifname: string, peer: WgPeerSpec, opts: WgOptions = {}): Promise<void> {
  assertIfname(ifname);
  assertPeerSpec(peer);
  const allowed = peer.allowedIps.map((ip) => canonicalAllowedIp(ip) ?? ip).join(',');
  const args = ['set', ifname, 'peer', peer.publicKey, 'allowed-ips', allowed];
  if (peer.endpoint !== undefined) args.push('endpoint', peer.endpoint);
  if (peer.persistentKeepaliveSeconds !== undefined) {
    args.push('persistent-keepalive', peer.persistentKeepaliveSeconds === 0 ? 'off' : String(peer.persistentKeepaliveSeconds));
  }
  await run('wg', args, { netns: opts.netns, errorCode: WG_APPLY_FAILED });
}

/** Removes a peer (a no-op for wg when it is not there). */
export async function removePeer(ifname: string, publicKey: string, opts: WgOptions = {}): Promise<void> {
  assertIfname(ifname);
  assertWgKey(publicKey, 'peer public key', { isPublic: true });
  await run('wg', ['set', ifname, 'peer', publicKey, 'remove'], { netns: opts.netns, errorCode: WG_APPLY_FAILED });
}

/** The interface's state, from `wg show IFNAME dump` (the private key is dropped while parsing). */
export async function show(ifname: string, opts: WgOptions = {}): Promise<WgInterfaceState> {
  assertIfname(ifname);
  const { stdout } = await run('wg', ['show', ifname, 'dump'], { netns: opts.netns, errorCode: WG_APPLY_FAILED });
  return parseDump(stdout);
}

function parseFail(line: number, problem: string): SystemError {
  // Never quote the line: the interface line holds the private key.
  return new SystemError(WG_PARSE_FAILED, `wg show dump, line ${line}: ${problem}`);
}

function parseCount(text: string, line: number, field: string): number {
  if (!/^\d{1,16}$/.test(text)) throw parseFail(line, `${field} is not a non-negative integer`);
  return Number(text);
}

function parseOptionalKey(text: string, line: number, field: string): string | undefined {
  if (text === '(none)') return undefined;
  if (!isWgKey(text)) throw parseFail(line, `${field} is not a WireGuard key`);
  return text;
}

function parsePeer(fields: string[], line: number): WgPeerState {
  const [pub, psk, endpoint, allowed, handshake, rx, tx, keepalive] = fields;
  if (fields.length !== 8 || pub === undefined || psk === undefined || endpoint === undefined || allowed === undefined
    || handshake === undefined || rx === undefined || tx === undefined || keepalive === undefined) {
    throw parseFail(line, `a peer line has 8 tab-separated fields (got ${fields.length})`);
  }
  const publicKey = parseOptionalKey(pub, line, 'public key');
  if (publicKey === undefined) throw parseFail(line, 'peer without a public key');
  const allowedIps = allowed === '(none)' ? [] : allowed.split(',').map((ip) => {
    const c = canonicalAllowedIp(ip);
    if (c === undefined) throw parseFail(line, `allowed IP ${JSON.stringify(ip)} is not a CIDR`);
    return c;
  });
  const handshakeSeconds = parseCount(handshake, line, 'latest handshake');
  return {
    publicKey,
    hasPresharedKey: parseOptionalKey(psk, line, 'preshared key') !== undefined,
    endpoint: endpoint === '(none)' ? undefined : endpoint,
    allowedIps,
    latestHandshake: handshakeSeconds === 0 ? undefined : new Date(handshakeSeconds * 1000),
    rxBytes: parseCount(rx, line, 'transfer rx'),
    txBytes: parseCount(tx, line, 'transfer tx'),
    persistentKeepaliveSeconds: keepalive === 'off' ? undefined : parseCount(keepalive, line, 'persistent keepalive') || undefined,
  };
}

/**
 * Parses the output of `wg show IFNAME dump` (wg(8)): one tab-separated interface line
 * (private key, public key, listen port, fwmark), then one line per peer (public key, preshared
 * key, endpoint, allowed IPs, latest handshake in epoch seconds, rx bytes, tx bytes, keepalive).
 * Pure. Throws `WG_PARSE_FAILED` with the line number, never the line's text.
 */
export function parseDump(text: string): WgInterfaceState {
  const lines = text.split('\n').filter((l, i, all) => !(l === '' && i === all.length - 1));
  const [head, ...rest] = lines;
  if (head === undefined || head === '') throw parseFail(1, 'no interface line');
  const fields = head.split('\t');
  const [priv, pub, port, fwmark] = fields;
  if (fields.length !== 4 || priv === undefined || pub === undefined || port === undefined || fwmark === undefined) {
    throw parseFail(1, `the interface line has 4 tab-separated fields (got ${fields.length}); was a wg show "all" dump given?`);
  }
  parseOptionalKey(priv, 1, 'private key');
  let mark: number | undefined;
  if (fwmark !== 'off') {
    // wg prints the mark as 0x-prefixed hex; accept decimal as well.
    mark = /^0x[0-9a-f]{1,8}$/i.test(fwmark) ? Number.parseInt(fwmark.slice(2), 16) : parseCount(fwmark, 1, 'fwmark');
  }
  const listenPort = parseCount(port, 1, 'listen port');
  if (listenPort > 65535) throw parseFail(1, 'listen port is above 65535');
  return {
    publicKey: parseOptionalKey(pub, 1, 'public key'),
    listenPort,
    fwmark: mark,
    peers: rest.map((l, i) => parsePeer(l.split('\t'), i + 2)),
  };
}

function sameAllowedIps(a: readonly string[], b: readonly string[]): boolean {
  const norm = (list: readonly string[]) => [...new Set(list.map((ip) => canonicalAllowedIp(ip) ?? ip))].sort().join(',');
  return norm(a) === norm(b);
}

function needsUpdate(current: WgPeerSpec, desired: WgPeerSpec): boolean {
  if (!sameAllowedIps(current.allowedIps, desired.allowedIps)) return true;
  if (desired.endpoint !== undefined && desired.endpoint !== current.endpoint) return true;
  const ka = (v: number | undefined) => (v === 0 ? undefined : v);
  return desired.persistentKeepaliveSeconds !== undefined && ka(desired.persistentKeepaliveSeconds) !== ka(current.persistentKeepaliveSeconds);
}

/**
 * What to change to go from `current` peers to `desired` ones. Pure. Peers are matched by public
 * key; allowed IPs are compared as sets in canonical form; endpoint and keepalive only when the
 * desired peer sets them (the hub learns endpoints from handshakes). `add` and `update` keep
 * the order of `desired`, `remove` the order of `current`. Throws `WG_BAD_PEER` when `desired`
 * names one key twice.
 */
export function diffPeers(current: readonly WgPeerSpec[], desired: readonly WgPeerSpec[]): WgPeerDiff {
  const seen = new Set<string>();
  for (const peer of desired) {
    if (seen.has(peer.publicKey)) throw new SystemError(WG_BAD_PEER, `desired peers name ${peer.publicKey} twice`);
    seen.add(peer.publicKey);
  }
  const byKey = new Map(current.map((p) => [p.publicKey, p]));
  const diff: WgPeerDiff = { add: [], update: [], remove: [] };
  for (const peer of desired) {
    const now = byKey.get(peer.publicKey);
    if (now === undefined) diff.add.push(peer);
    else if (needsUpdate(now, peer)) diff.update.push(peer);
  }
  diff.remove = current.filter((p) => !seen.has(p.publicKey)).map((p) => p.publicKey);
  return diff;
}
