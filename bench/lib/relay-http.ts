/**
 * A lean keep-alive HTTP client for an agent's local API (what an NCB application would use), so
 * the client's own cost stays small next to the relay's.
 */
import { Agent, request } from 'node:http';

export interface Answer {
  status: number;
  json: Record<string, unknown>;
}

export class LocalApi {
  readonly #base: URL;
  readonly #token: string;
  readonly #agent: Agent;

  constructor(baseUrl: string, token: string, maxSockets = 64) {
    this.#base = new URL(baseUrl);
    this.#token = token;
    this.#agent = new Agent({ keepAlive: true, maxSockets });
  }

  call(method: string, path: string, body?: unknown): Promise<Answer> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = request(
        {
          agent: this.#agent,
          host: this.#base.hostname,
          port: this.#base.port,
          method,
          path,
          headers: {
            authorization: `Bearer ${this.#token}`,
            ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }),
          },
          timeout: 60_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let json: Record<string, unknown> = {};
            try {
              json = JSON.parse(text) as Record<string, unknown>;
            } catch {
              json = { text };
            }
            resolve({ status: res.statusCode ?? 0, json });
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timed out`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  /** POST /v1/messages; the accepted id (throws unless 202). */
  async send(draft: unknown): Promise<string> {
    const answer = await this.call('POST', '/v1/messages', draft);
    if (answer.status !== 202) throw new Error(`send refused: ${answer.status} ${JSON.stringify(answer.json)}`);
    return answer.json['id'] as string;
  }

  async ack(id: string): Promise<void> {
    const answer = await this.call('POST', `/v1/inbox/${id}/ack`);
    if (answer.status !== 200) throw new Error(`ack ${id}: ${answer.status} ${JSON.stringify(answer.json)}`);
  }

  close(): void {
    this.#agent.destroy();
  }
}
