/**
 * End-to-end encryption of message bodies: CMS EnvelopedData (RFC 5652 §6) to the recipients'
 * country certificates, one KeyAgreeRecipientInfo each — ephemeral-static ECDH on P-256 with the
 * X9.63 KDF and AES key wrap (RFC 5753 §3.1) — and AES-256-CBC content encryption (RFC 3565).
 *
 * Why CBC: pkijs's AES-GCM output is EnvelopedData, not AuthEnvelopedData (RFC 5083), and openssl
 * refuses it. CBC is not authenticated; integrity rests on the envelope signature, which covers
 * the ciphertext (ARCHITECTURE, "Messages"). Callers must verify it before decrypting.
 *
 * Encryption is pkijs's `addRecipientByCertificate` + `encrypt`; decryption parses with pkijs but
 * derives the key-encryption key here (see {@link eccCmsSharedInfo} for why).
 *
 * Certificate path validation and revocation are the caller's job: this module checks only that
 * a certificate is fit for key agreement (P-256 key, keyUsage keyAgreement).
 */
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { MAX_ENVELOPE_BYTES, MAX_RECIPIENTS } from '../protocol/envelope.js';
import {
  CmsError,
  PkiError,
  PKI_CMS_BAD_KEY,
  PKI_CMS_BAD_RECIPIENT,
  PKI_CMS_DECRYPT_FAILED,
  PKI_CMS_ENCRYPT_FAILED,
  PKI_CMS_KEY_MISMATCH,
  PKI_CMS_MALFORMED,
  PKI_CMS_NO_RECIPIENTS,
  PKI_CMS_NOT_RECIPIENT,
  PKI_CMS_TOO_LARGE,
  PKI_CMS_TOO_MANY_RECIPIENTS,
  PKI_CMS_UNSUPPORTED,
} from './errors.js';
import { eccCmsSharedInfo, x963Kdf } from './cms-kdf.js';
import { readOnePem } from './pem.js';
import { webcrypto } from './x509.js';

/**
 * Largest plaintext accepted. 512 KiB of body, plus a KeyAgreeRecipientInfo (~330 bytes) for each
 * of {@link MAX_CMS_RECIPIENTS}, still fits one envelope ({@link MAX_ENVELOPE_BYTES}) in base64.
 */
export const MAX_CMS_PLAINTEXT_BYTES = 512 * 1024;
/** Most recipient certificates in one message: every country an envelope may name, plus the sender's own copy. */
export const MAX_CMS_RECIPIENTS = MAX_RECIPIENTS + 1;
/** Longest base64 CMS accepted for reading: it travels inside one envelope, so it cannot be longer. */
export const MAX_CMS_BASE64_CHARS = MAX_ENVELOPE_BYTES;

const OID_EC_PUBLIC_KEY = '1.2.840.10045.2.1';
const OID_P256 = '1.2.840.10045.3.1.7';
const OID_KEY_USAGE = '2.5.29.15';
const OID_AES256_CBC = '2.16.840.1.101.3.4.1.42';
/** RFC 5280 §4.2.1.3: keyAgreement is bit 4, i.e. 0x08 in the first octet of the BIT STRING. */
const KEY_AGREEMENT_MASK = 0x08;
const AES_BLOCK_BYTES = 16;
const ECDH_P256: EcKeyImportParams = { name: 'ECDH', namedCurve: 'P-256' };
/**
 * dhSinglePass-stdDH-sha256kdf-scheme with aes256-wrap (RFC 5753 §7.1.4, §7.2): a 256-bit KEK to
 * wrap a 256-bit content key. pkijs's default is the SHA-512 KDF; SHA-256 matches P-256's strength.
 */
