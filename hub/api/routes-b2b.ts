import type { FastifyRequest } from 'fastify';
import type { AuditFields } from '../../protocol/audit.js';
import type { CertificateAuthority } from '../../pki/ca.js';
import { B2B_POLICY_INVALID, B2bError, B2bPolicySetSchema, parseB2bPolicySet, type B2bPolicySet } from '../../protocol/b2b.js';
import { AUTH_WRONG_IDENTITY, HubError } from '../errors.js';
import type { CountryRecord } from '../registry/record.js';
import { callerOf } from './auth.js';
import { ErrorSchema, type ApiApp } from './schemas.js';

/** What the B2B routes read and write of the registry (`hub/registry/registry.ts`). */
export interface B2bRegistry {
  get(code: string): CountryRecord | undefined;
  update(code: string, change: (record: CountryRecord) => CountryRecord): Promise<CountryRecord>;
}

/** Who sent a request that passed {@link activeCountryOnly}; nothing outlives its request. */
const owners = new WeakMap<FastifyRequest, string>();

/**
 * Only an active member's own agent publishes its databases: a country client certificate of
 * this hub's CA, not revoked, whose country is active in the registry. The country is the
 * certificate's, never the body's: a country can only ever publish its own databases.
 */
function activeCountryOnly(ca: CertificateAuthority, registry: B2bRegistry) {
  return (req: FastifyRequest, _reply: unknown, next: (err?: Error) => void): void => {
    try {
      const caller = callerOf(req, ca, 'country');
      const status = registry.get(caller.name)?.status ?? 'not registered';
      if (status !== 'active') throw new HubError(AUTH_WRONG_IDENTITY, `country ${caller.name} is ${status}; only active members publish databases`);
      owners.set(req, caller.name);
      next();
    } catch (err) {
      next(err as Error);
    }
  };
}

/**
 * `PUT /v1/b2b`: the calling country's whole set of published national databases and their
 * sharing policies (`protocol/b2b.ts`), replacing what it sent before — one write, one broker
 * reload, and a database left out of the set is unpublished. The daemon's registry listener
 * re-renders the broker's permissions from it. `GET /v1/b2b`: the caller's own set, nobody else's
 * (a policy says who may query; that is the owner's business).
 *
 * Refusals are answered here with their status (the API's error table does not know B2B codes):
 * `B2B_POLICY_INVALID` 400 with every problem.
 */
export function registerB2bRoutes(app: ApiApp, registry: B2bRegistry, ca: CertificateAuthority, audit?: { append(fields: AuditFields): Promise<unknown> }): void {
  app.put(
    '/v1/b2b',
    {
      onRequest: activeCountryOnly(ca, registry),
      schema: {
        tags: ['b2b'],
        security: [{ clientCertificate: [] }],
        summary: "Publish the calling country's national databases and sharing policies (country client certificate)",
        response: { 200: B2bPolicySetSchema, 400: ErrorSchema, 401: ErrorSchema, 403: ErrorSchema, 409: ErrorSchema, 503: ErrorSchema },
      },
    },
    async (req, reply) => {
      const owner = owners.get(req) as string;
      let set: B2bPolicySet;
      try {
        set = parseB2bPolicySet(req.body, owner);
      } catch (err) {
        if (!(err instanceof B2bError)) throw err;
        req.log.info({ code: err.code, country: owner }, 'B2B policy refused');
        return reply.status(400).send({ code: B2B_POLICY_INVALID, message: err.message, problems: [...err.problems] });
      }
      const before = JSON.stringify(registry.get(owner)?.b2b ?? []);
      if (before !== JSON.stringify(set.databases)) {
        await registry.update(owner, (r) => ({ ...r, b2b: set.databases.length ? set.databases : undefined }));
        // Who shares what with whom is a membership-level fact: audited like enrolment and
        // suspension (the policies themselves stay in the registry record).
        await audit?.append({ event: 'b2b-published', country: owner, actor: owner, databases: set.databases.map((p) => p.db) });
        req.log.info({ country: owner, databases: set.databases.map((p) => ({ db: p.db, allow: p.allow, notify: p.notifyEnquiries })) }, 'B2B policies published');
      }
      return { databases: set.databases };
    },
  );
  app.get(
    '/v1/b2b',
    {
      onRequest: activeCountryOnly(ca, registry),
      schema: {
        tags: ['b2b'],
        security: [{ clientCertificate: [] }],
        summary: "The calling country's published databases and policies (country client certificate)",
        response: { 200: B2bPolicySetSchema, 401: ErrorSchema, 403: ErrorSchema },
      },
    },
    (req) => ({ databases: registry.get(owners.get(req) as string)?.b2b ?? [] }),
  );
}
