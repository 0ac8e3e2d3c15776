import t, { type Test } from 'tap';
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as pkijs from 'pkijs';
import { makeCsr, openssl, opensslOk } from '../test/helpers/openssl.js';
import { tempDir } from '../test/helpers/tmpdir.js';
import { initCa } from './ca-init.js';
import { CertificateAuthority } from './ca.js';
import { cmsRecipientSerials, decryptForRecipient, encryptForRecipients, MAX_CMS_PLAINTEXT_BYTES, MAX_CMS_RECIPIENTS } from './cms.js';
import { createCsr } from './csr-create.js';
import { PkiError } from './errors.js';
import { generateP256, privateKeyToPem } from './keys.js';

interface Country {
  cc: string;
  keys: CryptoKeyPair;
  pem: string;
  der: Uint8Array;
  keyPem: string;
  serial: string;
  certPath: string;
  keyPath: string;
}

/** A throwaway CA and a way to enroll countries in it (files written for openssl). */
async function freshCa(t: Test) {
  const dir = await tempDir(t);
  await initCa(dir);
  const ca = await CertificateAuthority.load(dir);
  const country = async (cc: string): Promise<Country> => {
    const keys = await generateP256();
    const issued = await ca.issue({ kind: 'country', name: cc, csr: await createCsr('country', cc, keys) });
    const keyPem = await privateKeyToPem(keys.privateKey);
    const certPath = join(dir, `${cc}.crt`);
    const keyPath = join(dir, `${cc}.key`);
    await writeFile(certPath, issued.pem);
    await writeFile(keyPath, keyPem, { mode: 0o600 });
    return { cc, keys, pem: issued.pem, der: new Uint8Array(issued.certificate.rawData), keyPem, serial: issued.serial, certPath, keyPath };
  };
  return { dir, ca, country };
}

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** The wrapped content-encryption key of the first recipient, as it appears in the DER. */
function firstWrappedKey(der: Uint8Array): Uint8Array {
  const enveloped = new pkijs.EnvelopedData({ schema: pkijs.ContentInfo.fromBER(new Uint8Array(der)).content });
  const kari = enveloped.recipientInfos[0]?.value;
  if (!(kari instanceof pkijs.KeyAgreeRecipientInfo)) throw new Error('first recipient is not KeyAgreeRecipientInfo');
  const rek = kari.recipientEncryptedKeys.encryptedKeys[0];
  if (!rek) throw new Error('no RecipientEncryptedKey');
  return rek.encryptedKey.valueBlock.valueHexView;
}

/** Resolves, or rejects with a PkiError; fails the property on anything else. */
async function onlyPkiError(run: () => Promise<unknown>): Promise<boolean> {
  try {
    await run();
    return true;
  } catch (err) {
    return err instanceof PkiError;
  }
}

