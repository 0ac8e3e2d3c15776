import { isIP } from 'node:net';
import { identityUri, ORGANIZATION, OU_BY_KIND, type IdentityKind } from '../protocol/identity.js';
import { webcrypto, x509 } from './x509.js';

const DAY_MS = 24 * 60 * 60 * 1000;

/** Default leaf lifetimes. Countries renew at 2/3 of theirs; operators and hubs renew by hand or at start. */
export const DEFAULT_LIFETIME_MS: Readonly<Record<IdentityKind, number>> = {
  country: 7 * DAY_MS,
  operator: 90 * DAY_MS,
  hub: 90 * DAY_MS,
};
export const ROOT_LIFETIME_MS = 3652 * DAY_MS;
export const INTERMEDIATE_LIFETIME_MS = 730 * DAY_MS;
/** Leaves are back-dated this much so a peer whose clock is a little behind still accepts them. */
export const BACKDATE_MS = 5 * 60 * 1000;

/**
 * A subject name in DER order O, OU, CN. Written in RFC 2253 (reversed) order it reads
 * `CN=FR,OU=ncb,O=ncbnet`, which is exactly the NATS user that `verify_and_map` derives.
 */
export function subjectName(kind: IdentityKind, name: string): x509.Name {
  return new x509.Name([{ O: [ORGANIZATION] }, { OU: [OU_BY_KIND[kind]] }, { CN: [name] }]);
}

/** Name of a CA certificate (DER order O, CN). */
export function caName(commonName: string): x509.Name {
  return new x509.Name([{ O: [ORGANIZATION] }, { CN: [commonName] }]);
}

/** Where relying parties find revocation data; both optional until the hub knows its URL. */
export interface RevocationUrls {
  crl?: string;
  ocsp?: string;
}

export interface LeafProfileInput {
  kind: IdentityKind;
  name: string;
  publicKey: x509.PublicKey;
  issuer: x509.X509Certificate;
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
  urls?: RevocationUrls;
}

const { digitalSignature, keyAgreement, keyCertSign, cRLSign } = x509.KeyUsageFlags;

/**
 * Extensions of a leaf certificate. Countries: digitalSignature (envelope signatures, TLS) and
 * keyAgreement (ECDH for CMS EnvelopedData), clientAuth. Operators: clientAuth. Hubs: serverAuth
 * for the API and broker, clientAuth for the hub's own broker user. Never copied from a CSR.
 */
export async function leafExtensions(input: LeafProfileInput): Promise<x509.Extension[]> {
  const usage = input.kind === 'country' ? digitalSignature | keyAgreement : digitalSignature;
  const ekus =
    input.kind === 'hub' ? [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth] : [x509.ExtendedKeyUsage.clientAuth];
  const names: x509.JsonGeneralNames = [{ type: 'url', value: identityUri(input.kind, input.name) }];
  for (const dns of input.dnsNames ?? []) names.push({ type: 'dns', value: dns });
  for (const ip of input.ipAddresses ?? []) names.push({ type: 'ip', value: ip });
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(usage, true),
    new x509.ExtendedKeyUsageExtension(ekus, false),
    new x509.SubjectAlternativeNameExtension(names, false),
    await x509.SubjectKeyIdentifierExtension.create(input.publicKey, false, webcrypto),
    await x509.AuthorityKeyIdentifierExtension.create(input.issuer.publicKey, false, webcrypto),
  ];
  if (input.urls?.crl) extensions.push(new x509.CRLDistributionPointsExtension([input.urls.crl]));
  if (input.urls?.ocsp) extensions.push(new x509.AuthorityInfoAccessExtension({ ocsp: input.urls.ocsp }));
  return extensions;
}

/** Extensions of a CA certificate: pathLen 1 for the root, 0 for a hub intermediate. */
export async function caExtensions(publicKey: CryptoKey, issuerPublicKey: CryptoKey, pathLength: number): Promise<x509.Extension[]> {
  return [
    new x509.BasicConstraintsExtension(true, pathLength, true),
    new x509.KeyUsagesExtension(keyCertSign | cRLSign | digitalSignature, true),
    await x509.SubjectKeyIdentifierExtension.create(publicKey, false, webcrypto),
    await x509.AuthorityKeyIdentifierExtension.create(issuerPublicKey, false, webcrypto),
  ];
}

/** Splits `--san` values into DNS names and IP addresses. */
export function splitSans(sans: readonly string[]): { dnsNames: string[]; ipAddresses: string[] } {
  const dnsNames: string[] = [];
  const ipAddresses: string[] = [];
  for (const san of sans) (isIP(san) ? ipAddresses : dnsNames).push(san);
  return { dnsNames, ipAddresses };
}
