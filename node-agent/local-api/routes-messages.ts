import type { FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { isCountryCode } from '../../protocol/country.js';
import { ENVELOPE_INVALID, ENVELOPE_TOO_LARGE, EnvelopeError } from '../../protocol/envelope.js';
import { hasCode } from '../../protocol/errors.js';
import { describeValue } from '../../protocol/validate.js';
import { VERSION } from '../../protocol/version.js';
import { MessageDraftSchema, MessageStatusSchema, type MessageDraft, type RelayPort } from '../relay/types.js';
import { callerOf, type Caller } from './auth.js';
import { LOCAL_BAD_REQUEST, LOCAL_BODY_TOO_LARGE, LOCAL_ROLE_FORBIDDEN, LOCAL_UNKNOWN_MESSAGE, LOCAL_UNKNOWN_RECIPIENT, LocalApiError, LocalApiValidationError } from './errors.js';
import { canReadStatus, sendRefusal } from './roles.js';
import { AgentSummarySchema, ErrorSchema, IdParamsSchema, SubmitAnswerSchema, type LocalApiApp } from './schemas.js';

/** What the message routes need. */
export interface MessageRouteDeps {
  relay: RelayPort;
  log: Logger;
  country: string;
  /** Who made a request and with which role (set by the auth hook). */
  callers: WeakMap<FastifyRequest, Caller>;
}

/** The relay's code for an id it does not know (see `RelayPort.ack`). */
export const RELAY_UNKNOWN_MESSAGE = 'RELAY_UNKNOWN_MESSAGE';

/** Most inbox items counted for the status summary (the relay holds them in memory anyway). */
const MAX_COUNTED = 1_000_000;

export const SECURITY = [{ bearerAuth: [] }];

/**
 * Recipients that match the code pattern but are no assigned country (`ZZ`, `UK`): refused here,
 * with 422, rather than queued for the hub's router to reject minutes later.
 */
function recipientProblems(draft: MessageDraft): string[] {
  if (!Array.isArray(draft.to)) return [];
  return draft.to.flatMap((cc, i) => (isCountryCode(cc) ? [] : [`body.to[${i}]: not an assigned ISO 3166-1 alpha-2 code (got ${describeValue(cc)})`]));
}

/**
 * The relay validates the envelope it builds from the draft (notice colour only on notices,
 * `expires` after `created`, size); its refusals are the caller's input errors, so they are
 * answered as such, with the problems pointing into the request body.
 */
export function translateRelayError(err: unknown): unknown {
  if (err instanceof EnvelopeError && err.code === ENVELOPE_INVALID) {
    return new LocalApiValidationError(LOCAL_BAD_REQUEST, 'message', err.problems.map((p) => (p.startsWith('(root)') ? `body${p.slice(6)}` : `body.${p}`)), { cause: err });
  }
  if (err instanceof EnvelopeError && err.code === ENVELOPE_TOO_LARGE) {
    return new LocalApiValidationError(LOCAL_BODY_TOO_LARGE, 'message', err.problems, { cause: err });
  }
  if (hasCode(err, RELAY_UNKNOWN_MESSAGE)) return new LocalApiError(LOCAL_UNKNOWN_MESSAGE, err.message, { cause: err });
  return err;
}

/** `POST /v1/messages`, `GET /v1/messages/{id}` and `GET /v1/status`. */
export function registerMessageRoutes(app: LocalApiApp, deps: MessageRouteDeps): void {
  const { relay, log } = deps;
  app.post(
    '/v1/messages',
    {
      schema: {
        tags: ['messages'],
        summary: 'Send a message: answered once it is fsynced in the outbox (202), before the hub has it',
        security: SECURITY,
        body: MessageDraftSchema,
        response: { 202: SubmitAnswerSchema, 400: ErrorSchema, 401: ErrorSchema, 403: ErrorSchema, 413: ErrorSchema, 415: ErrorSchema, 422: ErrorSchema, 503: ErrorSchema, 507: ErrorSchema },
      },
    },
    async (req, reply) => {
      const draft = req.body;
      const caller = callerOf(deps.callers, req);
      // The role is checked before anything else about the draft, so a refused caller learns
      // nothing of the recipients' validity, and nothing is stored.
      const refusal = sendRefusal(caller.role, draft);
      if (refusal !== undefined) throw new LocalApiError(LOCAL_ROLE_FORBIDDEN, refusal);
      const problems = recipientProblems(draft);
      if (problems.length > 0) throw new LocalApiValidationError(LOCAL_UNKNOWN_RECIPIENT, 'recipients', problems);
      let status;
      try {
        status = await relay.submit(draft);
      } catch (err) {
        throw translateRelayError(err);
      }
      log.info({ id: status.id, caller: caller.name, role: caller.role, kind: draft.kind, recipients: Array.isArray(draft.to) ? draft.to.length : draft.to }, 'message accepted');
      void reply.code(202).header('location', `/v1/messages/${status.id}`);
      return { id: status.id, status: status.state };
    },
  );
  app.get(
    '/v1/messages/:id',
    {
      schema: {
        tags: ['messages'],
        summary: 'Where a message sent through this agent is: queued here, submitted to the hub, or rejected by it',
        security: SECURITY,
        params: IdParamsSchema,
        response: { 200: MessageStatusSchema, 401: ErrorSchema, 404: ErrorSchema },
      },
    },
    (req) => {
      // Open to every role: an id is known only to whoever sent the message (ULIDs carry 80
      // random bits), and a status holds recipients and states, never a subject or a body.
      const status = relay.status(req.params.id);
      if (!status) throw new LocalApiError(LOCAL_UNKNOWN_MESSAGE, `no message ${req.params.id} was sent through this agent`);
      return status;
    },
  );
  app.get(
    '/v1/status',
    {
      schema: {
        tags: ['agent'],
        summary: 'The agent: its country, broker connection, outbox depth and unacked inbox items (role ncb-admin only)',
        security: SECURITY,
        response: { 200: AgentSummarySchema, 401: ErrorSchema, 403: ErrorSchema },
      },
    },
    (req) => {
      const { role } = callerOf(deps.callers, req);
      // The figures cover all the NCB's traffic, confidential included: counting it is reading it.
      if (!canReadStatus(role)) throw new LocalApiError(LOCAL_ROLE_FORBIDDEN, `role ${role} may not read the agent status`);
      return {
        country: deps.country,
        version: VERSION,
        connected: relay.isConnected(),
        outboxDepth: relay.outboxDepth(),
        inboxUnacked: relay.inbox({ limit: MAX_COUNTED }).length,
      };
    },
  );
}
