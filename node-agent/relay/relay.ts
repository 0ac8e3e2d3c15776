/**
 * The agent's relay (ARCHITECTURE, "Messages"): the one object the local API talks to
 * ({@link RelayPort}). It owns the durable outbox, inbox and status store under `stateDir/relay`,
 * and, once given a NATS connection, drains the outbox to SUBMIT ({@link Drain}), fills the inbox
 * from `deliver-<CC>` ({@link Delivery}) and takes the hub's events on `ncb.event.<CC>`
 * (rejections and probes, {@link HubEvents}). Receipts flow back to senders: a `delivered` one
 * when a message is newly stored in the inbox, a `read` one when the application acks it, both
 * through the outbox like `submit` (but with no status record of their own); receipts arriving
 * here update the status of the message they name and skip the inbox.
 *
 * It never opens or closes the connection: the daemon does (TLS over the tunnel,
 * `inboxPrefix: _INBOX_<CC>`, reconnect forever), and the relay works whatever its state —
 * accepted messages wait on disk until it is up.
 */
import { join } from 'node:path';
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { isCountryCode } from '../../protocol/country.js';
import { MAX_ENVELOPE_BYTES, encodeEnvelope, type ALL_COUNTRIES, type Envelope } from '../../protocol/envelope.js';
import { subjects } from '../../protocol/subjects.js';
import { schemaProblems } from '../../protocol/validate.js';
import { ProbeResponder } from '../probe-responder.js';
import { Delivery } from './delivery.js';
import { Drain } from './drain.js';
import { HubEvents } from './hub-events.js';
import { RELAY_BAD_DRAFT, RELAY_BAD_OPTIONS, RELAY_CONNECTION_CLOSED, RELAY_ENCRYPTION_UNAVAILABLE, RELAY_STOPPED, RelayError } from './errors.js';
import { nextUlid } from './ids.js';
import { Inbox, type PutOutcome } from './inbox.js';
import { Outbox } from './outbox.js';
import { Receipts } from './receipts.js';
import { StatusStore } from './status.js';
import { MessageDraftSchema, type InboxItem, type InboxListOptions, type MessageDraft, type MessageStatus, type RelayPort, type RelayStats } from './types.js';
import type { RetryBackoff } from './wakeup.js';

/** Options of {@link Relay.open}. */
export interface RelayOptions {
  /** This agent's country (upper-case ISO code); it is every envelope's `from`. */
  country: string;
  /** The agent's state dir; the relay keeps everything under `<stateDir>/relay`. */
  stateDir: string;
  log: Logger;
  /** Largest envelope accepted or read (default {@link MAX_ENVELOPE_BYTES}; keep it ≤ the broker's max_payload). */
  maxEnvelopeBytes?: number;
  /** How long to wait for JetStream to ack a submission or confirm an inbox ack (default 5 s). */
  publishTimeoutMs?: number;
  /** Retry back-off after a failed publish or consumer bind (default 250 ms → 30 s, with jitter). */
  retry?: RetryBackoff;
  /** Messages the inbox consumer buffers per pull (default 64). */
  batchSize?: number;
  /** Deliveries handled at once (default 32; see `delivery.ts`). */
  deliveryConcurrency?: number;
  /** Submissions published at once, awaiting JetStream's acks (default 32; see `drain.ts`). */
  drainWindow?: number;
  /** Most receipts one receipt envelope carries (default 256; 1 sends one envelope per receipt). */
  maxReceiptsPerEnvelope?: number;
  /** How long acked inbox items stay listable (default 7 days). */
  ackedRetentionMs?: number;
  /** How long received ids are remembered for dedup (default 35 days, above DELIVER's 30-day max age). */
  dedupRetentionMs?: number;
  /**
   * Signs every outgoing envelope with the country key (ARCHITECTURE, Messages); without it
   * envelopes go unsigned and the hub refuses them. Called at each submit, so a renewed key is used
   * from the next message on.
   */
  sign?: (envelope: Envelope) => Promise<Envelope>;
  /** Verifies every delivered envelope's signature; a refused one is terminated, never stored. */
  verify?: (envelope: Envelope) => Promise<void>;
  /** How long finished message statuses are kept (default 30 days). */
  statusRetentionMs?: number;
  /**
   * Encrypts a restricted/confidential body to the recipients (`node-agent/body-crypto.ts`); returns
   * the base64 CMS for `encrypted`. Without it such drafts are refused (`RELAY_ENCRYPTION_UNAVAILABLE`).
   */
  encryptBody?: (to: readonly string[] | typeof ALL_COUNTRIES, plaintext: string) => Promise<string>;
  /** Decrypts a delivered `encrypted` body with this country's key(s); see DeliveryOptions.decrypt. */
  decryptBody?: (envelope: Envelope) => Promise<string>;
  /** Told of every message sent and received and every probe answered (the agent's metrics). */
  stats?: RelayStats;
}

