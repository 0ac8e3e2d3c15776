import Type, { type Static } from 'typebox';
import { Journal } from './journal.js';
import { PKI_ALREADY_REVOKED, PKI_BAD_REASON, PKI_SERIAL_UNKNOWN, RevocationError } from './errors.js';
import { normalizeSerial } from './serial.js';

/** RFC 5280 §5.3.1 CRLReason values ncbnet uses (certificateHold is deliberately absent: revocation is final). */
export const REVOCATION_REASONS = {
  unspecified: 0,
  keyCompromise: 1,
  caCompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  privilegeWithdrawn: 9,
} as const;

export type RevocationReason = keyof typeof REVOCATION_REASONS;

/** Accepts `keyCompromise`, `key-compromise`, `KEY_COMPROMISE`; throws `PKI_BAD_REASON` with the list otherwise. */
export function parseReason(input: string): RevocationReason {
  const key = input.replace(/[-_\s]/g, '').toLowerCase();
  const found = (Object.keys(REVOCATION_REASONS) as RevocationReason[]).find((r) => r.toLowerCase() === key);
  if (!found) {
    throw new RevocationError(PKI_BAD_REASON, `reason: unknown revocation reason ${JSON.stringify(input)} (one of ${Object.keys(REVOCATION_REASONS).join(', ')})`);
  }
  return found;
}

const Serial = Type.String({ pattern: '^[0-9a-f]{2,40}$' });
const Timestamp = Type.String({ format: 'date-time' });

const IssuedRecord = Type.Object(
  {
    type: Type.Literal('issued'),
    serial: Serial,
    kind: Type.Union([Type.Literal('country'), Type.Literal('operator'), Type.Literal('hub')]),
    name: Type.String({ minLength: 1 }),
    subject: Type.String(),
    notBefore: Timestamp,
    notAfter: Timestamp,
    at: Timestamp,
  },
  { additionalProperties: false },
);

const RevokedRecord = Type.Object(
  {
    type: Type.Literal('revoked'),
    serial: Serial,
    reason: Type.Union([
      Type.Literal('unspecified'),
      Type.Literal('keyCompromise'),
      Type.Literal('caCompromise'),
      Type.Literal('affiliationChanged'),
      Type.Literal('superseded'),
      Type.Literal('cessationOfOperation'),
      Type.Literal('privilegeWithdrawn'),
    ]),
    at: Timestamp,
  },
  { additionalProperties: false },
);

export const LedgerRecord = Type.Union([IssuedRecord, RevokedRecord]);
export type IssuedRecord = Static<typeof IssuedRecord>;

/** A certificate as the ledger knows it. */
export interface CertificateState extends Omit<IssuedRecord, 'type' | 'at'> {
  issuedAt: string;
  revokedAt?: string;
  reason?: RevocationReason;
}

/**
 * Every certificate the CA issued and every revocation, replayed from an append-only journal.
 * Revocation is final; the OCSP responder and the CRL read from here.
 */
export class Ledger {
  readonly #journal: Journal<typeof LedgerRecord>;
  readonly #certs = new Map<string, CertificateState>();
  readonly repaired: string | undefined;

  private constructor(journal: Journal<typeof LedgerRecord>, records: Static<typeof LedgerRecord>[], repaired?: string) {
    this.#journal = journal;
    this.repaired = repaired;
    for (const r of records) this.#apply(r);
  }

  static async open(path: string): Promise<Ledger> {
    const journal = new Journal(path, LedgerRecord);
    const { records, repaired } = await journal.load();
    return new Ledger(journal, records, repaired);
  }

  #apply(r: Static<typeof LedgerRecord>): void {
    if (r.type === 'issued') {
      const { type: _t, at, ...rest } = r;
      this.#certs.set(r.serial, { ...rest, issuedAt: at });
      return;
    }
    const cert = this.#certs.get(r.serial);
    if (cert) Object.assign(cert, { revokedAt: r.at, reason: r.reason });
  }

  /** The certificate with this serial (any accepted spelling), or undefined. */
  get(serial: string): CertificateState | undefined {
    return this.#certs.get(normalizeSerial(serial));
  }

  list(): CertificateState[] {
    return [...this.#certs.values()];
  }

  async recordIssued(record: Omit<IssuedRecord, 'type'>): Promise<void> {
    const full: IssuedRecord = { type: 'issued', ...record };
    await this.#journal.append(full);
    this.#apply(full);
  }

  /** Records a revocation; refuses unknown serials and second revocations with coded errors. */
  async recordRevoked(serialInput: string, reason: RevocationReason, at: Date): Promise<CertificateState> {
    const serial = normalizeSerial(serialInput);
    const cert = this.#certs.get(serial);
    if (!cert) throw new RevocationError(PKI_SERIAL_UNKNOWN, `serial ${serial}: this CA never issued it`);
    if (cert.revokedAt) throw new RevocationError(PKI_ALREADY_REVOKED, `serial ${serial}: already revoked at ${cert.revokedAt} (${cert.reason})`);
    const record = { type: 'revoked' as const, serial, reason, at: at.toISOString() };
    await this.#journal.append(record);
    this.#apply(record);
    return cert;
  }
}