const KEY_AGREEMENT_PARAMS = { kdfAlgorithm: 'SHA-256', kekEncryptionLength: 256 };
/** X9.63 KDF hash of each dhSinglePass-stdDH scheme (RFC 5753 §7.1.4); SHA-1 is openssl's default. */
const KDF_HASHES: Readonly<Record<string, string>> = {
  '1.3.133.16.840.63.0.2': 'SHA-1',
  '1.3.132.1.11.1': 'SHA-256',
  '1.3.132.1.11.2': 'SHA-384',
  '1.3.132.1.11.3': 'SHA-512',
};
/** Key-encryption key size of each AES key wrap (RFC 3565 §2.3.2). */
const WRAP_BITS: Readonly<Record<string, number>> = {
  '2.16.840.1.101.3.4.1.5': 128,
  '2.16.840.1.101.3.4.1.25': 192,
  '2.16.840.1.101.3.4.1.45': 256,
};
/** OriginatorIdentifierOrKey variant 3: originatorKey, the only form RFC 5753 §3.1.1 allows for ephemeral-static ECDH. */
const ORIGINATOR_KEY = 3;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** A pkijs engine over Node's WebCrypto, passed explicitly so no global provider is relied upon. */
function cmsEngine(): pkijs.ICryptoEngine {
  return new pkijs.CryptoEngine({ name: 'node', crypto: webcrypto });
}

function hex(view: Uint8Array): string {
  return Buffer.from(view).toString('hex');
}

/** Serial as lower-case hex without the leading zero octet DER adds to keep it positive (as the ledger writes it). */
function serialHex(serial: asn1js.Integer): string {
  return hex(serial.valueBlock.valueHexView).replace(/^(00)+(?=[0-9a-f]{2})/, '');
}

/** Identity of an IssuerAndSerialNumber (RFC 5652 §10.2.4): issuer name DER and serial. */
function ridKey(issuer: pkijs.RelativeDistinguishedNames, serial: asn1js.Integer): string {
  return `${hex(new Uint8Array(issuer.toSchema().toBER(false)))}/${serialHex(serial)}`;
}

function parseCertificate(input: string | Uint8Array, source: string): pkijs.Certificate {
  try {
    const der = typeof input === 'string' ? readOnePem(input, ['CERTIFICATE'], source).der : new Uint8Array(input);
    return pkijs.Certificate.fromBER(der);
  } catch (err) {
    throw new CmsError(PKI_CMS_BAD_RECIPIENT, `${source}: not an X.509 certificate`, { cause: err });
  }
}

/** Whether keyUsage is present and asserts keyAgreement; absent keyUsage is refused, not read as "any use". */
function hasKeyAgreement(cert: pkijs.Certificate): boolean {
  const ext = cert.extensions?.find((e) => e.extnID === OID_KEY_USAGE);
  if (!ext) return false;
  const parsed = asn1js.fromBER(ext.extnValue.valueBlock.valueHexView);
  if (parsed.offset === -1 || !(parsed.result instanceof asn1js.BitString)) return false;
  const first = parsed.result.valueBlock.valueHexView[0];
  return first !== undefined && (first & KEY_AGREEMENT_MASK) !== 0;
}

/**
 * The certificate's public key as a P-256 JWK (x, y), refusing any other key type or curve: pkijs
 * would happily agree on P-384 or wrap to RSA, which our network does not use.
 */
async function p256PublicJwk(cert: pkijs.Certificate, source: string): Promise<JsonWebKey> {
  const { algorithm } = cert.subjectPublicKeyInfo;
  const curve: unknown = algorithm.algorithmParams;
  if (algorithm.algorithmId !== OID_EC_PUBLIC_KEY || !(curve instanceof asn1js.ObjectIdentifier) || curve.valueBlock.toString() !== OID_P256) {
    throw new CmsError(PKI_CMS_BAD_RECIPIENT, `${source}: key is not EC P-256 (got ${algorithm.algorithmId})`);
  }
  try {
    const spki = new Uint8Array(cert.subjectPublicKeyInfo.toSchema().toBER(false));
    return await webcrypto.subtle.exportKey('jwk', await webcrypto.subtle.importKey('spki', spki, ECDH_P256, true, []));
  } catch (err) {
    throw new CmsError(PKI_CMS_BAD_RECIPIENT, `${source}: public key is not a valid P-256 point`, { cause: err });
  }
}

/**
 * Encrypts `plaintext` (a string is UTF-8 encoded) so that each recipient certificate's private
 * key, and only those, can read it. Returns base64 DER of ContentInfo(EnvelopedData): AES-256-CBC
 * content, one KeyAgreeRecipientInfo per distinct certificate, identified by issuer and serial.
 *
 * @throws CmsError `PKI_CMS_NO_RECIPIENTS`, `PKI_CMS_TOO_MANY_RECIPIENTS`, `PKI_CMS_TOO_LARGE`,
 *   `PKI_CMS_BAD_RECIPIENT` (not a certificate, not P-256, no keyAgreement key usage).
 */
