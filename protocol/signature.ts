/**
 * Envelope signatures (ARCHITECTURE, "Messages"): the sender's ECDSA P-256/SHA-256 signature over
 * the RFC 8785 (JCS) form of the envelope without `sig`, carried as base64url IEEE P1363 `r || s`
 * in `sig`, with the signer's leaf certificate in `sigCert` so a recipient needs no directory.
 * The signature covers `sigCert` and, for encrypted content, the ciphertext, so integrity does
 * not rest on the cipher mode. Pure apart from WebCrypto / Node crypto: no I/O.
 */
import { KeyObject, X509Certificate, sign as cryptoSign, verify as verifySignature } from 'node:crypto';
import { isCountryCode } from './country.js';
import {
  ENVELOPE_BAD_CERTIFICATE,
  ENVELOPE_BAD_SIGNATURE,
  ENVELOPE_CERT_REVOKED,
  ENVELOPE_INVALID,
  ENVELOPE_SENDER_MISMATCH,
  ENVELOPE_SIGN_FAILED,
  ENVELOPE_TRUST_CONFIG,
  ENVELOPE_UNSIGNED,
  EnvelopeError,
  type EnvelopeErrorCode,
} from './envelope-errors.js';
import { SIG_PATTERN, envelopeProblems, isUlid, type Envelope } from './envelope.js';
import { canonicalize } from './jcs.js';
import { describeValue } from './validate.js';

/** Options of {@link verifyEnvelopeSignature}. */
export interface VerifyEnvelopeOptions {
  /** PEM certificates trusted as anchors (the ncbnet root). */
  trustedRoots: string[];
  /** PEM certificates that may link the signer to a root (hub intermediates); not trusted by themselves. */
  intermediates: string[];
  /** True when the signer's certificate (serial: lower-case hex, no leading zero octets, as the CA's ledger writes it) is revoked. */
  isRevoked?: (serialHex: string) => boolean;
  /** The time at which every certificate of the chain must be valid (default now). */
  now?: Date;
}

/** Who signed a verified envelope. */
export interface EnvelopeSigner {
  /** The country of the certificate's SAN `urn:ncbnet:country:<CC>`, equal to the envelope's `from`. */
  country: string;
  /** The certificate's serial, lower-case hex without leading zero octets (as `isRevoked` gets it). */
  serial: string;
}

/** Longest issuer chain followed from the leaf to a root; ncbnet's is leaf → hub CA → root. */
export const MAX_CHAIN_LENGTH = 4;

const SIG_REGEX = new RegExp(SIG_PATTERN);
const COUNTRY_URI = 'urn:ncbnet:country:';

/**
 * The bytes `sig` covers: UTF-8 of `canonicalize(envelope without sig)`. Members whose value is
 * `undefined` are left out, as `JSON.stringify` leaves them off the wire, so signer and verifier
 * see the same thing. Throws `JcsError` for a value JSON cannot carry (e.g. a lone surrogate).
 */
export function signingInput(envelope: Envelope): Uint8Array<ArrayBuffer> {
  const { sig: _sig, ...rest } = envelope;
  return new Uint8Array(Buffer.from(canonicalize(withoutUndefined(rest)), 'utf8'));
}

/**
 * Signs `unsigned` with a country's P-256 private key: sets `sigCert` (base64 DER of `certDer`),
 * then `sig` over {@link signingInput}. Any `sig` already there is replaced. Throws
 * {@link EnvelopeError}: `ENVELOPE_INVALID` when the envelope (with `sigCert`) breaks a rule, so
 * nothing invalid is ever signed; `ENVELOPE_SIGN_FAILED` when `key` is not a P-256 signing key.
 * Does not check that `key` matches `certDer`: {@link verifyEnvelopeSignature} will.
 */
export function signEnvelope(unsigned: Envelope, key: CryptoKey, certDer: Uint8Array): Promise<Envelope> {
  // A throw in the executor rejects the promise, as it did when this function was async.
  return new Promise((resolve) => resolve(signEnvelopeNow(unsigned, key, certDer)));
}

