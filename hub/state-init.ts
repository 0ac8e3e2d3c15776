import { mkdir, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { initCa } from '../pki/ca-init.js';
import { CertificateAuthority } from '../pki/ca.js';
import { createCsr } from '../pki/csr-create.js';
import { writeFileDurable } from '../pki/files.js';
import { generateP256, writePrivateKey } from '../pki/keys.js';
import { splitSans } from '../pki/profiles.js';

export interface InitHubOptions {
  state: string;
  force?: boolean;
  hubName: string;
  sans: readonly string[];
  operator: string;
}

/** Files `hub init` writes besides the CA itself. */
export function identityPaths(stateDir: string) {
  return {
    hubCert: join(stateDir, 'hub', 'hub.crt'),
    hubKey: join(stateDir, 'hub', 'hub.key'),
    operatorCert: join(stateDir, 'operator', 'operator.crt'),
    operatorKey: join(stateDir, 'operator', 'operator.key'),
    operatorCa: join(stateDir, 'operator', 'ca.crt'),
  };
}

/** Generates a key pair here, issues its certificate from `ca`, writes both (key 0600). */
async function issueLocal(ca: CertificateAuthority, kind: 'hub' | 'operator', name: string, certPath: string, keyPath: string, sans: readonly string[] = []) {
  const keys = await generateP256();
  const issued = await ca.issue({ kind, name, csr: await createCsr(kind, name, keys), ...splitSans(sans) });
  await mkdir(join(certPath, '..'), { recursive: true, mode: 0o700 });
  await writePrivateKey(keyPath, keys.privateKey);
  await writeFileDurable(certPath, issued.pem + ca.issuer.toString('pem') + '\n', { exclusive: true });
  return issued;
}

/**
 * Creates a hub state directory: root and hub CA, the hub's TLS identity (server and client auth,
 * with `sans`) and the first operator identity (for the admin API). Refuses an existing CA
 * unless `force`, which moves the old CA and identities aside.
 */
export async function initHubState(opts: InitHubOptions) {
  const result = await initCa(opts.state, { force: opts.force ?? false });
  const ca = await CertificateAuthority.load(opts.state);
  const paths = identityPaths(opts.state);
  if (result.replaced) {
    // The old hub and operator identities belong to the CA that was moved aside; move them too.
    for (const dir of ['hub', 'operator']) {
      await rename(join(opts.state, dir), `${result.replaced}-${dir}`).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
    }
  }
  const hub = await issueLocal(ca, 'hub', opts.hubName, paths.hubCert, paths.hubKey, opts.sans);
  const op = await issueLocal(ca, 'operator', opts.operator, paths.operatorCert, paths.operatorKey);
  await writeFileDurable(paths.operatorCa, ca.root.toString('pem') + '\n', { exclusive: true });
  return {
    state: opts.state,
    rootFingerprint: ca.rootFingerprint,
    rootCertificate: ca.paths.rootCert,
    rootKey: ca.paths.rootKey,
    hubCaCertificate: ca.paths.caCert,
    hubCertificate: { path: paths.hubCert, serial: hub.serial, subject: hub.subject, notAfter: hub.notAfter.toISOString(), sans: [...opts.sans] },
    operatorCertificate: { path: paths.operatorCert, serial: op.serial, subject: op.subject, notAfter: op.notAfter.toISOString() },
    ...(result.replaced ? { replaced: result.replaced } : {}),
  };
}
