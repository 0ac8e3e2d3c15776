// IPv4 address and prefix arithmetic for the overlay (10.77.0.0/16 by default). Pure; no I/O.
// IPv6 is accepted where WireGuard accepts it (allowed IPs) but only validated, not masked.
import { isIPv4, isIPv6 } from 'node:net';

/** An IPv4 network: base address as a 32-bit unsigned integer and its prefix length. */
export interface Ipv4Network {
  base: number;
  prefix: number;
}

/** The 32-bit value of a dotted-quad IPv4 address, or undefined when `text` is not one. */
export function ipv4ToInt(text: string): number | undefined {
  if (!isIPv4(text)) return undefined;
  return text.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);
}

/** The dotted-quad text of a 32-bit value. */
export function intToIpv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/**
 * Parses `a.b.c.d/n` (or a bare address, taken as /32). With `strict`, host bits must be zero
 * (`10.77.0.0/16` yes, `10.77.0.1/16` no); otherwise they are masked off. Undefined when invalid.
 */
export function parseIpv4Cidr(text: string, opts: { strict?: boolean } = {}): Ipv4Network | undefined {
  const [addr, len, ...rest] = text.split('/');
  if (addr === undefined || rest.length > 0) return undefined;
  const value = ipv4ToInt(addr);
  if (value === undefined) return undefined;
  if (len !== undefined && !/^(?:[0-9]|[12][0-9]|3[0-2])$/.test(len)) return undefined;
  const prefix = len === undefined ? 32 : Number(len);
  const base = (value & maskOf(prefix)) >>> 0;
  if (opts.strict && base !== value) return undefined;
  return { base, prefix };
}

/** True when the IPv4 address `addr` lies inside `net`. */
export function ipv4InNetwork(addr: string, net: Ipv4Network): boolean {
  const value = ipv4ToInt(addr);
  return value !== undefined && ((value & maskOf(net.prefix)) >>> 0) === net.base;
}

/** `base/prefix` text of a network. */
export function formatIpv4Network(net: Ipv4Network): string {
  return `${intToIpv4(net.base)}/${net.prefix}`;
}

/**
 * The canonical form WireGuard prints for an allowed-IP entry: IPv4 with host bits masked and an
 * explicit prefix (`10.77.0.2` → `10.77.0.2/32`); IPv6 lower-cased with a prefix (default /128).
 * Undefined when `text` is neither.
 */
export function canonicalAllowedIp(text: string): string | undefined {
  const v4 = parseIpv4Cidr(text);
  if (v4) return formatIpv4Network(v4);
  const [addr, len, ...rest] = text.split('/');
  if (addr === undefined || rest.length > 0 || !isIPv6(addr)) return undefined;
  if (len !== undefined && !/^(?:[0-9]|[1-9][0-9]|1[01][0-9]|12[0-8])$/.test(len)) return undefined;
  return `${addr.toLowerCase()}/${len ?? '128'}`;
}
