import { generateKeyPairSync } from 'node:crypto';
import { createCsr } from '../../pki/csr-create.js';
import { generateP256, privateKeyToPem } from '../../pki/keys.js';

/** A country's key and CSR as an agent makes them (P-256, key kept by the caller), plus a WireGuard key. */
export async function countryKeys(csrCountry: string): Promise<{ keyPem: string; csr: string; wgPublicKey: string }> {
  const keys = await generateP256();
  const { publicKey } = generateKeyPairSync('x25519');
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  return { keyPem: await privateKeyToPem(keys.privateKey), csr: await createCsr('country', csrCountry, keys), wgPublicKey: raw.toString('base64') };
}
