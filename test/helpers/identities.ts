// Identities for tests that attack or drive the hub directly, without an agent: certificates issued
// offline by a CA (any kind), and countries enrolled through the real enrollment API with their key
// kept by the caller, as a misbehaving NCB holding its own key could use them.
import type { Bundle } from '../../hub/enrollment/bundle.js';
import type { CertificateAuthority } from '../../pki/ca.js';
import { createCsr } from '../../pki/csr-create.js';
import { generateP256, privateKeyToPem } from '../../pki/keys.js';
import type { IdentityKind } from '../../protocol/identity.js';
import { countryKeys } from './country-identity.js';
import { httpsCall, type HttpsAnswer } from './https.js';

/** A TLS client identity: leaf then chain (PEM), its key, its serial. */
export interface TlsIdentity {
  /** Leaf then intermediate, PEM (what a TLS client presents). */
  cert: string;
  key: string;
  serial: string;
}

/** Issues a leaf of `kind` for `name` from `ca` with a key made here (offline, as `ncbnet pki sign` does). */
export async function issueIdentity(ca: CertificateAuthority, kind: IdentityKind, name: string, opts: { ips?: string[]; dns?: string[] } = {}): Promise<TlsIdentity> {
  const keys = await generateP256();
  const issued = await ca.issue({ kind, name, csr: await createCsr(kind, name, keys), ipAddresses: opts.ips ?? [], dnsNames: opts.dns ?? [] });
  return { cert: issued.pem + ca.issuer.toString('pem') + '\n', key: await privateKeyToPem(keys.privateKey), serial: issued.serial };
}

/** A country enrolled through the API: its mTLS identity, the bare leaf and the whole bundle. */
export interface EnrolledCountry extends TlsIdentity {
  code: string;
  /** The leaf alone, PEM. */
  certificate: string;
  /** Intermediate then root, PEM. */
  chain: string;
  bundle: Bundle;
}

/** What {@link enrollCountry} needs of a hub: its API URL, the root to trust, and an operator call. */
export interface EnrollTarget {
  apiUrl: string;
  rootPem: string;
  admin(method: string, path: string, body?: unknown): Promise<HttpsAnswer>;
}

/** Adds `code`, makes a token and enrolls with a key made here, through the real API; throws on any refusal. */
export async function enrollCountry(hub: EnrollTarget, code: string): Promise<EnrolledCountry> {
  const added = await hub.admin('POST', '/countries', { code, name: `Country ${code}` });
  if (added.status !== 201) throw new Error(`country add ${code}: ${added.status} ${added.text}`);
  const made = await hub.admin('POST', '/tokens', { country: code });
  if (made.status !== 201) throw new Error(`token for ${code}: ${made.status} ${made.text}`);
  const token = (made.json as { token: string }).token;
  const keys = await countryKeys(code);
  const answer = await httpsCall(`${hub.apiUrl}/v1/enroll`, { ca: hub.rootPem, body: { token, csr: keys.csr, wgPublicKey: keys.wgPublicKey } });
  if (answer.status !== 200) throw new Error(`enroll ${code}: ${answer.status} ${answer.text}`);
  const bundle = answer.json as Bundle;
  return { code, cert: bundle.certificate + bundle.chain, key: keys.keyPem, serial: bundle.serial, certificate: bundle.certificate, chain: bundle.chain, bundle };
}

/** Renews `country`'s certificate over mTLS with a new key; returns the new identity (the old one is superseded). */
export async function renewCountry(hub: Pick<EnrollTarget, 'apiUrl' | 'rootPem'>, country: EnrolledCountry): Promise<EnrolledCountry> {
  const keys = await countryKeys(country.code);
  const answer = await httpsCall(`${hub.apiUrl}/v1/renew`, { ca: hub.rootPem, cert: country.cert, key: country.key, body: { csr: keys.csr } });
  if (answer.status !== 200) throw new Error(`renew ${country.code}: ${answer.status} ${answer.text}`);
  const r = answer.json as { serial: string; certificate: string; chain: string };
  return { ...country, cert: r.certificate + r.chain, key: keys.keyPem, serial: r.serial, certificate: r.certificate, chain: r.chain };
}
