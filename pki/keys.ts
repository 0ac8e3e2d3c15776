import { KeyFileError, PKI_KEY_MALFORMED } from './errors.js';
import { readOnePem, toPem } from './pem.js';
import { readSecretFile, writeSecretFile } from './files.js';

/** ECDSA P-256: the only key type ncbnet's CA signs with. */
export const EC_P256: EcKeyImportParams & EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
/** Signature algorithm for certificates, CRLs and OCSP responses (ecdsa-with-SHA256). */
export const ECDSA_SHA256: EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };

/** Generates an extractable P-256 key pair (extractable so the private key can be written to disk). */
export async function generateP256(): Promise<CryptoKeyPair> {
  return crypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
}

/** Private key as PKCS#8 PEM (`PRIVATE KEY`). */
export async function privateKeyToPem(key: CryptoKey): Promise<string> {
  return toPem('PRIVATE KEY', await crypto.subtle.exportKey('pkcs8', key));
}

/** Imports a PKCS#8 P-256 private key for signing; a clear error for anything else. */
export async function importP256PrivateKey(pem: string, source: string): Promise<CryptoKey> {
  const block = readOnePem(pem, ['PRIVATE KEY'], source);
  try {
    return await crypto.subtle.importKey('pkcs8', block.der, EC_P256, false, ['sign']);
  } catch (err) {
    throw new KeyFileError(PKI_KEY_MALFORMED, `${source}: not a PKCS#8 ECDSA P-256 private key`, { cause: err });
  }
}

/** Writes a private key as PKCS#8 PEM, mode 0600, refusing to replace an existing file. */
export async function writePrivateKey(path: string, key: CryptoKey): Promise<void> {
  await writeSecretFile(path, await privateKeyToPem(key));
}

/** Reads a P-256 private key file (must be mode 0600 or stricter). */
export async function readPrivateKey(path: string): Promise<CryptoKey> {
  return importP256PrivateKey(await readSecretFile(path), path);
}
