import t from 'tap';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { makeCsr, openssl } from '../helpers/openssl.js';
import { tempDir } from '../helpers/tmpdir.js';

t.test('cli: hub init creates the CA, hub and operator identities, and refuses a second run', async (t) => {
  const dir = await tempDir(t);
  const state = join(dir, 'state');
  const r = await runCli('ncbnet', ['hub', 'init', '--state', state, '--san', 'hub.test', '--san', '127.0.0.1', '--json']);
  t.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { rootFingerprint: string; hubCertificate: { path: string }; operatorCertificate: { path: string } };
  t.match(out.rootFingerprint, /^[0-9a-f]{64}$/);
  for (const key of ['pki/root.key', 'pki/hub-ca.key', 'hub/hub.key', 'operator/operator.key']) {
    t.equal((await stat(join(state, key))).mode & 0o777, 0o600, `${key} is 0600`);
  }
  const root = join(state, 'pki/root.crt');
  const hubV = await openssl(['verify', '-CAfile', root, '-purpose', 'sslserver', '-verify_hostname', 'hub.test', '-untrusted', join(state, 'pki/hub-ca.crt'), out.hubCertificate.path]);
  t.equal(hubV.code, 0, `hub cert verifies as server for hub.test: ${hubV.stderr}`);
  const opV = await openssl(['verify', '-CAfile', join(state, 'operator/ca.crt'), '-purpose', 'sslclient', '-untrusted', join(state, 'pki/hub-ca.crt'), out.operatorCertificate.path]);
  t.equal(opV.code, 0, `operator cert verifies as client: ${opV.stderr}`);
  const fp = await openssl(['x509', '-in', root, '-noout', '-fingerprint', '-sha256']);
  t.equal(fp.stdout.trim().split('=')[1]?.replaceAll(':', '').toLowerCase(), out.rootFingerprint, 'fingerprint matches openssl');

  const again = await runCli('ncbnet', ['hub', 'init', '--state', state]);
  t.equal(again.code, 73, 'exit 73 when a CA exists');
  t.match(again.stderr, /PKI_CA_EXISTS/);
  const forced = await runCli('ncbnet', ['hub', 'init', '--state', state, '--force']);
  t.equal(forced.code, 0, forced.stderr);
  t.match(forced.stdout, /previous CA kept in/);
});

t.test('cli: offline enrollment: sign a country CSR, revoke it, publish a CRL that openssl checks', async (t) => {
  const dir = await tempDir(t);
  const state = join(dir, 'state');
  t.equal((await runCli('ncbnet', ['hub', 'init', '--state', state])).code, 0);
  const { csrPath } = await makeCsr(dir, 'FR', '/CN=FR/OU=ncb/O=ncbnet');
  const crt = join(dir, 'FR.crt');
  const signed = await runCli('ncbnet', ['pki', 'sign', '--state', state, '--country', 'FR', '--csr', csrPath, '--out', crt]);
  t.equal(signed.code, 0, signed.stderr);
  t.match(signed.stdout, /CN=FR/);
  t.match(signed.stdout, /-----BEGIN CERTIFICATE-----[\s\S]+-----BEGIN CERTIFICATE-----/, 'prints the chain (hub CA and root)');
  const chain = join(dir, 'chain.pem');
  await writeFile(chain, signed.stdout.slice(signed.stdout.indexOf('-----BEGIN')));
  const v = await openssl(['verify', '-CAfile', join(state, 'pki/root.crt'), '-untrusted', chain, crt]);
  t.equal(v.code, 0, `the printed chain verifies the certificate: ${v.stderr}`);

  const over = await runCli('ncbnet', ['pki', 'sign', '--state', state, '--country', 'FR', '--csr', csrPath, '--out', crt]);
  t.equal(over.code, 73, 'refuses to overwrite --out');

  const list = await runCli('ncbnet', ['pki', 'list', '--state', state, '--json']);
  const certs = JSON.parse(list.stdout) as { serial: string; name: string; status: string }[];
  const fr = certs.find((c) => c.name === 'FR');
  t.equal(fr?.status, 'valid');
  t.equal(certs.length, 3, 'hub, operator and FR');

  const rv = await runCli('ncbnet', ['pki', 'revoke', '--state', state, '--serial', fr?.serial ?? '', '--reason', 'key-compromise']);
  t.equal(rv.code, 0, rv.stderr);
  const crlPath = join(dir, 'crl.pem');
  const c = await runCli('ncbnet', ['pki', 'crl', '--state', state, '--out', crlPath, '--json']);
  t.equal(c.code, 0, c.stderr);
  t.equal((JSON.parse(c.stdout) as { revoked: number }).revoked, 1);
  const check = await openssl(['verify', '-crl_check', '-CAfile', join(state, 'pki/root.crt'), '-untrusted', chain, '-CRLfile', crlPath, crt]);
  t.not(check.code, 0);
  t.match(check.stdout + check.stderr, /certificate revoked/);
});

