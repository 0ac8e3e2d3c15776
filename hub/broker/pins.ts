import { createHash, X509Certificate } from 'node:crypto';

/**
 * The `pinned_certs` entry for a leaf certificate (PEM or DER): lower-case hex SHA-256 of its DER
 * SubjectPublicKeyInfo — what nats-server 2.9.10 compares (`auth.go` matchesPinnedCert hashes
 * `RawSubjectPublicKeyInfo` of the peer's first certificate). It pins the key, so a renewed
 * certificate on the same key keeps its pin and a new key needs a new one.
 */
export function pinnedCertHash(certificate: string | Uint8Array): string {
  const cert = new X509Certificate(certificate);
  const spki = cert.publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('hex');
}
