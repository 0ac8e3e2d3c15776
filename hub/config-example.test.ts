import t from 'tap';
import { fileURLToPath } from 'node:url';
import { loadHubConfig } from './config.js';

t.test('hub config: the shipped example is valid', async (t) => {
  const c = await loadHubConfig(fileURLToPath(new URL('../deploy/hub.example.json', import.meta.url)));
  t.equal(c.wireguard.enabled, true);
  t.equal(c.broker.deliverMaxAgeMs, 30 * 24 * 3600 * 1000);
  t.same(c.databases.notifyOwnerOnHit, ['sltd', 'smv', 'woa', 'firearms', 'nominal']);
});
