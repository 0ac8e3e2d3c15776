// The hub's tunnel and firewall on real wireguard-go and nftables, in network namespaces the test
// creates: a hub and two countries joined by veth underlay links. Nothing leaves those namespaces.
import t from 'tap';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { HubFirewall } from '../../hub/firewall/hub-firewall.js';
import { HUB_COUNTERS } from '../../hub/firewall/ruleset.js';
import { HubTunnel } from '../../hub/wireguard/hub-tunnel.js';
import { addAddress, linkExists, setUp } from '../../system/ip.js';
import { createWgInterface } from '../../system/wg-interface.js';
import { genKey, pubKey, setInterface, setPeer } from '../../system/wg.js';
import { canConnectTcp, canPing, createNetnsLab, hasCommand, netnsSkipReason, pollUntil, type NetnsLab } from '../helpers/netns.js';
import { tempDir, type Teardownable } from '../helpers/tmpdir.js';

const HUB_IP = '10.77.0.1';
const NATS_PORT = 4222;
const CLOSED_PORT = 8443;
const WG_PORT = 51820;
// The listener answers on every address of its namespace; probes only need the TCP handshake.
const LISTEN = (port: number) => `require('node:net').createServer((s) => s.end()).listen(${port}, '0.0.0.0', () => console.log('ready'))`;

async function country(t: Teardownable, lab: NetnsLab, ns: string, name: string, overlayIp: string) {
  const ifname = lab.ifname(name);
  const iface = await createWgInterface(ifname, { netns: ns });
  t.teardown(() => iface.close());
  const priv = await genKey();
  await setInterface(ifname, { privateKey: priv }, { netns: ns });
  await addAddress(ifname, `${overlayIp}/16`, { netns: ns });
  await setUp(ifname, { netns: ns });
  return { ifname, publicKey: await pubKey(priv), iface };
}

// Done after the hub knows the country: a handshake the hub ignores is retried only after
// WireGuard's REKEY_TIMEOUT (5 s). The AllowedIPs are wider than an agent's real ones (the hub
// only): this country tries to reach another through the hub, which the forward chain must stop.
async function peerWithHub(ns: string, ifname: string, hubUnderlay: string, hubPublicKey: string): Promise<void> {
  await setPeer(ifname, { publicKey: hubPublicKey, allowedIps: ['10.77.0.0/16'], endpoint: `${hubUnderlay}:${WG_PORT}`, persistentKeepaliveSeconds: 25 }, { netns: ns });
}

async function reachable(lab: NetnsLab, ns: string, host: string, port: number): Promise<boolean> {
  return pollUntil(() => canConnectTcp(lab, ns, host, port), { timeoutMs: 10_000, intervalMs: 100 });
}

