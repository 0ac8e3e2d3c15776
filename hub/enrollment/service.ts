import type { Logger } from 'pino';
import { recordEvent, type AuditAppender } from '../admin/service.js';
import type { CertificateAuthority } from '../../pki/ca.js';
import type { EnrollmentTokens } from '../../pki/tokens.js';
import { hasCode } from '../../protocol/errors.js';
import { ENROLL_COUNTRY_NOT_ENROLLABLE, ENROLL_WG_KEY_IN_USE, HubError, RENEW_NOT_CURRENT } from '../errors.js';
import { pinnedCertHash } from '../broker/pins.js';
import type { Registry } from '../registry/registry.js';
import type { Bundle, EnrollRequest, Policy, RenewResponse } from './bundle.js';

/** Where the hub's services are, as agents see them over the tunnel. */
export interface HubNetwork {
  overlayCidr: string;
  hubAddress: string;
  wgPublicKey: string | null;
  wgEndpoint: string | null;
  apiUrl: string;
  natsUrl: string;
  policy: Policy;
}

/** Counting hooks; the metrics module turns them into series (no prom-client here). */
export interface EnrollmentStats {
  /** An enrollment finished: `ok`, or `refused` with the coded error's code (`failed` for an uncoded error, a bug). */
  onEnroll(result: 'ok' | 'refused' | 'failed', code?: string): void;
  /** Same for a renewal. */
  onRenew(result: 'ok' | 'refused' | 'failed', code?: string): void;
}

export interface EnrollmentServiceOptions {
  ca: CertificateAuthority;
  tokens: EnrollmentTokens;
  registry: Registry;
  network: () => HubNetwork;
  countryLifetimeMs: number;
  log: Logger;
  /** Enrollments and renewals are recorded in the audit log (see `recordEvent`). */
  audit?: AuditAppender;
  stats?: EnrollmentStats;
}

/** Calls `count` with the outcome of `run` and passes the outcome on. */
async function counted<T>(run: () => Promise<T>, count: ((result: 'ok' | 'refused' | 'failed', code?: string) => void) | undefined): Promise<T> {
  let value: T;
  try {
    value = await run();
  } catch (err) {
    if (hasCode(err)) count?.('refused', err.code);
    else count?.('failed');
    throw err;
  }
  count?.('ok');
  return value;
}

/**
 * Enrollment and renewal (ARCHITECTURE, Enrollment step 4). The order is chosen so that a crash
 * at any point leaves nothing that blocks a retry: the certificate is signed first (an orphan
 * certificate harms nobody: its key is only at the NCB, and the next success revokes it as
 * superseded), then the registry records the country as active (its listeners add the NATS user
 * and the WireGuard peer), and only then is the token used up.
 */
export class EnrollmentService {
  readonly #o: EnrollmentServiceOptions;
  readonly #locks = new Map<string, Promise<unknown>>();

  constructor(opts: EnrollmentServiceOptions) {
    this.#o = opts;
  }