export async function encryptForRecipients(plaintext: Uint8Array | string, recipients: readonly (string | Uint8Array)[]): Promise<string> {
  const data = typeof plaintext === 'string' ? new TextEncoder().encode(plaintext) : plaintext;
  if (data.byteLength > MAX_CMS_PLAINTEXT_BYTES) throw new CmsError(PKI_CMS_TOO_LARGE, `plaintext: ${data.byteLength} bytes exceeds ${MAX_CMS_PLAINTEXT_BYTES}`);
  if (recipients.length === 0) throw new CmsError(PKI_CMS_NO_RECIPIENTS, 'recipients: at least one certificate is needed');
  if (recipients.length > MAX_CMS_RECIPIENTS) {
    throw new CmsError(PKI_CMS_TOO_MANY_RECIPIENTS, `recipients: ${recipients.length} exceeds ${MAX_CMS_RECIPIENTS}`);
  }
  const engine = cmsEngine();
  // disableSplit: pkijs otherwise re-encodes content over 1 KiB as an indefinite-length
  // constructed OCTET STRING, which is BER, not the DER this function promises.
  const enveloped = new pkijs.EnvelopedData({ disableSplit: true });
  const seen = new Set<string>();
  for (const [i, input] of recipients.entries()) {
    const source = `recipients[${i}]`;
    const cert = parseCertificate(input, source);
    await p256PublicJwk(cert, source);
    if (!hasKeyAgreement(cert)) throw new CmsError(PKI_CMS_BAD_RECIPIENT, `${source}: key usage does not allow keyAgreement (RFC 5280 §4.2.1.3)`);
    const key = ridKey(cert.issuer, cert.serialNumber);
    if (seen.has(key)) continue; // the same reader twice would only grow the message
    seen.add(key);
    enveloped.addRecipientByCertificate(cert, KEY_AGREEMENT_PARAMS, 2 /* key agreement */, engine);
  }
  const contentEncryption: AesKeyGenParams = { name: 'AES-CBC', length: 256 };
  try {
    // pkijs reads the ArrayBuffer whole: copy so a view into a larger buffer encrypts only its bytes.
    await enveloped.encrypt(contentEncryption, data.slice().buffer, engine);
    // RecipientInfos is a SET OF (RFC 5652 §6.1), which DER sorts by encoding (X.690 §11.6); pkijs keeps insertion order.
    const sorted = enveloped.recipientInfos.map((ri) => ({ ri, der: new Uint8Array(ri.toSchema().toBER(false)) }));
    sorted.sort((a, b) => Buffer.compare(a.der, b.der));
    enveloped.recipientInfos = sorted.map(({ ri }) => ri);
    const info = new pkijs.ContentInfo({ contentType: pkijs.ContentInfo.ENVELOPED_DATA, content: enveloped.toSchema() });
    return Buffer.from(info.toSchema().toBER(false)).toString('base64');
  } catch (err) {
    throw new CmsError(PKI_CMS_ENCRYPT_FAILED, 'could not encrypt the message', { cause: err });
  }
}

/** Strict base64 → DER → ContentInfo(EnvelopedData); anything else is `PKI_CMS_MALFORMED`. */
function parseEnvelopedData(cmsBase64: unknown): pkijs.EnvelopedData {
  if (typeof cmsBase64 !== 'string') throw new CmsError(PKI_CMS_MALFORMED, `cms: expected a base64 string (got ${typeof cmsBase64})`);
  if (cmsBase64.length > MAX_CMS_BASE64_CHARS) throw new CmsError(PKI_CMS_TOO_LARGE, `cms: ${cmsBase64.length} characters exceeds ${MAX_CMS_BASE64_CHARS}`);
  if (cmsBase64.length === 0 || !BASE64.test(cmsBase64)) throw new CmsError(PKI_CMS_MALFORMED, 'cms: not canonical base64');
  const der = new Uint8Array(Buffer.from(cmsBase64, 'base64'));
  try {
    const parsed = asn1js.fromBER(der);
    if (parsed.offset !== der.byteLength) throw new Error(`BER decoding stopped at ${parsed.offset} of ${der.byteLength} bytes`);
    const info = new pkijs.ContentInfo({ schema: parsed.result });
    if (info.contentType !== pkijs.ContentInfo.ENVELOPED_DATA) throw new Error(`content type is ${info.contentType}, not envelopedData`);
    const enveloped = new pkijs.EnvelopedData({ schema: info.content });
    if (enveloped.recipientInfos.length === 0) throw new Error('no RecipientInfo (RFC 5652 §6.1 requires at least one)');
    return enveloped;
  } catch (err) {
    throw new CmsError(PKI_CMS_MALFORMED, 'cms: not a CMS ContentInfo holding EnvelopedData (RFC 5652 §3, §6.1)', { cause: err });
  }
}

