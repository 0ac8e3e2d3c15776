import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { LOCAL_AUTH_BAD_TOKEN, LOCAL_AUTH_REQUIRED, LocalApiError } from './errors.js';
import { hasBearer } from './tokens.js';

/** What checks a bearer header: the loaded tokens file (see `tokens.ts`). */
export interface BearerVerifier {
  /** The caller's name for a valid `Authorization: Bearer …` header, else undefined. */
  verifyBearer(header: string | undefined): string | undefined;
}

/** Routes anyone on the machine may call: probes (systemd, monitoring) and the API description. */
export const PUBLIC_ROUTES: ReadonlySet<string> = new Set(['/healthz', '/readyz', '/openapi.json']);

/**
 * Builds the `onRequest` hook that authenticates every non-public request. It runs before the
 * body is read or validated, so a caller without a token learns nothing about the API's input
 * rules, and no body of an unauthenticated caller is ever parsed. Unknown routes need a token
 * too (a 401 rather than a 404 tells an unauthenticated prober nothing).
 *
 * `callers` records who made each request, for the routes' log lines.
 */
export function makeAuthHook(tokens: BearerVerifier, callers: WeakMap<FastifyRequest, string>) {
  return (req: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction): void => {
    const route = req.routeOptions.url;
    if (route !== undefined && PUBLIC_ROUTES.has(route)) return done();
    const header = req.headers.authorization;
    if (!hasBearer(header)) return done(new LocalApiError(LOCAL_AUTH_REQUIRED, 'this endpoint needs Authorization: Bearer <token> (a token from the agent tokens file)'));
    const caller = tokens.verifyBearer(header);
    if (caller === undefined) return done(new LocalApiError(LOCAL_AUTH_BAD_TOKEN, 'the bearer token matches no entry of the agent tokens file'));
    callers.set(req, caller);
    done();
  };
}
