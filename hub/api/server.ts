import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { LogController } from 'fastify';
import type { Logger } from 'pino';
import type { CertificateAuthority } from '../../pki/ca.js';
import { VERSION } from '../../protocol/version.js';
import type { AdminService } from '../admin/service.js';
import type { EnrollmentService } from '../enrollment/service.js';
import { makeErrorHandler } from './errors.js';
import { registerAdminRoutes } from './routes-admin.js';
import type { AuditFields } from '../../protocol/audit.js';
import { registerAuditRoutes, type AuditReader } from './routes-audit.js';
import { registerB2bRoutes, type B2bRegistry } from './routes-b2b.js';
import { registerDirectoryRoutes, type MemberRegistry } from './routes-directory.js';
import { registerEnrollRoutes } from './routes-enroll.js';
import { registerHealthRoutes, type ReadinessCheck } from './routes-health.js';
import { registerPkiRoutes } from './routes-pki.js';
import { registerStatusRoutes, type StatusSource } from './routes-status.js';
import type { ApiApp } from './schemas.js';
import { typeboxValidatorCompiler } from './validation.js';

export interface ApiServerOptions {
  tls: { cert: string; key: string; ca: string };
  bodyLimitBytes: number;
  ca: CertificateAuthority;
  enrollment: EnrollmentService;
  admin: AdminService;
  audit: AuditReader;
  /** Where the API's own decisions are recorded (B2B policies published); the hub's audit log. */
  auditLog?: { append(fields: AuditFields): Promise<unknown> } | undefined;
  /** The country registry, read by the member directory, written by the B2B policy route. */
  registry: MemberRegistry & B2bRegistry;
  readiness: ReadinessCheck;
  /** `GET /v1/admin/status`; without it the route answers 503 (services without a daemon, tests). */
  status?: StatusSource | undefined;
  log: Logger;
}

/**
 * The hub's HTTPS API: enrollment, renewal, CRL and OCSP, the member directory, the admin API,
 * health, and an OpenAPI document generated from the same TypeBox schemas that validate
 * requests. TLS asks every client for a certificate but does not require one: enrollment comes
 * before the country has one; the routes that need an identity check it themselves (`auth.ts`).
 */
export async function buildApiServer(opts: ApiServerOptions): Promise<ApiApp> {
  const app = Fastify({
    https: { cert: opts.tls.cert, key: opts.tls.key, ca: opts.tls.ca, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' },
    bodyLimit: opts.bodyLimitBytes,
    loggerInstance: opts.log,
    // Requests are logged by the error handler when refused; successful ones need no line each.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
    forceCloseConnections: true,
  }).withTypeProvider<TypeBoxTypeProvider>();
  app.setValidatorCompiler(typeboxValidatorCompiler);
  app.setErrorHandler(makeErrorHandler(opts.log));
  app.setNotFoundHandler((req, reply) => reply.status(404).send({ code: 'API_NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0] ?? ''}` }));
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'ncbnet hub API', version: VERSION, description: 'Enrollment, renewal, revocation status and administration of the ncbnet hub.' },
      components: { securitySchemes: { clientCertificate: { type: 'mutualTLS' } as never } },
    },
  });
  registerHealthRoutes(app, opts.readiness);
  registerEnrollRoutes(app, opts.enrollment, opts.ca);
  registerPkiRoutes(app, opts.ca);
  registerAdminRoutes(app, opts.admin, opts.ca);
  registerAuditRoutes(app, opts.audit, opts.ca);
  registerDirectoryRoutes(app, opts.registry, opts.ca);
  registerB2bRoutes(app, opts.registry, opts.ca, opts.auditLog);
  registerStatusRoutes(app, opts.ca, opts.status);
  app.get('/openapi.json', { schema: { hide: true } }, () => app.swagger());
  return app;
}
