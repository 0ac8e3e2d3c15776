/**
 * PKI benchmark: certificates issued per second (CSR check, signing, ledger record fsynced) and
 * CSR verifications per second, each beside raw WebCrypto ECDSA P-256 on the same machine in the
 * same run, so the ratio shows what ncbnet adds over the bare signature.
 * Run: `make bench` (or `tsx bench/pki.ts [--rounds 5] [--ops 300]`).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initCa } from '../pki/ca-init.js';
import { CertificateAuthority } from '../pki/ca.js';
import { createCsr } from '../pki/csr-create.js';
import { verifyCsr } from '../pki/csr.js';
import { ECDSA_SHA256, generateP256 } from '../pki/keys.js';
import { DEFAULT_LIFETIME_MS, leafExtensions, subjectName } from '../pki/profiles.js';
import { randomSerial } from '../pki/serial.js';
import { webcrypto, x509 } from '../pki/x509.js';
import { countryCodes } from '../protocol/country.js';
import { measure, report, type Row } from './lib/report.js';

function flag(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  const value = at >= 0 ? Number(process.argv[at + 1]) : fallback;
  if (!Number.isInteger(value) || value <= 0) throw new Error(`--${name}: a positive integer (got ${process.argv[at + 1]})`);
  return value;
}

// BENCH_QUICK=1: the quick run a developer makes before touching a hot path (make bench, README).
const rounds = flag('rounds', process.env['BENCH_QUICK'] === '1' ? 2 : 5);
const ops = flag('ops', 300);
const dir = await mkdtemp(join(tmpdir(), 'ncbnet-bench-pki-'));
try {
  const progress = (figure: string) => (r: number) => process.stderr.write(`  ${figure}: round ${r}/${rounds}\n`);
  await initCa(dir);
  const ca = await CertificateAuthority.load(dir);
  const codes = countryCodes();
  process.stderr.write(`preparing ${codes.length} country keys and CSRs…\n`);
  const csrs = await Promise.all(codes.map(async (cc) => createCsr('country', cc, await generateP256())));
  const keys = await generateP256();
  const data = new Uint8Array(400); // about the size of a certificate's signed part

  const rows: Row[] = [];
  rows.push({ figure: 'raw ECDSA P-256 sign (WebCrypto)', unit: 'ops/s', rounds: await measure(ops, rounds, () => crypto.subtle.sign(ECDSA_SHA256, keys.privateKey, data), progress('raw sign')) });
  rows.push({
    figure: 'certificates issued (CSR check + sign + ledger fsync)',
    unit: 'certs/s',
    baseline: 'raw ECDSA P-256 sign (WebCrypto)',
    target: { min: 150, label: '≥ 150 certs/s' },
    rounds: await measure(ops, rounds, (i) => ca.issue({ kind: 'country', name: codes[i % codes.length] as string, csr: csrs[i % csrs.length] as string }), progress('issue')),
  });
  // Where the time goes: the same certificate without CSR check and without the fsynced ledger record.
  const subjectKey = await generateP256();
  const issuerKey = await generateP256();
  rows.push({
    figure: 'certificate signing only (profile + X.509 sign, no ledger)',
    unit: 'certs/s',
    baseline: 'raw ECDSA P-256 sign (WebCrypto)',
    rounds: await measure(ops, rounds, async (i) => {
      const name = codes[i % codes.length] as string;
      return x509.X509CertificateGenerator.create(
        {
          serialNumber: randomSerial(),
          subject: subjectName('country', name),
          issuer: ca.issuer.subjectName,
          notBefore: new Date(),
          notAfter: new Date(Date.now() + DEFAULT_LIFETIME_MS.country),
          publicKey: subjectKey.publicKey,
          signingKey: issuerKey.privateKey,
          signingAlgorithm: ECDSA_SHA256,
          extensions: await leafExtensions({ kind: 'country', name, publicKey: await x509.PublicKey.create(subjectKey.publicKey, webcrypto), issuer: ca.issuer }),
        },
        webcrypto,
      );
    }, progress('sign only')),
  });
  const sig = await crypto.subtle.sign(ECDSA_SHA256, keys.privateKey, data);
  rows.push({ figure: 'raw ECDSA P-256 verify (WebCrypto)', unit: 'ops/s', rounds: await measure(ops, rounds, () => crypto.subtle.verify(ECDSA_SHA256, keys.publicKey, sig, data), progress('raw verify')) });
  rows.push({
    figure: 'CSR verifications (parse, key, signature, subject)',
    unit: 'CSRs/s',
    baseline: 'raw ECDSA P-256 verify (WebCrypto)',
    rounds: await measure(ops, rounds, (i) => Promise.resolve(verifyCsr(csrs[i % csrs.length] as string, { kind: 'country', name: codes[i % codes.length] as string, keyTypes: ['p256'] })), progress('verify')),
  });
  const md = await report('PKI', rows, 'bench/results/pki-latest.json');
  await writeFile('bench/results/pki-latest.md', `${md}\n`);
  console.log('\nwritten: bench/results/pki-latest.json, bench/results/pki-latest.md');
} finally {
  await rm(dir, { recursive: true, force: true });
}