t.test('wireguard hub: countries reach the hub, never each other; removal and stop clean up', { skip: netnsSkipReason() }, async (t) => {
  const started = Date.now();
  const lab = createNetnsLab(t);
  const dir = await tempDir(t);
  const log = pino({ level: 'silent' });
  const hubNs = await lab.ns('hub');
  const aNs = await lab.ns('a');
  const bNs = await lab.ns('b');
  await lab.veth({ ns: hubNs, address: '10.200.1.1/24' }, { ns: aNs, address: '10.200.1.2/24' });
  await lab.veth({ ns: hubNs, address: '10.200.2.1/24' }, { ns: bNs, address: '10.200.2.2/24' });
  // Routing on, as on a host that routes for other reasons: only the firewall stands between countries.
  await lab.exec(hubNs, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
  await lab.exec(hubNs, ['nft', '-f', '-'], { input: 'table inet operator { chain input { type filter hook input priority 10; policy accept; }; }\n' });

  const hubIf = lab.ifname('hub');
  const keyPath = join(dir, 'hub-wg.key');
  const tunnel = new HubTunnel({ ifname: hubIf, listenPort: WG_PORT, privateKeyPath: keyPath, address: `${HUB_IP}/16`, netns: hubNs }, log);
  const firewall = new HubFirewall({ wgInterface: hubIf, wgPort: WG_PORT, overlayCidr: '10.77.0.0/16', hubAddress: HUB_IP, allowedTcpPorts: [NATS_PORT], netns: hubNs }, log);
  t.teardown(() => firewall.stop());
  t.teardown(() => tunnel.stop());
  await tunnel.start();
  await firewall.start();
  t.equal((await stat(keyPath)).mode & 0o777, 0o600, 'generated hub key is 0600');
  t.equal(await pubKey((await readFile(keyPath, 'utf8')).trim()), tunnel.publicKey, 'the interface uses the key file');
  t.match(firewall.hash, /^[0-9a-f]{64}$/, 'hash of the applied ruleset');

  const a = await country(t, lab, aNs, 'ca', '10.77.0.2');
  const b = await country(t, lab, bNs, 'cb', '10.77.0.3');
  await t.rejects(tunnel.syncPeers([{ publicKey: a.publicKey, allowedIp: HUB_IP }, { publicKey: 'x', allowedIp: '10.78.0.9' }]), {
    code: 'WG_BAD_PEER',
    problems: [/^\[0\]\.allowedIp: not a country address/, /^\[1\]\.publicKey/, /^\[1\]\.allowedIp/],
  }, 'bad peers refused, all problems listed');
  t.same(await tunnel.syncPeers([{ publicKey: a.publicKey, allowedIp: '10.77.0.2' }, { publicKey: b.publicKey, allowedIp: '10.77.0.3/32' }]), {
    added: [a.publicKey, b.publicKey], updated: [], removed: [],
  });
  t.same(await tunnel.syncPeers([{ publicKey: a.publicKey, allowedIp: '10.77.0.2/32' }, { publicKey: b.publicKey, allowedIp: '10.77.0.3' }]), {
    added: [], updated: [], removed: [],
  }, 'a second sync changes nothing');
  await peerWithHub(aNs, a.ifname, '10.200.1.1', tunnel.publicKey);
  await peerWithHub(bNs, b.ifname, '10.200.2.1', tunnel.publicKey);

  await Promise.all([
    lab.spawn(hubNs, [process.execPath, '-e', LISTEN(NATS_PORT)]).waitForOutput(/ready/),
    lab.spawn(hubNs, [process.execPath, '-e', LISTEN(CLOSED_PORT)]).waitForOutput(/ready/),
    lab.spawn(bNs, [process.execPath, '-e', LISTEN(NATS_PORT)]).waitForOutput(/ready/),
  ]);

  t.ok(await reachable(lab, aNs, HUB_IP, NATS_PORT), 'A reaches the hub on the NATS port over the tunnel');
  t.ok(await reachable(lab, bNs, HUB_IP, NATS_PORT), 'B reaches the hub too');
  if (hasCommand('ping')) {
    t.ok(await pollUntil(() => canPing(lab, aNs, HUB_IP), { timeoutMs: 5_000 }), 'A pings the hub overlay address');
  } else {
    t.comment('ping (iputils-ping) not installed: ICMP echo not checked');
  }
  const peersA = (await tunnel.peers()).find((p) => p.publicKey === a.publicKey);
  t.ok(peersA?.latestHandshake, 'handshake with A recorded');
  t.ok((peersA?.rxBytes ?? 0) > 0, 'bytes received from A');
  t.match(peersA?.endpoint, /^10\.200\.1\.2:\d+$/, 'A seen at its underlay address');

  const before = await firewall.counters();
  // Each blocked probe waits out its 1 s timeout; they are independent, so run them together.
  const [toB, pingB, closedPort, underlay] = await Promise.all([
    canConnectTcp(lab, aNs, '10.77.0.3', NATS_PORT),
    hasCommand('ping') ? canPing(lab, aNs, '10.77.0.3') : Promise.resolve(false),
    canConnectTcp(lab, aNs, HUB_IP, CLOSED_PORT),
    canConnectTcp(lab, aNs, '10.200.1.1', CLOSED_PORT),
  ]);
  t.notOk(toB, 'A cannot open a connection to B through the hub');
  t.notOk(pingB, 'A cannot ping B');
  t.notOk(closedPort, 'a hub port outside the policy is closed on the tunnel');
  t.ok(underlay, 'the same port stays open on the underlay');
  const after = await firewall.counters();
  const grew = (name: string) => (after.get(name)?.packets ?? 0) > (before.get(name)?.packets ?? 0);
  t.ok(grew(HUB_COUNTERS.forwardBetweenCountries), `forward drop counted (${JSON.stringify(Object.fromEntries(after))})`);
  t.ok(grew(HUB_COUNTERS.tunnelInputDrop), 'tunnel input drop counted');
  t.ok(grew(HUB_COUNTERS.underlayWireguard), 'underlay WireGuard packets counted');

  t.same(await tunnel.syncPeers([{ publicKey: a.publicKey, allowedIp: '10.77.0.2' }]), { added: [], updated: [], removed: [b.publicKey] });
  t.same((await tunnel.peers()).map((p) => p.publicKey), [a.publicKey], 'B is gone from wg show');
  const [bTcp, bPing] = await Promise.all([
    canConnectTcp(lab, bNs, HUB_IP, NATS_PORT),
    hasCommand('ping') ? canPing(lab, bNs, HUB_IP) : Promise.resolve(false),
  ]);
  t.notOk(bTcp, 'B can no longer reach the hub');
  t.notOk(bPing, 'B can no longer ping the hub');
  t.ok(await canConnectTcp(lab, aNs, HUB_IP, NATS_PORT), 'A still can');
  t.notOk(await tunnel.removePeer(b.publicKey), 'removing B again reports it absent');

  // A hub killed with SIGKILL leaves its interface and wireguard-go behind; the next start repairs
  // it instead of failing with "File exists" (found by the fault suite's kill -9 of the hub).
  await tunnel.stop();
  const orphan = await createWgInterface(hubIf, { netns: hubNs });
  const tunnel2 = new HubTunnel({ ifname: hubIf, listenPort: WG_PORT, privateKeyPath: keyPath, address: `${HUB_IP}/16`, netns: hubNs }, log);
  t.teardown(() => tunnel2.stop());
  await tunnel2.start();
  t.ok(await pollUntil(() => !orphan.isAlive(), { timeoutMs: 5_000, intervalMs: 20 }), 'the leftover wireguard-go exited with its interface');
  t.equal(tunnel2.publicKey, tunnel.publicKey, 'the restarted hub kept its key');
  await tunnel2.syncPeers([{ publicKey: a.publicKey, allowedIp: '10.77.0.2' }]);
  // A's session keys died with the old wireguard-go: A starts a new handshake once its data has
  // gone unanswered for Keepalive-Timeout + Rekey-Timeout (15 s, WireGuard paper §6.5).
  t.ok(await pollUntil(() => canConnectTcp(lab, aNs, HUB_IP, NATS_PORT), { timeoutMs: 30_000, intervalMs: 250 }), 'A reaches the restarted hub');

  await firewall.stop();
  await tunnel2.stop();
  t.equal(firewall.hash, undefined);
  t.notOk(await linkExists(hubIf, { netns: hubNs }), 'hub interface removed');
  const tables = (await lab.exec(hubNs, ['nft', 'list', 'tables'])).stdout;
  t.notMatch(tables, /inet ncbnet/, 'ncbnet table removed');
  t.match(tables, /table inet operator/, 'the unrelated table survived');
  const { stdout: pids } = await lab.exec(hubNs, ['ip', 'netns', 'pids', hubNs]).catch(() => ({ stdout: '' }));
  const comms = await Promise.all(pids.split(/\s+/).filter(Boolean).map((pid) => readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')));
  t.notOk(comms.some((c) => c.trim() === 'wireguard-go'), 'the hub wireguard-go process exited');
  t.comment(`integration run took ${Date.now() - started} ms`);
});
