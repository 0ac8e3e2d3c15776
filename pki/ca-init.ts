import { access, mkdir, rename } from 'node:fs/promises';
import { CaStateError, PKI_CA_EXISTS } from './errors.js';
import { ECDSA_SHA256, generateP256, writePrivateKey } from './keys.js';
import { caPaths, type CaPaths } from './paths.js';
import { caExtensions, caName, INTERMEDIATE_LIFETIME_MS, ROOT_LIFETIME_MS } from './profiles.js';
import { randomSerial } from './serial.js';
import { writeFileDurable } from './files.js';
import { webcrypto, x509 } from './x509.js';

export interface InitCaOptions {
  /** Replace an existing CA; the old `pki/` directory is moved aside, never deleted. */
  force?: boolean;
  now?: Date;
  rootCommonName?: string;
  intermediateCommonName?: string;
}

export interface InitCaResult {
  paths: CaPaths;
  root: x509.X509Certificate;
  intermediate: x509.X509Certificate;
  /** Where the previous CA was moved, when `force` replaced one. */
  replaced?: string;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/**
 * Creates the root CA (P-256, 10 years, pathLen 1) and the hub intermediate CA (P-256, 2 years,
 * pathLen 0) under `<stateDir>/pki`, keys as PKCS#8 PEM with mode 0600. Refuses an existing CA
 * (`PKI_CA_EXISTS`) unless `force`, and even then keeps the old one under `pki.replaced-<time>`:
 * certificates it signed are still out there and its key may be needed to revoke them.
 */
export async function initCa(stateDir: string, opts: InitCaOptions = {}): Promise<InitCaResult> {
  const paths = caPaths(stateDir);
  const now = opts.now ?? new Date();
  let replaced: string | undefined;
  if (await exists(paths.dir)) {
    if (!opts.force) {
      throw new CaStateError(PKI_CA_EXISTS, `${paths.dir} already holds a CA; pass --force to replace it (the old one is kept aside)`);
    }
    replaced = `${paths.dir}.replaced-${now.toISOString().replace(/[:.]/g, '-')}`;
    await rename(paths.dir, replaced);
  }
  await mkdir(paths.dir, { recursive: true, mode: 0o700 });

  const rootKeys = await generateP256();
  const rootSubject = caName(opts.rootCommonName ?? 'ncbnet Root CA');
  const root = await x509.X509CertificateGenerator.create(
    {
      serialNumber: randomSerial(),
      subject: rootSubject,
      issuer: rootSubject,
      notBefore: now,
      notAfter: new Date(now.getTime() + ROOT_LIFETIME_MS),
      publicKey: rootKeys.publicKey,
      signingKey: rootKeys.privateKey,
      signingAlgorithm: ECDSA_SHA256,
      extensions: await caExtensions(rootKeys.publicKey, rootKeys.publicKey, 1),
    },
    webcrypto,
  );

  const caKeys = await generateP256();
  const intermediate = await x509.X509CertificateGenerator.create(
    {
      serialNumber: randomSerial(),
      subject: caName(opts.intermediateCommonName ?? 'ncbnet Hub CA 1'),
      issuer: root.subjectName,
      notBefore: now,
      notAfter: new Date(now.getTime() + INTERMEDIATE_LIFETIME_MS),
      publicKey: caKeys.publicKey,
      signingKey: rootKeys.privateKey,
      signingAlgorithm: ECDSA_SHA256,
      extensions: await caExtensions(caKeys.publicKey, rootKeys.publicKey, 0),
    },
    webcrypto,
  );

  await writePrivateKey(paths.rootKey, rootKeys.privateKey);
  await writePrivateKey(paths.caKey, caKeys.privateKey);
  await writeFileDurable(paths.rootCert, root.toString('pem') + '\n', { exclusive: true });
  await writeFileDurable(paths.caCert, intermediate.toString('pem') + '\n', { exclusive: true });
  return replaced ? { paths, root, intermediate, replaced } : { paths, root, intermediate };
}
