import t from 'tap';
import { checkTable, rulesetHash } from '../../system/nft.js';
import { createNetnsLab, netnsSkipReason } from '../../test/helpers/netns.js';
import { HUB_COUNTERS, renderHubRuleset, type HubRulesetInput } from './ruleset.js';

const input: HubRulesetInput = { wgInterface: 'ncbnet0', wgPort: 51820, overlayCidr: '10.77.0.0/16', hubAddress: '10.77.0.1', allowedTcpPorts: [8443, 4222, 4222] };

t.test('firewall: the hub table guards the tunnel and leaves the underlay open', async (t) => {
  const text = renderHubRuleset(input);
  t.match(text, /^table inet ncbnet \{\n/, 'one table, inet ncbnet');
  t.equal((text.match(/\btable\b/g) ?? []).length, 1, 'no other table');
  t.match(text, /chain input \{\n\t\ttype filter hook input priority filter; policy accept;/, 'input: policy accept keeps the host reachable');
  t.match(text, /iifname "ncbnet0" jump tunnel_input/);
  t.match(text, /udp dport 51820 counter accept/, 'WireGuard port accepted on the underlay');
  t.match(text, /chain tunnel_input \{\n\t\tct state established,related accept\n/, 'replies first');
  t.match(text, /ip saddr 10\.77\.0\.0\/16 ip daddr 10\.77\.0\.1 tcp dport \{ 4222, 8443 \} accept/, 'allowed ports sorted, de-duplicated, only to the hub address');
  t.match(text, /icmp type echo-request accept/);
  t.match(text, new RegExp(`\\t\\tcounter drop comment "${HUB_COUNTERS.tunnelInputDrop}"\\n\\t\\}`), 'tunnel input ends in a counted drop');
  t.match(text, new RegExp(`iifname "ncbnet0" oifname "ncbnet0" counter drop comment "${HUB_COUNTERS.forwardBetweenCountries}"`), 'countries never reach each other');
  t.match(text, /iifname "ncbnet0" counter drop comment "forward-from-tunnel"/);
  t.match(text, /oifname "ncbnet0" counter drop comment "forward-into-tunnel"/);
  t.equal(rulesetHash(renderHubRuleset({ ...input, allowedTcpPorts: [4222, 8443] })), rulesetHash(text), 'same policy, same hash');
  t.not(rulesetHash(renderHubRuleset({ ...input, allowedTcpPorts: [4222] })), rulesetHash(text), 'other policy, other hash');
  t.notMatch(renderHubRuleset({ ...input, allowedTcpPorts: [] }), /tcp dport/, 'no TCP rule when no port is allowed');
});

t.test('firewall: bad inputs are refused with every problem listed', async (t) => {
  const bad = { wgInterface: 'wg0; flush ruleset', wgPort: 0, overlayCidr: '10.77.0.1/16', hubAddress: '10.78.0.1', allowedTcpPorts: [4222, 70000, 1.5] };
  t.throws(() => renderHubRuleset(bad), {
    code: 'FW_BAD_INPUT',
    problems: [
      'wgInterface: not an interface name of 1-15 characters [A-Za-z0-9_.-] (got "wg0; flush ruleset")',
      'wgPort: not a port 1-65535 (got 0)',
      'overlayCidr: not an IPv4 network a.b.c.d/n with host bits zero (got "10.77.0.1/16")',
      'allowedTcpPorts[1]: not a port 1-65535 (got 70000)',
      'allowedTcpPorts[2]: not a port 1-65535 (got 1.5)',
    ],
  });
  t.throws(() => renderHubRuleset({ ...input, hubAddress: '10.78.0.1' }), { code: 'FW_BAD_INPUT', problems: ['hubAddress: not inside overlayCidr 10.77.0.0/16 (got "10.78.0.1")'] });
  t.throws(() => renderHubRuleset({ ...input, hubAddress: 'hub' }), { code: 'FW_BAD_INPUT', problems: ['hubAddress: not an IPv4 address (got "hub")'] });
  t.throws(() => renderHubRuleset({ ...input, overlayCidr: '10.77.0.0' }), { code: 'FW_BAD_INPUT', problems: [/^overlayCidr:/] });
  t.throws(() => renderHubRuleset({ ...input, wgInterface: 'an-interface-name-too-long' }), { code: 'FW_BAD_INPUT', problems: [/^wgInterface:/] });
});

t.test('firewall: nft accepts the rendered table (nft -c in a throwaway namespace)', { skip: netnsSkipReason() }, async (t) => {
  const lab = createNetnsLab(t);
  const ns = await lab.ns('fw');
  await checkTable(renderHubRuleset(input), { netns: ns });
  await checkTable(renderHubRuleset({ ...input, allowedTcpPorts: [], wgInterface: 'x', overlayCidr: '192.168.0.0/24', hubAddress: '192.168.0.254' }), { netns: ns });
  const listed = await lab.exec(ns, ['nft', 'list', 'tables']);
  t.equal(listed.stdout, '', 'a check commits nothing');
  await t.rejects(checkTable(renderHubRuleset(input).replace('policy accept', 'policy maybe'), { netns: ns }), { code: 'NFT_APPLY_FAILED', message: /syntax error/ });
});
