import { createPublicKey, verify as verifySignature, type KeyObject } from 'node:crypto';
import * as asn1js from 'asn1js';
import { NAME_PATTERN, OU_BY_KIND, ORGANIZATION, parseIdentityUri, type IdentityKind } from '../protocol/identity.js';
import {
  CsrError,
  PKI_CSR_BAD_SIGNATURE,
  PKI_CSR_BAD_SUBJECT,
  PKI_CSR_COUNTRY_MISMATCH,
  PKI_CSR_KEY_TYPE,
  PKI_CSR_MALFORMED,
  PKI_CSR_WEAK_ALGORITHM,
  PKI_CSR_WEAK_KEY,
} from './errors.js';
import { readOnePem } from './pem.js';
import { x509 } from './x509.js';

/** Largest CSR accepted, PEM or DER: a P-256 CSR is ~450 bytes; this leaves room, not a DoS. */
export const MAX_CSR_BYTES = 16 * 1024;

export type KeyType = 'p256' | 'ed25519';

/** What the caller's policy (the enrollment token, the operator's command) allows. */
export interface CsrPolicy {
  kind: IdentityKind;
  /** Country code for `country`, identity name for `operator` and `hub`. */
  name: string;
  /** Key types this consumer supports; countries need P-256 (ECDH for CMS), so never Ed25519. */
  keyTypes: readonly KeyType[];
}

/** A CSR that passed every check. */
export interface VerifiedCsr {
  der: Uint8Array<ArrayBuffer>;
  publicKey: x509.PublicKey;
  keyType: KeyType;
}

const OID_ECDSA_SHA256 = '1.2.840.10045.4.3.2';
const OID_ED25519 = '1.3.101.112';
const WEAK_SIGNATURE_OIDS: Readonly<Record<string, string>> = {
  '1.2.840.10045.4.1': 'ecdsa-with-SHA1',
  '1.2.840.113549.1.1.4': 'md5WithRSAEncryption',
  '1.2.840.113549.1.1.5': 'sha1WithRSAEncryption',
};
const ALLOWED_ATTRIBUTES = new Set(['CN', 'OU', 'O', 'C']);

function toDer(input: string | Uint8Array): Uint8Array<ArrayBuffer> {
  if (input.length > MAX_CSR_BYTES) {
    throw new CsrError(PKI_CSR_MALFORMED, `csr: ${input.length} bytes is larger than the ${MAX_CSR_BYTES}-byte limit`);
  }
  if (typeof input !== 'string') return new Uint8Array(input);
  try {
    return readOnePem(input, ['CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST'], 'csr').der;
  } catch (err) {
    throw new CsrError(PKI_CSR_MALFORMED, (err as Error).message, { cause: err });
  }
}

/** Splits the DER CSR into the signed bytes exactly as sent, the algorithm OID and the signature. */
function splitCsr(der: Uint8Array): { tbs: Uint8Array; algorithm: string; signature: Uint8Array } {
  let parsed: ReturnType<typeof asn1js.fromBER>;
  try {
    parsed = asn1js.fromBER(der);
  } catch (err) {
    // asn1js throws (rather than reporting) on some bad primitives, e.g. a GeneralizedTime.
    throw new CsrError(PKI_CSR_MALFORMED, 'csr: not valid DER', { cause: err });
  }
  const seq = parsed.result;
  if (parsed.offset === -1 || parsed.offset !== der.byteLength || !(seq instanceof asn1js.Sequence)) {
    throw new CsrError(PKI_CSR_MALFORMED, 'csr: not a DER PKCS#10 CertificationRequest');
  }
  const [info, algId, sig] = seq.valueBlock.value;
  const oid = algId instanceof asn1js.Sequence ? algId.valueBlock.value[0] : undefined;
  if (!(info instanceof asn1js.Sequence) || !(oid instanceof asn1js.ObjectIdentifier) || !(sig instanceof asn1js.BitString)) {
    throw new CsrError(PKI_CSR_MALFORMED, 'csr: CertificationRequest does not have info, algorithm and signature');
  }
  return {
    tbs: new Uint8Array(info.valueBeforeDecodeView),
    algorithm: oid.valueBlock.toString(),
    signature: new Uint8Array(sig.valueBlock.valueHexView),
  };
}

function classifyKey(key: KeyObject, allowed: readonly KeyType[]): KeyType {
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  let keyType: KeyType | undefined;
  if (type === 'ec' && details.namedCurve === 'prime256v1') keyType = 'p256';
  if (type === 'ed25519') keyType = 'ed25519';
  if (type === 'rsa' || type === 'rsa-pss' || type === 'dsa') {
    const bits = details.modulusLength ?? 0;
    if (bits < 2048) throw new CsrError(PKI_CSR_WEAK_KEY, `csr: ${type.toUpperCase()} ${bits}-bit key is too weak; use ${allowed.join(' or ')}`);
  }
  if (keyType === undefined || !allowed.includes(keyType)) {
    const got = type === 'ec' ? `EC ${details.namedCurve ?? 'unknown curve'}` : (type ?? 'unknown');
    throw new CsrError(PKI_CSR_KEY_TYPE, `csr: key type ${got} is not accepted here; use ${allowed.join(' or ')}`);
  }
  return keyType;
}

