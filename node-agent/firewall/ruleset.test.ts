import t from 'tap';
import { checkTable, rulesetHash } from '../../system/nft.js';
import { createNetnsLab, netnsSkipReason } from '../../test/helpers/netns.js';
import { AGENT_COUNTERS, renderAgentRuleset, type AgentRulesetInput } from './ruleset.js';

const input: AgentRulesetInput = { wgInterface: 'ncbnet0', hubAddress: '10.77.0.1', allowFromHubTcp: [9101, 9100, 9101] };

t.test('agent firewall: the table guards the tunnel only and never routes to or from it', async (t) => {
  const text = renderAgentRuleset(input);
  t.match(text, /^table inet ncbnet \{\n/, 'one table, inet ncbnet');
  t.equal((text.match(/\btable\b/g) ?? []).length, 1, 'no other table');
  t.match(text, /chain input \{\n\t\ttype filter hook input priority filter; policy accept;\n\t\tiifname "ncbnet0" jump tunnel_input\n\t\}/, 'input: the LAN stays open, the tunnel is filtered');
  t.match(text, /chain tunnel_input \{\n\t\tct state established,related accept\n/, 'replies first');
  t.match(text, /\t\tip saddr 10\.77\.0\.1 tcp dport \{ 9100, 9101 \} accept\n/, 'policy ports sorted, de-duplicated, from the hub only');
  t.match(text, /\t\tip saddr 10\.77\.0\.1 icmp type echo-request accept\n/, 'the hub may ping');
  t.match(text, new RegExp(`\\t\\tcounter drop comment "${AGENT_COUNTERS.tunnelInputDrop}"\\n\\t\\}`), 'tunnel input ends in a counted drop');
  t.match(text, new RegExp(`iifname "ncbnet0" counter drop comment "${AGENT_COUNTERS.forwardFromTunnel}"`));
  t.match(text, new RegExp(`oifname "ncbnet0" counter drop comment "${AGENT_COUNTERS.forwardIntoTunnel}"`));
  t.match(text, /chain output \{\n\t\ttype filter hook output priority filter; policy accept;\n\t\}/, 'output accepts');
  t.notMatch(text, /udp dport/, 'no underlay rule without a fixed listen port');
  t.notMatch(text, /ip daddr/, 'no destination match without the agent address');
  t.equal(rulesetHash(renderAgentRuleset({ ...input, allowFromHubTcp: [9100, 9101] })), rulesetHash(text), 'same policy, same hash');
  t.not(rulesetHash(renderAgentRuleset({ ...input, allowFromHubTcp: [9100] })), rulesetHash(text), 'other policy, other hash');
  t.notMatch(renderAgentRuleset({ ...input, allowFromHubTcp: [] }), /tcp dport/, 'no TCP rule when the policy opens no port');
});

t.test('agent firewall: optional listen port and own address tighten the table', async (t) => {
  const text = renderAgentRuleset({ ...input, wgListenPort: 51821, agentAddress: '10.77.0.2' });
  t.match(text, new RegExp(`\\t\\tudp dport 51821 counter accept comment "${AGENT_COUNTERS.underlayWireguard}"\\n\\t\\}`), 'underlay WireGuard port counted');
  t.match(text, /ip saddr 10\.77\.0\.1 ip daddr 10\.77\.0\.2 tcp dport \{ 9100, 9101 \} accept/, 'TCP only to the overlay address');
  t.match(text, /ip saddr 10\.77\.0\.1 ip daddr 10\.77\.0\.2 icmp type echo-request accept/, 'ICMP only to the overlay address');
});

t.test('agent firewall: bad inputs are refused with every problem listed', async (t) => {
  const bad = { wgInterface: 'wg0"; flush ruleset', hubAddress: '10.77.0.1/32', allowFromHubTcp: [9101, 0, 70000, 1.5], wgListenPort: -1, agentAddress: 'me' };
  t.throws(() => renderAgentRuleset(bad), {
    code: 'FW_BAD_INPUT',
    problems: [
      'wgInterface: not an interface name of 1-15 characters [A-Za-z0-9_.-] (got "wg0\\"; flush ruleset")',
      'hubAddress: not an IPv4 address (got "10.77.0.1/32")',
      'allowFromHubTcp[1]: not a port 1-65535 (got 0)',
      'allowFromHubTcp[2]: not a port 1-65535 (got 70000)',
      'allowFromHubTcp[3]: not a port 1-65535 (got 1.5)',
      'wgListenPort: not a port 1-65535 (got -1)',
      'agentAddress: not an IPv4 address (got "me")',
    ],
  });
  t.throws(() => renderAgentRuleset({ ...input, agentAddress: '10.77.0.1' }), { code: 'FW_BAD_INPUT', problems: ['agentAddress: the same as hubAddress (got "10.77.0.1")'] });
  // Values from a bundle arrive as unknown JSON: a wrong type is a listed problem, not a crash.
  const untyped = JSON.parse('{"wgInterface":7,"hubAddress":null,"allowFromHubTcp":"9101"}') as AgentRulesetInput;
  t.throws(() => renderAgentRuleset(untyped), {
    code: 'FW_BAD_INPUT',
    problems: [/^wgInterface: .*\(got 7\)$/, /^hubAddress: .*\(got null\)$/, /^allowFromHubTcp: not a list of ports \(got "9101"\)$/],
  });
});

t.test('agent firewall: nft accepts the rendered table (nft -c in a throwaway namespace)', { skip: netnsSkipReason() }, async (t) => {
  const lab = createNetnsLab(t);
  const ns = await lab.ns('afw');
  await checkTable(renderAgentRuleset(input), { netns: ns });
  await checkTable(renderAgentRuleset({ ...input, allowFromHubTcp: [], wgListenPort: 51820, agentAddress: '10.77.0.9' }), { netns: ns });
  t.equal((await lab.exec(ns, ['nft', 'list', 'tables'])).stdout, '', 'a check commits nothing');
  await t.rejects(checkTable(renderAgentRuleset(input).replace('policy accept', 'policy maybe'), { netns: ns }), { code: 'NFT_APPLY_FAILED', message: /syntax error/ });
});