/** {@link signEnvelope}, synchronously (node:crypto signs on the calling thread). */
function signEnvelopeNow(unsigned: Envelope, key: CryptoKey, certDer: Uint8Array): Envelope {
  const { sig: _old, ...rest } = unsigned;
  const withCert: Envelope = { ...rest, sigCert: Buffer.from(certDer).toString('base64') };
  const envelopeId = isUlid(withCert.id) ? withCert.id : undefined;
  const problems = envelopeProblems(withCert);
  if (problems.length > 0) throw new EnvelopeError(ENVELOPE_INVALID, problems, { envelopeId });
  const algorithm = key.algorithm as Partial<EcKeyAlgorithm>;
  if (key.type !== 'private' || algorithm.name !== 'ECDSA' || algorithm.namedCurve !== 'P-256') {
    throw new EnvelopeError(ENVELOPE_SIGN_FAILED, [`(key): must be an ECDSA P-256 private key (got ${key.type} ${algorithm.name ?? '?'} ${algorithm.namedCurve ?? ''})`.trimEnd()], { envelopeId });
  }
  let signature: Buffer;
  try {
    // node:crypto on the same key, IEEE P1363 r || s as WebCrypto gives (64 bytes for P-256):
    // ~20 µs a signature, where crypto.subtle.sign took ~80 µs, most of it its thread-pool job.
    signature = cryptoSign('sha256', signingInput(withCert), { key: keyObjectOf(key), dsaEncoding: 'ieee-p1363' });
  } catch (err) {
    throw new EnvelopeError(ENVELOPE_SIGN_FAILED, [`(key): signing failed (${err instanceof Error ? err.message : describeValue(err)})`], { envelopeId, cause: err });
  }
  return { ...withCert, sig: signature.toString('base64url') };
}

/** The node:crypto handle of a WebCrypto key, made once per key (a key is used for every envelope until renewal). */
const keyObjects = new WeakMap<CryptoKey, KeyObject>();
function keyObjectOf(key: CryptoKey): KeyObject {
  let object = keyObjects.get(key);
  if (object === undefined) keyObjects.set(key, (object = KeyObject.from(key)));
  return object;
}

/**
 * Verifies an envelope's signature and signer, in this order, each failure with its code:
 * `sig` and `sigCert` present (`ENVELOPE_UNSIGNED`); `sigCert` a readable P-256 certificate
 * (`ENVELOPE_BAD_CERTIFICATE`); `sig` valid over {@link signingInput} with its key
 * (`ENVELOPE_BAD_SIGNATURE`); the certificate an end entity valid at `now` that chains through
 * `intermediates` to one of `trustedRoots`, every link valid at `now` (`ENVELOPE_BAD_CERTIFICATE`);
 * not revoked (`ENVELOPE_CERT_REVOKED`); its SAN `urn:ncbnet:country:<CC>` equal to `from`
 * (`ENVELOPE_SENDER_MISMATCH`).
 *
 * Checks only what the signature proves; the envelope's own rules are `parseEnvelope`'s job, run
 * first. Throws {@link EnvelopeError} for every fault of the envelope, and `ENVELOPE_TRUST_CONFIG`
 * when a trusted root or intermediate is not a PEM certificate (the verifier's fault); an
 * exception from `isRevoked` is passed through untouched, as it is not the sender's fault either.
 */
export function verifyEnvelopeSignature(env: Envelope, opts: VerifyEnvelopeOptions): Promise<EnvelopeSigner> {
  // Asynchronous in its contract (room for an OCSP or directory look-up), synchronous today; the
  // executor turns a throw into a rejection.
  return new Promise((resolve) => resolve(verifyNow(env, opts)));
}

