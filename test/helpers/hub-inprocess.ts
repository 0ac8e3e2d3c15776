import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { connect } from '@nats-io/transport-node';
import { pino } from 'pino';
import { parseHubConfig } from '../../hub/config.js';
import type { HubNetwork } from '../../hub/enrollment/service.js';
import { openHubServices, type HubServices } from '../../hub/services.js';
import { identityPaths, initHubState } from '../../hub/state-init.js';
import { httpsCall } from './https.js';
import { startNatsServerForTest } from './nats-server.js';
import { tempDir } from './tmpdir.js';

/** What the enrollment bundle says about the hub in tests that run no tunnel. */
export const TEST_NETWORK: HubNetwork = {
  overlayCidr: '10.77.0.0/16',
  hubAddress: '10.77.0.1',
  wgPublicKey: null,
  wgEndpoint: null,
  apiUrl: 'https://10.77.0.1:8443',
  natsUrl: 'tls://10.77.0.1:4222',
  policy: { version: 1, hubAddress: '10.77.0.1', natsPort: 4222, apiPort: 8443, allowFromHubTcp: [9101] },
};

/**
 * The hub's services (CA, registry on a real nats-server, enrollment and admin API on a real
 * HTTPS listener on loopback) in the test process, wired by the same `openHubServices` as the
 * daemon. `network` may use the API's URL (agents renewing against it need the real one).
 */
export async function startHubServices(
  t: Parameters<typeof startNatsServerForTest>[0] & Parameters<typeof tempDir>[0],
  state?: string,
  network: (apiUrl: string) => HubNetwork = () => TEST_NETWORK,
) {
  const dir = state ?? (await tempDir(t));
  if (!state) await initHubState({ state: dir, hubName: 'hub-1', sans: ['127.0.0.1', 'localhost'], operator: 'admin' });
  const nats = await startNatsServerForTest(t);
  const nc = await connect({ servers: nats.url });
  let url = '';
  const services: HubServices = await openHubServices({
    stateDir: dir,
    config: parseHubConfig({ api: { bodyLimitBytes: 8192 } }),
    nc,
    log: pino({ level: 'silent' }),
    network: () => network(url),
    readiness: () => ({ broker: !nc.isClosed() }),
  });
  await services.api.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(async () => {
    await services.api.close();
    await nc.close();
  });
  url = `https://127.0.0.1:${(services.api.server.address() as AddressInfo).port}`;
  const paths = identityPaths(dir);
  const operator = { ca: await readFile(paths.operatorCa, 'utf8'), cert: await readFile(paths.operatorCert, 'utf8'), key: await readFile(paths.operatorKey, 'utf8') };
  const admin = (method: string, path: string, body?: unknown) => httpsCall(`${url}/v1/admin${path}`, { method, body, ...operator });
  return { dir, url, services, operator, admin, nats, nc };
}
