import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { CodedError, ValidationError } from '../../protocol/errors.js';

/** The body of every error answer: the stable code, a message for people, and each problem. */
export interface ErrorBody {
  code: string;
  message: string;
  problems?: readonly string[];
}

const STATUS_BY_CODE: Readonly<Record<string, number>> = {
  API_BAD_REQUEST: 400,
  ENROLL_TOKEN_MALFORMED: 400,
  ENROLL_TOKEN_WRONG_CA: 400,
  ENROLL_TOKEN_UNKNOWN: 401,
  ENROLL_TOKEN_EXPIRED: 401,
  ENROLL_TOKEN_USED: 409,
  ENROLL_TOKEN_BAD_TTL: 400,
  ENROLL_COUNTRY_NOT_ENROLLABLE: 403,
  ENROLL_WG_KEY_IN_USE: 409,
  ENROLL_RATE_LIMITED: 429,
  RENEW_NOT_CURRENT: 403,
  AUTH_CLIENT_CERT_REQUIRED: 401,
  AUTH_WRONG_IDENTITY: 403,
  REGISTRY_UNKNOWN_COUNTRY: 404,
  REGISTRY_NOT_A_COUNTRY: 400,
  REGISTRY_COUNTRY_EXISTS: 409,
  REGISTRY_BAD_TRANSITION: 409,
  REGISTRY_CONFLICT: 409,
  REGISTRY_UNAVAILABLE: 503,
  AUDIT_UNAVAILABLE: 503,
  AUDIT_APPEND_CONFLICT: 503,
  AUDIT_BAD_MESSAGE_ID: 400,
  REGISTRY_OVERLAY_FULL: 507,
  PKI_BAD_COUNTRY: 400,
  PKI_BAD_REASON: 400,
  PKI_BAD_LIFETIME: 400,
};

/** HTTP status for a coded error: CSR refusals are 422 (well-formed request, unacceptable content). */
export function statusFor(code: string): number {
  const mapped = STATUS_BY_CODE[code];
  if (mapped !== undefined) return mapped;
  if (code.startsWith('PKI_CSR_') || code === 'PKI_PEM_MALFORMED') return 422;
  return 500;
}

/**
 * One error handler for the whole API (STYLE, Errors: catch at the boundary, log once, answer
 * with the code). Fastify's own errors (bad JSON, body too large, wrong content type) keep their
 * status and code; anything uncoded is a bug: logged with its stack, answered without details.
 */
export function makeErrorHandler(log: Logger) {
  return (err: FastifyError | Error, req: FastifyRequest, reply: FastifyReply): FastifyReply => {
    if (err instanceof CodedError) {
      const status = statusFor(err.code);
      const body: ErrorBody = { code: err.code, message: err.message };
      if (err instanceof ValidationError) body.problems = err.problems;
      if (status >= 500) log.error({ err, url: req.url }, 'request failed');
      else log.info({ code: err.code, url: req.url, status }, 'request refused');
      return reply.status(status).send(body);
    }
    const fe = err as FastifyError;
    if (typeof fe.statusCode === 'number' && fe.statusCode < 500 && typeof fe.code === 'string') {
      log.info({ code: fe.code, url: req.url, status: fe.statusCode }, 'request refused');
      return reply.status(fe.statusCode).send({ code: fe.code, message: fe.message } satisfies ErrorBody);
    }
    log.error({ err, url: req.url }, 'unexpected error in request');
    return reply.status(500).send({ code: 'INTERNAL', message: 'internal error; the hub log has the details' } satisfies ErrorBody);
  };
}
