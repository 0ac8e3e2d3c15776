import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isCountryCode } from '../protocol/country.js';
import { NAME_PATTERN, type IdentityKind } from '../protocol/identity.js';
import { verifyCsr, type KeyType } from './csr.js';
import { buildCrl, type CrlOptions } from './crl.js';
import {
  CaStateError,
  IssueError,
  PKI_BAD_COUNTRY,
  PKI_BAD_LIFETIME,
  PKI_BAD_NAME,
  PKI_CA_INVALID,
  PKI_CA_MISSING,
} from './errors.js';
import { EC_P256, ECDSA_SHA256, readPrivateKey } from './keys.js';
import { Ledger, type CertificateState, type RevocationReason } from './ledger.js';
import { respondOcsp } from './ocsp.js';
import { caPaths, type CaPaths } from './paths.js';
import { BACKDATE_MS, DEFAULT_LIFETIME_MS, leafExtensions, subjectName, type RevocationUrls } from './profiles.js';
import { randomSerial } from './serial.js';
import { webcrypto, x509 } from './x509.js';

/** Longest leaf lifetime accepted (CA/B's 397 days); the shortest is 5 minutes. */
const MAX_LIFETIME_MS = 397 * 24 * 60 * 60 * 1000;
const MIN_LIFETIME_MS = 5 * 60 * 1000;

const DEFAULT_KEY_TYPES: Readonly<Record<IdentityKind, readonly KeyType[]>> = {
  country: ['p256'],
  operator: ['p256', 'ed25519'],
  hub: ['p256'],
};

export interface IssueRequest {
  kind: IdentityKind;
  /** Country code (from the token or the operator's command, never from the CSR) or identity name. */
  name: string;
  csr: string | Uint8Array;
  lifetimeMs?: number;
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
}

export interface IssuedCertificate {
  serial: string;
  certificate: x509.X509Certificate;
  /** The leaf as PEM. */
  pem: string;
  /** Intermediate then root, PEM: what a peer needs to build the path. */
  chainPem: string;
  subject: string;
  notBefore: Date;
  notAfter: Date;
}

export interface CaOptions {
  now?: () => Date;
  urls?: RevocationUrls;
}

async function readCert(path: string): Promise<x509.X509Certificate> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new CaStateError(PKI_CA_MISSING, `${path}: no CA here; run \`ncbnet hub init --state DIR\` first`, { cause: err });
  }
  try {
    return new x509.X509Certificate(text);
  } catch (err) {
    throw new CaStateError(PKI_CA_INVALID, `${path}: not a certificate`, { cause: err });
  }
}

/** SHA-256 of a certificate's DER, lower-case hex (what tokens carry to pin the hub). */
export function certificateFingerprint(cert: x509.X509Certificate): string {
  return createHash('sha256').update(new Uint8Array(cert.rawData)).digest('hex');
}

/**
 * The hub's issuing CA: the intermediate key signs leaves, CRLs and OCSP responses; the root
 * certificate anchors chains. The root key is not needed here and may live offline.
 */
export class CertificateAuthority {
  readonly paths: CaPaths;
  readonly root: x509.X509Certificate;
  readonly issuer: x509.X509Certificate;
  readonly ledger: Ledger;
  readonly #key: CryptoKey;
  readonly #now: () => Date;
  readonly #urls: RevocationUrls;

  private constructor(paths: CaPaths, root: x509.X509Certificate, issuer: x509.X509Certificate, key: CryptoKey, ledger: Ledger, opts: CaOptions) {
    this.paths = paths;
    this.root = root;
    this.issuer = issuer;
    this.#key = key;
    this.ledger = ledger;
    this.#now = opts.now ?? (() => new Date());
    this.#urls = opts.urls ?? {};
  }

