import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { importP256PrivateKey } from '../pki/keys.js';
import type { Envelope } from '../protocol/envelope.js';
import { signEnvelope, verifyEnvelopeSignature } from '../protocol/signature.js';
import type { AgentPaths } from './state.js';

/** PEM blocks of a chain file, one certificate each. */
export function pemCertificates(text: string): string[] {
  return [...text.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)].map((m) => `${m[0]}\n`);
}

/**
 * The country's signing identity, read from the state directory. `reload()` after a renewal so
 * the next envelope carries the new certificate.
 */
export class EnvelopeSigner {
  #key: CryptoKey | undefined;
  #certDer: Uint8Array | undefined;
  readonly #paths: AgentPaths;

  constructor(paths: AgentPaths) {
    this.#paths = paths;
  }

  async reload(): Promise<void> {
    const [keyPem, certPem] = await Promise.all([readFile(this.#paths.countryKey, 'utf8'), readFile(this.#paths.countryCert, 'utf8')]);
    this.#key = await importP256PrivateKey(keyPem, this.#paths.countryKey);
    this.#certDer = new Uint8Array(new X509Certificate(certPem).raw);
  }

  async sign(envelope: Envelope): Promise<Envelope> {
    if (!this.#key || !this.#certDer) await this.reload();
    return signEnvelope(envelope, this.#key as CryptoKey, this.#certDer as Uint8Array);
  }
}

/**
 * Checks a delivered envelope against the network's root and the hub intermediate(s) from the
 * bundle. Revocation is the hub's job here (its router checks the CA ledger before delivering);
 * the agent has no CRL feed yet.
 */
export function makeEnvelopeVerifier(rootPem: string, chainPem: string): (envelope: Envelope) => Promise<void> {
  const trustedRoots = [rootPem];
  const intermediates = pemCertificates(chainPem);
  return async (envelope) => {
    await verifyEnvelopeSignature(envelope, { trustedRoots, intermediates });
  };
}
