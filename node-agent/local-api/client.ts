import { request } from 'node:http';
import { CodedError } from '../../protocol/errors.js';
import type { InboxItem, MessageDraft, MessageStatus } from '../relay/types.js';
import { AGENT_BAD_ANSWER, AGENT_CLI_BAD_FLAG, AGENT_UNREACHABLE, LocalApiError, LocalApiValidationError } from './errors.js';
import type { AgentSummary, Readiness, SubmitAnswer } from './schemas.js';

/** How to reach an agent's local API. */
export interface LocalApiClientOptions {
  /** e.g. `http://127.0.0.1:8787` (plain HTTP: the API listens on this machine). */
  baseUrl: string;
  /** A bearer token from the agent's tokens file. */
  token: string;
  /** Per-request timeout on top of any long-poll wait (default 30 s). */
  timeoutMs?: number;
}

/** Options of {@link LocalApiClient.inbox}. */
export interface InboxQuery {
  /** Seconds to wait for an item when none is waiting (0–60). */
  wait?: number;
  limit?: number;
}

interface Answer {
  status: number;
  value: unknown;
}

/**
 * A small typed client of the agent's local API, for the `ncbnet-agent` CLI (and applications
 * written in TypeScript). Error answers become a CodedError with the server's code and problems,
 * so a caller sees the same code the API sent; a refused or broken connection is `AGENT_UNREACHABLE`.
 */
export class LocalApiClient {
  readonly #base: URL;
  readonly #token: string;
  readonly #timeoutMs: number;

  constructor(opts: LocalApiClientOptions) {
    let base: URL;
    try {
      base = new URL(opts.baseUrl);
    } catch (err) {
      throw new LocalApiError(AGENT_CLI_BAD_FLAG, `not a URL: ${JSON.stringify(opts.baseUrl)}`, { cause: err });
    }
    if (base.protocol !== 'http:') throw new LocalApiError(AGENT_CLI_BAD_FLAG, `the local API is plain http on this machine (got ${base.protocol})`);
    this.#base = base;
    this.#token = opts.token;
    this.#timeoutMs = opts.timeoutMs ?? 30_000;
  }

  /** Sends a message; resolves once the agent has it on disk (`{ id, status: 'queued' }`). */
  async send(draft: MessageDraft): Promise<SubmitAnswer> {
    return (await this.#call('POST', '/v1/messages', { body: draft })).value as SubmitAnswer;
  }

  /** Where a message sent through this agent is. */
  async status(id: string): Promise<MessageStatus> {
    return (await this.#call('GET', `/v1/messages/${encodeURIComponent(id)}`)).value as MessageStatus;
  }

  /** Unacked inbox items; with `wait`, holds until one arrives or the wait ends. */
  async inbox(query: InboxQuery = {}): Promise<InboxItem[]> {
    const params = new URLSearchParams();
    if (query.wait !== undefined) params.set('wait', String(query.wait));
    if (query.limit !== undefined) params.set('limit', String(query.limit));
    const qs = params.size > 0 ? `?${params.toString()}` : '';
    const answer = await this.#call('GET', `/v1/inbox${qs}`, { extraTimeoutMs: (query.wait ?? 0) * 1000 });
    const items = (answer.value as { items?: unknown }).items;
    if (!Array.isArray(items)) throw new CodedError(AGENT_BAD_ANSWER, 'the agent answered GET /v1/inbox without items');
    return items as InboxItem[];
  }

  /** Marks an inbox item read; resolves to the acked item. */
  async ack(id: string): Promise<InboxItem> {
    return (await this.#call('POST', `/v1/inbox/${encodeURIComponent(id)}/ack`)).value as InboxItem;
  }

  /** The agent's summary (country, connection, outbox depth, unacked items). */
  async summary(): Promise<AgentSummary> {
    return (await this.#call('GET', '/v1/status')).value as AgentSummary;
  }

  /** The readiness checks; a not-ready agent (503) is an answer here, not an error. */
  async readiness(): Promise<Readiness> {
    return (await this.#call('GET', '/readyz', { accept: [503] })).value as Readiness;
  }

  #call(method: 'GET' | 'POST', path: string, opts: { body?: unknown; accept?: number[]; extraTimeoutMs?: number } = {}): Promise<Answer> {
    const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const url = new URL(path, this.#base);
    const timeoutMs = this.#timeoutMs + (opts.extraTimeoutMs ?? 0);
    return new Promise<Answer>((resolve, reject) => {
      const req = request(
        url,
        {
          method,
          timeout: timeoutMs,
          headers: {
            authorization: `Bearer ${this.#token}`,
            accept: 'application/json',
            ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', (err) => reject(new CodedError(AGENT_UNREACHABLE, `connection to the agent at ${this.#base.origin} broke: ${err.message}`, { cause: err })));
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            const text = Buffer.concat(chunks).toString('utf8');
            let value: unknown;
            try {
              value = text ? JSON.parse(text) : undefined;
            } catch (err) {
              reject(new CodedError(AGENT_BAD_ANSWER, `the agent answered ${method} ${path} with ${status} and no JSON`, { cause: err }));
              return;
            }
            if (status < 300 || opts.accept?.includes(status)) resolve({ status, value });
            else reject(errorFromAnswer(status, value));
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', (err) => reject(new CodedError(AGENT_UNREACHABLE, `cannot reach the agent at ${this.#base.origin}: ${err.message}`, { cause: err })));
      req.end(payload);
    });
  }
}

/** The coded error an error answer stands for: the server's code, message and problems. */
function errorFromAnswer(status: number, value: unknown): CodedError {
  const body = (value !== null && typeof value === 'object' ? value : {}) as { code?: unknown; message?: unknown; problems?: unknown };
  const code = typeof body.code === 'string' ? body.code : `HTTP_${status}`;
  const message = typeof body.message === 'string' ? body.message : `the agent answered ${status}`;
  if (Array.isArray(body.problems) && body.problems.every((p) => typeof p === 'string') && body.problems.length > 0) {
    // The server's message already lists the problems; keep its first line as the subject.
    return new LocalApiValidationError(code, (message.split('\n')[0] ?? message).replace(/ is invalid:$/, ''), body.problems);
  }
  return new CodedError(code, message);
}
