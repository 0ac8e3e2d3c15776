import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import Type, { type Static } from 'typebox';
import { EnvelopeSchema } from '../../protocol/envelope.js';
import { MessageStatusSchema } from '../relay/types.js';

/** Every error answer (see `errors.ts`). */
export const ErrorSchema = Type.Object({
  code: Type.String({ description: 'stable error code, e.g. LOCAL_UNKNOWN_RECIPIENT' }),
  message: Type.String(),
  problems: Type.Optional(Type.Array(Type.String(), { description: 'each problem as `path: problem (got X)`' })),
});

/** An id in a path: a message or inbox item id (ULIDs today; kept loose so the relay may change them). */
export const IdParamsSchema = Type.Object({ id: Type.String({ pattern: '^[0-9A-Za-z._-]{1,128}$' }) });

/** The answer to `POST /v1/messages`: the message is on disk in the outbox (202: not yet at the hub). */
export const SubmitAnswerSchema = Type.Object({
  id: Type.String({ description: 'the message id (ULID); poll GET /v1/messages/{id}' }),
  status: MessageStatusSchema.properties.state,
});
export type SubmitAnswer = Static<typeof SubmitAnswerSchema>;

/** One inbox item as the API shows it (the relay's `InboxItem`). */
export const InboxItemSchema = Type.Object({
  id: Type.String(),
  envelope: EnvelopeSchema,
  plaintext: Type.Optional(Type.String({ description: "the body of a restricted/confidential envelope, decrypted by this agent (the envelope keeps the ciphertext it was signed with)" })),
  receivedAt: Type.String(),
  ackedAt: Type.Optional(Type.String()),
});

export const InboxQuerySchema = Type.Object(
  {
    wait: Type.Optional(Type.Number({ minimum: 0, maximum: 60, description: 'seconds to wait for an item when none is waiting (long poll)' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100, description: 'most items returned' })),
  },
  { additionalProperties: false },
);

export const InboxAnswerSchema = Type.Object({ items: Type.Array(InboxItemSchema) });

/** `GET /v1/status`: what the agent is doing, for `ncbnet-agent status`. */
export const AgentSummarySchema = Type.Object({
  country: Type.String(),
  version: Type.String(),
  connected: Type.Boolean({ description: "connected to the hub's broker now" }),
  outboxDepth: Type.Integer({ description: 'messages accepted here and not yet stored by the hub' }),
  inboxUnacked: Type.Integer({ description: 'delivered messages no application has acked yet' }),
});
export type AgentSummary = Static<typeof AgentSummarySchema>;

export const ReadinessSchema = Type.Object({ ready: Type.Boolean(), checks: Type.Record(Type.String(), Type.Boolean()) });
export type Readiness = Static<typeof ReadinessSchema>;

/** The local API's fastify instance type: plain HTTP on loopback, pino, TypeBox-typed routes. */
export type LocalApiApp = FastifyInstance<Server, IncomingMessage, ServerResponse, Logger, TypeBoxTypeProvider>;