t.test('cms: one recipient decrypts what was encrypted to it, with a PEM key or its CryptoKey', async (t) => {
  const { country } = await freshCa(t);
  const fr = await country('FR');
  const message = 'Notice rouge: Jean Dupont, né le 1970-01-01 — ✓';
  const cms = await encryptForRecipients(message, [fr.pem]);
  t.equal(text(await decryptForRecipient(cms, fr.pem, fr.keyPem)), message, 'PKCS#8 PEM key');
  t.equal(text(await decryptForRecipient(cms, fr.der, fr.keys.privateKey)), message, 'extractable ECDSA CryptoKey, DER certificate');
  t.same(cmsRecipientSerials(cms), [fr.serial], 'the audit sees the one reader');
  const fromDer = await encryptForRecipients(new TextEncoder().encode(message), [fr.der]);
  t.equal(text(await decryptForRecipient(fromDer, fr.pem, fr.keyPem)), message, 'bytes in, DER certificate');
  t.not(fromDer, cms, 'a fresh content key and ephemeral key each time');
  const pkcs8 = await crypto.subtle.exportKey('pkcs8', fr.keys.privateKey);
  const ecdh = await crypto.subtle.importKey('pkcs8', pkcs8, { name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits']);
  t.equal(text(await decryptForRecipient(cms, fr.pem, ecdh)), message, 'non-extractable ECDH CryptoKey (an HSM-style key)');
  const locked = await crypto.subtle.importKey('pkcs8', pkcs8, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
  await t.rejects(decryptForRecipient(cms, fr.pem, locked), { code: 'PKI_CMS_BAD_KEY' }, 'non-extractable ECDSA key cannot do ECDH');
});

t.test('cms: each of three recipients decrypts; a fourth country is not a recipient', async (t) => {
  const { country } = await freshCa(t);
  const [fr, de, it, es] = await Promise.all(['FR', 'DE', 'IT', 'ES'].map(country));
  if (!fr || !de || !it || !es) throw new Error('countries not issued');
  const cms = await encryptForRecipients('diffusion to three NCBs', [fr.pem, de.pem, it.pem, de.pem]);
  t.same(cmsRecipientSerials(cms).sort(), [fr.serial, de.serial, it.serial].sort(), 'each reader once; a repeated certificate is not repeated');
  // IT is found at index 2 by issuer and serial; decrypting "the first" would give FR's key to IT.
  for (const c of [it, de, fr]) t.equal(text(await decryptForRecipient(cms, c.pem, c.keyPem)), 'diffusion to three NCBs', `${c.cc} reads it`);
  await t.rejects(decryptForRecipient(cms, es.pem, es.keyPem), { code: 'PKI_CMS_NOT_RECIPIENT' }, 'ES cannot');
  await t.rejects(decryptForRecipient(cms, fr.pem, de.keyPem), { code: 'PKI_CMS_KEY_MISMATCH' }, "FR's certificate with DE's key");
});

t.test('cms: openssl cms -decrypt reads our DER output, which does not contain the plaintext', async (t) => {
  const { dir, country } = await freshCa(t);
  const fr = await country('FR');
  const de = await country('DE');
  const message = `wanted person ${'ABCDEFGH'.repeat(300)} end`;
  const cms = await encryptForRecipients(message, [de.pem, fr.pem]);
  const der = Buffer.from(cms, 'base64');
  t.equal(der.indexOf(Buffer.from('wanted person')), -1, 'plaintext prefix absent from the ciphertext');
  t.equal(der.indexOf(Buffer.from('ABCDEFGH')), -1, 'repeated plaintext block absent');
  const path = join(dir, 'msg.der');
  await writeFile(path, der);
  for (const c of [fr, de]) {
    const r = await openssl(['cms', '-decrypt', '-inform', 'DER', '-in', path, '-recip', c.certPath, '-inkey', c.keyPath]);
    t.equal(r.code, 0, `openssl decrypts as ${c.cc}: ${r.stderr}`);
    t.equal(r.stdout, message, `${c.cc}: same plaintext`);
  }
  const printed = await opensslOk(['cms', '-cmsout', '-print', '-inform', 'DER', '-in', path]);
  t.match(printed, /aes-256-cbc/, 'AES-256-CBC content encryption');
  t.match(printed, /dhSinglePass-stdDH-sha256kdf-scheme/, 'ECDH with the SHA-256 X9.63 KDF (RFC 5753)');
  t.match(printed, /id-aes256-wrap/, 'AES-256 key wrap');
  const parsed = await opensslOk(['asn1parse', '-inform', 'DER', '-in', path]);
  t.notMatch(parsed, /l=inf/, 'definite lengths only: DER, not BER');
});

t.test('cms: a message from openssl cms -encrypt -aes256 is decrypted by us', async (t) => {
  const { dir, country } = await freshCa(t);
  const fr = await country('FR');
  const de = await country('DE');
  const message = 'from an independent implementation\r\nline two\n';
  const plainPath = join(dir, 'plain.txt');
  const outPath = join(dir, 'msg.der');
  await writeFile(plainPath, message);
  await opensslOk(['cms', '-encrypt', '-binary', '-aes256', '-in', plainPath, '-outform', 'DER', '-out', outPath, '-recip', de.certPath, '-recip', fr.certPath]);
  const cms = (await readFile(outPath)).toString('base64');
  t.same(cmsRecipientSerials(cms).sort(), [de.serial, fr.serial].sort(), 'openssl names both by issuer and serial');
  // openssl sends no ukm and uses the SHA-1 KDF: what pkijs's own decrypt gets wrong (empty entityUInfo).
  t.equal(text(await decryptForRecipient(cms, fr.pem, fr.keyPem)), message, 'FR reads it');
  t.equal(text(await decryptForRecipient(cms, de.pem, de.keys.privateKey)), message, 'DE reads it');

  await opensslOk(['cms', '-encrypt', '-binary', '-des3', '-in', plainPath, '-outform', 'DER', '-out', outPath, '-recip', fr.certPath]);
  const des = (await readFile(outPath)).toString('base64');
  await t.rejects(decryptForRecipient(des, fr.pem, fr.keyPem), { code: 'PKI_CMS_UNSUPPORTED' }, 'only AES-256-CBC content is read');

  // A shared-key recipient (KEKRecipientInfo) names no certificate: the audit cannot say who reads it.
  await opensslOk(['cms', '-encrypt', '-binary', '-aes256', '-in', plainPath, '-outform', 'DER', '-out', outPath, '-recip', fr.certPath, '-secretkey', '00'.repeat(32), '-secretkeyid', '0102']);
  const kek = (await readFile(outPath)).toString('base64');
  t.throws(() => cmsRecipientSerials(kek), { code: 'PKI_CMS_UNSUPPORTED' }, 'a shared-key reader is not silently left out');
  t.equal(text(await decryptForRecipient(kek, fr.pem, fr.keyPem)), message, 'FR still finds its own recipient info among others');
});

t.test('cms: altered messages are refused, and an altered ciphertext never yields the original', async (t) => {
  const { country } = await freshCa(t);
  const fr = await country('FR');
  const message = 'do not change me'.repeat(8);
  const der = Buffer.from(await encryptForRecipients(message, [fr.pem]), 'base64');
  const flip = (offset: number) => {
    const copy = Buffer.from(der);
    copy[offset] = (copy[offset] ?? 0) ^ 0x01;
    return copy.toString('base64');
  };
  const wrapped = der.indexOf(Buffer.from(firstWrappedKey(der)));
  t.ok(wrapped > 0, 'wrapped key found in the DER');
  // RFC 3394 key unwrap carries an integrity check, so any change to the wrapped key is caught.
  await t.rejects(decryptForRecipient(flip(wrapped + 5), fr.pem, fr.keyPem), { code: 'PKI_CMS_DECRYPT_FAILED' }, 'wrapped key altered');
  await t.rejects(decryptForRecipient(der.subarray(0, der.length - 7).toString('base64'), fr.pem, fr.keyPem), { code: 'PKI_CMS_MALFORMED' }, 'truncated');
  await t.rejects(decryptForRecipient(`${der.toString('base64')}AAAA`, fr.pem, fr.keyPem), { code: 'PKI_CMS_MALFORMED' }, 'trailing bytes');
  // The content is CBC, which is malleable: a changed block may still pad correctly. What must
  // hold is that the original never comes out; authenticity is the envelope signature's job.
  for (const offset of [der.length - 1, der.length - 20, der.length - 40]) {
    try {
      const out = await decryptForRecipient(flip(offset), fr.pem, fr.keyPem);
      t.not(text(out), message, `content byte -${der.length - offset} altered: different plaintext`);
    } catch (err) {
      t.ok(err instanceof PkiError && ['PKI_CMS_DECRYPT_FAILED', 'PKI_CMS_MALFORMED'].includes(err.code), `content byte -${der.length - offset} altered: refused`);
    }
  }
});

t.test('cms: garbage and mutated messages raise only PkiError', async (t) => {
  const { country } = await freshCa(t);
  const fr = await country('FR');
  const valid = Buffer.from(await encryptForRecipients('fuzz target', [fr.pem]), 'base64');
  const reads = async (cms: string) => {
    const a = await onlyPkiError(() => decryptForRecipient(cms, fr.pem, fr.keyPem));
    const b = await onlyPkiError(async () => cmsRecipientSerials(cms));
    return a && b;
  };
  await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 1024 }), (bytes) => reads(Buffer.from(bytes).toString('base64'))), { numRuns: 300 });
  await fc.assert(fc.asyncProperty(fc.string({ maxLength: 200 }), (s) => reads(s)), { numRuns: 200 });
  const mutation = fc.array(fc.record({ at: fc.nat({ max: valid.length - 1 }), xor: fc.integer({ min: 1, max: 255 }) }), { minLength: 1, maxLength: 4 });
  await fc.assert(
    fc.asyncProperty(mutation, fc.nat({ max: valid.length }), (changes, keep) => {
      const copy = Buffer.from(valid);
      for (const { at, xor } of changes) copy[at] = (copy[at] ?? 0) ^ xor;
      return reads(copy.toString('base64')).then(async (ok) => ok && (await reads(copy.subarray(0, keep).toString('base64'))));
    }),
    { numRuns: 400 },
  );
  await t.rejects(decryptForRecipient(42 as unknown as string, fr.pem, fr.keyPem), { code: 'PKI_CMS_MALFORMED' }, 'not a string');
  t.throws(() => cmsRecipientSerials('not base64!'), { code: 'PKI_CMS_MALFORMED' });
  await t.rejects(decryptForRecipient(valid.toString('base64'), fr.pem, 'not a key'), { code: 'PKI_CMS_BAD_KEY' }, 'garbage key');
  await t.rejects(decryptForRecipient(valid.toString('base64'), fr.pem, fr.keys.publicKey), { code: 'PKI_CMS_BAD_KEY' }, 'a public key');
  await t.rejects(decryptForRecipient(valid.toString('base64'), 'junk', fr.keyPem), { code: 'PKI_CMS_BAD_RECIPIENT' }, 'garbage certificate');
});