  /** Loads the CA from `<stateDir>/pki`, checking that the intermediate chains to the root and matches its key. */
  static async load(stateDir: string, opts: CaOptions = {}): Promise<CertificateAuthority> {
    const paths = caPaths(stateDir);
    const root = await readCert(paths.rootCert);
    const issuer = await readCert(paths.caCert);
    const key = await readPrivateKey(paths.caKey).catch((err: unknown) => {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new CaStateError(PKI_CA_MISSING, `${paths.caKey}: the hub CA key is missing`, { cause: err });
      }
      throw err;
    });
    if (!(await issuer.verify({ publicKey: root.publicKey, signatureOnly: true }, webcrypto))) {
      throw new CaStateError(PKI_CA_INVALID, `${paths.caCert}: not signed by ${paths.rootCert}`);
    }
    const probe = new Uint8Array(32);
    const sig = await webcrypto.subtle.sign(ECDSA_SHA256, key, probe);
    const issuerKey = await issuer.publicKey.export(EC_P256, ['verify'], webcrypto);
    if (!(await webcrypto.subtle.verify(ECDSA_SHA256, issuerKey, sig, probe))) {
      throw new CaStateError(PKI_CA_INVALID, `${paths.caKey}: does not match ${paths.caCert}`);
    }
    const ledger = await Ledger.open(paths.ledger);
    return new CertificateAuthority(paths, root, issuer, key, ledger, opts);
  }

  /** SHA-256 fingerprint of the root certificate (hex): the pin in every enrollment token. */
  get rootFingerprint(): string {
    return certificateFingerprint(this.root);
  }

  /** Intermediate then root, PEM. */
  get chainPem(): string {
    return `${this.issuer.toString('pem')}\n${this.root.toString('pem')}\n`;
  }

  #checkRequest(req: IssueRequest): number {
    if (req.kind === 'country' && !isCountryCode(req.name)) {
      throw new IssueError(PKI_BAD_COUNTRY, `country: ${JSON.stringify(req.name)} is not an ISO 3166-1 alpha-2 code in upper case`);
    }
    if (req.kind !== 'country' && !NAME_PATTERN.test(req.name)) {
      throw new IssueError(PKI_BAD_NAME, `name: ${JSON.stringify(req.name)} is not a valid ${req.kind} name (lower-case letters, digits, hyphens)`);
    }
    const lifetimeMs = req.lifetimeMs ?? DEFAULT_LIFETIME_MS[req.kind];
    if (!Number.isInteger(lifetimeMs) || lifetimeMs < MIN_LIFETIME_MS || lifetimeMs > MAX_LIFETIME_MS) {
      throw new IssueError(PKI_BAD_LIFETIME, `lifetime: must be between 5 minutes and 397 days (got ${lifetimeMs} ms)`);
    }
    return lifetimeMs;
  }

  /**
   * Verifies the CSR against the caller's policy and issues a leaf. The ledger records the serial
   * (fsynced) before the certificate is returned, so nothing is handed out that revocation cannot find.
   */
  async issue(req: IssueRequest): Promise<IssuedCertificate> {
    const lifetimeMs = this.#checkRequest(req);
    const csr = verifyCsr(req.csr, { kind: req.kind, name: req.name, keyTypes: DEFAULT_KEY_TYPES[req.kind] });
    const now = this.#now();
    const notBefore = new Date(now.getTime() - BACKDATE_MS);
    // Never outlive the issuer: a chain is only as valid as its shortest link.
    const notAfter = new Date(Math.min(now.getTime() + lifetimeMs, this.issuer.notAfter.getTime()));
    const serial = randomSerial();
    const certificate = await x509.X509CertificateGenerator.create(
      {
        serialNumber: serial,
        subject: subjectName(req.kind, req.name),
        issuer: this.issuer.subjectName,
        notBefore,
        notAfter,
        publicKey: csr.publicKey,
        signingKey: this.#key,
        signingAlgorithm: ECDSA_SHA256,
        extensions: await leafExtensions({
          kind: req.kind,
          name: req.name,
          publicKey: csr.publicKey,
          issuer: this.issuer,
          dnsNames: req.dnsNames ?? [],
          ipAddresses: req.ipAddresses ?? [],
          urls: this.#urls,
        }),
      },
      webcrypto,
    );
    const subject = certificate.subject;
    await this.ledger.recordIssued({
      serial,
      kind: req.kind,
      name: req.name,
      subject,
      notBefore: certificate.notBefore.toISOString(),
      notAfter: certificate.notAfter.toISOString(),
      at: now.toISOString(),
    });
    return {
      serial,
      certificate,
      pem: `${certificate.toString('pem')}\n`,
      chainPem: this.chainPem,
      subject,
      notBefore: certificate.notBefore,
      notAfter: certificate.notAfter,
    };
  }

  /** Revokes a serial this CA issued (final; `PKI_SERIAL_UNKNOWN`, `PKI_ALREADY_REVOKED` otherwise). */
  revoke(serial: string, reason: RevocationReason): Promise<CertificateState> {
    return this.ledger.recordRevoked(serial, reason, this.#now());
  }

  /** A fresh CRL over every revoked certificate that has not yet expired. */
  crl(opts: Omit<CrlOptions, 'issuer' | 'key' | 'now' | 'revoked'> = {}): Promise<x509.X509Crl> {
    const now = this.#now();
    const revoked = this.ledger.list().filter((c) => c.revokedAt && new Date(c.notAfter) > now);
    return buildCrl({ ...opts, issuer: this.issuer, key: this.#key, now, revoked });
  }

  /** Answers a DER OCSP request with a DER OCSP response (RFC 6960), signed by the issuing CA. */
  ocsp(requestDer: Uint8Array): Promise<Uint8Array> {
    return respondOcsp(requestDer, { issuer: this.issuer, key: this.#key, now: this.#now(), lookup: (s) => this.ledger.get(s) });
  }
}