/** The live parts that exist only while a connection is attached. */
interface Attachment {
  nc: NatsConnection;
  drain: Drain;
  delivery: Delivery;
  events: Subscription;
  watcher: Promise<void>;
}

/** See the module comment. Use {@link Relay.open}, then {@link Relay.attach}; {@link Relay.stop} at the end. */
export class Relay implements RelayPort {
  readonly #opts: RelayOptions;
  readonly #log: Logger;
  readonly #country: string;
  readonly #outbox: Outbox;
  readonly #inbox: Inbox;
  readonly #status: StatusStore;
  readonly #events: HubEvents;
  readonly #receipts: Receipts;
  #lastId: string | undefined;
  #attachment: Attachment | undefined;
  #isConnected = false;
  #isStopped = false;

  private constructor(opts: RelayOptions, outbox: Outbox, inbox: Inbox, status: StatusStore, log: Logger) {
    this.#opts = opts;
    this.#country = opts.country;
    this.#log = log;
    this.#outbox = outbox;
    this.#inbox = inbox;
    this.#status = status;
    const probes = new ProbeResponder({ country: opts.country, log: opts.log, onAnswered: () => opts.stats?.probeAnswered?.() });
    this.#events = new HubEvents({ log, status, probes });
    this.#lastId = outbox.list().at(-1);
    this.#receipts = new Receipts({
      country: opts.country,
      inbox,
      status,
      log,
      queue: (fields) => this.#queue(fields),
      wake: () => this.#attachment?.drain.wake(),
      ...pick(opts, 'stats', 'maxReceiptsPerEnvelope'),
    });
  }

  /**
   * Opens the stores under `<stateDir>/relay` and reconciles them: an outbox file without a status
   * (a crash inside `submit`, which therefore never resolved) gets its `queued` status now.
   * Damaged records are skipped, copied aside and reported (see `record-log.ts`), never a reason
   * to refuse to start. Throws `RELAY_BAD_OPTIONS`, or `RELAY_STORE_CORRUPT` for a file that
   * cannot be read at all.
   */
  static async open(opts: RelayOptions): Promise<Relay> {
    if (!isCountryCode(opts.country)) throw new RelayError(RELAY_BAD_OPTIONS, `relay: country must be an ISO 3166-1 code (got ${JSON.stringify(opts.country)})`);
    const log = opts.log.child({ component: 'relay', country: opts.country });
    const dir = join(opts.stateDir, 'relay');
    const maxEnvelopeBytes = opts.maxEnvelopeBytes ?? MAX_ENVELOPE_BYTES;
    const stats = opts.stats === undefined ? {} : { stats: opts.stats };
    const outbox = await Outbox.open({ dir: join(dir, 'outbox'), quarantineDir: join(dir, 'quarantine'), log, maxEnvelopeBytes, ...stats });
    const inbox = await Inbox.open({ dir, log, ...stats, ...pick(opts, 'ackedRetentionMs', 'dedupRetentionMs') });
    const status = await StatusStore.open({ dir, log, ...stats, ...(opts.statusRetentionMs === undefined ? {} : { retentionMs: opts.statusRetentionMs }) });
    for (const id of outbox.list()) {
      if (status.get(id) !== undefined) continue;
      const entry = await outbox.read(id);
      if (entry !== undefined && entry.envelope.kind !== 'receipt') await status.recordQueued(entry.envelope, entry.envelope.created);
    }
    log.info({ outbox: outbox.size, inbox: inbox.pendingCount }, 'relay stores opened');
    return new Relay(opts, outbox, inbox, status, log);
  }

  /**
   * Starts using `nc`: drains the outbox, consumes `deliver-<CC>`, listens for rejections. The
   * connection may be down or reconnecting; the loops wait and retry. A second call replaces the
   * previous connection. Throws `RELAY_STOPPED` after {@link stop}, `RELAY_CONNECTION_CLOSED` for a
   * closed connection.
   */
  async attach(nc: NatsConnection): Promise<void> {
    if (this.#isStopped) throw new RelayError(RELAY_STOPPED, 'relay: stopped');
    if (nc.isClosed()) throw new RelayError(RELAY_CONNECTION_CLOSED, 'relay: the connection is closed; attach a new one');
    await this.#detach();
    const timeoutMs = this.#opts.publishTimeoutMs ?? 5_000;
    const retry = this.#opts.retry ?? { initialMs: 250, maxMs: 30_000 };
    const js = jetstream(nc, { timeout: timeoutMs });
    this.#isConnected = true;
    const isConnected = (): boolean => this.#isConnected && this.#attachment?.nc === nc;
    const drain = new Drain({
      country: this.#country,
      js,
      outbox: this.#outbox,
      status: this.#status,
      log: this.#log,
      isConnected,
      publishTimeoutMs: timeoutMs,
      retry,
      ...(this.#opts.drainWindow === undefined ? {} : { window: this.#opts.drainWindow }),
      onSubmitted: () => this.#opts.stats?.messageSent?.(),
    });
    const delivery = new Delivery({
      country: this.#country,
      js,
      inbox: this.#inbox,
      log: this.#log,
      maxEnvelopeBytes: this.#opts.maxEnvelopeBytes ?? MAX_ENVELOPE_BYTES,
      batchSize: this.#opts.batchSize ?? 64,
      ...(this.#opts.deliveryConcurrency === undefined ? {} : { concurrency: this.#opts.deliveryConcurrency }),
      ackTimeoutMs: timeoutMs,
      nakDelayMs: retry.maxMs,
      retry,
      ...(this.#opts.verify ? { verify: this.#opts.verify } : {}),
      ...(this.#opts.decryptBody ? { decrypt: this.#opts.decryptBody } : {}),
      onReceipt: (envelope) => this.#receipts.record(envelope),
      onStored: (envelope) => {
        this.#opts.stats?.messageReceived?.();
        return this.#receipts.answer(envelope, 'delivered');
      },
      onUndecryptable: (envelope, code) => this.#receipts.refuse(envelope, code),
      onDeletion: (envelope) => this.#receipts.applyDeletion(envelope),
    });
    const events = nc.subscribe(subjects.event(this.#country), {
      callback: (err, msg) => {
        if (err !== null) this.#log.error({ err }, 'event subscription failed');
        else void this.#events.handle(nc, msg.data);
      },
    });
    this.#attachment = { nc, drain, delivery, events, watcher: this.#watch(nc, drain, delivery) };
    drain.start();
    delivery.start();
    this.#log.info({ server: nc.getServer() }, 'relay attached');
  }

  /** Stops the loops (the message in hand is finished) and refuses further work. Idempotent. */
  async stop(): Promise<void> {
    if (this.#isStopped) return;
    this.#isStopped = true;
    await this.#detach();
    this.#inbox.close();
    await this.#status.close();
    this.#log.info({ outbox: this.#outbox.size }, 'relay stopped');
  }

  async submit(draft: MessageDraft): Promise<MessageStatus> {
    if (this.#isStopped) throw new RelayError(RELAY_STOPPED, 'relay: stopped');
    const problems = schemaProblems(MessageDraftSchema, draft);
    if (problems.length > 0) throw new RelayError(RELAY_BAD_DRAFT, `message draft is invalid:\n  ${problems.join('\n  ')}`, { problems });
    const { priority, body, ...rest } = draft;
    let content: { body: string } | { encrypted: string } = { body };
    if (draft.handling === 'restricted' || draft.handling === 'confidential') {
      if (draft.subject !== undefined) {
        const problem = `subject: not allowed when handling is ${draft.handling}: the hub reads subjects; put it in the body, which is encrypted (got ${JSON.stringify(draft.subject.slice(0, 40))})`;
        throw new RelayError(RELAY_BAD_DRAFT, `message draft is invalid:\n  ${problem}`, { problems: [problem] });
      }
      if (!this.#opts.encryptBody) throw new RelayError(RELAY_ENCRYPTION_UNAVAILABLE, `handling ${draft.handling}: this relay cannot encrypt (no member directory); nothing was sent`);
      // Never in clear: a directory or CMS failure refuses the draft; nothing reaches the outbox.
      content = { encrypted: await this.#opts.encryptBody(draft.to, body) };
    }
    const envelope = await this.#queue({ ...rest, ...content, priority: priority ?? 'routine' });
    let status: MessageStatus;
    try {
      status = await this.#status.recordQueued(envelope, envelope.created);
    } catch (err) {
      // The caller will be told it failed (507 on a full disk): the message must not go out anyway.
      await this.#outbox.remove(envelope.id).catch((removeErr: unknown) => this.#log.error({ err: removeErr, id: envelope.id }, 'refused message left in the outbox'));
      throw err;
    }
    // Recorded before the drain is woken and long before any publish ack, so `markSubmitted` (the
    // status store applies changes in call order) always finds it.
    this.#attachment?.drain.wake();
    this.#log.info({ id: status.id, to: status.to, kind: draft.kind }, 'message accepted');
    return status;
  }

  /**
   * The durable outbox path shared by {@link submit} and receipts: gives `fields` an id (strictly
   * increasing), `from` and `created`, signs, checks the envelope (throws ENVELOPE_INVALID /
   * ENVELOPE_TOO_LARGE before anything is written) and fsyncs it in the outbox. The caller records
   * a status and wakes the drain.
   */
  async #queue(fields: Omit<Envelope, 'v' | 'id' | 'from' | 'created'>): Promise<Envelope> {
    const now = Date.now();
    const id = nextUlid(this.#lastId, now);
    // Taken at once: receipts are queued concurrently with submissions, across the awaits below.
    this.#lastId = id;
    const unsigned: Envelope = { ...fields, v: 1, id, from: this.#country, created: new Date(now).toISOString() };
    const envelope = this.#opts.sign ? await this.#opts.sign(unsigned) : unsigned;
    const bytes = encodeEnvelope(envelope, { maxBytes: this.#opts.maxEnvelopeBytes ?? MAX_ENVELOPE_BYTES });
    await this.#outbox.add(envelope, bytes);
    return envelope;
  }

  status(id: string): MessageStatus | undefined {
    return this.#status.get(id);
  }

  inbox(opts?: InboxListOptions): InboxItem[] {
    return this.#inbox.list(opts);
  }

  inboxItem(id: string): InboxItem | undefined {
    return this.#inbox.get(id);
  }

  waitForInbox(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return this.#inbox.waitForArrival(timeoutMs, signal);
  }

  /** Marks the item read; the first ack of an item also queues a `read` receipt to its sender. */
  async ack(id: string): Promise<InboxItem> {
    const { item, isNew } = await this.#inbox.acknowledge(id);
    if (isNew) {
      try {
        await this.#receipts.answer(item.envelope, 'read');
      } catch (err) {
        // The ack itself is durable; failing it now would make the app retry an ack that is done.
        this.#log.error({ err, id }, 'read receipt not queued');
      }
    }
    return item;
  }

  /**
   * Stores a message this agent made for its own NCB (a B2B enquiry notice) in the inbox, beside
   * delivered ones: signed by this country (`from` must be it), checked like a delivered envelope,
   * never sent anywhere and answered by no receipt. Throws `RELAY_BAD_DRAFT` for another `from`.
   */
  async putLocal(envelope: Envelope): Promise<PutOutcome> {
    if (envelope.from !== this.#country) throw new RelayError(RELAY_BAD_DRAFT, `a local inbox item must be from ${this.#country} (got ${JSON.stringify(envelope.from)})`);
    await this.#opts.verify?.(envelope);
    return this.#inbox.put(envelope);
  }

  onInbox(listener: (item: InboxItem) => void): () => void {
    return this.#inbox.onArrival(listener);
  }

  outboxDepth(): number {
    return this.#outbox.size;
  }

  /** Inbox items the application has not acked yet (metrics). */
  inboxUnacked(): number {
    return this.#inbox.pendingCount;
  }

  isConnected(): boolean {
    return this.#attachment !== undefined && this.#isConnected;
  }

  /** Ids waiting in the outbox, oldest first (diagnostics and tests). */
  outboxIds(): string[] {
    return this.#outbox.list();
  }

  async #detach(): Promise<void> {
    const a = this.#attachment;
    if (a === undefined) return;
    this.#attachment = undefined;
    this.#isConnected = false;
    a.events.unsubscribe();
    await Promise.all([a.drain.stop(), a.delivery.stop()]);
    this.#log.info('relay detached');
  }

  /** Follows the connection's state; ends when it closes. */
  async #watch(nc: NatsConnection, drain: Drain, delivery: Delivery): Promise<void> {
    try {
      for await (const s of nc.status()) {
        if (this.#attachment?.nc !== nc) return;
        if (s.type === 'disconnect') {
          this.#isConnected = false;
          this.#log.warn('broker connection lost');
        } else if (s.type === 'reconnect') {
          this.#isConnected = true;
          this.#log.info({ server: nc.getServer() }, 'broker connection back');
          drain.reconnected();
          delivery.reconnected();
        } else if (s.type === 'close') {
          this.#isConnected = false;
        }
      }
    } catch (err) {
      this.#log.warn({ err }, 'connection status watch ended');
    }
    if (this.#attachment?.nc === nc) this.#isConnected = false;
  }

}

function pick<T extends object, K extends keyof T>(from: T, ...keys: K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const k of keys) if (from[k] !== undefined) out[k] = from[k];
  return out;
}
