/**
 * Certificates signed per second: ours (`CertificateAuthority.issue`, in process: CSR check,
 * profile, ECDSA P-256 signature, ledger record fsynced) against `openssl x509 -req` signing the
 * same CSRs with the same hub CA key in one shell loop (one openssl process per certificate, as a
 * script around openssl would run; same profile: the extensions of a country certificate, 7 days,
 * SHA-256). Ours: best of `rounds` rounds (the first warms the JIT up); openssl: one round.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { initCa } from '../../pki/ca-init.js';
import { CertificateAuthority } from '../../pki/ca.js';
import { createCsr } from '../../pki/csr-create.js';
import { generateP256 } from '../../pki/keys.js';
import { caPaths } from '../../pki/paths.js';

const run = promisify(execFile);

export interface SignResult {
  oursPerS: number;
  opensslPerS: number;
  ratio: number;
  certs: number;
}

const EXTFILE = [
  'basicConstraints = critical, CA:FALSE',
  'keyUsage = critical, digitalSignature, keyAgreement',
  'extendedKeyUsage = clientAuth',
  'subjectAltName = URI:urn:ncbnet:country:$ENV::CC',
  'subjectKeyIdentifier = hash',
  'authorityKeyIdentifier = keyid',
  '',
].join('\n');

// The loop a shell script would be: one openssl per CSR, the country in the environment for the SAN.
const LOOP = 'set -e; for f in "$1"/*.csr; do CC=$(basename "$f" .csr) openssl x509 -req -in "$f" -CA "$2" -CAkey "$3" -CAserial "$4" -CAcreateserial -days 7 -sha256 -extfile "$5" -out "${f%.csr}.crt" 2>/dev/null; done';

export async function signVsOpenssl(codes: readonly string[], rounds: number, progress: (text: string) => void): Promise<SignResult> {
  const dir = await mkdtemp(join(tmpdir(), 'ncbnet-bench-scale-sign-'));
  try {
    await initCa(dir);
    const ca = await CertificateAuthority.load(dir);
    const paths = caPaths(dir);
    const csrs = await Promise.all(codes.map(async (cc) => createCsr('country', cc, await generateP256())));
    const extfile = join(dir, 'country.ext');
    await writeFile(extfile, EXTFILE);
    let ours = 0;
    let openssl = 0;
    for (let r = 0; r < rounds; r++) {
      const t0 = performance.now();
      for (const [i, cc] of codes.entries()) await ca.issue({ kind: 'country', name: cc, csr: csrs[i] as string });
      ours = Math.max(ours, (codes.length * 1000) / (performance.now() - t0));

      // openssl: one round (a process per certificate gains nothing from a second one).
      if (r > 0) continue;
      const csrDir = join(dir, `round-${r}`);
      await mkdir(csrDir);
      for (const [i, cc] of codes.entries()) await writeFile(join(csrDir, `${cc}.csr`), csrs[i] as string);
      const t1 = performance.now();
      await run('bash', ['-c', LOOP, 'loop', csrDir, paths.caCert, paths.caKey, join(dir, 'serial'), extfile], { timeout: 300_000 });
      openssl = (codes.length * 1000) / (performance.now() - t1);
    }
    progress(`  ours ${ours.toFixed(0)} certs/s (best of ${rounds} rounds), openssl x509 -req ${openssl.toFixed(0)} certs/s`);
    // The openssl output is a certificate, not an error message: check one is what we asked for.
    const { stdout } = await run('openssl', ['x509', '-in', join(dir, 'round-0', `${codes[0]}.crt`), '-noout', '-ext', 'subjectAltName']);
    if (!stdout.includes(`urn:ncbnet:country:${codes[0]}`)) throw new Error(`openssl baseline made an unexpected certificate: ${stdout}`);
    return { oursPerS: ours, opensslPerS: openssl, ratio: ours / openssl, certs: codes.length };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