  enroll(req: EnrollRequest): Promise<Bundle> {
    return counted(() => this.#enroll(req), this.#o.stats?.onEnroll.bind(this.#o.stats));
  }

  async #enroll(req: EnrollRequest): Promise<Bundle> {
    const { tokens, registry, ca } = this.#o;
    const country = tokens.verify(req.token).country;
    return this.#locked(country, async () => {
      tokens.verify(req.token); // again: a concurrent enrollment with this token may have used it
      const record = registry.require(country);
      if (record.status !== 'pending' && record.status !== 'active') {
        throw new HubError(ENROLL_COUNTRY_NOT_ENROLLABLE, `country ${country} is ${record.status}; an operator must resume or re-add it before it can enroll`);
      }
      const holder = registry.list().find((r) => r.code !== country && r.wgPublicKey === req.wgPublicKey && r.status !== 'revoked');
      if (holder) throw new HubError(ENROLL_WG_KEY_IN_USE, `wgPublicKey: already used by another country's tunnel; generate a new WireGuard key`);
      const net = this.#o.network();
      const overlayAddress = registry.overlayAddressFor(country, net.overlayCidr);
      const issued = await ca.issue({ kind: 'country', name: country, csr: req.csr, lifetimeMs: this.#o.countryLifetimeMs });
      await registry.update(country, (r) => ({
        ...r,
        status: 'active',
        statusReason: undefined,
        certSerial: issued.serial,
        certNotAfter: issued.notAfter.toISOString(),
        certPin: pinnedCertHash(issued.pem),
        certificate: issued.pem,
        wgPublicKey: req.wgPublicKey,
        overlayAddress,
        enrolledAt: new Date().toISOString(),
      }));
      await tokens.consume(req.token);
      await this.#revokeOthers(country, issued.serial);
      this.#o.log.info({ country, serial: issued.serial, overlayAddress }, 'country enrolled');
      await recordEvent(this.#o.audit, this.#o.log, { event: 'enrolled', country, actor: `country:${country}` });
      return {
        v: 1,
        country,
        serial: issued.serial,
        notAfter: issued.notAfter.toISOString(),
        certificate: issued.pem,
        chain: issued.chainPem,
        caCertificate: ca.root.toString('pem'),
        overlayAddress,
        overlayCidr: net.overlayCidr,
        hub: { wgPublicKey: net.wgPublicKey, wgEndpoint: net.wgEndpoint, overlayAddress: net.hubAddress, apiUrl: net.apiUrl, natsUrl: net.natsUrl },
        policy: net.policy,
      };
    });
  }

  /**
   * The firewall policy the hub hands out now (the bundle's `policy`): what a running agent
   * fetches (`GET /v1/policy`) to follow a change of hub.json `agentFirewall` without re-enrolling.
   */
  policy(): Policy {
    return this.#o.network().policy;
  }

  /**
   * Renews the certificate of a country that proved itself with its current certificate over
   * mTLS. Only the registry's current serial may renew: a superseded or revoked certificate
   * cannot mint a new one.
   */
  renew(country: string, presentedSerial: string, csr: string): Promise<RenewResponse> {
    return counted(() => this.#renew(country, presentedSerial, csr), this.#o.stats?.onRenew.bind(this.#o.stats));
  }

  async #renew(country: string, presentedSerial: string, csr: string): Promise<RenewResponse> {
    return this.#locked(country, async () => {
      const record = this.#o.registry.require(country);
      if (record.status !== 'active' || record.certSerial !== presentedSerial) {
        throw new HubError(RENEW_NOT_CURRENT, `country ${country}: the presented certificate ${presentedSerial} is not the current one of an active country`);
      }
      const issued = await this.#o.ca.issue({ kind: 'country', name: country, csr, lifetimeMs: this.#o.countryLifetimeMs });
      await this.#o.registry.update(country, (r) => ({
        ...r,
        certSerial: issued.serial,
        certNotAfter: issued.notAfter.toISOString(),
        certPin: pinnedCertHash(issued.pem),
        certificate: issued.pem,
      }));
      await this.#revokeOthers(country, issued.serial);
      this.#o.log.info({ country, serial: issued.serial }, 'certificate renewed');
      await recordEvent(this.#o.audit, this.#o.log, { event: 'renewed', country, actor: `country:${country}` });
      return { serial: issued.serial, notAfter: issued.notAfter.toISOString(), certificate: issued.pem, chain: issued.chainPem };
    });
  }

  /** Revokes every other live certificate of the country (earlier ones, orphans of a crash). */
  async #revokeOthers(country: string, keep: string): Promise<void> {
    const stale = this.#o.ca.ledger.list().filter((c) => c.kind === 'country' && c.name === country && c.serial !== keep && !c.revokedAt);
    for (const cert of stale) {
      try {
        await this.#o.ca.revoke(cert.serial, 'superseded');
      } catch (err) {
        if (!hasCode(err, 'PKI_ALREADY_REVOKED')) throw err;
      }
    }
  }

  /** Runs `fn` after every earlier enrollment or renewal of the same country has finished. */
  async #locked<T>(country: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#locks.get(country) ?? Promise.resolve();
    const run = previous.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.#locks.set(country, tail);
    try {
      return await run;
    } finally {
      if (this.#locks.get(country) === tail) this.#locks.delete(country);
    }
  }
}
