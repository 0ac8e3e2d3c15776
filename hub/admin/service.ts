import type { Logger } from 'pino';
import type { CertificateAuthority } from '../../pki/ca.js';
import type { RevocationReason } from '../../pki/ledger.js';
import type { EnrollmentTokens, TokenInfo } from '../../pki/tokens.js';
import { hasCode } from '../../protocol/errors.js';
import { HubError, REGISTRY_BAD_TRANSITION } from '../errors.js';
import type { AuditFields } from '../../protocol/audit.js';
import type { CountryRecord } from '../registry/record.js';
import type { Registry } from '../registry/registry.js';

export interface AdminServiceOptions {
  ca: CertificateAuthority;
  tokens: EnrollmentTokens;
  registry: Registry;
  log: Logger;
  /** The hash-chained audit log; see {@link recordEvent}. */
  audit?: AuditAppender;
}

/** Where admin and enrollment events are recorded (the hub's AuditLog). */
export interface AuditAppender {
  append(fields: AuditFields): Promise<unknown>;
}

/**
 * Records a membership event (country added, token created, enrolled, renewed, suspended,
 * resumed, revoked) once it has taken effect. Unlike routing, which stops rather than route
 * unrecorded, a failed append here is logged at error level and not thrown: the change is
 * already made, and an error would hide that (a consumed token could not be retried, an added
 * country could not be added again). The registry and the CA ledger still hold the change.
 */
export async function recordEvent(audit: AuditAppender | undefined, log: Logger, fields: AuditFields): Promise<void> {
  try {
    await audit?.append(fields);
  } catch (err) {
    log.error({ err, event: fields.event, country: fields.country }, 'audit record not written');
  }
}

/**
 * What operators may do (the admin API calls these; ARCHITECTURE, Enrollment 1, 2 and 5).
 * Suspend and revoke cut access first (the registry listeners remove the NATS user, which drops
 * the live connection, and the WireGuard peer) and only then touch the CRL, so the country is
 * off the network as early as possible.
 */
export class AdminService {
  readonly #o: AdminServiceOptions;

  constructor(opts: AdminServiceOptions) {
    this.#o = opts;
  }

  async addCountry(code: string, name: string, actor?: string): Promise<CountryRecord> {
    const record = await this.#o.registry.add(code, name);
    await this.#audit({ event: 'country-added', country: code }, actor);
    return record;
  }

  listCountries(): CountryRecord[] {
    return this.#o.registry.list();
  }

  showCountry(code: string): { country: CountryRecord; tokens: TokenInfo[] } {
    const country = this.#o.registry.require(code);
    return { country, tokens: this.#o.tokens.list().filter((t) => t.country === code) };
  }

  async suspend(code: string, reason?: string, actor?: string): Promise<CountryRecord> {
    const record = await this.#o.registry.setStatus(code, 'suspended', reason);
    await this.#audit({ event: 'suspended', country: code, ...(reason === undefined ? {} : { problems: [`reason: ${reason}`] }) }, actor);
    return record;
  }

  async resume(code: string, actor?: string): Promise<CountryRecord> {
    const current = this.#o.registry.require(code);
    if (current.status === 'suspended' && current.certNotAfter && Date.parse(current.certNotAfter) <= Date.now()) {
      throw new HubError(REGISTRY_BAD_TRANSITION, `country ${code}: its certificate expired at ${current.certNotAfter}; create a token and enroll again`);
    }
    const record = await this.#o.registry.setStatus(code, 'active');
    await this.#audit({ event: 'resumed', country: code }, actor);
    return record;
  }

  /**
   * Revokes a country: off the broker and the tunnel, its certificate into the CRL. Safe to
   * repeat: a second call on a revoked country finishes a revocation a crash interrupted.
   */
  async revoke(code: string, reason: RevocationReason, note?: string, actor?: string): Promise<CountryRecord> {
    let record = this.#o.registry.require(code);
    if (record.status !== 'revoked') record = await this.#o.registry.setStatus(code, 'revoked', note ?? reason);
    for (const cert of this.#o.ca.ledger.list().filter((c) => c.kind === 'country' && c.name === code && !c.revokedAt)) {
      try {
        await this.#o.ca.revoke(cert.serial, reason);
      } catch (err) {
        if (!hasCode(err, 'PKI_ALREADY_REVOKED')) throw err;
      }
    }
    this.#o.log.warn({ country: code, reason }, 'country revoked');
    await this.#audit({ event: 'revoked', country: code, code: reason, ...(note === undefined ? {} : { problems: [`note: ${note}`] }) }, actor);
    return record;
  }

  /** Creates an enrollment token; the text is returned once and never stored. */
  async createToken(code: string, ttlMs?: number, actor?: string): Promise<{ token: string; info: TokenInfo }> {
    const record = this.#o.registry.require(code);
    if (record.status === 'revoked' || record.status === 'suspended') {
      throw new HubError(REGISTRY_BAD_TRANSITION, `country ${code} is ${record.status}; ${record.status === 'revoked' ? 'add it again' : 'resume it'} before creating a token`);
    }
    const created = await this.#o.tokens.create(code, ttlMs);
    this.#o.log.info({ country: code, tokenId: created.info.id, expiresAt: created.info.expiresAt }, 'enrollment token created');
    // The token's id, never its secret: enough to match the record with `token list`.
    await this.#audit({ event: 'token-created', country: code, code: `token-${created.info.id}` }, actor);
    return created;
  }

  #audit(fields: AuditFields, actor: string | undefined): Promise<void> {
    return recordEvent(this.#o.audit, this.#o.log, { ...fields, actor: actor ?? 'operator' });
  }
}
