import type { FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { InboxItem, RelayPort } from '../relay/types.js';
import { callerOf, type Caller } from './auth.js';
import { LOCAL_UNKNOWN_MESSAGE, LocalApiError } from './errors.js';
import { canRead, type Role } from './roles.js';
import { ErrorSchema, IdParamsSchema, InboxAnswerSchema, InboxItemSchema, InboxQuerySchema, type LocalApiApp } from './schemas.js';
import { SECURITY, translateRelayError } from './routes-messages.js';
import { streamInbox, wantsEventStream } from './sse.js';

/** What the inbox routes need. */
export interface InboxRouteDeps {
  relay: RelayPort;
  log: Logger;
  callers: WeakMap<FastifyRequest, Caller>;
  sseKeepAliveMs?: number;
}

const DEFAULT_LIMIT = 100;

/** What a role may see of the inbox: items whose handling code it may read, nothing else. */
export function readableBy(role: Role): (item: InboxItem) => boolean {
  return (item) => canRead(role, item.envelope.handling);
}

/**
 * The unacked items `role` may read, oldest first, at most `limit`. The whole unacked list is
 * filtered before the limit applies, so hidden items neither take a caller's places in a page
 * nor show as a short page (which would count them).
 */
function visibleInbox(relay: RelayPort, role: Role, limit: number): InboxItem[] {
  return relay.inbox({ limit, filter: readableBy(role) });
}

/** The item `id` (acked or not) when `role` may read it; undefined when it is unknown or hidden alike. */
function findReadable(relay: RelayPort, role: Role, id: string): InboxItem | undefined {
  const item = relay.inboxItem(id);
  return item !== undefined && canRead(role, item.envelope.handling) ? item : undefined;
}

/**
 * The unknown-item refusal, word for word the same whether the id exists and is hidden from the
 * caller's role or does not exist at all: a 404 rather than a 403, so an id learnt elsewhere does
 * not confirm that a confidential message is here.
 */
function unknownItem(id: string): LocalApiError {
  return new LocalApiError(LOCAL_UNKNOWN_MESSAGE, `inbox: no message ${JSON.stringify(id)}`);
}

/**
 * `GET /v1/inbox` (list, long poll, or server-sent events), `GET /v1/inbox/{id}` and
 * `POST /v1/inbox/{id}/ack`, each showing only what the caller's role may read (roles.ts).
 */
export function registerInboxRoutes(app: LocalApiApp, deps: InboxRouteDeps): void {
  const { relay, log } = deps;
  app.get(
    '/v1/inbox',
    {
      schema: {
        tags: ['inbox'],
        summary: 'Unacked delivered messages, oldest first',
        description:
          'Answers at once with the waiting items. With `wait`, when none is waiting, holds the request until one arrives or `wait` seconds pass (long poll). ' +
          'With `Accept: text/event-stream`, streams every unacked item and then each new one as server-sent events (one `data:` JSON item per event), ' +
          'with a keep-alive comment every 15 s. Items stay in the inbox until acked. ' +
          "Every answer holds only the items whose handling code the caller's role may read: the others are neither listed, nor counted, nor streamed, nor do they end a long poll.",
        security: SECURITY,
        querystring: InboxQuerySchema,
        produces: ['application/json', 'text/event-stream'],
        response: { 200: InboxAnswerSchema, 400: ErrorSchema, 401: ErrorSchema },
      },
    },
    async (req, reply) => {
      const caller = callerOf(deps.callers, req);
      const { role } = caller;
      if (wantsEventStream(req.headers.accept)) {
        // The stream outlives this handler: fastify must not answer for it.
        reply.hijack();
        log.debug({ caller: caller.name, role: caller.role }, 'inbox stream opened');
        streamInbox(reply.raw, { relay, log, filter: readableBy(caller.role), ...(deps.sseKeepAliveMs === undefined ? {} : { keepAliveMs: deps.sseKeepAliveMs }) });
        return reply;
      }
      const limit = req.query.limit ?? DEFAULT_LIMIT;
      const items = visibleInbox(relay, role, limit);
      const waitSeconds = req.query.wait ?? 0;
      if (items.length > 0 || waitSeconds === 0) return { items };
      // Nothing waiting: hold the request. `close` on the response before it is sent means the
      // client went away; stop waiting so an abandoned poll does not hold the relay's listener.
      // An item the role may not read does not end the wait: the poll goes on to its deadline,
      // so an early empty answer cannot tell the caller that a hidden item arrived.
      const deadline = Date.now() + waitSeconds * 1000;
      const gone = new AbortController();
      const onClose = (): void => gone.abort();
      reply.raw.once('close', onClose);
      let found: InboxItem[] = [];
      try {
        for (let left = deadline - Date.now(); left > 0 && !gone.signal.aborted; left = deadline - Date.now()) {
          await relay.waitForInbox(left, gone.signal);
          found = visibleInbox(relay, role, limit);
          if (found.length > 0) break;
        }
      } catch (err) {
        if (!gone.signal.aborted) throw err;
      } finally {
        reply.raw.off('close', onClose);
      }
      if (gone.signal.aborted) {
        // Nobody to answer; tell fastify not to try.
        reply.hijack();
        return reply;
      }
      return { items: found };
    },
  );
  app.get(
    '/v1/inbox/:id',
    {
      schema: {
        tags: ['inbox'],
        summary: "One delivered message, acked or not (404 for an item hidden from the caller's role, as for an unknown id)",
        security: SECURITY,
        params: IdParamsSchema,
        response: { 200: InboxItemSchema, 401: ErrorSchema, 404: ErrorSchema },
      },
    },
    (req) => {
      const { role } = callerOf(deps.callers, req);
      const { id } = req.params;
      const item = findReadable(relay, role, id);
      if (item === undefined) throw unknownItem(id);
      return item;
    },
  );
  app.post(
    '/v1/inbox/:id/ack',
    {
      schema: {
        tags: ['inbox'],
        summary: "Mark a delivered message read by the application; it leaves the unacked list (404 for an item hidden from the caller's role, as for an unknown id)",
        security: SECURITY,
        params: IdParamsSchema,
        response: { 200: InboxItemSchema, 401: ErrorSchema, 404: ErrorSchema, 503: ErrorSchema, 507: ErrorSchema },
      },
    },
    async (req) => {
      const caller = callerOf(deps.callers, req);
      const { id } = req.params;
      // Looked up first (acked items too: acking is idempotent) so a hidden item is never acked,
      // and answered exactly as an unknown id.
      if (findReadable(relay, caller.role, id) === undefined) throw unknownItem(id);
      try {
        const item = await relay.ack(id);
        log.info({ id: item.id, caller: caller.name, role: caller.role }, 'inbox item acked');
        return item;
      } catch (err) {
        throw translateRelayError(err);
      }
    },
  );
}
