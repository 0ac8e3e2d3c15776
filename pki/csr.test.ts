import t, { type Test } from 'tap';
import fc from 'fast-check';
import { readFile } from 'node:fs/promises';
import { makeCsr } from '../test/helpers/openssl.js';
import { tempDir } from '../test/helpers/tmpdir.js';
import { verifyCsr, MAX_CSR_BYTES } from './csr.js';
import { CsrError } from './errors.js';
import { readOnePem, toPem } from './pem.js';

const country = (name: string) => ({ kind: 'country' as const, name, keyTypes: ['p256' as const] });

async function csrText(dir: string, name: string, subject: string, key?: Parameters<typeof makeCsr>[3], extra?: string[]): Promise<string> {
  const { csrPath } = await makeCsr(dir, name, subject, key, extra);
  return readFile(csrPath, 'utf8');
}

function refusedWith(t: Test, fn: () => unknown, code: string, why: string): void {
  t.throws(fn, { code }, why);
  try {
    fn();
  } catch (err) {
    t.ok(err instanceof CsrError, `${why}: a CsrError`);
  }
}

t.test('csr: accepts an openssl P-256 request for the token\'s country', async (t) => {
  const dir = await tempDir(t);
  const pem = await csrText(dir, 'fr', '/CN=FR/OU=ncb/O=ncbnet');
  const v = verifyCsr(pem, country('FR'));
  t.equal(v.keyType, 'p256');
  t.same(v.publicKey.algorithm, { name: 'ECDSA', namedCurve: 'P-256' });
  t.equal(verifyCsr(v.der, country('FR')).keyType, 'p256', 'DER input works as well as PEM');
  t.equal(verifyCsr(await csrText(dir, 'empty', '/'), country('FR')).keyType, 'p256', 'an empty subject is fine: the CA sets it');
});

t.test('csr: a request for another country is refused, by CN, C or SAN', async (t) => {
  const dir = await tempDir(t);
  const byCn = await csrText(dir, 'de', '/CN=DE/OU=ncb/O=ncbnet');
  refusedWith(t, () => verifyCsr(byCn, country('FR')), 'PKI_CSR_COUNTRY_MISMATCH', 'CN=DE with an FR token');
  const byC = await csrText(dir, 'c', '/CN=FR/C=DE');
  refusedWith(t, () => verifyCsr(byC, country('FR')), 'PKI_CSR_COUNTRY_MISMATCH', 'C=DE with an FR token');
  const bySan = await csrText(dir, 'san', '/CN=FR', 'ec', ['-addext', 'subjectAltName=URI:urn:ncbnet:country:DE']);
  refusedWith(t, () => verifyCsr(bySan, country('FR')), 'PKI_CSR_COUNTRY_MISMATCH', 'SAN of DE with an FR token');
  const ownSan = await csrText(dir, 'own', '/CN=FR', 'ec', ['-addext', 'subjectAltName=URI:urn:ncbnet:country:FR']);
  t.equal(verifyCsr(ownSan, country('FR')).keyType, 'p256', 'its own SAN is fine');
});

t.test('csr: a subject asking for another role or extra attributes is refused', async (t) => {
  const dir = await tempDir(t);
  const hubOu = await csrText(dir, 'ou', '/CN=FR/OU=hub/O=ncbnet');
  refusedWith(t, () => verifyCsr(hubOu, country('FR')), 'PKI_CSR_BAD_SUBJECT', 'OU=hub from a country');
  const extra = await csrText(dir, 'l', '/CN=FR/L=Lyon');
  refusedWith(t, () => verifyCsr(extra, country('FR')), 'PKI_CSR_BAD_SUBJECT', 'an L attribute');
  const dnsSan = await csrText(dir, 'dns', '/CN=FR', 'ec', ['-addext', 'subjectAltName=DNS:hub.example']);
  refusedWith(t, () => verifyCsr(dnsSan, country('FR')), 'PKI_CSR_BAD_SUBJECT', 'a DNS SAN from a country');
});

