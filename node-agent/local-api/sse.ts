import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { InboxItem, RelayPort } from '../relay/types.js';

/** Keep-alive comment period: under the idle timeouts of common proxies (30–60 s). */
export const SSE_KEEP_ALIVE_MS = 15_000;
/**
 * Most items queued for one client that does not read. Past it the stream is closed: the client
 * reconnects and gets every unacked item again, which costs less than holding an unbounded queue.
 */
export const SSE_MAX_QUEUED = 10_000;

/** Options of {@link streamInbox}. */
export interface InboxStreamOptions {
  relay: RelayPort;
  log: Logger;
  keepAliveMs?: number;
  maxQueued?: number;
  /**
   * Which items this client may see (its role's readable handling codes); the others are never
   * queued, so they cost the client nothing, not even an event id or a gap in the keep-alives.
   */
  filter?: (item: InboxItem) => boolean;
}

/** One event per item, as the WHATWG server-sent events format has it (`id:` then `data:`). */
function eventFor(item: InboxItem): string {
  // JSON.stringify escapes every line break, so the item is always a single `data:` line.
  return `id: ${item.id}\ndata: ${JSON.stringify(item)}\n\n`;
}

/**
 * Streams the inbox to one client as server-sent events on a response whose headers are not
 * sent yet: every unacked item first, then each new one as the relay stores it, a comment every
 * `keepAliveMs` so proxies keep the connection, until the client goes away (then unsubscribe).
 *
 * The subscription is taken before the backlog is read, both in the same tick, so no item can
 * fall between them or come twice. Items are queued as objects and serialised only as the socket
 * drains, so a large backlog to a slow client costs no copies.
 */
export function streamInbox(res: ServerResponse, opts: InboxStreamOptions): void {
  const keepAliveMs = opts.keepAliveMs ?? SSE_KEEP_ALIVE_MS;
  const maxQueued = opts.maxQueued ?? SSE_MAX_QUEUED;
  const queue: InboxItem[] = [];
  let blocked = false;
  let closed = false;

  const flush = (): void => {
    while (!blocked && !closed) {
      const item = queue.shift();
      if (item === undefined) return;
      if (!res.write(eventFor(item))) {
        blocked = true;
        res.once('drain', () => {
          blocked = false;
          flush();
        });
      }
    }
  };
  const visible = opts.filter ?? ((): boolean => true);
  const enqueue = (item: InboxItem): void => {
    if (closed || !visible(item)) return;
    queue.push(item);
    if (queue.length > maxQueued) {
      opts.log.warn({ queued: queue.length }, 'inbox stream client too slow; closing its stream');
      res.destroy();
      return;
    }
    flush();
  };

  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    connection: 'keep-alive',
    // Proxies such as nginx would otherwise buffer the stream and delay every event.
    'x-accel-buffering': 'no',
  });
  res.flushHeaders();

  const unsubscribe = opts.relay.onInbox(enqueue);
  for (const item of opts.relay.inbox({ limit: Number.MAX_SAFE_INTEGER, filter: visible })) queue.push(item);
  flush();

  const timer = setInterval(() => {
    if (!blocked && queue.length === 0) res.write(': keep-alive\n\n');
  }, keepAliveMs);
  res.once('close', () => {
    closed = true;
    queue.length = 0;
    clearInterval(timer);
    unsubscribe();
    opts.log.debug('inbox stream closed');
  });
}

/** True when the `Accept` header asks for server-sent events. */
export function wantsEventStream(accept: string | undefined): boolean {
  if (accept === undefined) return false;
  return accept.split(',').some((part) => (part.split(';')[0] ?? '').trim().toLowerCase() === 'text/event-stream');
}
