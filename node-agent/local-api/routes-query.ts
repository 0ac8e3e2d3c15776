import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import Type from 'typebox';
import { CodedError } from '../../protocol/errors.js';
import { MAX_RESULTS, QUERY_OPS, QUERY_SERVICES, QUERY_UNKNOWN_SERVICE, QueryError, isQueryService, queryHttpStatus, type QueryOp, type QueryRequestInput } from '../../protocol/query.js';
import { HubRefusal, type QueryPort } from '../query/query-client.js';
import { ErrorSchema, type LocalApiApp } from './schemas.js';
import { callerOf, type Caller } from './auth.js';
import { LOCAL_ROLE_FORBIDDEN, LocalApiError, type ErrorBody } from './errors.js';
import { queryRefusal } from './roles.js';
import { SECURITY } from './routes-messages.js';

/** What the query route needs. */
export interface QueryRouteDeps {
  query: QueryPort;
  log: Logger;
  /** Who made a request and with which role (set by the auth hook). */
  callers: WeakMap<FastifyRequest, Caller>;
}

const ServiceParamsSchema = Type.Object({ service: Type.String({ maxLength: 64, description: `one of ${QUERY_SERVICES.join(', ')}` }) });

/**
 * The body: the query without `v` and `service` (the path names the service). Keys and records
 * are checked per service by `protocol/query.ts`, so a bad key is `QUERY_BAD_KEY` with the same
 * problems the hub would give, not a generic schema refusal.
 */
export const QueryBodySchema = Type.Object(
  {
    op: Type.Optional(Type.Enum([...QUERY_OPS], { description: 'get (default; search when name is given), search (nominal, by name), put, delete' })),
    key: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'sltd {number, country}; smv {vin}; woa {objectId}; firearms {serial, make}; nominal {id}' })),
    record: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'put: the whole record, key fields included' })),
    name: Type.Optional(Type.String({ maxLength: 256, description: 'search: a person name (nominal)' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_RESULTS })),
  },
  { additionalProperties: false },
);

const AnswerSchema = Type.Object({
  ok: Type.Literal(true),
  service: Type.String(),
  op: Type.String(),
  hit: Type.Boolean({ description: 'false: nothing matched (not an error)' }),
  result: Type.Optional(Type.Unknown()),
  results: Type.Optional(Type.Array(Type.Unknown())),
  truncated: Type.Optional(Type.Boolean()),
});

/**
 * Query answers are refused here with the code the agent or the hub gave, so the application
 * sees `QUERY_BAD_KEY` or `ENVELOPE_CERT_REVOKED` as they are; the status comes from
 * `queryHttpStatus` (a hub refusal of what this agent built is a 502: the agent's fault, not the caller's).
 */
function refuse(reply: FastifyReply, log: Logger, err: CodedError & { problems?: readonly string[] }, url: string): FastifyReply {
  const status = queryHttpStatus(err.code) ?? (err instanceof HubRefusal ? 502 : 500);
  const body: ErrorBody = { code: err.code, message: err.message, ...(err.problems?.length ? { problems: err.problems } : {}) };
  if (status >= 500) log.warn({ code: err.code, url, status }, 'query failed');
  else log.info({ code: err.code, url, status }, 'query refused');
  return reply.status(status).send(body);
}

/** `POST /v1/query/{service}`: one lookup (or put, delete, search) in the hub's databases. */
export function registerQueryRoutes(app: LocalApiApp, deps: QueryRouteDeps): void {
  const { log } = deps;
  app.post(
    '/v1/query/:service',
    {
      schema: {
        tags: ['query'],
        summary: "Query the hub's shared databases (sltd, smv, woa, firearms, nominal): answered with the hub's result, hit or no hit",
        security: SECURITY,
        params: ServiceParamsSchema,
        body: QueryBodySchema,
        response: { 200: AnswerSchema, 400: ErrorSchema, 401: ErrorSchema, 403: ErrorSchema, 404: ErrorSchema, 409: ErrorSchema, 413: ErrorSchema, 502: ErrorSchema, 503: ErrorSchema, 504: ErrorSchema },
      },
    },
    async (req, reply) => {
      const url = req.url.split('?')[0] ?? '';
      const { service } = req.params;
      if (!isQueryService(service)) {
        return refuse(reply, log, new QueryError(QUERY_UNKNOWN_SERVICE, `no database service ${JSON.stringify(service)}; known: ${QUERY_SERVICES.join(', ')}`), url);
      }
      const body = req.body;
      const op: QueryOp = body.op ?? (body.name !== undefined ? 'search' : 'get');
      // The role is checked before the query leaves the agent: the hub sees only the country,
      // so which of the NCB's users may use which service is the agent's to enforce.
      const caller = callerOf(deps.callers, req);
      const refusal = queryRefusal(caller.role, service, op);
      if (refusal !== undefined) throw new LocalApiError(LOCAL_ROLE_FORBIDDEN, refusal);
      const request: QueryRequestInput = { v: 1, ...body, service, op };
      try {
        const answer = await deps.query.query(request);
        log.info({ service, op, hit: answer.hit, caller: caller.name, role: caller.role }, 'query answered');
        return answer;
      } catch (err) {
        if (err instanceof CodedError) return refuse(reply, log, err, url);
        throw err;
      }
    },
  );
}
