import t from 'tap';
import { randomBytes } from 'node:crypto';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { tempDir } from '../../test/helpers/tmpdir.js';
import { AgentTunnel, type AgentTunnelOptions } from './agent-tunnel.js';

const log = pino({ level: 'silent' });
// A valid key shape: 32 random bytes in base64 (no wg needed to make one).
const key = () => randomBytes(32).toString('base64');
const hub = { publicKey: key(), endpoint: 'hub.example.org:51820', overlayAddress: '10.77.0.1' };
const options = (dir: string, more: Partial<AgentTunnelOptions> = {}): AgentTunnelOptions => ({
  ifname: 'ncbnet0', privateKeyPath: join(dir, 'wg.key'), address: '10.77.0.2', hub, ...more,
});

t.test('agent tunnel: bad options are refused with every problem listed', async (t) => {
  const dir = await tempDir(t);
  t.throws(() => new AgentTunnel({
    ifname: 'much-too-long-name', privateKeyPath: '', address: '10.77.0.2/16',
    hub: { publicKey: 'nope', endpoint: '10.0.0.1', overlayAddress: 'hub' },
    keepaliveSeconds: -1, listenPort: 65536, netns: '../etc',
  }, log), {
    code: 'WG_BAD_CONFIG',
    problems: [
      'ifname: not an interface name of 1-15 characters [A-Za-z0-9_.-] (got "much-too-long-name")',
      'privateKeyPath: not a file path (got "")',
      'address: not one IPv4 address or /32 (got "10.77.0.2/16")',
      'hub.publicKey: not a WireGuard key (got "nope")',
      'hub.endpoint: not host:port with a port 1-65535 (got "10.0.0.1")',
      'hub.overlayAddress: not an IPv4 address (got "hub")',
      'keepaliveSeconds: not an integer 0-65535 (got -1)',
      'listenPort: not a port 1-65535 (got 65536)',
      'netns: not a network namespace name (got "../etc")',
    ],
  });
  t.throws(() => new AgentTunnel(options(dir, { address: '10.77.0.1/32' }), log), { code: 'WG_BAD_CONFIG', problems: ['address: the same as hub.overlayAddress (got "10.77.0.1/32")'] });
  t.throws(() => new AgentTunnel(options(dir, { hub: { ...hub, endpoint: 'hub:99999' } }), log), { code: 'WG_BAD_CONFIG', problems: [/^hub\.endpoint/] });
  for (const endpoint of ['192.0.2.1:51820', '[2001:db8::1]:51820', 'hub-1.example.org:1']) {
    t.doesNotThrow(() => new AgentTunnel(options(dir, { hub: { ...hub, endpoint } }), log), `endpoint ${endpoint} accepted`);
  }
  t.doesNotThrow(() => new AgentTunnel(options(dir, { address: '10.77.0.2/32', keepaliveSeconds: 0 }), log), '/32 and keepalive off accepted');
});

t.test('agent tunnel: a key file missing, readable by others or malformed is refused before any interface exists', async (t) => {
  const dir = await tempDir(t);
  const missing = new AgentTunnel(options(dir), log);
  await t.rejects(missing.start(), { code: 'WG_BAD_CONFIG', message: /no WireGuard private key/ }, 'the agent never makes its own key: enrollment does');
  for (const mode of [0o644, 0o640, 0o604, 0o660]) {
    const path = join(dir, `open-${mode.toString(8)}.key`);
    await writeFile(path, `${key()}\n`, { mode: 0o600 });
    await chmod(path, mode);
    await t.rejects(new AgentTunnel(options(dir, { privateKeyPath: path }), log).start(), { code: 'PKI_KEY_PERMISSIONS' }, `mode ${mode.toString(8)} counts as disclosed`);
  }
  const bad = join(dir, 'bad.key');
  await writeFile(bad, 'not a key\n', { mode: 0o600 });
  await t.rejects(new AgentTunnel(options(dir, { privateKeyPath: bad }), log).start(), { code: 'WG_BAD_KEY', message: /^(?!.*not a key)/ }, 'a malformed key is refused without echoing it');
});

t.test('agent tunnel: state, updateHub and stop before start', async (t) => {
  const dir = await tempDir(t);
  const tunnel = new AgentTunnel(options(dir), log);
  t.notOk(tunnel.isUp());
  t.same(await tunnel.state(), { up: false, lastHandshake: undefined, rxBytes: 0, txBytes: 0, endpoint: undefined }, 'down before start');
  await t.rejects(tunnel.updateHub({ publicKey: 'x', endpoint: 'hub', overlayAddress: '10.77.0.1' }), {
    code: 'WG_BAD_CONFIG', problems: [/^hub\.publicKey/, /^hub\.endpoint/],
  });
  t.same(tunnel.hub, hub, 'a refused hub changes nothing');
  t.same(await tunnel.updateHub(hub), [], 'the same hub is no change');
  const next = { publicKey: key(), endpoint: '192.0.2.7:51820', overlayAddress: '10.77.0.1' };
  t.same(await tunnel.updateHub(next), ['publicKey', 'endpoint'], 'changes reported');
  t.same(tunnel.hub, next, 'kept for start()');
  await tunnel.stop();
  await tunnel.stop();
  t.pass('stop before start is a no-op');
});
