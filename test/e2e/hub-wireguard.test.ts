// The hub daemon with WireGuard on, in a network namespace the test creates, and one country in
// another: enrollment adds the country's peer, the country reaches the hub's broker over the
// tunnel, revocation removes the peer, and SIGTERM removes the interface and the nftables table.
// The test process talks to the hub's API over a veth link into the hub's namespace only.
import t from 'tap';
import { readFile } from 'node:fs/promises';
import type { Bundle } from '../../hub/enrollment/bundle.js';
import { readSnapshot } from '../../hub/registry/snapshot.js';
import { snapshotPath } from '../../hub/services.js';
import { identityPaths, initHubState } from '../../hub/state-init.js';
import { addAddress, linkExists, setUp } from '../../system/ip.js';
import { listTable } from '../../system/nft.js';
import { createWgInterface } from '../../system/wg-interface.js';
import { genKey, pubKey, setInterface, setPeer, show } from '../../system/wg.js';
import { countryKeys } from '../helpers/country-identity.js';
import { startHubProcess } from '../helpers/daemon-process.js';
import { httpsCall } from '../helpers/https.js';
import { canConnectTcp, createNetnsLab, netnsSkipReason, pollUntil } from '../helpers/netns.js';
import { tempDir } from '../helpers/tmpdir.js';

t.test('hub e2e: WireGuard peers follow enrollment and revocation; stop removes interface and table', { skip: netnsSkipReason() }, async (t) => {
  const lab = createNetnsLab(t);
  const hubNs = await lab.ns('hub');
  const frNs = await lab.ns('fr');
  // Addresses from the lab id, so two runs on one machine do not collide.
  const octet = parseInt(lab.id.slice(0, 2), 16);
  const apiHost = `10.201.${octet}.2`;
  await lab.rootLink(hubNs, `10.201.${octet}.1/30`, `${apiHost}/30`);
  await lab.veth({ ns: hubNs, address: '10.200.1.1/24' }, { ns: frNs, address: '10.200.1.2/24' });

  const state = await tempDir(t, 'ncbnet-hubwg-');
  await initHubState({ state, hubName: 'hub-1', sans: [apiHost, '10.77.0.1', '127.0.0.1', 'localhost'], operator: 'admin' });
  const hubIf = lab.ifname('hub');
  const hub = await startHubProcess(
    t,
    state,
    {
      api: { host: apiHost, port: 8443 },
      broker: { host: '0.0.0.0', port: 4222, monitorPort: 8222 },
      wireguard: { enabled: true, interface: hubIf, listenPort: 51820, endpoint: '10.200.1.1:51820' },
    },
    { netns: hubNs },
  );
  t.equal(hub.endpoints.apiUrl, `https://${apiHost}:8443`);
  const ids = identityPaths(state);
  const operator = { ca: await readFile(ids.operatorCa, 'utf8'), cert: await readFile(ids.operatorCert, 'utf8'), key: await readFile(ids.operatorKey, 'utf8') };
  const admin = (path: string, body?: unknown) => httpsCall(`${hub.endpoints.apiUrl}/v1/admin${path}`, { method: body === undefined ? 'GET' : 'POST', body, ...operator });
  const table = await listTable({ netns: hubNs });
  t.ok(table, 'the hub applied its nftables table');

  t.equal((await admin('/countries', { code: 'FR', name: 'France' })).status, 201);
  const token = ((await admin('/tokens', { country: 'FR' })).json as { token: string }).token;
  const frWgPrivate = await genKey();
  const keys = await countryKeys('FR');
  const enrolled = await httpsCall(`${hub.endpoints.apiUrl}/v1/enroll`, { ca: operator.ca, body: { token, csr: keys.csr, wgPublicKey: await pubKey(frWgPrivate) } });
  t.equal(enrolled.status, 200, enrolled.text);
  const bundle = enrolled.json as Bundle;
  t.equal(bundle.hub.wgEndpoint, '10.200.1.1:51820');
  t.match(bundle.hub.wgPublicKey, /^[A-Za-z0-9+/]{43}=$/, 'the bundle carries the hub WireGuard key');
  t.equal(bundle.hub.natsUrl, 'tls://10.77.0.1:4222', 'agents dial the broker over the tunnel');

  const peers = (await show(hubIf, { netns: hubNs })).peers;
  t.same(peers.map((p) => [p.publicKey, p.allowedIps]), [[await pubKey(frWgPrivate), [`${bundle.overlayAddress}/32`]]], 'one peer, AllowedIPs = its /32');

  // The country's side, set up by hand as the agent will: hub peer, AllowedIPs = the hub only.
  const frIf = lab.ifname('fr');
  const iface = await createWgInterface(frIf, { netns: frNs });
  t.teardown(() => iface.close());
  await setInterface(frIf, { privateKey: frWgPrivate }, { netns: frNs });
  await addAddress(frIf, `${bundle.overlayAddress}/32`, { netns: frNs });
  await setUp(frIf, { netns: frNs });
  await setPeer(frIf, { publicKey: bundle.hub.wgPublicKey as string, allowedIps: ['10.77.0.1/32'], endpoint: bundle.hub.wgEndpoint as string, persistentKeepaliveSeconds: 25 }, { netns: frNs });
  await lab.exec(frNs, ['ip', 'route', 'add', '10.77.0.1/32', 'dev', frIf]);
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