function checkSignature(parts: ReturnType<typeof splitCsr>, key: KeyObject, keyType: KeyType): void {
  const weak = WEAK_SIGNATURE_OIDS[parts.algorithm];
  if (weak) throw new CsrError(PKI_CSR_WEAK_ALGORITHM, `csr: signature algorithm ${weak} is too weak; sign with SHA-256`);
  const expected = keyType === 'p256' ? OID_ECDSA_SHA256 : OID_ED25519;
  if (parts.algorithm !== expected) {
    throw new CsrError(PKI_CSR_BAD_SIGNATURE, `csr: signature algorithm ${parts.algorithm} does not fit a ${keyType} key (expected ${expected})`);
  }
  let ok = false;
  try {
    ok =
      keyType === 'p256'
        ? verifySignature('sha256', parts.tbs, { key, dsaEncoding: 'der' }, parts.signature)
        : verifySignature(null, parts.tbs, key, parts.signature);
  } catch (err) {
    throw new CsrError(PKI_CSR_BAD_SIGNATURE, 'csr: signature cannot be checked', { cause: err });
  }
  if (!ok) throw new CsrError(PKI_CSR_BAD_SIGNATURE, 'csr: signature does not match its public key (altered or forged request)');
}

/**
 * Subject attributes may be absent (the CA sets the subject) but, when present, must be the ones
 * the policy will issue: a CSR that names another country is refused, never silently corrected.
 */
function checkSubject(csr: x509.Pkcs10CertificateRequest, policy: CsrPolicy): void {
  const expected: Record<string, string> = { CN: policy.name, OU: OU_BY_KIND[policy.kind], O: ORGANIZATION };
  if (policy.kind === 'country') expected.C = policy.name;
  for (const rdn of csr.subjectName.toJSON()) {
    for (const [type, values] of Object.entries(rdn)) {
      if (!ALLOWED_ATTRIBUTES.has(type)) {
        throw new CsrError(PKI_CSR_BAD_SUBJECT, `csr: subject attribute ${type} is not allowed (only CN, OU, O, C)`);
      }
      for (const value of values as unknown[]) {
        const text = typeof value === 'string' ? value : JSON.stringify(value);
        if (text === expected[type]) continue;
        if (policy.kind === 'country' && (type === 'CN' || type === 'C')) {
          throw new CsrError(PKI_CSR_COUNTRY_MISMATCH, `csr: subject ${type}=${text} names another country than the token's ${policy.name}`);
        }
        throw new CsrError(PKI_CSR_BAD_SUBJECT, `csr: subject ${type}=${text} does not match the ${policy.kind} identity (expected ${type}=${expected[type]})`);
      }
    }
  }
  for (const ext of csr.extensions) {
    if (ext.type !== '2.5.29.17') continue;
    for (const name of new x509.SubjectAlternativeNameExtension(ext.rawData).names.toJSON()) {
      const id = name.type === 'url' ? parseIdentityUri(name.value) : undefined;
      if (id?.kind === policy.kind && id.name === policy.name) continue;
      if (policy.kind === 'country' && id?.kind === 'country') {
        throw new CsrError(PKI_CSR_COUNTRY_MISMATCH, `csr: subjectAltName ${name.value} names another country than the token's ${policy.name}`);
      }
      if (policy.kind !== 'hub') {
        throw new CsrError(PKI_CSR_BAD_SUBJECT, `csr: subjectAltName ${name.type}:${name.value} is not allowed for a ${policy.kind} identity`);
      }
    }
  }
}

/**
 * Parses and checks a CSR (PEM or DER) against the caller's policy: structure, key type and
 * strength, signature algorithm, proof of possession, subject. Each refusal is a {@link CsrError}
 * with its own code. Requested extensions are never copied: the profile decides what is issued.
 */
export function verifyCsr(input: string | Uint8Array, policy: CsrPolicy): VerifiedCsr {
  if (policy.kind !== 'country' && !NAME_PATTERN.test(policy.name)) {
    throw new CsrError(PKI_CSR_BAD_SUBJECT, `name: ${JSON.stringify(policy.name)} is not a valid ${policy.kind} name`);
  }
  const der = toDer(input);
  const parts = splitCsr(der);
  let csr: x509.Pkcs10CertificateRequest;
  let key: KeyObject;
  try {
    csr = new x509.Pkcs10CertificateRequest(der);
    key = createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: 'der', type: 'spki' });
  } catch (err) {
    throw new CsrError(PKI_CSR_MALFORMED, 'csr: cannot read the request or its public key', { cause: err });
  }
  const keyType = classifyKey(key, policy.keyTypes);
  checkSignature(parts, key, keyType);
  checkSubject(csr, policy);
  return { der, publicKey: csr.publicKey, keyType };
}
