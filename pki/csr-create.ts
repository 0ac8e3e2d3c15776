import type { IdentityKind } from '../protocol/identity.js';
import { ECDSA_SHA256 } from './keys.js';
import { subjectName } from './profiles.js';
import { webcrypto, x509 } from './x509.js';

/**
 * Makes a PKCS#10 request (PEM) for an identity from a key pair generated where it will live;
 * the private key never leaves the caller. Used by `hub init` for its own identities and by the
 * agent at enrollment.
 */
export async function createCsr(kind: IdentityKind, name: string, keys: CryptoKeyPair): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create(
    { name: subjectName(kind, name), keys, signingAlgorithm: ECDSA_SHA256 },
    webcrypto,
  );
  return csr.toString('pem');
}