/** The AES-256-CBC IV and ciphertext; only what we send and what `openssl cms -encrypt -aes256` sends is read. */
function contentToDecrypt(enveloped: pkijs.EnvelopedData): { iv: Uint8Array<ArrayBuffer>; ciphertext: Uint8Array<ArrayBuffer> } {
  const info = enveloped.encryptedContentInfo;
  const { algorithmId } = info.contentEncryptionAlgorithm;
  if (algorithmId !== OID_AES256_CBC) throw new CmsError(PKI_CMS_UNSUPPORTED, `cms: content encryption ${algorithmId} is not AES-256-CBC`);
  const iv: unknown = info.contentEncryptionAlgorithm.algorithmParams;
  if (!(iv instanceof asn1js.OctetString) || iv.valueBlock.valueHexView.byteLength !== AES_BLOCK_BYTES) {
    throw new CmsError(PKI_CMS_MALFORMED, 'cms: AES-CBC parameters are not a 16-byte IV (RFC 3565 §4.1)');
  }
  let ciphertext: Uint8Array<ArrayBuffer>;
  try {
    ciphertext = new Uint8Array(info.getEncryptedContent());
  } catch (err) {
    throw new CmsError(PKI_CMS_MALFORMED, 'cms: no encrypted content (detached content is not used here)', { cause: err });
  }
  if (ciphertext.byteLength === 0 || ciphertext.byteLength % AES_BLOCK_BYTES !== 0) {
    throw new CmsError(PKI_CMS_MALFORMED, `cms: encrypted content of ${ciphertext.byteLength} bytes is not whole AES blocks`);
  }
  return { iv: new Uint8Array(iv.valueBlock.valueHexView), ciphertext };
}

/** The RecipientInfo at `index` that names us, and our RecipientEncryptedKey's wrapped key. */
type FoundRecipient = { index: number; kari: pkijs.KeyAgreeRecipientInfo; wrappedKey: Uint8Array<ArrayBuffer> };

/**
 * The KeyAgreeRecipientInfo and RecipientEncryptedKey naming `cert` by issuer and serial
 * (RFC 5652 §6.2.2), never by position. One KeyAgreeRecipientInfo may hold several encrypted
 * keys sharing an originator key; each is looked at (pkijs's own decrypt reads only the first).
 */
function findRecipient(enveloped: pkijs.EnvelopedData, cert: pkijs.Certificate): FoundRecipient {
  const want = ridKey(cert.issuer, cert.serialNumber);
  for (const [index, info] of enveloped.recipientInfos.entries()) {
    const kari = info.value;
    if (!(kari instanceof pkijs.KeyAgreeRecipientInfo)) continue;
    for (const rek of kari.recipientEncryptedKeys.encryptedKeys) {
      const rid: unknown = rek.rid.value;
      if (rid instanceof pkijs.IssuerAndSerialNumber && ridKey(rid.issuer, rid.serialNumber) === want) {
        return { index, kari, wrappedKey: new Uint8Array(rek.encryptedKey.valueBlock.valueHexView) };
      }
    }
  }
  throw new CmsError(PKI_CMS_NOT_RECIPIENT, `cms: not encrypted to certificate serial ${serialHex(cert.serialNumber)}`);
}

/**
 * Recovers the AES-256 content key (RFC 5753 §3.1.2): ECDH between our private key and the
 * originator's ephemeral key, X9.63 KDF over ECC-CMS-SharedInfo, then AES key unwrap (RFC 3394,
 * whose integrity check turns a wrong key or altered bytes into a failure, not garbage).
 */
