import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import type { CertificateAuthority } from '../../pki/ca.js';
import { AuditRecordSchema, type AuditRecord, type ChainVerdict } from '../../protocol/audit.js';
import { CountryCodeSchema } from '../../protocol/country.js';
import { operatorOnly } from './auth.js';
import { ErrorSchema, type ApiApp } from './schemas.js';

/** What the routes need of the audit log (`hub/audit/audit-log.ts`); narrow so tests can pass a real one only. */
export interface AuditReader {
  verify(): Promise<ChainVerdict>;
  forMessage(id: string): Promise<AuditRecord[]>;
  forCountry(code: string): Promise<AuditRecord[]>;
}

const IdParams = Type.Object({ id: Type.String({ pattern: '^[0-7][0-9A-HJKMNP-TV-Z]{25}$', description: 'message id (ULID)' }) }, { additionalProperties: false });
const VerdictSchema = Type.Union([
  Type.Object({ ok: Type.Literal(true), count: Type.Integer({ minimum: 0 }) }),
  Type.Object({ ok: Type.Literal(false), seq: Type.Integer({ minimum: 1, description: 'first position where the chain does not hold' }), reason: Type.String() }),
]);
const Refusals = { 400: ErrorSchema, 401: ErrorSchema, 403: ErrorSchema, 500: ErrorSchema, 503: ErrorSchema };

/**
 * The audit part of the operator API (`ncbnet audit …`), under `/v1/admin` with the same guard as
 * `routes-admin.ts`: an operator client certificate from this hub's CA, not revoked, checked
 * before validation. A broken chain is an answer (200 with `ok: false`), not an error: the
 * request worked, and what it found is the point.
 */
export function registerAuditRoutes(app: ApiApp, audit: AuditReader, ca: CertificateAuthority): void {
  void app.register(
    (plain, _opts, done) => {
      const scope = plain.withTypeProvider<TypeBoxTypeProvider>();
      scope.addHook('onRequest', operatorOnly(ca));
      const tags = ['audit'];
      const security = [{ clientCertificate: [] }];
      scope.get(
        '/audit/verify',
        { schema: { tags, security, summary: 'Verify the whole audit hash chain', response: { 200: VerdictSchema, ...Refusals } } },
        () => audit.verify(),
      );
      scope.get(
        '/audit/messages/:id',
        { schema: { tags, security, summary: 'The audit records of one message, in order', params: IdParams, response: { 200: Type.Array(AuditRecordSchema), ...Refusals } } },
        (req) => audit.forMessage(req.params.id),
      );
      scope.get(
        '/audit/countries/:code',
        {
          schema: {
            tags,
            security,
            summary: 'The membership records of one country (added, token created, enrolled, renewed, suspended, resumed, revoked), in order',
            params: Type.Object({ code: CountryCodeSchema }, { additionalProperties: false }),
            response: { 200: Type.Array(AuditRecordSchema), ...Refusals },
          },
        },
        (req) => audit.forCountry(req.params.code),
      );
      done();
    },
    { prefix: '/v1/admin' },
  );
}
