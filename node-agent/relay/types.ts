/**
 * The contract between the agent's relay (outbox, inbox, NATS) and its local API. The local API
 * only ever talks to a {@link RelayPort}; the relay implements it. Schemas here are the local
 * API's request bodies (TypeBox: one schema language for config, HTTP and envelopes).
 */
import Type, { type Static } from 'typebox';
import { CountryCodeSchema } from '../../protocol/country.js';
import { ALL_COUNTRIES, MAX_BODY_CHARS, MAX_RECIPIENTS, type Envelope } from '../../protocol/envelope.js';

/**
 * What an NCB application posts to `POST /v1/messages`: the agent fills `v`, `id` (ULID), `from`
 * (its own country, never the caller's choice) and `created`.
 */
export const MessageDraftSchema = Type.Object(
  {
    // Listed literal by literal: a mapped array would lose the literal types (MessageDraft['kind'] = never).
    kind: Type.Union([Type.Literal('notice'), Type.Literal('diffusion'), Type.Literal('message'), Type.Literal('query'), Type.Literal('reply'), Type.Literal('deletion')]),
    notice: Type.Optional(
      Type.Object(
        {
          colour: Type.Union([
            Type.Literal('red'),
            Type.Literal('blue'),
            Type.Literal('yellow'),
            Type.Literal('black'),
            Type.Literal('green'),
            Type.Literal('orange'),
            Type.Literal('purple'),
            Type.Literal('un-special'),
          ]),
        },
        { additionalProperties: false },
      ),
    ),
    to: Type.Union([Type.Array(CountryCodeSchema, { minItems: 1, maxItems: MAX_RECIPIENTS, uniqueItems: true }), Type.Literal(ALL_COUNTRIES)]),
    priority: Type.Optional(Type.Union([Type.Literal('urgent'), Type.Literal('routine')])),
    /**
     * Restricted and confidential bodies travel end-to-end encrypted: the agent encrypts `body` to
     * the recipients' certificates (and its own), and sends no `subject`, which the hub could read.
     */
    handling: Type.Optional(Type.Union([Type.Literal('public'), Type.Literal('restricted'), Type.Literal('confidential')])),
    /** For a deletion: the message every recipient must purge. */
    deletes: Type.Optional(Type.String({ pattern: '^[0-7][0-9A-HJKMNP-TV-Z]{25}$' })),
    /** For a deletion: why, as a code (e.g. CCF_ORDER). */
    reason: Type.Optional(Type.String({ pattern: '^[A-Z][A-Z0-9_]{0,63}$' })),
    expires: Type.Optional(Type.String({ format: 'date-time' })),
    inReplyTo: Type.Optional(Type.String({ pattern: '^[0-7][0-9A-HJKMNP-TV-Z]{25}$' })),
    subject: Type.Optional(Type.String({ maxLength: 512 })),
    body: Type.String({ maxLength: MAX_BODY_CHARS }),
  },
  { additionalProperties: false },
);
export type MessageDraft = Static<typeof MessageDraftSchema>;

/** Where an outgoing message is: on disk here, accepted by the hub's SUBMIT stream, or refused by the hub's router. */
export type MessageState = 'queued' | 'submitted' | 'rejected';

/** What a recipient's receipts say happened to a message; see {@link MessageStatusSchema} `recipients`. */
export type ReceiptState = 'delivered' | 'read' | 'rejected' | 'deleted';

const RecipientReceiptSchema = Type.Object({
  state: Type.Union([Type.Literal('delivered'), Type.Literal('read'), Type.Literal('rejected'), Type.Literal('deleted')]),
  at: Type.String(),
  reason: Type.Optional(Type.String()),
});

export const MessageStatusSchema = Type.Object({
  id: Type.String(),
  state: Type.Union([Type.Literal('queued'), Type.Literal('submitted'), Type.Literal('rejected')]),
  to: Type.Union([Type.Array(Type.String()), Type.Literal(ALL_COUNTRIES)]),
  acceptedAt: Type.String(),
  submittedAt: Type.Optional(Type.String()),
  rejectedAt: Type.Optional(Type.String()),
  rejection: Type.Optional(Type.Object({ code: Type.String(), problems: Type.Array(Type.String()) })),
  /**
   * What each recipient country reported in its `receipt` envelopes, by country code: the furthest
   * state reached (delivered → read → rejected → deleted; never back), when, and why for a refusal.
   */
  recipients: Type.Optional(Type.Record(Type.String({ pattern: '^[A-Z]{2}$' }), RecipientReceiptSchema)),
});
export type MessageStatus = Static<typeof MessageStatusSchema>;

/** A message delivered to this country, kept on disk until the NCB's application acks it. */
export interface InboxItem {
  id: string;
  envelope: Envelope;
  /** The decrypted body of an `encrypted` envelope (restricted/confidential), decrypted here at delivery. */
  plaintext?: string;
  receivedAt: string;
  ackedAt?: string;
}

/** What the local API needs from the relay. */
/** Options of {@link RelayPort.inbox}. */
export interface InboxListOptions {
  includeAcked?: boolean;
  limit?: number;
  /** Only items it keeps are listed (and count towards `limit`). */
  filter?: (item: InboxItem) => boolean;
}

export interface RelayPort {
  /**
   * Builds the envelope from the draft (id, from, created), validates it, and resolves only once
   * it is fsynced in the outbox. Throws a coded error (`RELAY_*` / `ENVELOPE_*`) on bad input,
   * changing nothing.
   */
  submit(draft: MessageDraft): Promise<MessageStatus>;
  /** Status of a message this agent accepted, or undefined. */
  status(id: string): MessageStatus | undefined;
  /**
   * Unacked inbox items in arrival order (and acked ones with `includeAcked`), only those `filter`
   * keeps, at most `limit`; only the items returned are copied.
   */
  inbox(opts?: InboxListOptions): InboxItem[];
  /** One inbox item, acked or not, or undefined. */
  inboxItem(id: string): InboxItem | undefined;
  /** Resolves when an inbox item arrives or after `timeoutMs` (long poll), or when `signal` aborts. */
  waitForInbox(timeoutMs: number, signal?: AbortSignal): Promise<void>;
  /** Marks an inbox item read by the application. Throws `RELAY_UNKNOWN_MESSAGE` for an unknown id. */
  ack(id: string): Promise<InboxItem>;
  /** Subscribes to new inbox items (server-sent events); returns the unsubscribe function. */
  onInbox(listener: (item: InboxItem) => void): () => void;
  /** Messages waiting in the outbox (heartbeat and status). */
  outboxDepth(): number;
  /** Whether the relay is connected to the hub's broker now. */
  isConnected(): boolean;
}

/** The relay's stores on disk, as metrics label them. */
export type StoreName = 'outbox' | 'inbox' | 'status';

/**
 * Counters the relay reports events to (the agent's metrics, `node-agent/metrics.ts`). Each is
 * called once per event, synchronously, and must not throw.
 */
export interface RelayStats {
  /** JetStream confirmed an envelope (message or receipt) stored in SUBMIT. */
  messageSent?(): void;
  /** An envelope was newly stored in the inbox (not a duplicate, not a receipt). */
  messageReceived?(): void;
  /** A probe from the hub was answered on `ncb.probe.<CC>`. */
  probeAnswered?(): void;
  /** Opening `store` found `records` damaged records (journal lines, outbox files): skipped, copied aside. */
  storeDamaged?(store: StoreName, records: number): void;
  /** A write to `store` was refused because the state disk is full (`RELAY_STORAGE_FULL`). */
  storageFull?(store: StoreName): void;
}
