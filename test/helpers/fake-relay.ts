import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pino } from 'pino';
import { buildLocalApi } from '../../node-agent/local-api/server.js';
import { createTokensFile, loadTokens, readToken } from '../../node-agent/local-api/tokens.js';
import { tempDir, type Teardownable } from './tmpdir.js';
import { EnvelopeError, ENVELOPE_INVALID, envelopeProblems, newUlid, type Envelope } from '../../protocol/envelope.js';
import { CodedError } from '../../protocol/errors.js';
import type { InboxItem, InboxListOptions, MessageDraft, MessageStatus, RelayPort } from '../../node-agent/relay/types.js';

/**
 * An in-memory {@link RelayPort} for the local API's tests, until the real relay (outbox on
 * disk, JetStream) is integrated. It behaves as the contract says: `submit` builds and validates
 * the envelope (refusing without storing), `waitForInbox` resolves on the next delivery, the
 * timeout or the abort, `onInbox` listeners can be counted to prove unsubscription.
 */
export class FakeRelay implements RelayPort {
  readonly country: string;
  /** Every envelope accepted by `submit`, in order (the "outbox"). */
  readonly outbox: Envelope[] = [];
  readonly statuses = new Map<string, MessageStatus>();
  readonly items: InboxItem[] = [];
  readonly listeners = new Set<(item: InboxItem) => void>();
  readonly waiters = new Set<() => void>();
  connected = true;
  /** When set, `submit` fails with it (a full disk, say). */
  failSubmit: Error | undefined;

  constructor(country = 'FR') {
    this.country = country;
  }

  submit(draft: MessageDraft): Promise<MessageStatus> {
    if (this.failSubmit) return Promise.reject(this.failSubmit);
    const now = new Date().toISOString();
    const envelope = { v: 1, id: newUlid(), from: this.country, created: now, priority: 'routine', ...draft } as Envelope;
    const problems = envelopeProblems(envelope);
    if (problems.length > 0) return Promise.reject(new EnvelopeError(ENVELOPE_INVALID, problems, { envelopeId: envelope.id }));
    this.outbox.push(envelope);
    const status: MessageStatus = { id: envelope.id, state: 'queued', to: envelope.to, acceptedAt: now };
    this.statuses.set(envelope.id, status);
    return Promise.resolve(status);
  }

  status(id: string): MessageStatus | undefined {
    return this.statuses.get(id);
  }

  inbox(opts: InboxListOptions = {}): InboxItem[] {
    return this.items.filter((i) => (opts.includeAcked || i.ackedAt === undefined) && (opts.filter?.(i) ?? true)).slice(0, opts.limit ?? 100);
  }

  inboxItem(id: string): InboxItem | undefined {
    return this.items.find((i) => i.id === id);
  }

  waitForInbox(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.waiters.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  ack(id: string): Promise<InboxItem> {
    const item = this.items.find((i) => i.id === id);
    if (!item) return Promise.reject(new CodedError('RELAY_UNKNOWN_MESSAGE', `no inbox item ${id}`));
    item.ackedAt ??= new Date().toISOString();
    return Promise.resolve(item);
  }

  onInbox(listener: (item: InboxItem) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  outboxDepth(): number {
    return [...this.statuses.values()].filter((s) => s.state === 'queued').length;
  }

  isConnected(): boolean {
    return this.connected;
  }

  /** Delivers a message from `from` into the inbox, as the relay does when the hub delivers one. */
  deliver(from: string, fields: Partial<Envelope> = {}): InboxItem {
    const envelope: Envelope = { v: 1, id: newUlid(), kind: 'message', from, to: [this.country], priority: 'routine', created: new Date().toISOString(), subject: `from ${from}`, body: 'hello', ...fields };
    const item: InboxItem = { id: envelope.id, envelope, receivedAt: new Date().toISOString() };
    this.items.push(item);
    for (const w of [...this.waiters]) w();
    for (const l of [...this.listeners]) l(item);
    return item;
  }

  /** A copy of what the fake stores, to prove a refused request changed nothing. */
  snapshot(): { outbox: number; statuses: number; acked: number } {
    return { outbox: this.outbox.length, statuses: this.statuses.size, acked: this.items.filter((i) => i.ackedAt !== undefined).length };
  }
}

/** Options of {@link startLocalApiForTest}. */
export interface LocalApiForTest {
  country?: string;
  bodyLimitBytes?: number;
  readiness?: () => Record<string, boolean>;
  sseKeepAliveMs?: number;
  /** Listen on 127.0.0.1 on a free port (for streams, long polls and subprocess clients). */
  listen?: boolean;
}

/**
 * The local API on a {@link FakeRelay} with a fresh tokens file (operator token made by the
 * product code itself), closed at teardown. With `listen`, `url` is the loopback base URL.
 */
export async function startLocalApiForTest(t: Teardownable, opts: LocalApiForTest = {}) {
  const dir = await tempDir(t, 'ncbnet-agent-test-');
  const tokensPath = join(dir, 'local-api.tokens');
  await createTokensFile(tokensPath);
  const token = await readToken(tokensPath);
  const relay = new FakeRelay(opts.country ?? 'FR');
  const app = await buildLocalApi({
    relay,
    tokens: await loadTokens(tokensPath),
    log: pino({ level: 'silent' }),
    bodyLimitBytes: opts.bodyLimitBytes ?? 1024 * 1024 + 4096,
    country: opts.country ?? 'FR',
    readiness: opts.readiness ?? (() => ({ tunnel: true, broker: relay.isConnected() })),
    ...(opts.sseKeepAliveMs === undefined ? {} : { sseKeepAliveMs: opts.sseKeepAliveMs }),
  });
  t.teardown(() => app.close());
  let url = '';
  if (opts.listen) {
    await app.listen({ host: '127.0.0.1', port: 0 });
    url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  }
  await app.ready();
  return { app, relay, token, tokensPath, dir, url, auth: { authorization: `Bearer ${token}` } };
}
