import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { LogController, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { VERSION } from '../../protocol/version.js';
import type { RelayPort } from '../relay/types.js';
import { makeAuthHook, type BearerVerifier, type Caller } from './auth.js';
import { LOCAL_BAD_REQUEST, LOCAL_NOT_FOUND, LocalApiError, makeErrorHandler } from './errors.js';
import { registerHealthRoutes, type ReadinessCheck } from './routes-health.js';
import { registerInboxRoutes } from './routes-inbox.js';
import { registerMessageRoutes } from './routes-messages.js';
import { registerQueryRoutes } from './routes-query.js';
import { registerB2bRoutes, type B2bRouteDeps } from './routes-b2b.js';
import type { QueryPort } from '../query/query-client.js';
import type { LocalApiApp } from './schemas.js';
import { makeValidatorCompiler } from './validation.js';

/** Everything the local API needs; the daemon builds each part and passes it in. */
export interface LocalApiOptions {
  relay: RelayPort;
  /** The credentials: `LocalAccess.load` (tokens file and users with roles), or `loadTokens` alone (every caller ncb-admin). */
  tokens: BearerVerifier;
  /** The local API's logger (the caller gives it its `component`, as the daemon does). */
  log: Logger;
  /** Largest request body; a draft's `body` may be up to 512 Ki characters, so about 1 MiB fits every valid one. */
  bodyLimitBytes: number;
  /** This agent's country (ISO 3166-1 alpha-2), shown in `/v1/status`. */
  country: string;
  readiness: ReadinessCheck;
  /** Period of the keep-alive comments on event streams (default 15 s; tests shorten it). */
  sseKeepAliveMs?: number;
  /** The hub's database services (`POST /v1/query/{service}`); absent, the route does not exist. */
  query?: QueryPort;
  /** B2B national databases (`POST /v1/b2b/{country}/{db}`, `GET /v1/b2b/enquiries`); absent, the routes do not exist. */
  b2b?: Pick<B2bRouteDeps, 'client' | 'enquiries'>;
}

/**
 * The agent's local HTTP API for the NCB's own applications: send messages, follow their status,
 * read and ack the inbox (list, long poll, server-sent events), health, and an OpenAPI document
 * generated from the same TypeBox schemas that validate requests.
 *
 * Plain HTTP: the daemon binds it to 127.0.0.1 by default, and every route but the probes and
 * the API description needs a bearer token from the tokens file or the users file, checked before
 * the body is read; what the caller may then send, query and read depends on its role (roles.ts).
 * The caller calls `listen` (and `close`, which also ends open streams and long polls).
 */
export async function buildLocalApi(opts: LocalApiOptions): Promise<LocalApiApp> {
  const log = opts.log;
  const callers = new WeakMap<FastifyRequest, Caller>();
  const authHook = makeAuthHook(opts.tokens, callers);
  const app = Fastify({
    bodyLimit: opts.bodyLimitBytes,
    loggerInstance: log,
    // Requests are not logged one by one; refusals and failures are, by the error handler.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
    // Event streams and long polls would otherwise hold `close` until their clients leave.
    forceCloseConnections: true,
    // Ids up to 128 characters are valid (IdParamsSchema); fastify's default stops at 100.
    routerOptions: { maxParamLength: 256 },
    // A URL the router cannot even take apart (bad percent-encoding, an over-long parameter) is
    // answered here, before routing and hooks: authenticate first, as for any route, so an
    // unauthenticated prober still learns nothing, then refuse with a local code.
    frameworkErrors: (err, req, reply) => {
      const errorHandler = makeErrorHandler(log);
      authHook(req, reply, (authErr?: Error) => {
        const refusal = authErr ?? new LocalApiError(LOCAL_BAD_REQUEST, `${req.method} ${req.url.split('?')[0] ?? ''}: not a valid URL for this API (${err.message})`);
        void errorHandler(refusal, req, reply);
      });
    },
  }).withTypeProvider<TypeBoxTypeProvider>();
  app.setValidatorCompiler(makeValidatorCompiler());
  // Response schemas document the API; answers are the relay's own objects, written as they are
  // (fast-json-stringify would silently drop fields a newer envelope version adds).
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  app.setErrorHandler(makeErrorHandler(log));
  // JSON only: a text/plain body would otherwise reach validation as a string.
  app.removeContentTypeParser('text/plain');
  app.setNotFoundHandler((req, reply) => reply.status(404).send({ code: LOCAL_NOT_FOUND, message: `no route ${req.method} ${req.url.split('?')[0] ?? ''}` }));
  app.addHook('onRequest', authHook);
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'ncbnet agent local API',
        version: VERSION,
        description: `The ncbnet agent of ${opts.country}: send messages to other NCBs, follow their delivery, read and ack incoming messages.`,
      },
      components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', description: 'a token from the agent tokens file (role ncb-admin) or from `ncbnet-agent user add` (its role)' } } },
    },
  });
  registerHealthRoutes(app, opts.readiness);
  registerMessageRoutes(app, { relay: opts.relay, log, country: opts.country, callers });
  registerInboxRoutes(app, { relay: opts.relay, log, callers, ...(opts.sseKeepAliveMs === undefined ? {} : { sseKeepAliveMs: opts.sseKeepAliveMs }) });
  if (opts.query) registerQueryRoutes(app, { query: opts.query, log, callers });
  if (opts.b2b) registerB2bRoutes(app, { ...opts.b2b, log, callers });
  app.get('/openapi.json', { schema: { hide: true } }, () => app.swagger());
  return app;
}