t.test('cms: recipients without keyAgreement or a P-256 key, and bad recipient lists, are refused', async (t) => {
  const { dir, ca, country } = await freshCa(t);
  const fr = await country('FR');
  const opKeys = await generateP256();
  const operator = await ca.issue({ kind: 'operator', name: 'alice', csr: await createCsr('operator', 'alice', opKeys) });
  await t.rejects(encryptForRecipients('x', [fr.pem, operator.pem]), { code: 'PKI_CMS_BAD_RECIPIENT', message: /recipients\[1\].*keyAgreement/ }, 'operator certificate: digitalSignature only');
  const edCsr = await makeCsr(dir, 'ed', '/CN=bob/OU=operator/O=ncbnet', 'ed25519');
  const ed = await ca.issue({ kind: 'operator', name: 'bob', csr: await readFile(edCsr.csrPath, 'utf8') });
  await t.rejects(encryptForRecipients('x', [ed.pem]), { code: 'PKI_CMS_BAD_RECIPIENT', message: /not EC P-256/ }, 'Ed25519 key');
  const p384 = join(dir, 'p384.crt');
  await opensslOk(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:secp384r1', '-nodes', '-keyout', join(dir, 'p384.key'), '-subj', '/CN=P384', '-addext', 'keyUsage=critical,keyAgreement', '-out', p384]);
  await t.rejects(encryptForRecipients('x', [await readFile(p384, 'utf8')]), { code: 'PKI_CMS_BAD_RECIPIENT', message: /not EC P-256/ }, 'P-384 with keyAgreement');
  await t.rejects(encryptForRecipients('x', ['-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n']), { code: 'PKI_CMS_BAD_RECIPIENT' }, 'not a certificate');
  await t.rejects(encryptForRecipients('x', []), { code: 'PKI_CMS_NO_RECIPIENTS' });
  await t.rejects(encryptForRecipients('x', Array<string>(MAX_CMS_RECIPIENTS + 1).fill(fr.pem)), { code: 'PKI_CMS_TOO_MANY_RECIPIENTS' });
  await t.rejects(encryptForRecipients(new Uint8Array(MAX_CMS_PLAINTEXT_BYTES + 1), [fr.pem]), { code: 'PKI_CMS_TOO_LARGE' });
});

t.test('cms: a 200 KiB body round trips, and openssl reads it too', async (t) => {
  const { dir, country } = await freshCa(t);
  const fr = await country('FR');
  const body = new Uint8Array(randomBytes(200 * 1024));
  const cms = await encryptForRecipients(body, [fr.pem]);
  t.ok(Buffer.from(await decryptForRecipient(cms, fr.pem, fr.keyPem)).equals(body), 'same bytes back');
  const path = join(dir, 'big.der');
  await writeFile(path, Buffer.from(cms, 'base64'));
  const out = join(dir, 'big.out');
  await opensslOk(['cms', '-decrypt', '-binary', '-inform', 'DER', '-in', path, '-recip', fr.certPath, '-inkey', fr.keyPath, '-out', out]);
  t.ok((await readFile(out)).equals(body), 'openssl gets the same bytes');
  t.notMatch(await opensslOk(['asn1parse', '-inform', 'DER', '-in', path]), /l=inf/, 'no indefinite lengths (pkijs would split content over 1 KiB)');
});
