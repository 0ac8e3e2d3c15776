import t from 'tap';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from '../test/helpers/tmpdir.js';
import { createNetnsLab, netnsSkipReason } from '../test/helpers/netns.js';
import { linkExists } from './ip.js';
import { createWgInterface } from './wg-interface.js';
import { show } from './wg.js';

t.test('wg-interface: an interface comes up in a namespace, answers wg, and close() removes it', { skip: netnsSkipReason() }, async (t) => {
  const lab = createNetnsLab(t);
  const ns = await lab.ns('wgi');
  const name = lab.ifname('wgi');
  const iface = await createWgInterface(name, { netns: ns });
  t.teardown(() => iface.close());
  t.ok(iface.isAlive());
  t.ok(await linkExists(name, { netns: ns }), 'link exists in the namespace');
  t.notOk(await linkExists(name), 'and not outside it');
  t.same((await show(name, { netns: ns })).peers, [], 'wg talks to it');
  await t.rejects(createWgInterface(name, { netns: ns, implementation: 'userspace' }), { code: 'WG_USERSPACE_FAILED', message: /already exists/ });
  await iface.close();
  await iface.close();
  t.notOk(iface.isAlive());
  t.notOk(await linkExists(name, { netns: ns }), 'link removed');
});

t.test('wg-interface: failures to start are coded and leave nothing behind', { skip: netnsSkipReason() }, async (t) => {
  const lab = createNetnsLab(t);
  const ns = await lab.ns('wgf');
  const name = lab.ifname('wgf');
  await t.rejects(createWgInterface(name, { netns: ns, implementation: 'userspace', wireguardGoPath: '/nonexistent/wireguard-go' }), { code: 'WG_USERSPACE_FAILED', message: /exited during start/ });
  // A stand-in that never creates its socket: start must give up at the deadline and kill it.
  const hang = join(await tempDir(t), 'hang');
  await writeFile(hang, '#!/bin/sh\nexec sleep 30\n');
  await chmod(hang, 0o755);
  await t.rejects(createWgInterface(name, { netns: ns, implementation: 'userspace', wireguardGoPath: hang, startTimeoutMs: 200 }), { code: 'WG_USERSPACE_FAILED', message: /within 200 ms/ });
  t.notOk(await linkExists(name, { netns: ns }));
  await t.rejects(createWgInterface('bad/name'), { code: 'SYS_BAD_IFNAME' });
});
