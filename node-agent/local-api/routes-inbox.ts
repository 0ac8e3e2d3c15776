import type { FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { RelayPort } from '../relay/types.js';
import { ErrorSchema, IdParamsSchema, InboxAnswerSchema, InboxItemSchema, InboxQuerySchema, type LocalApiApp } from './schemas.js';
import { SECURITY, translateRelayError } from './routes-messages.js';
import { streamInbox, wantsEventStream } from './sse.js';

/** What the inbox routes need. */
export interface InboxRouteDeps {
  relay: RelayPort;
  log: Logger;
  callers: WeakMap<FastifyRequest, string>;
  sseKeepAliveMs?: number;
}

const DEFAULT_LIMIT = 100;

/** `GET /v1/inbox` (list, long poll, or server-sent events) and `POST /v1/inbox/{id}/ack`. */
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
          'with a keep-alive comment every 15 s. Items stay in the inbox until acked.',
        security: SECURITY,
        querystring: InboxQuerySchema,
        produces: ['application/json', 'text/event-stream'],
        response: { 200: InboxAnswerSchema, 400: ErrorSchema, 401: ErrorSchema },
      },
    },
    async (req, reply) => {
      if (wantsEventStream(req.headers.accept)) {
        // The stream outlives this handler: fastify must not answer for it.
        reply.hijack();
        log.debug({ caller: deps.callers.get(req) }, 'inbox stream opened');
        streamInbox(reply.raw, { relay, log, ...(deps.sseKeepAliveMs === undefined ? {} : { keepAliveMs: deps.sseKeepAliveMs }) });
        return reply;
      }
      const limit = req.query.limit ?? DEFAULT_LIMIT;
      const items = relay.inbox({ limit });
      const waitSeconds = req.query.wait ?? 0;
      if (items.length > 0 || waitSeconds === 0) return { items };
      // Nothing waiting: hold the request. `close` on the response before it is sent means the
      // client went away; stop waiting so an abandoned poll does not hold the relay's listener.
      const gone = new AbortController();
      const onClose = (): void => gone.abort();
      reply.raw.once('close', onClose);
      try {
        await relay.waitForInbox(waitSeconds * 1000, gone.signal);
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
      return { items: relay.inbox({ limit }) };
    },
  );
  app.post(
    '/v1/inbox/:id/ack',
    {
      schema: {
        tags: ['inbox'],
        summary: 'Mark a delivered message read by the application; it leaves the unacked list',
        security: SECURITY,
        params: IdParamsSchema,
        response: { 200: InboxItemSchema, 401: ErrorSchema, 404: ErrorSchema },
      },
    },
    async (req) => {
      try {
        const item = await relay.ack(req.params.id);
        log.info({ id: item.id, caller: deps.callers.get(req) }, 'inbox item acked');
        return item;
      } catch (err) {
        throw translateRelayError(err);
      }
    },
  );
}