t.test('cli: bad input gets a coded message and a meaningful exit code, nothing written', async (t) => {
  const dir = await tempDir(t);
  const state = join(dir, 'state');
  t.equal((await runCli('ncbnet', ['hub', 'init', '--state', state])).code, 0);
  const de = await makeCsr(dir, 'DE', '/CN=DE/OU=ncb/O=ncbnet');
  const out = join(dir, 'x.crt');
  const mismatch = await runCli('ncbnet', ['pki', 'sign', '--state', state, '--country', 'FR', '--csr', de.csrPath, '--out', out]);
  t.equal(mismatch.code, 65, 'data error');
  t.match(mismatch.stderr, /PKI_CSR_COUNTRY_MISMATCH/);
  await t.rejects(stat(out), { code: 'ENOENT' }, 'no certificate written');
  const rsa = await makeCsr(dir, 'rsa', '/CN=FR', 'rsa:512');
  const weak = await runCli('ncbnet', ['pki', 'sign', '--state', state, '--country', 'FR', '--csr', rsa.csrPath, '--out', out]);
  t.equal(weak.code, 65);
  t.match(weak.stderr, /PKI_CSR_WEAK_KEY: csr: RSA 512-bit key is too weak/);
  await writeFile(join(dir, 'junk.csr'), 'junk');
  const junk = await runCli('ncbnet', ['pki', 'sign', '--state', state, '--country', 'FR', '--csr', join(dir, 'junk.csr'), '--out', out]);
  t.match(junk.stderr, /PKI_CSR_MALFORMED/);
  const missing = await runCli('ncbnet', ['pki', 'sign', '--state', state, '--country', 'FR', '--csr', join(dir, 'nope.csr'), '--out', out]);
  t.equal(missing.code, 66);
  const badCountry = await runCli('ncbnet', ['pki', 'sign', '--state', state, '--country', 'XX', '--csr', de.csrPath, '--out', out]);
  t.equal(badCountry.code, 64);
  t.match(badCountry.stderr, /PKI_BAD_COUNTRY/);
  const badLifetime = await runCli('ncbnet', ['pki', 'sign', '--state', state, '--country', 'DE', '--csr', de.csrPath, '--out', out, '--lifetime', 'soon']);
  t.equal(badLifetime.code, 64);
  t.match(badLifetime.stderr, /--lifetime: not a duration/);
  const noCa = await runCli('ncbnet', ['pki', 'crl', '--state', join(dir, 'empty'), '--out', join(dir, 'c.pem')]);
  t.equal(noCa.code, 66);
  t.match(noCa.stderr, /PKI_CA_MISSING/);
  const badSerial = await runCli('ncbnet', ['pki', 'revoke', '--state', state, '--serial', 'nothex', '--reason', 'superseded']);
  t.equal(badSerial.code, 65);
  const unknown = await runCli('ncbnet', ['pki', 'revoke', '--state', state, '--serial', '0123', '--reason', 'superseded']);
  t.match(unknown.stderr, /PKI_SERIAL_UNKNOWN/);
  const badReason = await runCli('ncbnet', ['pki', 'revoke', '--state', state, '--serial', '0123', '--reason', 'boredom']);
  t.equal(badReason.code, 64);
  t.match(badReason.stderr, /unknown revocation reason "boredom" \(one of unspecified, keyCompromise/);
  const usage = await runCli('ncbnet', ['pki', 'sign', '--state', state]);
  t.equal(usage.code, 64, 'missing flags: usage');
  const ledger = await readFile(join(state, 'pki/ledger.jsonl'), 'utf8');
  t.equal(ledger.trim().split('\n').length, 2, 'only the hub and operator certificates were recorded');
});

t.test('cli: both programs answer --version and --help', async (t) => {
  const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  for (const bin of ['ncbnet', 'ncbnet-agent'] as const) {
    const v = await runCli(bin, ['--version']);
    t.equal(v.code, 0);
    t.equal(v.stdout.trim(), pkg.version, `${bin} version matches package.json`);
    const h = await runCli(bin, ['--help']);
    t.match(h.stdout, new RegExp(`Usage: ${bin}`));
  }
  const bad = await runCli('ncbnet', ['frobnicate']);
  t.equal(bad.code, 64);
});
