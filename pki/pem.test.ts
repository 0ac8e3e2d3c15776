import t from 'tap';
import { readOnePem, readPemBlocks, toPem } from './pem.js';
import { normalizeSerial, randomSerial } from './serial.js';
import fc from 'fast-check';

t.test('pem: round-trips DER and reads several blocks', async (t) => {
  const der = new Uint8Array(Array.from({ length: 200 }, (_, i) => i));
  const pem = toPem('CERTIFICATE', der);
  t.match(pem, /^-----BEGIN CERTIFICATE-----\n(.{64}\n){4}.{12}\n-----END CERTIFICATE-----\n$/);
  t.same(readOnePem(pem, ['CERTIFICATE']).der, der);
  t.equal(readPemBlocks(pem + toPem('X509 CRL', der)).length, 2);
});

t.test('pem: malformed PEM is refused with PKI_PEM_MALFORMED and says what is wrong', async (t) => {
  const good = toPem('CERTIFICATE', new Uint8Array([1, 2, 3]));
  t.throws(() => readOnePem('', ['CERTIFICATE'], 'f.pem'), { code: 'PKI_PEM_MALFORMED', message: /f\.pem: no PEM block/ });
  t.throws(() => readOnePem(good.replace('END CERTIFICATE', 'END CRL'), ['CERTIFICATE']), { code: 'PKI_PEM_MALFORMED', message: /ends with END CRL/ });
  t.throws(() => readOnePem(good.replace('AQID', 'A*ID'), ['CERTIFICATE']), { code: 'PKI_PEM_MALFORMED', message: /not base64/ });
  t.throws(() => readOnePem(good.slice(0, 40), ['CERTIFICATE']), { code: 'PKI_PEM_MALFORMED', message: /truncated/ });
  t.throws(() => readOnePem(good + good, ['CERTIFICATE']), { code: 'PKI_PEM_MALFORMED', message: /2 PEM blocks/ });
  t.throws(() => readOnePem(good, ['PRIVATE KEY']), { code: 'PKI_PEM_MALFORMED', message: /is CERTIFICATE, expected PRIVATE KEY/ });
});

t.test('serial: random serials are positive, minimal, 128-bit', async (t) => {
  const seen = new Set<string>();
  for (let i = 0; i < 2000; i++) {
    const s = randomSerial();
    if (!/^(?!00)[0-7][0-9a-f]{31}$/.test(s)) t.fail(`bad serial ${s}`);
    seen.add(s);
  }
  t.equal(seen.size, 2000, 'no repeats');
});

t.test('serial: normalization accepts the spellings tools print, refuses the rest', async (t) => {
  t.equal(normalizeSerial('0A:1B:2C'), '0a1b2c');
  t.equal(normalizeSerial('0x00ff'), 'ff', 'leading zero octets dropped (a positive DER integer may carry one)');
  t.equal(normalizeSerial('abc'), '0abc');
  t.throws(() => normalizeSerial('xyz'), { code: 'PKI_SERIAL_MALFORMED' });
  t.throws(() => normalizeSerial('a'.repeat(41)), { code: 'PKI_SERIAL_MALFORMED' });
  fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 20 }), (bytes) => {
    const hex = Buffer.from(bytes).toString('hex');
    const n = normalizeSerial(hex.toUpperCase().match(/../g)?.join(':') ?? '');
    return n === normalizeSerial(hex) && BigInt(`0x${n}`) === BigInt(`0x${hex}`);
  }));
});