t.test('csr: weak and unsupported keys are refused with their own codes', async (t) => {
  const dir = await tempDir(t);
  const rsa512 = await csrText(dir, 'rsa512', '/CN=FR', 'rsa:512');
  refusedWith(t, () => verifyCsr(rsa512, country('FR')), 'PKI_CSR_WEAK_KEY', 'RSA-512');
  t.match(catchMessage(() => verifyCsr(rsa512, country('FR'))), /RSA 512-bit key is too weak/);
  const rsa2048 = await csrText(dir, 'rsa2048', '/CN=FR', 'rsa:2048');
  refusedWith(t, () => verifyCsr(rsa2048, country('FR')), 'PKI_CSR_KEY_TYPE', 'RSA-2048 is strong but not P-256');
  const p384 = await csrText(dir, 'p384', '/CN=FR', 'ec384');
  refusedWith(t, () => verifyCsr(p384, country('FR')), 'PKI_CSR_KEY_TYPE', 'P-384');
  const ed = await csrText(dir, 'ed', '/CN=FR', 'ed25519');
  refusedWith(t, () => verifyCsr(ed, country('FR')), 'PKI_CSR_KEY_TYPE', 'Ed25519 for a country (needs ECDH for CMS)');
  const op = await csrText(dir, 'op', '/CN=alice/OU=operator/O=ncbnet', 'ed25519');
  t.equal(verifyCsr(op, { kind: 'operator', name: 'alice', keyTypes: ['p256', 'ed25519'] }).keyType, 'ed25519', 'Ed25519 where the consumer supports it');
});

t.test('csr: a request whose signature does not match is refused', async (t) => {
  const dir = await tempDir(t);
  const der = readOnePem(await csrText(dir, 'fr', '/CN=FR'), ['CERTIFICATE REQUEST']).der;
  const tampered = new Uint8Array(der);
  // Change the subject's CN byte 'F' -> 'G' inside the signed part: signature no longer matches.
  const at = Buffer.from(tampered).indexOf(Buffer.from('FR'));
  t.ok(at > 0, 'found the CN in the DER');
  tampered[at] = 0x47;
  refusedWith(t, () => verifyCsr(toPem('CERTIFICATE REQUEST', tampered), { ...country('GR') }), 'PKI_CSR_BAD_SIGNATURE', 'altered subject');
  const badSig = new Uint8Array(der);
  badSig[badSig.length - 3] = (badSig[badSig.length - 3] as number) ^ 0xff;
  refusedWith(t, () => verifyCsr(badSig, country('FR')), 'PKI_CSR_BAD_SIGNATURE', 'flipped signature bits');
});

t.test('csr: SHA-1 signatures are refused as weak', async (t) => {
  const dir = await tempDir(t);
  const sha1 = await csrText(dir, 'sha1', '/CN=FR', 'ec', ['-sha1']);
  refusedWith(t, () => verifyCsr(sha1, country('FR')), 'PKI_CSR_WEAK_ALGORITHM', 'ecdsa-with-SHA1');
});

t.test('csr: malformed input is a clear error, never a crash', async (t) => {
  refusedWith(t, () => verifyCsr('hello', country('FR')), 'PKI_CSR_MALFORMED', 'not PEM');
  refusedWith(t, () => verifyCsr('-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n', country('FR')), 'PKI_CSR_MALFORMED', 'truncated PEM');
  refusedWith(t, () => verifyCsr(toPem('CERTIFICATE', new Uint8Array([0x30, 0x00])), country('FR')), 'PKI_CSR_MALFORMED', 'wrong label');
  refusedWith(t, () => verifyCsr(toPem('CERTIFICATE REQUEST', new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x00])), country('FR')), 'PKI_CSR_MALFORMED', 'DER of the wrong shape');
  refusedWith(t, () => verifyCsr(new Uint8Array(MAX_CSR_BYTES + 1), country('FR')), 'PKI_CSR_MALFORMED', 'oversized');
  refusedWith(t, () => verifyCsr('x', { kind: 'operator', name: 'Bad Name', keyTypes: ['p256'] }), 'PKI_CSR_BAD_SUBJECT', 'operator name with spaces');
});

t.test('csr: any bytes or text give a CsrError and nothing else (fuzz)', async (t) => {
  const dir = await tempDir(t);
  const good = readOnePem(await csrText(dir, 'fr', '/CN=FR'), ['CERTIFICATE REQUEST']).der;
  const mutated = fc.tuple(fc.nat({ max: good.length - 1 }), fc.integer({ min: 1, max: 255 })).map(([i, x]) => {
    const copy = new Uint8Array(good);
    copy[i] = (copy[i] as number) ^ x;
    return copy;
  });
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 600 }), mutated, fc.string({ maxLength: 300 })), (input) => {
      try {
        verifyCsr(input, country('FR'));
        return true; // a mutation in a non-signed, non-checked byte can still be a valid request
      } catch (err) {
        return err instanceof CsrError;
      }
    }),
    { numRuns: 400 },
  );
  t.pass('no input escaped as anything but a CsrError');
});

function catchMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return (err as Error).message;
  }
  return '';
}
