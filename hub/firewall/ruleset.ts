// Renders the hub's nftables table. Pure: applying it is hub-firewall.ts's job, so this can be
// tested without root. Countries never reach each other at the IP layer (ARCHITECTURE, Network):
// everything they exchange goes through the broker on the hub itself.
import { ValidationError } from '../../protocol/errors.js';
import { describeValue } from '../../protocol/validate.js';
import { FW_BAD_INPUT } from '../../system/errors.js';
import { ipv4InNetwork, ipv4ToInt, parseIpv4Cidr } from '../../system/cidr.js';
import { isIfname } from '../../system/ip.js';

/** What the hub's table is made from. */
export interface HubRulesetInput {
  /** The WireGuard interface (e.g. `ncbnet0`). */
  wgInterface: string;
  /** UDP port WireGuard listens on (51820). */
  wgPort: number;
  /** IPv4 overlay network, host bits zero (`10.77.0.0/16`). */
  overlayCidr: string;
  /** The hub's overlay address (`10.77.0.1`), inside `overlayCidr`. */
  hubAddress: string;
  /** TCP ports countries may reach on the hub's overlay address (NATS, enrollment API). */
  allowedTcpPorts: readonly number[];
}

/** Comments naming the counted drop rules, for {@link ruleCounters} in metrics and tests. */
export const HUB_COUNTERS = {
  tunnelInputDrop: 'tunnel-input-drop',
  forwardBetweenCountries: 'forward-between-countries',
  forwardFromTunnel: 'forward-from-tunnel',
  forwardIntoTunnel: 'forward-into-tunnel',
  underlayWireguard: 'underlay-wireguard',
} as const;

function isPort(p: unknown): p is number {
  return typeof p === 'number' && Number.isInteger(p) && p >= 1 && p <= 65535;
}

/** Every problem of `input`, one line each as `field: problem (got X)`. */
export function hubRulesetProblems(input: HubRulesetInput): string[] {
  const problems: string[] = [];
  if (typeof input.wgInterface !== 'string' || !isIfname(input.wgInterface)) {
    problems.push(`wgInterface: not an interface name of 1-15 characters [A-Za-z0-9_.-] (got ${describeValue(input.wgInterface)})`);
  }
  if (!isPort(input.wgPort)) problems.push(`wgPort: not a port 1-65535 (got ${describeValue(input.wgPort)})`);
  const overlay = typeof input.overlayCidr === 'string' ? parseIpv4Cidr(input.overlayCidr, { strict: true }) : undefined;
  if (overlay === undefined || !input.overlayCidr.includes('/')) {
    problems.push(`overlayCidr: not an IPv4 network a.b.c.d/n with host bits zero (got ${describeValue(input.overlayCidr)})`);
  }
  if (typeof input.hubAddress !== 'string' || ipv4ToInt(input.hubAddress) === undefined) {
    problems.push(`hubAddress: not an IPv4 address (got ${describeValue(input.hubAddress)})`);
  } else if (overlay !== undefined && !ipv4InNetwork(input.hubAddress, overlay)) {
    problems.push(`hubAddress: not inside overlayCidr ${input.overlayCidr} (got ${describeValue(input.hubAddress)})`);
  }
  if (!Array.isArray(input.allowedTcpPorts)) {
    problems.push(`allowedTcpPorts: not a list of ports (got ${describeValue(input.allowedTcpPorts)})`);
  } else {
    input.allowedTcpPorts.forEach((p, i) => {
      if (!isPort(p)) problems.push(`allowedTcpPorts[${i}]: not a port 1-65535 (got ${describeValue(p)})`);
    });
  }
  return problems;
}

/**
 * The hub's `table inet ncbnet`, ready for `applyTable`. Deterministic (ports sorted and
 * de-duplicated), so its SHA-256 identifies the policy. Throws a ValidationError with code
 * `FW_BAD_INPUT` listing every problem of `input` at once.
 *
 * Input: on the tunnel, only replies, TCP to the hub's allowed ports and ICMP echo reach the hub;
 * the rest is counted and dropped. Other interfaces keep policy accept (plus a counted accept of
 * the WireGuard port) so the machine stays reachable for its operators: this table guards the
 * tunnel, the host's own firewall guards the underlay. Forward: nothing crosses to, from or
 * within the tunnel; the hub is an endpoint, not a router.
 */
export function renderHubRuleset(input: HubRulesetInput): string {
  const problems = hubRulesetProblems(input);
  if (problems.length) throw new ValidationError(FW_BAD_INPUT, 'hub firewall input', problems);
  const wg = `"${input.wgInterface}"`;
  const ports = [...new Set(input.allowedTcpPorts)].sort((a, b) => a - b);
  const tcp = ports.length === 0
    ? []
    : [`\t\tip saddr ${input.overlayCidr} ip daddr ${input.hubAddress} tcp dport { ${ports.join(', ')} } accept`];
  return [
    'table inet ncbnet {',
    '\tchain input {',
    '\t\ttype filter hook input priority filter; policy accept;',
    `\t\tiifname ${wg} jump tunnel_input`,
    `\t\tudp dport ${input.wgPort} counter accept comment "${HUB_COUNTERS.underlayWireguard}"`,
    '\t}',
    '',
    '\tchain tunnel_input {',
    '\t\tct state established,related accept',
    ...tcp,
    `\t\tip saddr ${input.overlayCidr} ip daddr ${input.hubAddress} icmp type echo-request accept`,
    `\t\tcounter drop comment "${HUB_COUNTERS.tunnelInputDrop}"`,
    '\t}',
    '',
    '\tchain forward {',
    '\t\ttype filter hook forward priority filter; policy accept;',
    `\t\tiifname ${wg} oifname ${wg} counter drop comment "${HUB_COUNTERS.forwardBetweenCountries}"`,
    `\t\tiifname ${wg} counter drop comment "${HUB_COUNTERS.forwardFromTunnel}"`,
    `\t\toifname ${wg} counter drop comment "${HUB_COUNTERS.forwardIntoTunnel}"`,
    '\t}',
    '}',
    '',
  ].join('\n');
}
