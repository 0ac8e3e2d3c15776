import Type from 'typebox';
import type { CertificateAuthority } from '../../pki/ca.js';
import { crlToPem } from '../../pki/crl.js';
import type { ApiApp } from './schemas.js';

const CRL_LIFETIME_MS = 24 * 60 * 60 * 1000;
/** A CRL is re-signed when a revocation happened since, or after this long. */
const CRL_REFRESH_MS = 60 * 60 * 1000;

/**
 * Revocation status for anyone (no client certificate needed, as RFC 5280 CDPs and RFC 6960
 * responders are public): `GET /pki/crl` (DER, or PEM with `?format=pem`), `POST /pki/ocsp`.
 */
export function registerPkiRoutes(app: ApiApp, ca: CertificateAuthority): void {
  let cached: { der: Uint8Array; pem: string; revoked: number; at: number } | undefined;
  const currentCrl = async () => {
    const revoked = ca.ledger.list().filter((c) => c.revokedAt).length;
    if (!cached || cached.revoked !== revoked || Date.now() - cached.at > CRL_REFRESH_MS) {
      const crl = await ca.crl({ lifetimeMs: CRL_LIFETIME_MS });
      cached = { der: new Uint8Array(crl.rawData), pem: crlToPem(crl), revoked, at: Date.now() };
    }
    return cached;
  };
  app.addContentTypeParser('application/ocsp-request', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  app.get(
    '/pki/crl',
    { schema: { tags: ['pki'], summary: 'Certificate revocation list of the hub CA', querystring: Type.Object({ format: Type.Optional(Type.Union([Type.Literal('der'), Type.Literal('pem')])) }, { additionalProperties: false }) } },
    async (req, reply) => {
      const crl = await currentCrl();
      if (req.query.format === 'pem') return reply.type('application/x-pem-file').send(crl.pem);
      return reply.type('application/pkix-crl').send(Buffer.from(crl.der));
    },
  );
  app.post('/pki/ocsp', { schema: { tags: ['pki'], summary: 'OCSP responder (RFC 6960), body application/ocsp-request' } }, async (req, reply) => {
    const body = Buffer.isBuffer(req.body) ? new Uint8Array(req.body) : new Uint8Array();
    const answer = await ca.ocsp(body);
    return reply.type('application/ocsp-response').send(Buffer.from(answer));
  });
  app.get('/pki/ca', { schema: { tags: ['pki'], summary: 'The hub CA chain (intermediate, root) as PEM' } }, (_req, reply) =>
    reply.type('application/x-pem-file').send(ca.chainPem),
  );
}
