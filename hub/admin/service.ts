import type { Logger } from 'pino';
import type { CertificateAuthority } from '../../pki/ca.js';
import type { RevocationReason } from '../../pki/ledger.js';
import type { EnrollmentTokens, TokenInfo } from '../../pki/tokens.js';
import { hasCode } from '../../protocol/errors.js';
import { HubError, REGISTRY_BAD_TRANSITION } from '../errors.js';
import type { CountryRecord } from '../registry/record.js';
import type { Registry } from '../registry/registry.js';

export interface AdminServiceOptions {
  ca: CertificateAuthority;
  tokens: EnrollmentTokens;
  registry: Registry;
  log: Logger;
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

  addCountry(code: string, name: string): Promise<CountryRecord> {
    return this.#o.registry.add(code, name);
  }

  listCountries(): CountryRecord[] {
    return this.#o.registry.list();
  }

  showCountry(code: string): { country: CountryRecord; tokens: TokenInfo[] } {
    const country = this.#o.registry.require(code);
    return { country, tokens: this.#o.tokens.list().filter((t) => t.country === code) };
  }

  suspend(code: string, reason?: string): Promise<CountryRecord> {
    return this.#o.registry.setStatus(code, 'suspended', reason);
  }

  resume(code: string): Promise<CountryRecord> {
    const record = this.#o.registry.require(code);
    if (record.status === 'suspended' && record.certNotAfter && Date.parse(record.certNotAfter) <= Date.now()) {
      throw new HubError(REGISTRY_BAD_TRANSITION, `country ${code}: its certificate expired at ${record.certNotAfter}; create a token and enroll again`);
    }
    return this.#o.registry.setStatus(code, 'active');
  }

  /**
   * Revokes a country: off the broker and the tunnel, its certificate into the CRL. Safe to
   * repeat: a second call on a revoked country finishes a revocation a crash interrupted.
   */
  async revoke(code: string, reason: RevocationReason, note?: string): Promise<CountryRecord> {
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
    return record;
  }

  /** Creates an enrollment token; the text is returned once and never stored. */
  async createToken(code: string, ttlMs?: number): Promise<{ token: string; info: TokenInfo }> {
    const record = this.#o.registry.require(code);
    if (record.status === 'revoked' || record.status === 'suspended') {
      throw new HubError(REGISTRY_BAD_TRANSITION, `country ${code} is ${record.status}; ${record.status === 'revoked' ? 'add it again' : 'resume it'} before creating a token`);
    }
    const created = await this.#o.tokens.create(code, ttlMs);
    this.#o.log.info({ country: code, tokenId: created.info.id, expiresAt: created.info.expiresAt }, 'enrollment token created');
    return created;
  }
}
