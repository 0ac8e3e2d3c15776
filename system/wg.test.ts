import t from 'tap';
import fc from 'fast-check';
import { createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import { hasCommand } from '../test/helpers/netns.js';
import { assertWgKey, diffPeers, genKey, isWgKey, parseDump, pubKey, type WgPeerSpec } from './wg.js';

// Keys are made per run: no key, not even a test one, is committed.
const key = () => randomBytes(32).toString('base64');

t.test('wg: parseDump reads the interface line and every peer field', async (t) => {
  const [priv, pub, p1, p2, psk] = [key(), key(), key(), key(), key()];
  const dump = [
    [priv, pub, '51820', 'off'],
    [p1, '(none)', '192.0.2.10:40000', '10.77.0.2/32', '1700000000', '1234', '5678', '25'],
    [p2, psk, '[2001:db8::1]:51820', '10.77.0.3/32,fd00::3/128', '0', '0', '0', 'off'],
  ].map((f) => f.join('\t')).join('\n') + '\n';
  const state = parseDump(dump);
  t.equal(state.publicKey, pub);
  t.equal(state.listenPort, 51820);
  t.equal(state.fwmark, undefined);
  t.same(state.peers[0], {
    publicKey: p1, hasPresharedKey: false, endpoint: '192.0.2.10:40000', allowedIps: ['10.77.0.2/32'],
    latestHandshake: new Date(1700000000 * 1000), rxBytes: 1234, txBytes: 5678, persistentKeepaliveSeconds: 25,
  });
  t.same(state.peers[1], {
    publicKey: p2, hasPresharedKey: true, endpoint: '[2001:db8::1]:51820', allowedIps: ['10.77.0.3/32', 'fd00::3/128'],
    latestHandshake: undefined, rxBytes: 0, txBytes: 0, persistentKeepaliveSeconds: undefined,
  });
  t.notMatch(JSON.stringify(state), priv, 'the private key is not in the parsed state');
});

t.test('wg: parseDump handles a fresh interface, hex fwmark, no trailing newline and peers without allowed IPs', async (t) => {
  t.same(parseDump('(none)\t(none)\t0\toff\n'), { publicKey: undefined, listenPort: 0, fwmark: undefined, peers: [] });
  const p = key();
  const s = parseDump(`${key()}\t${key()}\t37197\t0xca6c\n${p}\t(none)\t(none)\t(none)\t0\t0\t0\toff`);
  t.equal(s.fwmark, 0xca6c);
  t.same(s.peers.map((x) => [x.publicKey, x.endpoint, x.allowedIps]), [[p, undefined, []]]);
});

t.test('wg: parseDump refuses malformed output with the line number and never the private key', async (t) => {
  const priv = key();
  const cases: [string, RegExp][] = [
    ['', /line 1: no interface line/],
    [`wg0\t${priv}\t${key()}\t51820\toff\n`, /line 1: .*4 tab-separated fields .*"all" dump/],
    [`${priv}\t${key()}\tport\toff\n`, /line 1: listen port/],
    [`${priv}\t${key()}\t70000\toff\n`, /line 1: listen port is above 65535/],
    [`${priv}\tnot-a-key\t1\toff\n`, /line 1: public key/],
    [`${priv}\t${key()}\t1\tmark\n`, /line 1: fwmark/],
    [`${priv}\t${key()}\t1\toff\n${key()}\t(none)\n`, /line 2: a peer line has 8/],
    [`${priv}\t${key()}\t1\toff\n(none)\t(none)\t(none)\t(none)\t0\t0\t0\toff\n`, /line 2: peer without a public key/],
    [`${priv}\t${key()}\t1\toff\n${key()}\t(none)\t(none)\t10.0.0.0/33\t0\t0\t0\toff\n`, /line 2: allowed IP/],
    [`${priv}\t${key()}\t1\toff\n${key()}\t(none)\t(none)\t(none)\t-1\t0\t0\toff\n`, /line 2: latest handshake/],
    [`${priv}\t${key()}\t1\toff\n${key()}\t(none)\t(none)\t(none)\t0\tx\t0\toff\n`, /line 2: transfer rx/],
  ];
  for (const [text, re] of cases) {
    const err = (() => {
      try {
        parseDump(text);
        return undefined;
      } catch (e) {
        return e as Error & { code?: string };
      }
    })();
    t.equal(err?.code, 'WG_PARSE_FAILED', `refused: ${re}`);
    t.match(err?.message ?? '', re);
    t.notMatch(err?.message ?? '', priv, 'message does not quote the private key');
  }
});

t.test('wg: keys are 44 characters of canonical base64 encoding 32 bytes', async (t) => {
  const good = key();
  t.ok(isWgKey(good));
  t.notOk(isWgKey(good.slice(0, 43)), 'too short');
  t.notOk(isWgKey(`${good}=`), 'too long');
  t.notOk(isWgKey(`${good.slice(0, 42)}B=`), 'non-zero padding bits');
  t.notOk(isWgKey(`${good.slice(0, 41)}-_=`), 'base64url alphabet');
  t.notOk(isWgKey(randomBytes(33).toString('base64')), '33 bytes');
  t.throws(() => assertWgKey('secret-private-material', 'private key'), { code: 'WG_BAD_KEY', message: /private key: .*\(23 characters\)/ });
  try {
    assertWgKey('secret-private-material', 'private key');
  } catch (e) {
    t.notMatch((e as Error).message, 'secret-private', 'a bad private key is not echoed');
  }
  t.throws(() => assertWgKey('abc', 'peer', { isPublic: true }), { message: /got "abc"/ });
});

t.test('wg: genKey and pubKey agree with an independent X25519 implementation', { skip: hasCommand('wg') ? false : 'needs wg (wireguard-tools)' }, async (t) => {
  const priv = await genKey();
  t.ok(isWgKey(priv));
  // PKCS#8 wrapping of a raw X25519 private key (RFC 8410): fixed 16-byte prefix, then the key.
  const der = Buffer.concat([Buffer.from('302e020100300506032b656e04220420', 'hex'), Buffer.from(priv, 'base64')]);
  const nodePub = createPublicKey(createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })).export({ format: 'jwk' }).x;
  t.equal(Buffer.from(await pubKey(priv), 'base64').toString('base64url'), nodePub);
  await t.rejects(pubKey('nope'), { code: 'WG_BAD_KEY' });
});

