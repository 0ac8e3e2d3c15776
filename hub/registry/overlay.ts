/** IPv4 helpers for the overlay network (ARCHITECTURE, Network: one /32 per country). */

export function ipv4ToInt(ip: string): number {
  const parts = ip.split('.').map(Number);
  return (((parts[0] ?? 0) << 24) | ((parts[1] ?? 0) << 16) | ((parts[2] ?? 0) << 8) | (parts[3] ?? 0)) >>> 0;
}

export function intToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** The hub's address in the overlay: the first host (10.77.0.1 in 10.77.0.0/16). */
export function hubAddress(cidr: string): string {
  const [base = '0.0.0.0'] = cidr.split('/');
  return intToIpv4(ipv4ToInt(base) + 1);
}

/**
 * The lowest host address of `cidr` not in `used`, skipping the network address, the hub's
 * (first host) and the broadcast address; undefined when none is left.
 */
export function allocateAddress(cidr: string, used: ReadonlySet<string>): string | undefined {
  const [base = '0.0.0.0', bitsText = '32'] = cidr.split('/');
  const bits = Number(bitsText);
  const size = 2 ** (32 - bits);
  const network = ipv4ToInt(base) & (bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0);
  for (let i = 2; i < size - 1; i++) {
    const candidate = intToIpv4((network + i) >>> 0);
    if (!used.has(candidate)) return candidate;
  }
  return undefined;
}