function verifyNow(env: Envelope, opts: VerifyEnvelopeOptions): EnvelopeSigner {
  // Typed as an Envelope, but callers may hand over anything; reading fields must not throw.
  const fields: Partial<Record<string, unknown>> = typeof env === 'object' && (env as unknown) !== null ? env : {};
  const id = fields['id'];
  const fail = (code: EnvelopeErrorCode, problem: string, cause?: unknown): EnvelopeError =>
    new EnvelopeError(code, [problem], { envelopeId: isUlid(id) ? id : undefined, cause });
  const { sig, sigCert } = fields;
  if (typeof sig !== 'string') throw fail(ENVELOPE_UNSIGNED, `sig: required to verify the sender (got ${describeValue(sig)})`);
  if (typeof sigCert !== 'string') throw fail(ENVELOPE_UNSIGNED, `sigCert: required to verify the sender (got ${describeValue(sigCert)})`);

  const read = readCertificate(sigCert);
  if (read === undefined) throw fail(ENVELOPE_BAD_CERTIFICATE, `sigCert: not a base64 DER X.509 certificate with a readable key (got ${describeValue(sigCert)})`);
  const { cert: leaf, key } = read;
  const subject = describeName(leaf.subject);
  const keyProblem = p256Problem(key);
  if (keyProblem !== undefined) throw fail(ENVELOPE_BAD_CERTIFICATE, `sigCert: ${keyProblem} (got ${subject})`);

  if (!SIG_REGEX.test(sig)) throw fail(ENVELOPE_BAD_SIGNATURE, `sig: not a base64url 64-byte P-256 signature (got ${describeValue(sig)})`);
  let data: Uint8Array;
  try {
    data = signingInput(env);
  } catch (err) {
    // Only a value no JSON text can carry gets here; no signer could have covered it.
    throw fail(ENVELOPE_BAD_SIGNATURE, '(root): has no canonical JSON form to verify', err);
  }
  // crypto.verify, not subtle.verify: it takes the certificate's KeyObject directly, and is
  // synchronous, so nothing else runs between the checks below.
  if (!verifySignature('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(sig, 'base64url'))) {
    throw fail(ENVELOPE_BAD_SIGNATURE, `sig: does not verify with the key of sigCert over the envelope (got ${describeValue(sig)})`);
  }

  const checked = checkCountryCertificate(leaf, opts);
  if (!checked.ok) throw fail(checked.code, `sigCert: ${checked.problem}`, checked.cause);
  const { country, serial } = checked;
  if (country !== fields['from']) throw fail(ENVELOPE_SENDER_MISMATCH, `from: must be ${country}, the country of the signing certificate (got ${describeValue(fields['from'])})`);
  return { country, serial };
}

/** What {@link checkCountryCertificate} concluded: the certificate's country and serial, or why not. */
export type CountryCertificateCheck =
  | ({ ok: true } & EnvelopeSigner)
  | { ok: false; code: EnvelopeErrorCode; problem: string; cause?: unknown };

/**
 * Checks a country certificate the way a signer's is checked: an end-entity certificate, valid at
 * `opts.now`, chaining to a trusted root through the intermediates, not revoked, naming exactly one
 * country in its SAN. Used for `sigCert`, and by agents for the recipients' certificates they
 * encrypt to (the member directory is a hint; this is the proof). Throws only
 * `ENVELOPE_TRUST_CONFIG` (a trusted root or intermediate is not a PEM certificate).
 */
export function checkCountryCertificate(leaf: X509Certificate, opts: VerifyEnvelopeOptions): CountryCertificateCheck {
  const now = opts.now ?? new Date();
  const roots = readTrustConfig(opts.trustedRoots, 'trustedRoots');
  const intermediates = readTrustConfig(opts.intermediates, 'intermediates');
  const subject = describeName(leaf.subject);
  const bad = (problem: string, cause?: unknown): CountryCertificateCheck => ({ ok: false, code: ENVELOPE_BAD_CERTIFICATE, problem, cause });
  if (leaf.ca) return bad(`a CA certificate cannot sign envelopes nor receive them (got ${subject})`);
  const validity = validityProblem(leaf, now);
  if (validity !== undefined) return bad(`${validity} (got ${subject})`);
  let chains: boolean;
  try {
    chains = chainsCached(leaf, roots, intermediates, now);
  } catch (err) {
    // OpenSSL refusing to even compare a crafted certificate is still the certificate's fault.
    return bad(`could not be checked against the trusted roots (got ${subject})`, err);
  }
  if (!chains) return bad(`does not chain to a trusted root valid at ${now.toISOString()} (got ${subject}, issuer ${describeName(leaf.issuer)})`);

  const serial = normalizeSerial(leaf.serialNumber);
  if (opts.isRevoked?.(serial) === true) return { ok: false, code: ENVELOPE_CERT_REVOKED, problem: `revoked (got serial ${serial}, ${subject})` };

  const country = certificateCountry(leaf);
  if (country === undefined) {
    return { ok: false, code: ENVELOPE_SENDER_MISMATCH, problem: `not a country certificate, no single SAN URI ${COUNTRY_URI}<CC> (got ${describeValue(leaf.subjectAltName)})` };
  }
  return { ok: true, country, serial };
}

/**
 * Parsed certificates by their text: parsing (`new X509Certificate`) was a fifth of the CPU a hub
 * spent per envelope, for the same few trust anchors and one certificate per sender. Only the
 * parse is remembered; validity, chain and revocation are checked on every use. Bounded: when
 * full it is cleared (at most a re-parse of each live certificate).
 */
const parsed = new Map<string, { cert: X509Certificate; key: KeyObject }>();
const MAX_PARSED = 1024;

function parseCached(text: string, parse: () => X509Certificate): { cert: X509Certificate; key: KeyObject } {
  const hit = parsed.get(text);
  if (hit !== undefined) return hit;
  const cert = parse();
  // The key is decoded lazily: a certificate can parse and still hold a key OpenSSL refuses.
  const entry = { cert, key: cert.publicKey };
  if (parsed.size >= MAX_PARSED) parsed.clear();
  parsed.set(text, entry);
  return entry;
}

function readCertificate(base64: string): { cert: X509Certificate; key: KeyObject } | undefined {
  try {
    return parseCached(base64, () => {
      const der = Buffer.from(base64, 'base64');
      // Buffer skips characters that are not base64; the text must be exactly the DER's encoding.
      if (der.length === 0 || der.toString('base64') !== base64) throw new Error('not the base64 of a DER certificate');
      return new X509Certificate(der);
    });
  } catch {
    // Unreadable DER is the sender's fault; the caller reports it with the input.
    return undefined;
  }
}

/** Node prints names one attribute a line in DER order; RFC 4514 order (CN first) reads as ncbnet's docs do. */
function describeName(name: string): string {
  return name.split('\n').reverse().join(',');
}

function readTrustConfig(pems: readonly string[], what: string): X509Certificate[] {
  return pems.map((pem, i) => {
    try {
      return parseCached(pem, () => new X509Certificate(pem)).cert;
    } catch (err) {
      throw new EnvelopeError(ENVELOPE_TRUST_CONFIG, [`${what}[${i}]: not a PEM certificate (got ${describeValue(pem)})`], { cause: err });
    }
  });
}

function p256Problem(key: KeyObject): string | undefined {
  if (key.asymmetricKeyType !== 'ec') return `key is not ECDSA (got ${key.asymmetricKeyType ?? 'unknown'})`;
  const curve = key.asymmetricKeyDetails?.namedCurve;
  return curve === 'prime256v1' ? undefined : `key is not on P-256 (got ${curve ?? 'unknown curve'})`;
}

function validityProblem(cert: X509Certificate, now: Date): string | undefined {
  const from = Date.parse(cert.validFrom);
  const to = Date.parse(cert.validTo);
  if (Number.isNaN(from) || Number.isNaN(to)) return `unreadable validity ${cert.validFrom} – ${cert.validTo}`;
  const t = now.getTime();
  if (t < from) return `not valid before ${new Date(from).toISOString()}, checked at ${now.toISOString()}`;
  if (t > to) return `expired at ${new Date(to).toISOString()}, checked at ${now.toISOString()}`;
  return undefined;
}

/**
 * Issuer paths found for a leaf (its parsed object, shared through {@link parseCached}): the two
 * signature verifications of a chain were a tenth of a hub's CPU per envelope, for the same path
 * every time. A path is reused only while every certificate on it is still among the trusted
 * roots and intermediates passed in and `now` is inside all their validity periods; the leaf's own
 * validity and revocation are checked on every use. Failures are not remembered.
 */
const paths = new WeakMap<X509Certificate, { path: readonly X509Certificate[]; fromMs: number; toMs: number }>();

function chainsCached(leaf: X509Certificate, roots: readonly X509Certificate[], intermediates: readonly X509Certificate[], now: Date): boolean {
  const t = now.getTime();
  const hit = paths.get(leaf);
  if (hit !== undefined && t >= hit.fromMs && t <= hit.toMs) {
    const [anchor, ...links] = [...hit.path].reverse();
    if (anchor !== undefined && roots.includes(anchor) && links.every((c) => intermediates.includes(c))) return true;
  }
  const path = chainsToRoot(leaf, roots, intermediates, now, 0);
  if (path === undefined) return false;
  paths.set(leaf, {
    path,
    fromMs: Math.max(...path.map((c) => Date.parse(c.validFrom))),
    toMs: Math.min(...path.map((c) => Date.parse(c.validTo))),
  });
  return true;
}

/**
 * Depth-first search for an issuer path: `cert` is done when a trusted root issued and signed it,
 * otherwise any CA intermediate that did (a renewed hub CA may share its predecessor's name, so
 * every candidate is tried) must itself chain, within {@link MAX_CHAIN_LENGTH} links. Returns the
 * issuers from `cert`'s up to the root, or undefined.
 */
function chainsToRoot(cert: X509Certificate, roots: readonly X509Certificate[], intermediates: readonly X509Certificate[], now: Date, depth: number): X509Certificate[] | undefined {
  if (depth >= MAX_CHAIN_LENGTH) return undefined;
  const issued = (issuer: X509Certificate): boolean =>
    issuer.ca && validityProblem(issuer, now) === undefined && cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  const root = roots.find(issued);
  if (root !== undefined) return [root];
  for (const inter of intermediates) {
    if (inter === cert || !issued(inter)) continue;
    const rest = chainsToRoot(inter, roots, intermediates, now, depth + 1);
    if (rest !== undefined) return [inter, ...rest];
  }
  return undefined;
}

function certificateCountry(cert: X509Certificate): string | undefined {
  // Node lists SANs as `URI:…, DNS:…` and quotes any value holding a comma or quote, so a forged
  // entry inside another one still contains the prefix and makes the count ambiguous, not valid.
  const entries = (cert.subjectAltName ?? '').split(', ').filter((e) => e.includes(COUNTRY_URI));
  if (entries.length !== 1 || entries[0] === undefined) return undefined;
  const match = /^URI:urn:ncbnet:country:([A-Z]{2})$/.exec(entries[0]);
  const country = match?.[1];
  return country !== undefined && isCountryCode(country) ? country : undefined;
}

/** Node prints serials as upper-case hex; the CA's ledger keeps lower-case without leading zero octets. */
function normalizeSerial(hex: string): string {
  return hex.toLowerCase().replace(/^(00)+(?=[0-9a-f]{2})/, '');
}

function withoutUndefined(value: unknown): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return value;
  const proto: unknown = Object.getPrototypeOf(value);
  // Anything but a plain object is left for canonicalize to refuse.
  if (proto !== Object.prototype && proto !== null) return value;
  const out: Record<string, unknown> = {};
  for (const [key, member] of Object.entries(value)) {
    // defineProperty, not assignment: a "__proto__" member from JSON.parse must stay a member.
    if (member !== undefined) Object.defineProperty(out, key, { value: withoutUndefined(member), enumerable: true, writable: true, configurable: true });
  }
  return out;
}
