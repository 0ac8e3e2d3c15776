import type { FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import Type from 'typebox';
import { B2B_DB_PATTERN, EnquiryNoticeSchema, b2bHttpStatus, type EnquiryNotice } from '../../protocol/b2b.js';
import { CodedError } from '../../protocol/errors.js';
import type { B2bQueryPort } from '../b2b/client.js';
import { ErrorSchema, type LocalApiApp } from './schemas.js';
import { callerOf, type Caller } from './auth.js';
import { LOCAL_ROLE_FORBIDDEN, LocalApiError } from './errors.js';
import { b2bRefusal, canReadEnquiries } from './roles.js';
import { SECURITY } from './routes-messages.js';

/** What the B2B routes need. */
export interface B2bRouteDeps {
  client: B2bQueryPort;
  /** The enquiry notices of this country's own databases; absent when it publishes none. */
  enquiries?: { list(opts: { limit?: number; db?: string; from?: string }): EnquiryNotice[] } | undefined;
  log: Logger;
  callers: WeakMap<FastifyRequest, Caller>;
}

const ParamsSchema = Type.Object({
  country: Type.String({ pattern: '^[A-Z]{2}$', description: 'the owner of the database, ISO 3166-1 alpha-2' }),
  db: Type.String({ pattern: B2B_DB_PATTERN.source, description: 'the database name' }),
});
const BodySchema = Type.Object({ key: Type.String({ minLength: 1, maxLength: 128, description: 'the key looked up (spaces, dashes, dots, slashes and case ignored)' }) }, { additionalProperties: false });
const AnswerSchema = Type.Object({
  ok: Type.Literal(true),
  owner: Type.String(),
  db: Type.String(),
  key: Type.String({ description: 'the key as normalized' }),
  hit: Type.Boolean({ description: 'false: nothing matched (not an error)' }),
  record: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'only the fields the owner shares with this country' })),
});
const EnquiriesQuerySchema = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
    db: Type.Optional(Type.String({ pattern: B2B_DB_PATTERN.source })),
    from: Type.Optional(Type.String({ pattern: '^[A-Z]{2}$' })),
  },
  { additionalProperties: false },
);

/**
 * `POST /v1/b2b/{country}/{db}`: one lookup in another country's national database (issue 8).
 * `B2B_NOT_ALLOWED` (403) when the broker refuses (the owner's policy leaves this country out),
 * `B2B_UNREACHABLE` (503) when nobody serves it now, `B2B_TIMEOUT` (504). `GET /v1/b2b/enquiries`:
 * the notices of enquiries made to this country's own databases (those whose policy asks for them).
 */
export function registerB2bRoutes(app: LocalApiApp, deps: B2bRouteDeps): void {
  const { log } = deps;
  app.post(
    '/v1/b2b/:country/:db',
    {
      schema: {
        tags: ['b2b'],
        summary: "Query another country's national database (B2B): answered with the fields its policy shares, hit or no hit",
        security: SECURITY,
        params: ParamsSchema,
        body: BodySchema,
        response: { 200: AnswerSchema, 400: ErrorSchema, 401: ErrorSchema, 403: ErrorSchema, 404: ErrorSchema, 413: ErrorSchema, 502: ErrorSchema, 503: ErrorSchema, 504: ErrorSchema },
      },
    },
    async (req, reply) => {
      const { country, db } = req.params;
      const caller = callerOf(deps.callers, req);
      const refusal = b2bRefusal(caller.role);
      if (refusal !== undefined) throw new LocalApiError(LOCAL_ROLE_FORBIDDEN, refusal);
      try {
        const answer = await deps.client.query(country, db, req.body.key);
        log.info({ owner: country, db, hit: answer.hit, caller: caller.name, role: caller.role }, 'B2B query answered');
        return answer;
      } catch (err) {
        if (!(err instanceof CodedError)) throw err;
        const problems = (err as { problems?: readonly string[] }).problems;
        // A code the owner gave that the table lacks (ENVELOPE_*: it refused what this agent built) is a bad gateway.
        const status = (b2bHttpStatus(err.code) ?? 502) as 400 | 403 | 404 | 413 | 502 | 503 | 504;
        if (status >= 500) log.warn({ code: err.code, owner: country, db, status }, 'B2B query failed');
        else log.info({ code: err.code, owner: country, db, status }, 'B2B query refused');
        return reply.status(status).send({ code: err.code, message: err.message, ...(problems?.length ? { problems: [...problems] } : {}) });
      }
    },
  );
  app.get(
    '/v1/b2b/enquiries',
    {
      schema: {
        tags: ['b2b'],
        summary: "Enquiries made to this country's own B2B databases: who, when, which key, hit or no hit (oldest first)",
        security: SECURITY,
        querystring: EnquiriesQuerySchema,
        response: { 200: Type.Object({ enquiries: Type.Array(EnquiryNoticeSchema) }), 401: ErrorSchema, 403: ErrorSchema },
      },
    },
    (req) => {
      const { role } = callerOf(deps.callers, req);
      // Who asked what of our databases is the NCB's own business, not every application's.
      if (!canReadEnquiries(role)) throw new LocalApiError(LOCAL_ROLE_FORBIDDEN, `role ${role} may not read the B2B enquiry notices`);
      return { enquiries: deps.enquiries?.list(req.query) ?? [] };
    },
  );
}