async function unwrapContentKey(found: FoundRecipient, privateKey: CryptoKey): Promise<CryptoKey> {
  const { kari, index } = found;
  const hash = KDF_HASHES[kari.keyEncryptionAlgorithm.algorithmId];
  let wrapOid: string;
  try {
    wrapOid = new pkijs.AlgorithmIdentifier({ schema: kari.keyEncryptionAlgorithm.algorithmParams }).algorithmId;
  } catch (err) {
    throw new CmsError(PKI_CMS_MALFORMED, `cms: recipient info ${index} has no key-wrap algorithm (RFC 5753 §7.1.4)`, { cause: err });
  }
  const bits = WRAP_BITS[wrapOid];
  const originator: unknown = kari.originator.value;
  if (!hash || !bits || kari.originator.variant !== ORIGINATOR_KEY || !(originator instanceof pkijs.OriginatorPublicKey) || originator.algorithm.algorithmId !== OID_EC_PUBLIC_KEY) {
    throw new CmsError(PKI_CMS_UNSUPPORTED, `cms: recipient info ${index} is not ephemeral-static ECDH with a SHA KDF and AES key wrap (RFC 5753 §3.1)`);
  }
  const ukm = kari.ukm?.valueBlock.valueHexView;
  try {
    // The ephemeral key's curve is ours (§3.1.1 lets its parameters be absent); raw import checks the point.
    const ephemeral = await webcrypto.subtle.importKey('raw', new Uint8Array(originator.publicKey.valueBlock.valueHexView), ECDH_P256, false, []);
    const z = await webcrypto.subtle.deriveBits({ name: 'ECDH', public: ephemeral }, privateKey, 256);
    const unwrap = async (withNullParams: boolean) => {
      const kekBytes = await x963Kdf(hash, z, eccCmsSharedInfo(wrapOid, withNullParams, ukm, bits), bits);
      const kek = await webcrypto.subtle.importKey('raw', kekBytes, 'AES-KW', false, ['unwrapKey']);
      return webcrypto.subtle.unwrapKey('raw', found.wrappedKey, kek, 'AES-KW', 'AES-CBC', false, ['decrypt']);
    };
    // keyInfo's parameters are absent per §7.2; some senders encode NULL, so that is tried second.
    const key = await unwrap(false).catch(() => unwrap(true));
    const { algorithm } = key;
    if (!('length' in algorithm) || algorithm.length !== 256) throw new Error('the content key is not 256 bits');
    return key;
  } catch (err) {
    throw new CmsError(PKI_CMS_DECRYPT_FAILED, `cms: could not unwrap the content key of recipient info ${index}`, { cause: err });
  }
}

/**
 * The private key as a non-extractable ECDH P-256 key, checked against the certificate when its
 * coordinates can be read. Country keys are generated for ECDSA; the same P-256 key does ECDH
 * (the certificate's keyUsage allows both), so an ECDSA key is re-imported for `deriveBits`.
 */
async function ecdhPrivateKey(input: CryptoKey | string, publicJwk: JsonWebKey): Promise<CryptoKey> {
  let jwk: JsonWebKey;
  try {
    if (typeof input === 'string') {
      const { der } = readOnePem(input, ['PRIVATE KEY'], 'private key');
      jwk = await webcrypto.subtle.exportKey('jwk', await webcrypto.subtle.importKey('pkcs8', der, ECDH_P256, true, ['deriveBits']));
    } else {
      const { algorithm } = input;
      const isP256 = 'namedCurve' in algorithm && algorithm.namedCurve === 'P-256' && (algorithm.name === 'ECDH' || algorithm.name === 'ECDSA');
      if (input.type !== 'private' || !isP256) throw new Error(`a ${input.type} ${algorithm.name} key`);
      if (!input.extractable) {
        // Cannot re-import or compare; usable as is only if it is already an ECDH key.
        if (algorithm.name === 'ECDH' && input.usages.includes('deriveBits')) return input;
        throw new Error('a non-extractable key that is not ECDH with deriveBits');
      }
      jwk = await webcrypto.subtle.exportKey('jwk', input);
    }
  } catch (err) {
    throw new CmsError(PKI_CMS_BAD_KEY, 'private key: not a P-256 private key usable for ECDH (PKCS#8 PEM or CryptoKey)', { cause: err });
  }
  if (jwk.x !== publicJwk.x || jwk.y !== publicJwk.y) throw new CmsError(PKI_CMS_KEY_MISMATCH, 'private key: does not belong to the certificate');
  const clean: JsonWebKey = { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y, d: jwk.d };
  return webcrypto.subtle.importKey('jwk', clean, ECDH_P256, false, ['deriveBits']).catch((err: unknown) => {
    throw new CmsError(PKI_CMS_BAD_KEY, 'private key: cannot be used for ECDH', { cause: err });
  });
}

