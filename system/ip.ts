// Typed wrapper over iproute2's `ip` for the few link, address and route operations ncbnet needs.
// Every call can run inside a network namespace (tests, and hosts that keep the tunnel in one).
import { execFailure, run, tryRun } from './exec.js';
import { IP_FAILED, SYS_BAD_IFNAME, SystemError } from './errors.js';
import { canonicalAllowedIp } from './cidr.js';

/** Options shared by every `ip` call. */
export interface IpOptions {
  /** Network namespace to act in (default: the caller's). */
  netns?: string | undefined;
}

// Linux: IFNAMSIZ is 16 with the NUL, so 15 characters; no '/', ':' or whitespace (dev_valid_name).
// Kept to a conservative set that is also safe to quote in nft and to use in socket file names.
const IFNAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/;

/** True when `name` is a valid Linux interface name of the conservative form ncbnet uses. */
export function isIfname(name: string): boolean {
  return IFNAME.test(name);
}

/** Throws `SYS_BAD_IFNAME` unless `name` is a valid interface name (see {@link isIfname}). */
export function assertIfname(name: string): void {
  if (!isIfname(name)) {
    throw new SystemError(SYS_BAD_IFNAME, `interface name must be 1-15 characters of [A-Za-z0-9_.-] not starting with . or - (got ${JSON.stringify(name)})`);
  }
}

// iproute2 prints one of these when the device is absent (the wording changed across versions).
const NO_DEVICE = /does not exist|Cannot find device|No such device/i;

/** True when the link `name` exists (in `opts.netns`). */
export async function linkExists(name: string, opts: IpOptions = {}): Promise<boolean> {
  assertIfname(name);
  const args = ['link', 'show', 'dev', name];
  const r = await tryRun('ip', args, { netns: opts.netns });
  if (r.exitCode === 0) return true;
  if (NO_DEVICE.test(r.stderr)) return false;
  throw execFailure('ip', args, r, { netns: opts.netns, errorCode: IP_FAILED });
}

/** Gives `dev` the address `cidr` (e.g. `10.77.0.1/16`); idempotent (`ip address replace`). */
export async function addAddress(dev: string, cidr: string, opts: IpOptions = {}): Promise<void> {
  assertIfname(dev);
  if (!/\//.test(cidr) || canonicalAllowedIp(cidr) === undefined) {
    throw new SystemError(IP_FAILED, `address must be ADDRESS/PREFIX (got ${JSON.stringify(cidr)})`);
  }
  await run('ip', ['address', 'replace', cidr, 'dev', dev], { netns: opts.netns, errorCode: IP_FAILED });
}

/** Sets `dev` administratively up. */
export async function setUp(dev: string, opts: IpOptions = {}): Promise<void> {
  assertIfname(dev);
  await run('ip', ['link', 'set', 'dev', dev, 'up'], { netns: opts.netns, errorCode: IP_FAILED });
}

/** Deletes the link `dev`; resolves false when it did not exist (so teardown can be repeated). */
export async function deleteLink(dev: string, opts: IpOptions = {}): Promise<boolean> {
  assertIfname(dev);
  const args = ['link', 'delete', 'dev', dev];
  const r = await tryRun('ip', args, { netns: opts.netns });
  if (r.exitCode === 0) return true;
  if (NO_DEVICE.test(r.stderr)) return false;
  throw execFailure('ip', args, r, { netns: opts.netns, errorCode: IP_FAILED });
}

/** Routes `cidr` through `dev` (optionally via a gateway); idempotent (`ip route replace`). */
export async function addRoute(cidr: string, dev: string, opts: IpOptions & { via?: string } = {}): Promise<void> {
  assertIfname(dev);
  if (canonicalAllowedIp(cidr) === undefined) throw new SystemError(IP_FAILED, `route must be ADDRESS[/PREFIX] (got ${JSON.stringify(cidr)})`);
  const via = opts.via === undefined ? [] : ['via', opts.via];
  await run('ip', ['route', 'replace', cidr, ...via, 'dev', dev], { netns: opts.netns, errorCode: IP_FAILED });
}