const arbKey = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('base64'));
const arbIps = fc.uniqueArray(fc.integer({ min: 2, max: 40 }).map((n) => `10.77.0.${n}/32`), { maxLength: 3 });
const arbPeer = fc.record({ publicKey: arbKey, allowedIps: arbIps });
const arbPeers = fc.uniqueArray(arbPeer, { selector: (p) => p.publicKey, maxLength: 8 });

function applyDiff(current: readonly WgPeerSpec[], d: ReturnType<typeof diffPeers>): Map<string, string> {
  const state = new Map(current.map((p) => [p.publicKey, [...p.allowedIps].sort().join(',')]));
  for (const k of d.remove) state.delete(k);
  for (const p of [...d.add, ...d.update]) state.set(p.publicKey, [...p.allowedIps].sort().join(','));
  return state;
}

t.test('wg: diffPeers turns any current set into the desired one, touching only what differs', async (t) => {
  fc.assert(
    fc.property(arbPeers, arbPeers, fc.boolean(), (fresh, desired, overlap) => {
      // Share some keys between the two sides so updates and no-ops happen, not only add/remove.
      const current = overlap ? [...desired.slice(0, 3).map((p, i) => (i === 0 ? p : { ...p, allowedIps: [...p.allowedIps].reverse().concat('10.77.1.0/24') })), ...fresh.filter((f) => !desired.some((d) => d.publicKey === f.publicKey))] : fresh;
      const d = diffPeers(current, desired);
      const want = new Map(desired.map((p) => [p.publicKey, [...p.allowedIps].sort().join(',')]));
      const got = applyDiff(current, d);
      if (JSON.stringify([...got].sort()) !== JSON.stringify([...want].sort())) return false;
      const currentKeys = new Set(current.map((p) => p.publicKey));
      const desiredKeys = new Set(desired.map((p) => p.publicKey));
      const same = (p: WgPeerSpec) => current.some((c) => c.publicKey === p.publicKey && [...c.allowedIps].sort().join() === [...p.allowedIps].sort().join());
      return d.add.every((p) => !currentKeys.has(p.publicKey))
        && d.update.every((p) => currentKeys.has(p.publicKey) && !same(p))
        && d.remove.every((k) => !desiredKeys.has(k))
        && desired.filter(same).every((p) => !d.update.includes(p) && !d.add.includes(p));
    }),
  );
  t.pass('property holds');
});

t.test('wg: diffPeers compares allowed IPs canonically, endpoint and keepalive only when desired, and refuses duplicates', async (t) => {
  const k = key();
  const cur = [{ publicKey: k, allowedIps: ['10.77.0.2/32'], endpoint: '192.0.2.1:1', persistentKeepaliveSeconds: 25 }];
  t.same(diffPeers(cur, [{ publicKey: k, allowedIps: ['10.77.0.2'] }]), { add: [], update: [], remove: [] }, 'bare address equals /32; unset fields ignored');
  t.equal(diffPeers(cur, [{ publicKey: k, allowedIps: ['10.77.0.2/32'], endpoint: '192.0.2.1:2' }]).update.length, 1, 'endpoint change');
  t.equal(diffPeers(cur, [{ publicKey: k, allowedIps: ['10.77.0.2/32'], persistentKeepaliveSeconds: 0 }]).update.length, 1, 'keepalive off');
  t.equal(diffPeers([{ publicKey: k, allowedIps: ['10.77.0.2/32'] }], [{ publicKey: k, allowedIps: ['10.77.0.2/32'], persistentKeepaliveSeconds: 0 }]).update.length, 0, '0 means off');
  t.throws(() => diffPeers([], [{ publicKey: k, allowedIps: [] }, { publicKey: k, allowedIps: [] }]), { code: 'WG_BAD_PEER' });
});
