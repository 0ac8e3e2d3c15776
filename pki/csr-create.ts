import { ORGANIZATION, OU_BY_KIND, type IdentityKind } from '../protocol/identity.js';
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

/**
 * A country's CSR made at the NCB before it knows for sure which country its token names: the
 * subject carries only O and OU (the CA writes CN and the SAN from the token). With `country`,
 * CN names it too, so a token for another country is refused by the hub instead of enrolling
 * this NCB under the wrong flag.
 */
export async function createCountryCsr(keys: CryptoKeyPair, country?: string): Promise<string> {
  const rdns: x509.JsonName = [{ O: [ORGANIZATION] }, { OU: [OU_BY_KIND.country] }];
  if (country !== undefined) rdns.push({ CN: [country] });
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: new x509.Name(rdns), keys, signingAlgorithm: ECDSA_SHA256 }, webcrypto);
  return csr.toString('pem');
}
