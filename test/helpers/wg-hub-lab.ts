/**
 * The hub daemon with WireGuard on, in a network namespace of its own, and one country (FR) in
 * another whose tunnel end the test sets up by hand, as the agent would: the hub's peer, AllowedIPs
 * = the hub only, a route to the hub's overlay address. The test reaches the hub's API over a veth
 * from the root namespace. Shared by test/e2e/hub-wireguard.test.ts and
 * test/integration/hub-metrics.test.ts; addresses come from the lab id, so runs do not collide.
 */
import { readFile } from 'node:fs/promises';
import type { Bundle } from '../../hub/enrollment/bundle.js';
import type { Endpoints } from '../../hub/runtime.js';
import { identityPaths, initHubState } from '../../hub/state-init.js';
import { addAddress, setUp } from '../../system/ip.js';
import { createWgInterface } from '../../system/wg-interface.js';
import { genKey, pubKey, setInterface, setPeer } from '../../system/wg.js';
import { countryKeys } from './country-identity.js';
import { startHubProcess, type DaemonOwner, type DaemonProcess } from './daemon-process.js';
import { httpsCall, type HttpsAnswer } from './https.js';
import { createNetnsLab, type NetnsLab } from './netns.js';
import { tempDir } from './tmpdir.js';

export interface WgHubLabOptions {
  /** Second octet of the root link (`10.<n>.<lab>.0/30`) and third of the underlay (`10.200.<m>.0/24`). */
  rootNet: number;
  underlayNet: number;
  /** The hub's config besides `wireguard` (api, broker, metrics…); `{apiHost}` is where the test reaches it. */
  hubConfig: (apiHost: string) => Record<string, unknown>;
}

export interface WgHubLab {
  lab: NetnsLab;
  hubNs: string;
  frNs: string;
  hubIf: string;
  state: string;
  apiHost: string;
  hub: DaemonProcess<Endpoints>;
  operator: { ca: string; cert: string; key: string };
  admin: (path: string, body?: unknown) => Promise<HttpsAnswer>;
  /** Adds FR, creates its token and enrolls it through the API with a fresh WireGuard key. */
  enrollFr: () => Promise<{ added: HttpsAnswer; enrolled: HttpsAnswer; bundle: Bundle; wgPrivateKey: string }>;
  /** FR's end of the tunnel, from its bundle; returns the interface name. */
  frTunnel: (bundle: Bundle, wgPrivateKey: string, peer?: { persistentKeepaliveSeconds?: number }) => Promise<string>;
}

export async function startWgHubLab(t: DaemonOwner, opts: WgHubLabOptions): Promise<WgHubLab> {
  const lab = createNetnsLab(t);
  const hubNs = await lab.ns('hub');
  const frNs = await lab.ns('fr');
  const octet = parseInt(lab.id.slice(0, 2), 16);
  const apiHost = `10.${opts.rootNet}.${octet}.2`;
  const underlay = `10.200.${opts.underlayNet}`;
  await lab.rootLink(hubNs, `10.${opts.rootNet}.${octet}.1/30`, `${apiHost}/30`);
  await lab.veth({ ns: hubNs, address: `${underlay}.1/24` }, { ns: frNs, address: `${underlay}.2/24` });
  const state = await tempDir(t, 'ncbnet-wg-hub-');
  await initHubState({ state, hubName: 'hub-1', sans: [apiHost, '10.77.0.1', '127.0.0.1', 'localhost'], operator: 'admin' });
  const hubIf = lab.ifname('hub');
  const hub = await startHubProcess(t, state, { ...opts.hubConfig(apiHost), wireguard: { enabled: true, interface: hubIf, listenPort: 51820, endpoint: `${underlay}.1:51820` } }, { netns: hubNs });
  const ids = identityPaths(state);
  const operator = { ca: await readFile(ids.operatorCa, 'utf8'), cert: await readFile(ids.operatorCert, 'utf8'), key: await readFile(ids.operatorKey, 'utf8') };
  const admin = (path: string, body?: unknown): Promise<HttpsAnswer> => httpsCall(`${hub.endpoints.apiUrl}/v1/admin${path}`, { method: body === undefined ? 'GET' : 'POST', body, ...operator });
  return {
    lab,
    hubNs,
    frNs,
    hubIf,
    state,
    apiHost,
    hub,
    operator,
    admin,
    enrollFr: async () => {
      const added = await admin('/countries', { code: 'FR', name: 'France' });
      const token = ((await admin('/tokens', { country: 'FR' })).json as { token: string }).token;
      const wgPrivateKey = await genKey();
      const keys = await countryKeys('FR');
      const enrolled = await httpsCall(`${hub.endpoints.apiUrl}/v1/enroll`, { ca: operator.ca, body: { token, csr: keys.csr, wgPublicKey: await pubKey(wgPrivateKey) } });
      return { added, enrolled, bundle: enrolled.json as Bundle, wgPrivateKey };
    },
    frTunnel: async (bundle, wgPrivateKey, peer = {}) => {
      const frIf = lab.ifname('fr');
      const iface = await createWgInterface(frIf, { netns: frNs });
      t.teardown(() => iface.close());
      await setInterface(frIf, { privateKey: wgPrivateKey }, { netns: frNs });
      await addAddress(frIf, `${bundle.overlayAddress}/32`, { netns: frNs });
      await setUp(frIf, { netns: frNs });
      await setPeer(frIf, { publicKey: bundle.hub.wgPublicKey as string, allowedIps: ['10.77.0.1/32'], endpoint: bundle.hub.wgEndpoint as string, ...peer }, { netns: frNs });
      await lab.exec(frNs, ['ip', 'route', 'add', '10.77.0.1/32', 'dev', frIf]);
      return frIf;
    },
  };
}
