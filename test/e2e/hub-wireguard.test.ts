// The hub daemon with WireGuard on, in a network namespace the test creates, and one country in
// another: enrollment adds the country's peer, the country reaches the hub's broker over the
// tunnel, revocation removes the peer, and SIGTERM removes the interface and the nftables table.
// The test process talks to the hub's API over a veth link into the hub's namespace only.
import t from 'tap';
import { readSnapshot } from '../../hub/registry/snapshot.js';
import { snapshotPath } from '../../hub/services.js';
import { linkExists } from '../../system/ip.js';
import { listTable } from '../../system/nft.js';
import { pubKey, show } from '../../system/wg.js';
import { canConnectTcp, netnsSkipReason, pollUntil } from '../helpers/netns.js';
import { startWgHubLab } from '../helpers/wg-hub-lab.js';

t.test('hub e2e: WireGuard peers follow enrollment and revocation; stop removes interface and table', { skip: netnsSkipReason() }, async (t) => {
  const { lab, hubNs, frNs, hubIf, state, apiHost, hub, admin, enrollFr, frTunnel } = await startWgHubLab(t, {
    rootNet: 201,
    underlayNet: 1,
    hubConfig: (host) => ({ api: { host, port: 8443 }, broker: { host: '0.0.0.0', port: 4222, monitorPort: 8222 } }),
  });
  t.equal(hub.endpoints.apiUrl, `https://${apiHost}:8443`);
  const table = await listTable({ netns: hubNs });
  t.ok(table, 'the hub applied its nftables table');

  const { added, enrolled, bundle, wgPrivateKey: frWgPrivate } = await enrollFr();
  t.equal(added.status, 201);
  t.equal(enrolled.status, 200, enrolled.text);
  t.equal(bundle.hub.wgEndpoint, '10.200.1.1:51820');
  t.match(bundle.hub.wgPublicKey, /^[A-Za-z0-9+/]{43}=$/, 'the bundle carries the hub WireGuard key');
  t.equal(bundle.hub.natsUrl, 'tls://10.77.0.1:4222', 'agents dial the broker over the tunnel');

  const peers = (await show(hubIf, { netns: hubNs })).peers;
  t.same(peers.map((p) => [p.publicKey, p.allowedIps]), [[await pubKey(frWgPrivate), [`${bundle.overlayAddress}/32`]]], 'one peer, AllowedIPs = its /32');

  // The country's side, set up by hand as the agent will: hub peer, AllowedIPs = the hub only.
  await frTunnel(bundle, frWgPrivate, { persistentKeepaliveSeconds: 25 });
  t.ok(await pollUntil(() => canConnectTcp(lab, frNs, '10.77.0.1', 4222), { timeoutMs: 15_000, intervalMs: 200 }), 'FR reaches the broker over the tunnel');
  t.notOk(await canConnectTcp(lab, frNs, '10.77.0.1', 8222), 'the monitoring port is not reachable from the tunnel');

  const revoked = await admin('/countries/FR/revoke', { reason: 'keyCompromise' });
  t.equal(revoked.status, 200, revoked.text);
  t.same((await show(hubIf, { netns: hubNs })).peers, [], 'revocation removed the peer');
  t.ok(await pollUntil(async () => !(await canConnectTcp(lab, frNs, '10.77.0.1', 4222)), { timeoutMs: 5000, intervalMs: 200 }), 'FR can no longer reach the hub');

  t.equal(await hub.stop(), 0, 'SIGTERM: clean exit');
  t.notOk(await linkExists(hubIf, { netns: hubNs }), 'the hub interface is gone');
  t.equal(await listTable({ netns: hubNs }), undefined, 'the inet ncbnet table is gone');
  const snapshot = await readSnapshot(snapshotPath(state));
  t.equal(snapshot.find((c) => c.code === 'FR')?.status, 'revoked', 'the registry snapshot on disk says revoked');
});
