// The agent's tunnel and firewall on real wireguard-go and nftables against the real hub side
// (HubTunnel + HubFirewall), in two network namespaces the test creates joined by a veth
// underlay. Nothing leaves those namespaces; every wait is a poll with a deadline.
import t from 'tap';
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { HubFirewall } from '../../hub/firewall/hub-firewall.js';
import { HubTunnel } from '../../hub/wireguard/hub-tunnel.js';
import { AgentFirewall } from '../../node-agent/firewall/agent-firewall.js';
import { AGENT_COUNTERS } from '../../node-agent/firewall/ruleset.js';
import { AgentTunnel, type AgentTunnelOptions } from '../../node-agent/tunnel/agent-tunnel.js';
import { writeSecretFile } from '../../pki/files.js';
import { linkExists } from '../../system/ip.js';
import { createWgInterface } from '../../system/wg-interface.js';
import { genKey, pubKey, show } from '../../system/wg.js';
import { canConnectTcp, canPing, createNetnsLab, hasCommand, netnsSkipReason, pollUntil, type NetnsLab } from '../helpers/netns.js';
import { tempDir, type Teardownable } from '../helpers/tmpdir.js';

const HUB_IP = '10.77.0.1';
const AGENT_IP = '10.77.0.2';
const HUB_UNDERLAY = '10.200.1.1';
const AGENT_UNDERLAY = '10.200.1.2';
const WG_PORT = 51820;
const NATS_PORT = 4222;
const OPEN_PORT = 9101;
const CLOSED_PORT = 9999;
// The listener answers on every address of its namespace; probes only need the TCP handshake.
const LISTEN = (port: number) => `require('node:net').createServer((s) => s.end()).listen(${port}, '0.0.0.0', () => console.log('ready'))`;

/** A hub tunnel (new key file = a new hub key) that knows the agent as its one peer. */
async function startHub(t: Teardownable, ns: string, ifname: string, keyPath: string, agentPublicKey: string): Promise<HubTunnel> {
  const hub = new HubTunnel({ ifname, listenPort: WG_PORT, privateKeyPath: keyPath, address: `${HUB_IP}/16`, netns: ns }, pino({ level: 'silent' }));
  t.teardown(() => hub.stop());
  await hub.start();
  await hub.syncPeers([{ publicKey: agentPublicKey, allowedIp: AGENT_IP }]);
  return hub;
}

