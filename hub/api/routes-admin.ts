import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import type { CertificateAuthority } from '../../pki/ca.js';
import { parseReason, REVOCATION_REASONS } from '../../pki/ledger.js';
import { MAX_TOKEN_TTL_MS } from '../../pki/tokens.js';
import { CountryCodeSchema } from '../../protocol/country.js';
import type { AdminService } from '../admin/service.js';
import { CountryRecordSchema } from '../registry/record.js';
import { operatorActor, operatorOnly } from './auth.js';
import { ErrorSchema, type ApiApp } from './schemas.js';

const CodeParams = Type.Object({ code: CountryCodeSchema }, { additionalProperties: false });
const TokenInfoSchema = Type.Object({
  id: Type.String(),
  country: Type.String(),
  createdAt: Type.String(),
  expiresAt: Type.String(),
  usedAt: Type.Optional(Type.String()),
});
const Refusals = { 400: ErrorSchema, 401: ErrorSchema, 403: ErrorSchema, 404: ErrorSchema, 409: ErrorSchema };
const ReasonSchema = Type.Union(
  Object.keys(REVOCATION_REASONS).map((r) => Type.Literal(r)),
  { description: 'RFC 5280 revocation reason' },
);

/**
 * The operator API (`ncbnet country …`, `ncbnet token create`). Every route needs an operator
 * client certificate from this hub's CA that is not revoked; the check runs before validation so
 * that strangers learn nothing, not even which bodies would be accepted.
 */
export function registerAdminRoutes(app: ApiApp, admin: AdminService, ca: CertificateAuthority): void {
  void app.register(
    (plain, _opts, done) => {
      const scope = plain.withTypeProvider<TypeBoxTypeProvider>();
      scope.addHook('onRequest', operatorOnly(ca));
      const tags = ['admin'];
      const security = [{ clientCertificate: [] }];
      scope.get('/countries', { schema: { tags, security, summary: 'List countries', response: { 200: Type.Array(CountryRecordSchema), ...Refusals } } }, () => admin.listCountries());
      scope.post(
        '/countries',
        {
          schema: {
            tags,
            security,
            summary: 'Register a country (status pending)',
            body: Type.Object({ code: CountryCodeSchema, name: Type.String({ minLength: 1, maxLength: 100 }) }, { additionalProperties: false }),
            response: { 201: CountryRecordSchema, ...Refusals },
          },
        },
        async (req, reply) => reply.status(201).send(await admin.addCountry(req.body.code, req.body.name, operatorActor(req))),
      );
      scope.get(
        '/countries/:code',
        { schema: { tags, security, summary: 'One country and its tokens', params: CodeParams, response: { 200: Type.Object({ country: CountryRecordSchema, tokens: Type.Array(TokenInfoSchema) }), ...Refusals } } },
        (req) => admin.showCountry(req.params.code),
      );
      scope.post(
        '/countries/:code/suspend',
        {
          schema: {
            tags,
            security,
            summary: 'Suspend: off the broker and the tunnel, certificate kept',
            params: CodeParams,
            body: Type.Optional(Type.Object({ reason: Type.Optional(Type.String({ maxLength: 200 })) }, { additionalProperties: false })),
            response: { 200: CountryRecordSchema, ...Refusals },
          },
        },
        (req) => admin.suspend(req.params.code, req.body?.reason, operatorActor(req)),
      );
      scope.post(
        '/countries/:code/resume',
        { schema: { tags, security, summary: 'Resume a suspended country', params: CodeParams, response: { 200: CountryRecordSchema, ...Refusals } } },
        (req) => admin.resume(req.params.code, operatorActor(req)),
      );
      scope.post(
        '/countries/:code/revoke',
        {
          schema: {
            tags,
            security,
            summary: 'Revoke: off the broker and the tunnel, certificates into the CRL',
            params: CodeParams,
            body: Type.Object({ reason: ReasonSchema, note: Type.Optional(Type.String({ maxLength: 200 })) }, { additionalProperties: false }),
            response: { 200: CountryRecordSchema, ...Refusals },
          },
        },
        (req) => admin.revoke(req.params.code, parseReason(req.body.reason), req.body.note, operatorActor(req)),
      );
      scope.post(
        '/tokens',
        {
          schema: {
            tags,
            security,
            summary: 'Create a single-use enrollment token (shown once)',
            body: Type.Object({ country: CountryCodeSchema, ttlMs: Type.Optional(Type.Integer({ minimum: 60_000, maximum: MAX_TOKEN_TTL_MS })) }, { additionalProperties: false }),
            response: { 201: Type.Object({ token: Type.String(), info: TokenInfoSchema }), ...Refusals },
          },
        },
        async (req, reply) => reply.status(201).send(await admin.createToken(req.body.country, req.body.ttlMs, operatorActor(req))),
      );
      done();
    },
    { prefix: '/v1/admin' },
  );
}
