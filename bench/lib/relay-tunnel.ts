/**
 * Tunnel cost for `bench/relay.ts`: two network namespaces joined by a veth, and a wireguard-go
 * tunnel between them over that veth (the agents' userspace implementation). TCP request/response
 * round trips of `bytes` from one namespace to the other, over the veth addresses and over the
 * tunnel addresses, interleaved round by round. Every namespace, link, wireguard-go and socket
 * carries a random id and is removed at the end (or on exit). Needs root, ip, wg, wireguard-go.
 */
import { fileURLToPath } from 'node:url';
import { hasCommand, isRoot, NetnsLab } from '../../test/helpers/netns.js';
import { addAddress, setUp } from '../../system/ip.js';
import { genKey, pubKey, setInterface, setPeer } from '../../system/wg.js';
import { createWgInterface, type WgInterface } from '../../system/wg-interface.js';

const ECHO = fileURLToPath(new URL('./relay-tcp-echo.ts', import.meta.url));
const PORT = 7777;
const WG_PORT = 51820;
const VETH = { a: '10.231.0.1', b: '10.231.0.2' };
const WG = { a: '10.232.0.1', b: '10.232.0.2' };

/** Why the tunnel figure cannot be measured here, or undefined when it can. */
export function tunnelSkipReason(): string | undefined {
  if (!isRoot()) return 'needs root (network namespaces, WireGuard interfaces)';
  const missing = ['ip', 'wg', 'wireguard-go'].filter((c) => !hasCommand(c));
  return missing.length > 0 ? `needs ${missing.join(', ')}` : undefined;
}

export interface TunnelRtts {
  veth: number[];
  tunnel: number[];
  implementation: string;
}

export async function measureTunnel(n: number, bytes: number, log: (s: string) => void): Promise<TunnelRtts> {
  const lab = new NetnsLab();
  const onExit = (): void => lab.cleanupSync();
  process.once('exit', onExit);
  const wgs: WgInterface[] = [];
  try {
    const nsA = await lab.ns('a');
    const nsB = await lab.ns('b');
    await lab.veth({ ns: nsA, address: `${VETH.a}/24` }, { ns: nsB, address: `${VETH.b}/24` });
    const keyA = await genKey();
    const keyB = await genKey();
    const ends = [
      { ns: nsA, key: keyA, peer: await pubKey(keyB), self: WG.a, other: WG.b, otherVeth: VETH.b, name: lab.ifname('wga') },
      { ns: nsB, key: keyB, peer: await pubKey(keyA), self: WG.b, other: WG.a, otherVeth: VETH.a, name: lab.ifname('wgb') },
    ];
    for (const e of ends) {
      const wg = await createWgInterface(e.name, { netns: e.ns, implementation: 'userspace' });
      wgs.push(wg);
      await setInterface(e.name, { privateKey: e.key, listenPort: WG_PORT }, { netns: e.ns });
      await setPeer(e.name, { publicKey: e.peer, allowedIps: [`${e.other}/32`], endpoint: `${e.otherVeth}:${WG_PORT}` }, { netns: e.ns });
      await addAddress(e.name, `${e.self}/24`, { netns: e.ns });
      await setUp(e.name, { netns: e.ns });
    }
    log(`  tunnel: namespaces ${nsA}, ${nsB}; veth ${VETH.a} ↔ ${VETH.b}; wireguard-go ${WG.a} ↔ ${WG.b}`);
    const server = lab.spawn(nsB, [process.execPath, '--import', 'tsx', ECHO, 'server', String(PORT)]);
    await server.waitForOutput(/listening/, 30_000);
    const warmup = Math.min(100, n);
    const { stdout } = await lab.exec(nsA, [process.execPath, '--import', 'tsx', ECHO, 'client', String(n), String(bytes), String(warmup), `${VETH.b}:${PORT}`, `${WG.b}:${PORT}`], {
      timeoutMs: 300_000,
    });
    const out = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, number[]>;
    await server.kill();
    return { veth: out[`${VETH.b}:${PORT}`] ?? [], tunnel: out[`${WG.b}:${PORT}`] ?? [], implementation: wgs[0]?.implementation ?? 'userspace' };
  } finally {
    for (const wg of wgs) await wg.close().catch(() => undefined);
    await lab.cleanup();
    process.off('exit', onExit);
  }
}
