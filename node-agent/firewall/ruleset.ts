// Renders the agent's nftables table. Pure: applying it is agent-firewall.ts's job, so this can be
// tested without root. The agent owns only the tunnel (ARCHITECTURE, Network): on it, replies and
// what the hub's policy allows get in, everything else is counted and dropped; the NCB host's LAN
// side is left to the host's own firewall, and nothing is ever routed to or from the tunnel.
import { ValidationError } from '../../protocol/errors.js';
import { describeValue } from '../../protocol/validate.js';
import { FW_BAD_INPUT } from '../../system/errors.js';
import { ipv4ToInt } from '../../system/cidr.js';
import { isIfname } from '../../system/ip.js';

/** What the agent's table is made from (the interface name plus the bundle's policy). */
export interface AgentRulesetInput {
  /** The agent's WireGuard interface (e.g. `ncbnet0`). */
  wgInterface: string;
  /** The hub's overlay address (`10.77.0.1`): the only source let in on the tunnel. */
  hubAddress: string;
  /** TCP ports on the agent the hub may open over the tunnel (metrics scrape, probes). */
  allowFromHubTcp: readonly number[];
  /**
   * The agent's WireGuard listen port, when it has a fixed one: counted and accepted on the
   * underlay. Without it wg picks a port and the hub's packets arrive as replies anyway.
   */
  wgListenPort?: number | undefined;
  /**
   * The agent's own overlay address (`10.77.0.2`). When given, tunnel traffic must be addressed
   * to it, so the hub cannot reach a service the NCB host binds only to a LAN address.
   */
  agentAddress?: string | undefined;
}

/** Comments naming the counted rules, for `ruleCounters` in metrics and tests. */
export const AGENT_COUNTERS = {
  tunnelInputDrop: 'tunnel-input-drop',
  forwardFromTunnel: 'forward-from-tunnel',
  forwardIntoTunnel: 'forward-into-tunnel',
  underlayWireguard: 'underlay-wireguard',
} as const;

/** One of the {@link AGENT_COUNTERS} comments. */
export type AgentCounterName = (typeof AGENT_COUNTERS)[keyof typeof AGENT_COUNTERS];

function isPort(p: unknown): p is number {
  return typeof p === 'number' && Number.isInteger(p) && p >= 1 && p <= 65535;
}

function isIpv4(v: unknown): v is string {
  return typeof v === 'string' && ipv4ToInt(v) !== undefined;
}

/** Every problem of `input`, one line each as `field: problem (got X)`. Pure. */
export function agentRulesetProblems(input: AgentRulesetInput): string[] {
  const problems: string[] = [];
  if (typeof input.wgInterface !== 'string' || !isIfname(input.wgInterface)) {
    problems.push(`wgInterface: not an interface name of 1-15 characters [A-Za-z0-9_.-] (got ${describeValue(input.wgInterface)})`);
  }
  if (!isIpv4(input.hubAddress)) problems.push(`hubAddress: not an IPv4 address (got ${describeValue(input.hubAddress)})`);
  if (!Array.isArray(input.allowFromHubTcp)) {
    problems.push(`allowFromHubTcp: not a list of ports (got ${describeValue(input.allowFromHubTcp)})`);
  } else {
    input.allowFromHubTcp.forEach((p, i) => {
      if (!isPort(p)) problems.push(`allowFromHubTcp[${i}]: not a port 1-65535 (got ${describeValue(p)})`);
    });
  }
  if (input.wgListenPort !== undefined && !isPort(input.wgListenPort)) {
    problems.push(`wgListenPort: not a port 1-65535 (got ${describeValue(input.wgListenPort)})`);
  }
  if (input.agentAddress !== undefined) {
    if (!isIpv4(input.agentAddress)) problems.push(`agentAddress: not an IPv4 address (got ${describeValue(input.agentAddress)})`);
    else if (input.agentAddress === input.hubAddress) problems.push(`agentAddress: the same as hubAddress (got ${describeValue(input.agentAddress)})`);
  }
  return problems;
}

/**
 * The agent's `table inet ncbnet`, ready for `applyTable`. Deterministic (ports sorted and
 * de-duplicated), so its SHA-256 identifies the policy in heartbeats. Throws a ValidationError
 * with code `FW_BAD_INPUT` listing every problem of `input` at once.
 *
 * Input keeps policy accept so the NCB host stays reachable on its LAN; only packets arriving on
 * the tunnel go through `tunnel_input`. Forward drops anything to or from the tunnel: an NCB is
 * an endpoint, never a route between the network and its LAN, even when the host forwards for
 * other reasons. Output accepts: the agent dials the hub, and replies are matched by conntrack.
 */
export function renderAgentRuleset(input: AgentRulesetInput): string {
  const problems = agentRulesetProblems(input);
  if (problems.length) throw new ValidationError(FW_BAD_INPUT, 'agent firewall input', problems);
  const wg = `"${input.wgInterface}"`;
  const from = `ip saddr ${input.hubAddress}${input.agentAddress === undefined ? '' : ` ip daddr ${input.agentAddress}`}`;
  const ports = [...new Set(input.allowFromHubTcp)].sort((a, b) => a - b);
  const tcp = ports.length === 0 ? [] : [`\t\t${from} tcp dport { ${ports.join(', ')} } accept`];
  const underlay = input.wgListenPort === undefined
    ? []
    : [`\t\tudp dport ${input.wgListenPort} counter accept comment "${AGENT_COUNTERS.underlayWireguard}"`];
  return [
    'table inet ncbnet {',
    '\tchain input {',
    '\t\ttype filter hook input priority filter; policy accept;',
    `\t\tiifname ${wg} jump tunnel_input`,
    ...underlay,
    '\t}',
    '',
    '\tchain tunnel_input {',
    '\t\tct state established,related accept',
    ...tcp,
    `\t\t${from} icmp type echo-request accept`,
    `\t\tcounter drop comment "${AGENT_COUNTERS.tunnelInputDrop}"`,
    '\t}',
    '',
    '\tchain forward {',
    '\t\ttype filter hook forward priority filter; policy accept;',
    `\t\tiifname ${wg} counter drop comment "${AGENT_COUNTERS.forwardFromTunnel}"`,
    `\t\toifname ${wg} counter drop comment "${AGENT_COUNTERS.forwardIntoTunnel}"`,
    '\t}',
    '',
    '\tchain output {',
    '\t\ttype filter hook output priority filter; policy accept;',
    '\t}',
    '}',
    '',
  ].join('\n');
}
