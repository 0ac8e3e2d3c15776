/**
 * `make demo`, as far as the network is built today: a hub CA is created, France is onboarded
 * offline (a token, a key and CSR made "at the NCB", the certificate signed), OpenSSL judges the
 * chain, the certificate is revoked, and the CRL and an OCSP answer say so. The hub daemon, the
 * agents in network namespaces and a notice sent over real tunnels join this demo as they land.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initCa } from '../../pki/ca-init.js';
import { CertificateAuthority } from '../../pki/ca.js';
import { crlToPem } from '../../pki/crl.js';
import { createCsr } from '../../pki/csr-create.js';
import { generateP256 } from '../../pki/keys.js';
import { EnrollmentTokens } from '../../pki/tokens.js';

const steps = 7;
let step = 0;
const say = (text: string) => console.log(`[${++step}/${steps}] ${text}`);
/** Runs openssl and returns what it said on both streams (its verdicts go to either). */
const openssl = (args: string[]) => {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  return `${r.stdout}${r.stderr}`.trim();
};

const dir = await mkdtemp(join(tmpdir(), 'ncbnet-demo-'));
try {
  say(`hub init: root CA (10 y) and hub CA (2 y) in ${dir}`);
  await initCa(dir);
  const ca = await CertificateAuthority.load(dir);
  console.log(`      root fingerprint ${ca.rootFingerprint}`);

  say('operator: token for FR (single use, 1 h), pinned to the root fingerprint');
  const tokens = await EnrollmentTokens.open(ca.paths.tokens, ca.rootFingerprint);
  const { token } = await tokens.create('FR');
  console.log(`      ${token.slice(0, 30)}… (shown once; only its SHA-256 is stored)`);

  say('NCB France: P-256 key and CSR made locally; the private key never leaves');
  const keys = await generateP256();
  const csr = await createCsr('country', 'FR', keys);

  say('hub: token used up, CSR checked, certificate CN=FR,OU=ncb,O=ncbnet issued');
  const { country } = await tokens.consume(token);
  const issued = await ca.issue({ kind: 'country', name: country, csr });
  const paths = { root: join(dir, 'root.pem'), chain: join(dir, 'chain.pem'), crt: join(dir, 'FR.crt'), crl: join(dir, 'crl.pem'), req: join(dir, 'req.der'), resp: join(dir, 'resp.der') };
  await writeFile(paths.root, ca.root.toString('pem'));
  await writeFile(paths.chain, ca.issuer.toString('pem'));
  await writeFile(paths.crt, issued.pem);
  console.log(`      serial ${issued.serial}, valid until ${issued.notAfter.toISOString()}`);
  try {
    await tokens.consume(token);
  } catch (err) {
    console.log(`      replaying the token: ${(err as { code: string }).code}`);
  }

  say('openssl verify (an independent judge) accepts the chain for TLS client auth');
  console.log(`      ${openssl(['verify', '-CAfile', paths.root, '-untrusted', paths.chain, '-purpose', 'sslclient', paths.crt])}`);

  say('operator: FR revoked (keyCompromise); CRL published; openssl now refuses the certificate');
  await ca.revoke(issued.serial, 'keyCompromise');
  await writeFile(paths.crl, crlToPem(await ca.crl()));
  console.log(`      ${openssl(['verify', '-crl_check', '-CAfile', paths.root, '-untrusted', paths.chain, '-CRLfile', paths.crl, paths.crt]).split('\n').slice(-2).join(' / ')}`);

  say('OCSP: openssl asks the hub CA about FR');
  openssl(['ocsp', '-issuer', paths.chain, '-cert', paths.crt, '-reqout', paths.req]);
  await writeFile(paths.resp, await ca.ocsp(await readFile(paths.req)));
  console.log(`      ${openssl(['ocsp', '-respin', paths.resp, '-issuer', paths.chain, '-cert', paths.crt, '-no_nonce', '-CAfile', paths.root, '-verify_other', paths.chain]).replace(/\n\s*/g, ' / ')}`);
  console.log('\ndemo done. Next to land: the hub daemon (broker, registry, enrollment API), then agents in netns with real tunnels.');
} finally {
  await rm(dir, { recursive: true, force: true });
}
