/**
 * A client of the agent's inbox as server-sent events (`GET /v1/inbox`, `Accept:
 * text/event-stream`), as an NCB application would hold it open: records when each item's event
 * arrived (performance.now()), by inbox id, whichever comes first, the event or the wait for it.
 */
import { request, type ClientRequest } from 'node:http';

export class InboxStream {
  readonly #arrived = new Map<string, number>();
  readonly #waiters = new Map<string, { resolve: (t: number) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  #req: ClientRequest | undefined;
  #buffer = '';
  #isClosed = false;
  /** Bytes of the first item's envelope, as JSON (what the relay carried for a draft). */
  envelopeBytes: number | undefined;
  /** Called with each item id as its event arrives. */
  onItem: ((id: string, at: number) => void) | undefined;

  private constructor() {}

  /** Opens the stream; resolves once the headers came back 200. */
  static open(localApiUrl: string, token: string): Promise<InboxStream> {
    const stream = new InboxStream();
    return new Promise((resolve, reject) => {
      const req = request(`${localApiUrl}/v1/inbox`, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' } }, (res) => {
        if (res.statusCode !== 200) {
          reject(new Error(`inbox stream: HTTP ${res.statusCode}`));
          res.resume();
          return;
        }
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => stream.#onData(chunk, performance.now()));
        res.on('close', () => stream.#onClose());
        resolve(stream);
      });
      req.on('error', (err) => {
        if (!stream.#isClosed) reject(err);
      });
      req.end();
      stream.#req = req;
    });
  }

  #onData(chunk: string, at: number): void {
    this.#buffer += chunk;
    for (let end = this.#buffer.indexOf('\n\n'); end >= 0; end = this.#buffer.indexOf('\n\n')) {
      const event = this.#buffer.slice(0, end);
      this.#buffer = this.#buffer.slice(end + 2);
      let id: string | undefined;
      let data: string | undefined;
      for (const line of event.split('\n')) {
        if (line.startsWith('id: ')) id = line.slice(4);
        else if (line.startsWith('data: ')) data = line.slice(6);
      }
      if (id === undefined) continue; // keep-alive comment
      if (this.envelopeBytes === undefined && data !== undefined) {
        const item = JSON.parse(data) as { envelope?: unknown };
        this.envelopeBytes = Buffer.byteLength(JSON.stringify(item.envelope));
      }
      if (!this.#arrived.has(id)) this.#arrived.set(id, at);
      const waiter = this.#waiters.get(id);
      if (waiter !== undefined) {
        this.#waiters.delete(id);
        clearTimeout(waiter.timer);
        waiter.resolve(at);
      }
      this.onItem?.(id, at);
    }
  }

  #onClose(): void {
    if (this.#isClosed) return;
    this.#isClosed = true;
    for (const [id, w] of this.#waiters) {
      clearTimeout(w.timer);
      w.reject(new Error(`inbox stream closed while waiting for ${id}`));
    }
    this.#waiters.clear();
  }

  /** When the event for `id` arrived (now or later); rejects after `timeoutMs`. */
  arrival(id: string, timeoutMs: number): Promise<number> {
    const at = this.#arrived.get(id);
    if (at !== undefined) return Promise.resolve(at);
    if (this.#isClosed) return Promise.reject(new Error('inbox stream closed'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(id);
        reject(new Error(`no inbox event for ${id} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiters.set(id, { resolve, reject, timer });
    });
  }

  /** Forgets recorded arrivals (between rounds), so memory stays bounded. */
  forget(ids: Iterable<string>): void {
    for (const id of ids) this.#arrived.delete(id);
  }

  close(): void {
    this.#onClose();
    this.#req?.destroy();
  }
}
