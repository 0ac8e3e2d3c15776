import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import Type from 'typebox';

/** Every error answer (see `errors.ts`). */
export const ErrorSchema = Type.Object({
  code: Type.String({ description: 'stable error code, e.g. ENROLL_TOKEN_USED' }),
  message: Type.String(),
  problems: Type.Optional(Type.Array(Type.String(), { description: 'each validation problem as `path: problem (got X)`' })),
});

/** The API's fastify instance type: HTTPS, pino, TypeBox-typed routes. */
export type ApiApp = FastifyInstance<HttpsServer, IncomingMessage, ServerResponse, Logger, TypeBoxTypeProvider>;
