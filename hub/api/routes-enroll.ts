import type { CertificateAuthority } from '../../pki/ca.js';
import { BundleSchema, EnrollRequestSchema, RenewRequestSchema, RenewResponseSchema } from '../enrollment/bundle.js';
import type { EnrollmentService } from '../enrollment/service.js';
import { callerOf } from './auth.js';
import { ErrorSchema, type ApiApp } from './schemas.js';

export function registerEnrollRoutes(app: ApiApp, enrollment: EnrollmentService, ca: CertificateAuthority): void {
  app.post(
    '/v1/enroll',
    {
      schema: {
        tags: ['enrollment'],
        summary: 'Enroll a country with a single-use token, its CSR and its WireGuard public key',
        body: EnrollRequestSchema,
        response: { 200: BundleSchema, 400: ErrorSchema, 401: ErrorSchema, 403: ErrorSchema, 409: ErrorSchema, 422: ErrorSchema },
      },
    },
    (req) => enrollment.enroll(req.body),
  );
  app.post(
    '/v1/renew',
    {
      schema: {
        tags: ['enrollment'],
        summary: 'Renew the calling country certificate (mutual TLS with the current certificate)',
        security: [{ clientCertificate: [] }],
        body: RenewRequestSchema,
        response: { 200: RenewResponseSchema, 401: ErrorSchema, 403: ErrorSchema, 422: ErrorSchema },
      },
    },
    (req) => {
      const caller = callerOf(req, ca, 'country');
      return enrollment.renew(caller.name, caller.serial, req.body.csr);
    },
  );
}