/** Turns anything unexpected from pkijs or asn1js into a coded error: the readers' contract is "only PkiError". */
function coded(err: unknown, code: string, message: string): PkiError {
  return err instanceof PkiError ? err : new CmsError(code, message, { cause: err });
}

/**
 * Decrypts a message encrypted to `certificate` with its private key (a CryptoKey, ECDH or
 * extractable ECDSA P-256, or PKCS#8 PEM). The RecipientInfo is found by the certificate's issuer
 * and serial, not by position. Throws only {@link PkiError}s, whatever the input.
 *
 * Authenticity is not checked here: AES-CBC is malleable, so verify the envelope signature first.
 *
 * @throws CmsError `PKI_CMS_MALFORMED`, `PKI_CMS_TOO_LARGE`, `PKI_CMS_UNSUPPORTED` (not AES-256-CBC,
 *   not ephemeral-static ECDH), `PKI_CMS_NOT_RECIPIENT`, `PKI_CMS_BAD_RECIPIENT` (certificate),
 *   `PKI_CMS_BAD_KEY`, `PKI_CMS_KEY_MISMATCH`, `PKI_CMS_DECRYPT_FAILED` (wrong key, tampering).
 */
export async function decryptForRecipient(cmsBase64: string, certificate: string | Uint8Array, privateKey: CryptoKey | string): Promise<Uint8Array> {
  try {
    const cert = parseCertificate(certificate, 'certificate');
    const key = await ecdhPrivateKey(privateKey, await p256PublicJwk(cert, 'certificate'));
    const enveloped = parseEnvelopedData(cmsBase64);
    const { iv, ciphertext } = contentToDecrypt(enveloped);
    const found = findRecipient(enveloped, cert);
    const contentKey = await unwrapContentKey(found, key);
    try {
      return new Uint8Array(await webcrypto.subtle.decrypt({ name: 'AES-CBC', iv }, contentKey, ciphertext));
    } catch (err) {
      // Bad PKCS#7 padding (RFC 5652 §6.3): the content was altered, or encrypted under another key.
      throw new CmsError(PKI_CMS_DECRYPT_FAILED, 'cms: content does not decrypt under its key', { cause: err });
    }
  } catch (err) {
    throw coded(err, PKI_CMS_MALFORMED, 'cms: could not be read');
  }
}

/**
 * Serials (lower-case hex, as the ledger writes them) of every certificate the message is
 * encrypted to, in encoding order: who can read it, for the audit record. A recipient not named by
 * issuer and serial (a key identifier, a shared key, a password) makes the answer unknowable,
 * so it is `PKI_CMS_UNSUPPORTED` rather than left out.
 */
export function cmsRecipientSerials(cmsBase64: string): string[] {
  try {
    const enveloped = parseEnvelopedData(cmsBase64);
    const serials: string[] = [];
    for (const [index, info] of enveloped.recipientInfos.entries()) {
      const ri = info.value;
      const rids: unknown[] =
        ri instanceof pkijs.KeyAgreeRecipientInfo ? ri.recipientEncryptedKeys.encryptedKeys.map((rek): unknown => rek.rid.value)
        : ri instanceof pkijs.KeyTransRecipientInfo ? [ri.rid]
        : [undefined];
      for (const rid of rids) {
        if (!(rid instanceof pkijs.IssuerAndSerialNumber)) {
          throw new CmsError(PKI_CMS_UNSUPPORTED, `cms: recipient info ${index} does not name a certificate by issuer and serial`);
        }
        serials.push(serialHex(rid.serialNumber));
      }
    }
    return serials;
  } catch (err) {
    throw coded(err, PKI_CMS_MALFORMED, 'cms: could not be read');
  }
}
