import type { CertificateAuthority } from '../../pki/ca.js';
import { BundleSchema, EnrollRequestSchema, PolicySchema, RenewRequestSchema, RenewResponseSchema } from '../enrollment/bundle.js';
import type { EnrollmentService } from '../enrollment/service.js';
import { CodedError } from '../../protocol/errors.js';
import { ENROLL_RATE_LIMITED, HubError } from '../errors.js';
import { callerOf } from './auth.js';
import { FailureLimiter } from './failure-limiter.js';
import { ErrorSchema, type ApiApp } from './schemas.js';

/** Token errors that count as a guess for the {@link FailureLimiter}. */
const GUESS_CODES = new Set(['ENROLL_TOKEN_MALFORMED', 'ENROLL_TOKEN_WRONG_CA', 'ENROLL_TOKEN_UNKNOWN', 'ENROLL_TOKEN_EXPIRED', 'ENROLL_TOKEN_USED']);

export function registerEnrollRoutes(app: ApiApp, enrollment: EnrollmentService, ca: CertificateAuthority, limiter: FailureLimiter = new FailureLimiter()): void {
  app.post(
    '/v1/enroll',
    {
      schema: {
        tags: ['enrollment'],
        summary: 'Enroll a country with a single-use token, its CSR and its WireGuard public key',
        body: EnrollRequestSchema,
        response: { 200: BundleSchema, 400: ErrorSchema, 401: ErrorSchema, 403: ErrorSchema, 409: ErrorSchema, 422: ErrorSchema, 429: ErrorSchema },
      },
    },
    async (req, reply) => {
      const waitMs = limiter.retryAfterMs(req.ip);
      if (waitMs > 0) {
        void reply.header('retry-after', String(Math.ceil(waitMs / 1000)));
        throw new HubError(ENROLL_RATE_LIMITED, `too many wrong tokens from this address; try again in ${Math.ceil(waitMs / 1000)} s`);
      }
      try {
        return await enrollment.enroll(req.body);
      } catch (err) {
        if (err instanceof CodedError && GUESS_CODES.has(err.code) && limiter.fail(req.ip)) {
          req.log.warn({ address: req.ip, code: err.code }, 'enrollment attempts from this address throttled');
        }
        throw err;
      }
    },
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
  app.get(
    '/v1/policy',
    {
      schema: {
        tags: ['enrollment'],
        summary: "The firewall policy agents apply now (the bundle's policy); a running agent fetches it to follow a change",
        security: [{ clientCertificate: [] }],
        response: { 200: PolicySchema, 401: ErrorSchema, 403: ErrorSchema },
      },
    },
    (req) => {
      callerOf(req, ca, 'country');
      return enrollment.policy();
    },
  );
}
