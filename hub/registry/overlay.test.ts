import t from 'tap';
import fc from 'fast-check';
import { allocateAddress, hubAddress, intToIpv4, ipv4ToInt } from './overlay.js';

t.test('overlay: the hub is the first host; countries get the lowest free address, never network, hub or broadcast', async (t) => {
  t.equal(hubAddress('10.77.0.0/16'), '10.77.0.1');
  t.equal(allocateAddress('10.77.0.0/16', new Set()), '10.77.0.2');
  t.equal(allocateAddress('10.77.0.0/16', new Set(['10.77.0.2', '10.77.0.4'])), '10.77.0.3');
  t.equal(allocateAddress('10.77.0.0/30', new Set()), '10.77.0.2', 'a /30 has the hub and one country');
  t.equal(allocateAddress('10.77.0.0/30', new Set(['10.77.0.2'])), undefined, 'and then it is full');
  const used = new Set<string>();
  for (let i = 0; i < 253; i++) used.add(allocateAddress('192.168.5.0/24', used) as string);
  t.equal(used.size, 253);
  t.notOk(used.has('192.168.5.0') || used.has('192.168.5.1') || used.has('192.168.5.255'));
  t.equal(allocateAddress('192.168.5.0/24', used), undefined, 'full');
  fc.assert(fc.property(fc.nat({ max: 0xffffffff }), (n) => ipv4ToInt(intToIpv4(n)) === n));
});
