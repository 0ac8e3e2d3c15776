import t from 'tap';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { tempDir } from '../../test/helpers/tmpdir.js';
import { HubTunnel } from './hub-tunnel.js';

const log = pino({ level: 'silent' });

t.test('wireguard: the hub tunnel refuses bad options, wrong states and a key others can read', async (t) => {
  const dir = await tempDir(t);
  t.throws(() => new HubTunnel({ ifname: 'ncbnet0', listenPort: 51820, privateKeyPath: join(dir, 'k'), address: '10.77.0.1' }, log), { code: 'WG_BAD_CONFIG' });
  const tunnel = new HubTunnel({ ifname: 'ncbnet0', listenPort: 51820, privateKeyPath: join(dir, 'k') }, log);
  t.throws(() => tunnel.publicKey, { code: 'WG_TUNNEL_STATE' });
  await t.rejects(tunnel.syncPeers([]), { code: 'WG_TUNNEL_STATE' });
  await t.rejects(tunnel.peers(), { code: 'WG_TUNNEL_STATE' });
  t.notOk(tunnel.isUp());
  await tunnel.stop();
  const open = join(dir, 'open.key');
  await writeFile(open, `${randomBytes(32).toString('base64')}\n`, { mode: 0o644 });
  const leaky = new HubTunnel({ ifname: 'ncbnet0', listenPort: 51820, privateKeyPath: open }, log);
  await t.rejects(leaky.start(), { code: 'PKI_KEY_PERMISSIONS' }, 'a readable key counts as disclosed');
  const bad = join(dir, 'bad.key');
  await writeFile(bad, 'not a key\n', { mode: 0o600 });
  await t.rejects(new HubTunnel({ ifname: 'ncbnet0', listenPort: 51820, privateKeyPath: bad }, log).start(), { code: 'WG_BAD_KEY' });
});