async function wireguardGoPids(lab: NetnsLab, ns: string): Promise<number[]> {
  const { stdout } = await lab.exec(ns, ['ip', 'netns', 'pids', ns]);
  const pids = stdout.split(/\s+/).filter(Boolean).map(Number);
  const comms = await Promise.all(pids.map((pid) => readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')));
  return pids.filter((_, i) => comms[i]?.trim() === 'wireguard-go');
}

/** Polls until the agent has shaken hands with the hub since `since` and reaches its NATS port. */
async function tunnelWorksSince(lab: NetnsLab, ns: string, agent: AgentTunnel, since: number): Promise<boolean> {
  // wg reports handshakes in whole seconds.
  const floor = Math.floor(since / 1000) * 1000;
  const shook = await pollUntil(async () => ((await agent.state()).lastHandshake?.getTime() ?? 0) >= floor, { timeoutMs: 15_000 });
  return shook && pollUntil(() => canConnectTcp(lab, ns, HUB_IP, NATS_PORT), { timeoutMs: 10_000 });
}

t.test('agent tunnel: handshake, policy ports, re-keyed hub, crash recovery and clean stop', { skip: netnsSkipReason() }, async (t) => {
  const started = Date.now();
  const lab = createNetnsLab(t);
  const dir = await tempDir(t);
  const log = pino({ level: 'silent' });
  const hubNs = await lab.ns('hub');
  const agentNs = await lab.ns('fr');
  await lab.veth({ ns: hubNs, address: `${HUB_UNDERLAY}/24` }, { ns: agentNs, address: `${AGENT_UNDERLAY}/24` });
  // An operator's own table on the NCB host, which the agent must never touch.
  await lab.exec(agentNs, ['nft', '-f', '-'], { input: 'table inet other { chain input { type filter hook input priority 10; policy accept; }; }\n' });

  const hubIf = lab.ifname('hub');
  const agentIf = lab.ifname('fr');
  const agentKeyPath = join(dir, 'agent-wg.key');
  const agentPrivate = await genKey();
  await writeSecretFile(agentKeyPath, `${agentPrivate}\n`);
  const agentPublic = await pubKey(agentPrivate);

  const hubFirewall = new HubFirewall({ wgInterface: hubIf, wgPort: WG_PORT, overlayCidr: '10.77.0.0/16', hubAddress: HUB_IP, allowedTcpPorts: [NATS_PORT], netns: hubNs }, log);
  t.teardown(() => hubFirewall.stop());
  const hub1 = await startHub(t, hubNs, hubIf, join(dir, 'hub-1.key'), agentPublic);
  await hubFirewall.start();

  const options: AgentTunnelOptions = {
    ifname: agentIf, privateKeyPath: agentKeyPath, address: AGENT_IP, netns: agentNs,
    hub: { publicKey: hub1.publicKey, endpoint: `${HUB_UNDERLAY}:${WG_PORT}`, overlayAddress: HUB_IP },
  };
  const agent = new AgentTunnel(options, log);
  const firewall = new AgentFirewall({ wgInterface: agentIf, hubAddress: HUB_IP, allowFromHubTcp: [OPEN_PORT], agentAddress: AGENT_IP, netns: agentNs }, log);
  t.teardown(() => firewall.stop());
  t.teardown(() => agent.stop());
  await agent.start();
  await firewall.start();
  await t.rejects(agent.start(), { code: 'WG_TUNNEL_STATE' }, 'a second start while up is refused');

  const [peer, ...others] = (await show(agentIf, { netns: agentNs })).peers;
  t.equal(others.length, 0, 'the hub is the only peer');
  t.same(peer?.allowedIps, [`${HUB_IP}/32`], 'AllowedIPs = the hub /32 only');
  t.equal(peer?.persistentKeepaliveSeconds, 25, 'PersistentKeepalive 25');
  t.match((await lab.exec(agentNs, ['ip', '-4', 'address', 'show', 'dev', agentIf])).stdout, new RegExp(`inet ${AGENT_IP.replaceAll('.', '\\.')}/32 `), 'overlay address /32');
  t.match((await lab.exec(agentNs, ['ip', 'route', 'get', HUB_IP])).stdout, new RegExp(`dev ${agentIf}`), 'the hub is routed into the tunnel');
  const other = await lab.tryExec(agentNs, ['ip', 'route', 'get', '10.77.0.3']);
  t.ok(other.exitCode !== 0 || !other.stdout.includes(agentIf), 'another country is not');

  await Promise.all([
    lab.spawn(hubNs, [process.execPath, '-e', LISTEN(NATS_PORT)]).waitForOutput(/ready/),
    lab.spawn(agentNs, [process.execPath, '-e', LISTEN(OPEN_PORT)]).waitForOutput(/ready/),
    lab.spawn(agentNs, [process.execPath, '-e', LISTEN(CLOSED_PORT)]).waitForOutput(/ready/),
  ]);

  t.ok(await tunnelWorksSince(lab, agentNs, agent, started), 'handshake seen by the agent and the hub NATS port reached over the tunnel');
  const state = await agent.state();
  t.equal(state.up, true);
  t.ok(state.rxBytes > 0 && state.txBytes > 0, `bytes both ways (${state.rxBytes} rx, ${state.txBytes} tx)`);
  t.equal(state.endpoint, `${HUB_UNDERLAY}:${WG_PORT}`, 'endpoint reported');
  const hubPeer = (await hub1.peers()).find((p) => p.publicKey === agentPublic);
  t.ok(hubPeer?.latestHandshake, 'the hub wg show has the handshake too');
  t.match(hubPeer?.endpoint, new RegExp(`^${AGENT_UNDERLAY.replaceAll('.', '\\.')}:\\d+$`), 'the hub sees the agent at its underlay address');

  t.ok(await canConnectTcp(lab, hubNs, AGENT_IP, OPEN_PORT), 'the hub opens the policy port on the agent over the tunnel');
  if (hasCommand('ping')) t.ok(await canPing(lab, hubNs, AGENT_IP), 'the hub pings the agent');
  const before = (await firewall.counters()).get(AGENT_COUNTERS.tunnelInputDrop)?.packets ?? 0;
  const [closed, lan] = await Promise.all([
    canConnectTcp(lab, hubNs, AGENT_IP, CLOSED_PORT),
    canConnectTcp(lab, hubNs, AGENT_UNDERLAY, CLOSED_PORT),
  ]);
  t.notOk(closed, 'a port outside the policy is closed on the tunnel');
  t.ok(lan, 'the same port stays open off the tunnel: the agent owns only the tunnel');
  const after = (await firewall.counters()).get(AGENT_COUNTERS.tunnelInputDrop)?.packets ?? 0;
  t.ok(after > before, `tunnel input drop counted (${before} → ${after})`);
  const hashBefore = firewall.hash;
  t.equal(await firewall.update({ hubAddress: HUB_IP, allowFromHubTcp: [OPEN_PORT] }), hashBefore, 'an unchanged policy keeps the hash');
  t.equal((await firewall.counters()).get(AGENT_COUNTERS.tunnelInputDrop)?.packets, after, '… and the counters (no re-apply)');
  await t.rejects(firewall.update({ hubAddress: 'hub', allowFromHubTcp: [0] }), {
    code: 'FW_BAD_INPUT', problems: [/^hubAddress:/, /^allowFromHubTcp\[0\]:/],
  }, 'a bad policy is refused with every problem');
  t.equal(firewall.hash, hashBefore, '… and the table in force stays');
  const widened = await firewall.update({ hubAddress: HUB_IP, allowFromHubTcp: [CLOSED_PORT, OPEN_PORT] });
  t.not(widened, hashBefore, 'a new policy, a new hash');
  t.ok(await canConnectTcp(lab, hubNs, AGENT_IP, CLOSED_PORT), 'a port the new policy opens is reachable');
  t.equal(await firewall.update({ hubAddress: HUB_IP, allowFromHubTcp: [OPEN_PORT] }), hashBefore, 'back to the old policy, back to its hash');

  // A re-keyed hub: its interface goes, a new key comes; the agent follows the new bundle.
  const rekeyed = Date.now();
  await hub1.stop();
  const hub2 = await startHub(t, hubNs, hubIf, join(dir, 'hub-2.key'), agentPublic);
  t.not(hub2.publicKey, options.hub.publicKey, 'the hub has a new key');
  t.same(await agent.updateHub({ ...options.hub, publicKey: hub2.publicKey }), ['publicKey']);
  t.same((await show(agentIf, { netns: agentNs })).peers.map((p) => p.publicKey), [hub2.publicKey], 'the old hub key is gone');
  t.ok(await tunnelWorksSince(lab, agentNs, agent, rekeyed), 'the tunnel comes back with the new hub key');

  // wireguard-go killed under the agent: start() again recovers.
  const [pid, ...more] = await wireguardGoPids(lab, agentNs);
  t.ok(pid !== undefined && more.length === 0, 'one wireguard-go in the agent namespace');
  if (pid !== undefined) process.kill(pid, 'SIGKILL');
  t.ok(await pollUntil(() => !agent.isUp(), { timeoutMs: 5_000, intervalMs: 20 }), 'the agent sees it die');
  t.equal((await agent.state()).up, false, 'state reports down');
  const restarted = Date.now();
  await agent.start();
  t.ok(await tunnelWorksSince(lab, agentNs, agent, restarted), 'start() after the crash brings the tunnel back');

  // An agent killed outright leaves its interface and wireguard-go behind; a new agent repairs it.
  await agent.stop();
  const orphan = await createWgInterface(agentIf, { netns: agentNs });
  const agent2 = new AgentTunnel(options, log);
  t.teardown(() => agent2.stop());
  await agent2.updateHub({ ...options.hub, publicKey: hub2.publicKey });
  const replaced = Date.now();
  await agent2.start();
  t.ok(await pollUntil(() => !orphan.isAlive(), { timeoutMs: 5_000, intervalMs: 20 }), 'the leftover wireguard-go exited with its interface');
  t.ok(await tunnelWorksSince(lab, agentNs, agent2, replaced), 'the new agent has a working tunnel');

  await firewall.stop();
  await agent2.stop();
  t.equal(firewall.hash, undefined);
  t.notOk(await linkExists(agentIf, { netns: agentNs }), 'agent interface removed');
  const tables = (await lab.exec(agentNs, ['nft', 'list', 'tables'])).stdout;
  t.notMatch(tables, /inet ncbnet/, 'the agent table is removed');
  t.match(tables, /table inet other/, 'the unrelated table survived');
  t.same(await wireguardGoPids(lab, agentNs), [], 'no wireguard-go left in the agent namespace');
  t.notOk(await access(`/var/run/wireguard/${agentIf}.sock`).then(() => true, () => false), 'no wireguard-go socket left');
  t.comment(`integration run took ${Date.now() - started} ms`);
});
