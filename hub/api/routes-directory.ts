import type { FastifyRequest } from 'fastify';
import type { CertificateAuthority } from '../../pki/ca.js';
import { DirectorySchema, type Directory, type DirectoryEntry } from '../../protocol/directory.js';
import { AUTH_WRONG_IDENTITY, HubError } from '../errors.js';
import type { CountryRecord } from '../registry/record.js';
import { callerOf } from './auth.js';
import { ErrorSchema, type ApiApp } from './schemas.js';

/** What the directory reads of the registry (`hub/registry/registry.ts`); narrow so the route sees nothing else. */
export interface MemberRegistry {
  list(): readonly CountryRecord[];
  get(code: string): CountryRecord | undefined;
}

/**
 * The directory as of `now`: active countries whose record holds their current certificate, by
 * code. A certificate the CA ledger has revoked is left out even if the registry still names it
 * (a revocation interrupted between the two): handing it out would have agents encrypt to a key
 * that may be in the wrong hands. Suspended, pending and revoked countries are absent: nobody
 * should write to a member that cannot receive.
 */
export function buildDirectory(records: readonly CountryRecord[], isRevoked: (serial: string) => boolean, now: Date): Directory {
  const countries = records
    .flatMap((r): DirectoryEntry[] =>
      r.status === 'active' && r.certificate && r.certSerial && r.certNotAfter && !isRevoked(r.certSerial)
        ? [{ code: r.code, name: r.name, certificate: r.certificate, certSerial: r.certSerial, notAfter: r.certNotAfter }]
        : [],
    )
    // Code-point order, not localeCompare: the order must not depend on the hub's locale.
    .sort((a, b) => (a.code < b.code ? -1 : a.code > b.code ? 1 : 0));
  return { generatedAt: now.toISOString(), countries };
}

/**
 * Only members in good standing and operators read the directory: a client certificate of kind
 * country or operator, from this hub's CA, not revoked (`callerOf`); a country must also be
 * active in the registry. The ledger alone would let through a country whose revocation stopped
 * after the registry write and before the CA's, or a suspended one, whose certificate is kept
 * for its return: neither is a member anyone may write to now, so neither learns the members.
 * Runs as `onRequest`, before anything else of the request is looked at.
 */
function membersOnly(ca: CertificateAuthority, registry: MemberRegistry) {
  return (req: FastifyRequest, _reply: unknown, next: (err?: Error) => void): void => {
    try {
      const caller = callerOf(req, ca, ['country', 'operator']);
      if (caller.kind === 'country') {
        const status = registry.get(caller.name)?.status ?? 'not registered';
        if (status !== 'active') throw new HubError(AUTH_WRONG_IDENTITY, `country ${caller.name} is ${status}; only active members read the directory`);
      }
      next();
    } catch (err) {
      next(err as Error);
    }
  };
}

/**
 * `GET /v1/directory` (`protocol/directory.ts`): each active member and the certificate to
 * encrypt restricted and confidential bodies to (CMS, `pki/cms.ts`). Built from the registry at
 * each request; it is small (one entry per country) and must never lag a revocation.
 */
export function registerDirectoryRoutes(app: ApiApp, registry: MemberRegistry, ca: CertificateAuthority, now: () => Date = () => new Date()): void {
  app.get(
    '/v1/directory',
    {
      onRequest: membersOnly(ca, registry),
      schema: {
        tags: ['directory'],
        security: [{ clientCertificate: [] }],
        summary: 'Active member countries and their current certificates (country or operator client certificate)',
        response: { 200: DirectorySchema, 401: ErrorSchema, 403: ErrorSchema },
      },
    },
    () => buildDirectory(registry.list(), (serial) => ca.ledger.get(serial)?.revokedAt !== undefined, now()),
  );
}
