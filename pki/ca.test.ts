import t from 'tap';
import { readFile, stat, writeFile, chmod, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { makeCsr, openssl, opensslOk } from '../test/helpers/openssl.js';
import { tempDir } from '../test/helpers/tmpdir.js';
import { initCa } from './ca-init.js';
import { CertificateAuthority } from './ca.js';
import { crlToPem } from './crl.js';
import { caPaths } from './paths.js';

async function freshCa(t: Parameters<typeof tempDir>[0]) {
  const dir = await tempDir(t);
  await initCa(dir);
  const ca = await CertificateAuthority.load(dir);
  const root = join(dir, 'root.pem');
  const inter = join(dir, 'inter.pem');
  await writeFile(root, ca.root.toString('pem'));
  await writeFile(inter, ca.issuer.toString('pem'));
  return { dir, ca, root, inter };
}

async function issueCountry(ca: CertificateAuthority, dir: string, cc: string) {
  const { csrPath } = await makeCsr(dir, cc, `/CN=${cc}/OU=ncb/O=ncbnet`);
  const issued = await ca.issue({ kind: 'country', name: cc, csr: await readFile(csrPath, 'utf8') });
  const certPath = join(dir, `${cc}.crt`);
  await writeFile(certPath, issued.pem);
  return { issued, certPath };
}

t.test('ca: init writes P-256 root and intermediate, keys 0600, and refuses to overwrite', async (t) => {
  const dir = await tempDir(t);
  const { paths, root, intermediate } = await initCa(dir);
  for (const key of [paths.rootKey, paths.caKey]) {
    t.equal((await stat(key)).mode & 0o777, 0o600, `${key} is 0600`);
    t.match(await readFile(key, 'utf8'), /^-----BEGIN PRIVATE KEY-----/, 'PKCS#8 PEM');
  }
  const years = (c: typeof root) => (c.notAfter.getTime() - c.notBefore.getTime()) / (365.25 * 86400e3);
  t.ok(Math.abs(years(root) - 10) < 0.01, 'root lasts 10 years');
  t.ok(Math.abs(years(intermediate) - 2) < 0.01, 'intermediate lasts 2 years');
  const text = await opensslOk(['x509', '-in', paths.caCert, '-noout', '-text']);
  t.match(text, /ASN1 OID: prime256v1/);
  t.match(text, /CA:TRUE, pathlen:0/);
  t.match(text, /Certificate Sign, CRL Sign/);
  const chain = await openssl(['verify', '-CAfile', paths.rootCert, paths.caCert]);
  t.equal(chain.code, 0, `openssl verifies the intermediate against the root: ${chain.stderr}`);

  await t.rejects(initCa(dir), { code: 'PKI_CA_EXISTS' }, 'second init refused');
  const before = await readFile(paths.caKey, 'utf8');
  const again = await initCa(dir, { force: true });
  t.ok(again.replaced, 'force moved the old CA aside');
  t.equal(await readFile(join(again.replaced as string, 'hub-ca.key'), 'utf8'), before, 'old key kept, not deleted');
  t.not(await readFile(paths.caKey, 'utf8'), before, 'new key written');
});

t.test('ca: country certificate is accepted by openssl verify as a TLS client, with the designed profile', async (t) => {
  const { dir, ca, root, inter } = await freshCa(t);
  const { issued, certPath } = await issueCountry(ca, dir, 'FR');
  const v = await openssl(['verify', '-CAfile', root, '-untrusted', inter, '-purpose', 'sslclient', certPath]);
  t.equal(v.code, 0, `verify: ${v.stdout}${v.stderr}`);
  const server = await openssl(['verify', '-CAfile', root, '-untrusted', inter, '-purpose', 'sslserver', certPath]);
  t.not(server.code, 0, 'a country certificate is not a TLS server certificate');
  const text = await opensslOk(['x509', '-in', certPath, '-noout', '-text', '-nameopt', 'RFC2253']);
  t.match(text, /Subject: CN=FR,OU=ncb,O=ncbnet\n/, 'subject in RFC 2253 order is the NATS user');
  t.match(text, /URI:urn:ncbnet:country:FR/);
  t.match(text, /Key Usage: critical\n\s+Digital Signature, Key Agreement/);
  t.match(text, /TLS Web Client Authentication/);
  t.match(text, /Subject Key Identifier/);
  t.match(text, /Authority Key Identifier/);
  t.match(issued.serial, /^[0-7][0-9a-f]{31}$/, '128-bit positive serial');
  const days = (issued.notAfter.getTime() - Date.now()) / 86400e3;
  t.ok(days > 6.99 && days <= 7, `7-day default lifetime (got ${days})`);
  t.equal(ca.ledger.get(issued.serial)?.name, 'FR', 'ledger has it');
  const reloaded = await CertificateAuthority.load(dir);
  t.equal(reloaded.ledger.get(issued.serial)?.subject, issued.subject, 'ledger survives a reload');
});

t.test('ca: hub and operator certificates fit their roles', async (t) => {
  const { dir, ca, root, inter } = await freshCa(t);
  const hubCsr = await makeCsr(dir, 'hub', '/CN=hub-1');
  const hub = await ca.issue({ kind: 'hub', name: 'hub-1', csr: await readFile(hubCsr.csrPath, 'utf8'), dnsNames: ['hub.ncbnet.test'], ipAddresses: ['127.0.0.1', '10.77.0.1'], lifetimeMs: 30 * 86400e3 });
  await writeFile(join(dir, 'hub.crt'), hub.pem);
  const v = await openssl(['verify', '-CAfile', root, '-untrusted', inter, '-purpose', 'sslserver', join(dir, 'hub.crt')]);
  t.equal(v.code, 0, `hub cert is a TLS server cert: ${v.stderr}`);
  const host = await openssl(['verify', '-CAfile', root, '-untrusted', inter, '-verify_hostname', 'hub.ncbnet.test', '-verify_ip', '10.77.0.1', join(dir, 'hub.crt')]);
  t.equal(host.code, 0, `names and IPs in SAN: ${host.stderr}`);
  t.match(await opensslOk(['x509', '-in', join(dir, 'hub.crt'), '-noout', '-subject', '-nameopt', 'RFC2253']), /CN=hub-1,OU=hub,O=ncbnet/);

  const opCsr = await makeCsr(dir, 'op', '/CN=alice/OU=operator/O=ncbnet', 'ed25519');
  const op = await ca.issue({ kind: 'operator', name: 'alice', csr: await readFile(opCsr.csrPath, 'utf8') });
  await writeFile(join(dir, 'op.crt'), op.pem);
  const ov = await openssl(['verify', '-CAfile', root, '-untrusted', inter, '-purpose', 'sslclient', join(dir, 'op.crt')]);
  t.equal(ov.code, 0, `Ed25519 operator cert verifies: ${ov.stderr}`);
  t.match(await opensslOk(['x509', '-in', join(dir, 'op.crt'), '-noout', '-text']), /ED25519/);
});

t.test('ca: bad issuance parameters are refused with codes', async (t) => {
  const { dir, ca } = await freshCa(t);
  const { csrPath } = await makeCsr(dir, 'fr', '/CN=FR');
  const csr = await readFile(csrPath, 'utf8');
  await t.rejects(ca.issue({ kind: 'country', name: 'DE', csr }), { code: 'PKI_CSR_COUNTRY_MISMATCH' }, 'token says DE, CSR says FR');
  await t.rejects(ca.issue({ kind: 'country', name: 'fr', csr }), { code: 'PKI_BAD_COUNTRY' });
  await t.rejects(ca.issue({ kind: 'country', name: 'UK', csr }), { code: 'PKI_BAD_COUNTRY' }, 'UK is not ISO (GB is)');
  await t.rejects(ca.issue({ kind: 'operator', name: '../etc', csr }), { code: 'PKI_BAD_NAME' });
  await t.rejects(ca.issue({ kind: 'country', name: 'FR', csr, lifetimeMs: 1000 }), { code: 'PKI_BAD_LIFETIME' });
  await t.rejects(ca.issue({ kind: 'country', name: 'FR', csr, lifetimeMs: 1000 * 86400e3 }), { code: 'PKI_BAD_LIFETIME' });
  t.equal(ca.ledger.list().length, 0, 'nothing recorded for refused requests');
});

t.test('ca: revoked serial is in a CRL that openssl accepts, and verify then fails', async (t) => {
  const { dir, ca, root, inter } = await freshCa(t);
  const fr = await issueCountry(ca, dir, 'FR');
  const de = await issueCountry(ca, dir, 'DE');
  await ca.revoke(fr.issued.serial, 'keyCompromise');
  const crlPath = join(dir, 'crl.pem');
  await writeFile(crlPath, crlToPem(await ca.crl()));
  t.match(await readFile(crlPath, 'utf8'), /^-----BEGIN X509 CRL-----/);
  const crl = await openssl(['crl', '-in', crlPath, '-noout', '-text', '-CAfile', inter]);
  t.equal(crl.code, 0, `openssl crl reads it: ${crl.stderr}`);
  t.match(crl.stderr + crl.stdout, /verify OK/, 'CRL signature verified by openssl');
  t.match(crl.stdout, new RegExp(`Serial Number: ${fr.issued.serial.toUpperCase()}`), 'FR serial listed');
  t.match(crl.stdout, /Key Compromise/, 'reason listed');
  t.match(crl.stdout, /X509v3 CRL Number/);
  t.notMatch(crl.stdout, new RegExp(de.issued.serial.toUpperCase()), 'DE not listed');
  const revoked = await openssl(['verify', '-crl_check', '-CAfile', root, '-untrusted', inter, '-CRLfile', crlPath, fr.certPath]);
  t.not(revoked.code, 0, 'FR fails verification with the CRL');
  t.match(revoked.stdout + revoked.stderr, /certificate revoked/);
  const good = await openssl(['verify', '-crl_check', '-CAfile', root, '-untrusted', inter, '-CRLfile', crlPath, de.certPath]);
  t.equal(good.code, 0, `DE still verifies with the CRL: ${good.stderr}`);
});

t.test('ca: revocation refuses unknown, malformed and repeated serials and unknown reasons', async (t) => {
  const { dir, ca } = await freshCa(t);
  const fr = await issueCountry(ca, dir, 'FR');
  await t.rejects(ca.revoke('00112233445566778899aabbccddeeff', 'superseded'), { code: 'PKI_SERIAL_UNKNOWN' });
  await t.rejects(ca.revoke('zz', 'superseded'), { code: 'PKI_SERIAL_MALFORMED' });
  const colons = fr.issued.serial.toUpperCase().match(/../g)?.join(':') as string;
  await ca.revoke(colons, 'superseded');
  t.equal(ca.ledger.get(fr.issued.serial)?.reason, 'superseded', 'openssl-style serial spelling accepted');
  await t.rejects(ca.revoke(fr.issued.serial, 'keyCompromise'), { code: 'PKI_ALREADY_REVOKED' });
  const again = await CertificateAuthority.load(dir);
  t.ok(again.ledger.get(fr.issued.serial)?.revokedAt, 'revocation survives a reload');
});

t.test('ca: OCSP answers good, revoked and unknown, and openssl verifies the response', async (t) => {
  const { dir, ca, root, inter } = await freshCa(t);
  const fr = await issueCountry(ca, dir, 'FR');
  const de = await issueCountry(ca, dir, 'DE');
  await ca.revoke(de.issued.serial, 'cessationOfOperation');
  // A certificate from a different CA: the responder must say unknown.
  const other = await tempDir(t);
  await initCa(other);
  const otherCa = await CertificateAuthority.load(other);
  const stranger = await issueCountry(otherCa, other, 'IT');
  await writeFile(join(other, 'inter.pem'), otherCa.issuer.toString('pem'));

  async function ask(cert: string, issuer: string, hash: string): Promise<string> {
    const req = join(dir, 'req.der');
    const resp = join(dir, 'resp.der');
    await opensslOk(['ocsp', '-issuer', issuer, `-${hash}`, '-cert', cert, '-reqout', req]);
    await writeFile(resp, await ca.ocsp(await readFile(req)));
    // -cert builds a second request with its own nonce, so the nonce is checked separately below.
    const r = await openssl(['ocsp', '-respin', resp, '-issuer', issuer, `-${hash}`, '-cert', cert, '-no_nonce', '-CAfile', root, '-verify_other', inter]);
    t.equal(r.code, 0, `openssl ocsp exit 0: ${r.stderr}`);
    return r.stdout + r.stderr;
  }
  const good = await ask(fr.certPath, inter, 'sha1');
  t.match(good, /Response verify OK/);
  t.match(good, /: good/);
  const good256 = await ask(fr.certPath, inter, 'sha256');
  t.match(good256, /: good/, 'SHA-256 CertID works too');
  const rev = await ask(de.certPath, inter, 'sha1');
  t.match(rev, /: revoked/);
  t.match(rev, /Reason: cessationOfOperation/);
  const unk = await openssl(['ocsp', '-issuer', join(other, 'inter.pem'), '-cert', stranger.certPath, '-reqout', join(dir, 'u.der')]);
  t.equal(unk.code, 0);
  await writeFile(join(dir, 'u-resp.der'), await ca.ocsp(await readFile(join(dir, 'u.der'))));
  const text = await opensslOk(['ocsp', '-respin', join(dir, 'u-resp.der'), '-resp_text', '-noverify']);
  t.match(text, /Cert Status: unknown/, 'certificate of another CA is unknown');
  const reqNonce = /OCSP Nonce: \n\s+([0-9A-F]+)/.exec(await opensslOk(['ocsp', '-reqin', join(dir, 'u.der'), '-req_text']))?.[1];
  t.ok(reqNonce, 'openssl put a nonce in its request');
  t.match(text, new RegExp(`OCSP Nonce: \\n\\s+${reqNonce}`), 'the same nonce is echoed in the response');

  const garbage = await ca.ocsp(new Uint8Array([1, 2, 3]));
  await writeFile(join(dir, 'g.der'), garbage);
  const g = await openssl(['ocsp', '-respin', join(dir, 'g.der'), '-resp_text', '-noverify']);
  t.match(g.stdout + g.stderr, /Responder Error: malformedrequest \(1\)/i, 'garbage gets malformedRequest');
});

t.test('ca: load refuses a missing CA, a key readable by others, and a mismatched key', async (t) => {
  const empty = await tempDir(t);
  await t.rejects(CertificateAuthority.load(empty), { code: 'PKI_CA_MISSING' });
  const { dir } = await freshCa(t);
  const paths = caPaths(dir);
  await chmod(paths.caKey, 0o644);
  await t.rejects(CertificateAuthority.load(dir), { code: 'PKI_KEY_PERMISSIONS' });
  await chmod(paths.caKey, 0o600);
  const other = await tempDir(t);
  await initCa(other);
  await writeFile(paths.caKey, await readFile(caPaths(other).caKey, 'utf8'));
  await t.rejects(CertificateAuthority.load(dir), { code: 'PKI_CA_INVALID' }, 'key of another CA');
  await writeFile(paths.caCert, await readFile(caPaths(other).caCert, 'utf8'));
  await t.rejects(CertificateAuthority.load(dir), { code: 'PKI_CA_INVALID' }, 'intermediate not under our root');
  await writeFile(paths.caCert, 'not a cert');
  await t.rejects(CertificateAuthority.load(dir), { code: 'PKI_CA_INVALID' });
  t.ok((await readdir(paths.dir)).includes('root.key'));
});
