import * as asn1js from 'asn1js';
import { ECDSA_SHA256 } from './keys.js';
import { toPem } from './pem.js';
import { REVOCATION_REASONS, type CertificateState } from './ledger.js';
import { webcrypto, x509 } from './x509.js';

/** CRLs are re-issued well before they lapse; a day bounds how stale a cached one can be. */
export const DEFAULT_CRL_LIFETIME_MS = 24 * 60 * 60 * 1000;
const OID_CRL_NUMBER = '2.5.29.20';

export interface CrlOptions {
  issuer: x509.X509Certificate;
  key: CryptoKey;
  now: Date;
  revoked: readonly CertificateState[];
  lifetimeMs?: number;
}

/**
 * Builds a v2 CRL (RFC 5280 §5) with authorityKeyIdentifier and cRLNumber. The number is the
 * issue time in milliseconds: monotonic without shared state, so any hub of a cluster can issue
 * the next CRL. A reason of `unspecified` is left out, as §5.3.1 asks.
 */
export async function buildCrl(opts: CrlOptions): Promise<x509.X509Crl> {
  const crlNumber = new asn1js.Integer({ value: opts.now.getTime() }).toBER();
  return x509.X509CrlGenerator.create(
    {
      issuer: opts.issuer.subjectName,
      thisUpdate: opts.now,
      nextUpdate: new Date(opts.now.getTime() + (opts.lifetimeMs ?? DEFAULT_CRL_LIFETIME_MS)),
      signingKey: opts.key,
      signingAlgorithm: ECDSA_SHA256,
      extensions: [
        await x509.AuthorityKeyIdentifierExtension.create(opts.issuer.publicKey, false, webcrypto),
        new x509.Extension(OID_CRL_NUMBER, false, crlNumber),
      ],
      entries: opts.revoked.map((c) => {
        const reason = REVOCATION_REASONS[c.reason ?? 'unspecified'];
        return {
          serialNumber: c.serial,
          revocationDate: new Date(c.revokedAt ?? opts.now),
          ...(reason === 0 ? {} : { reason: reason }),
        };
      }),
    },
    webcrypto,
  );
}

/** PEM with the label RFC 7468 and OpenSSL use for CRLs (`X509 CRL`; the x509 library writes `CRL`). */
export function crlToPem(crl: x509.X509Crl): string {
  return toPem('X509 CRL', crl.rawData);
}
