/**
 * The JetStream streams and durable consumers of ARCHITECTURE, "Broker (NATS)" and "Messages":
 * SUBMIT (`ncb.submit.*`, work queue read by the router) and DELIVER (`ncb.deliver.*`, one durable
 * pull consumer `deliver-<CC>` per country). Every function here is idempotent so the hub can call
 * it at each start and on each registry change; none ever deletes a stream, because a stream holds
 * messages that are in nobody else's custody.
 */
import { AckPolicy, DeliverPolicy, DiscardPolicy, JetStreamApiCodes, JetStreamApiError, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import type { ConsumerConfig, ConsumerInfo, JetStreamManager, StreamConfig, StreamInfo } from '@nats-io/jetstream';
import { MAX_ENVELOPE_BYTES } from '../../protocol/envelope.js';
import { DELIVER_STREAM, SUBMIT_STREAM, deliverConsumer, subjects } from '../../protocol/subjects.js';
import { STREAM_CONFIG_CONFLICT, STREAM_CONSUMER_FAILED, STREAM_ENSURE_FAILED, STREAM_REMOVE_FAILED, StreamError } from './stream-errors.js';

/**
 * The router's durable consumer on SUBMIT. Every hub of a cluster binds to this one name, so the
 * routers share the work queue. (Belongs in `protocol/subjects.ts` with the other names.)
 */
export const ROUTER_CONSUMER = 'router';

/** Room for headers (Nats-Msg-Id, later trace ids) on top of the envelope: JetStream's `max_msg_size` counts both. */
export const MSG_HEADER_ALLOWANCE_BYTES = 4096;

const MS_TO_NS = 1_000_000;
const DAY_MS = 24 * 3600 * 1000;

/** Options of {@link ensureStreams}. */
export interface EnsureStreamsOptions {
  /** How long DELIVER keeps a message (delivered or not), default 30 days. */
  deliverMaxAgeMs?: number;
  /** Window in which a repeated `Nats-Msg-Id` is dropped, default 2 minutes (both streams). */
  duplicateWindowMs?: number;
  /** Stream replicas: 1 on one hub, 3 in a hub cluster (default 1). */
  replicas?: number;
  /** Largest envelope in bytes (default {@link MAX_ENVELOPE_BYTES}); streams add {@link MSG_HEADER_ALLOWANCE_BYTES}. */
  maxMsgBytes?: number;
}

/** What ensuring one stream or consumer did; `changed` names the settings an update changed. */
export interface EnsureOutcome {
  action: 'created' | 'updated' | 'unchanged';
  changed: string[];
}

/** Options of {@link ensureCountryConsumer} and {@link ensureRouterConsumer}. */
export interface ConsumerOptions {
  /** How long the server waits for an ack before redelivering, default 30 s. */
  ackWaitMs?: number;
}

/** What {@link removeCountryConsumer} did, for the audit record of the revocation. */
export interface RemoveCountryOutcome {
  /** False when there was no consumer (already removed, or never enrolled). */
  consumerDeleted: boolean;
  /** Messages the country had not acked when its consumer was deleted (lost to it by design). */
  undelivered: number;
  /** Messages purged from DELIVER for the country's subject, delivered or not. */
  purged: number;
}

type WantedStream = Pick<
  StreamConfig,
  'name' | 'subjects' | 'retention' | 'storage' | 'discard' | 'max_age' | 'duplicate_window' | 'max_msg_size' | 'num_replicas'
>;

// Settings nats-server refuses to change on an existing stream or consumer. Changing them would
// mean deleting and recreating it, which loses its messages or its delivery state.
const FIXED_STREAM_KEYS = ['retention', 'storage'] as const;
const MUTABLE_STREAM_KEYS = ['subjects', 'discard', 'max_age', 'duplicate_window', 'max_msg_size', 'num_replicas'] as const;
const FIXED_CONSUMER_KEYS = ['ack_policy', 'deliver_policy'] as const;
const MUTABLE_CONSUMER_KEYS = ['filter_subject', 'ack_wait', 'max_deliver', 'max_ack_pending'] as const;

/**
 * The wanted SUBMIT and DELIVER configurations (pure).
 *
 * SUBMIT is a work queue (a message is gone once the router acks it) with `discard: new`: if a limit
 * is ever set and reached, publishers get an error and keep the message in their outbox instead of
 * the hub dropping older unrouted ones. DELIVER keeps messages by limits, not interest: a copy waits
 * for `deliverMaxAgeMs` even before the recipient's consumer exists. Both dedup `Nats-Msg-Id`
 * within `duplicateWindowMs` (the agent's outbox retries on SUBMIT, the router's redeliveries on DELIVER).
 */
export function wantedStreams(opts: EnsureStreamsOptions = {}): { submit: WantedStream; deliver: WantedStream } {
  const maxMsgSize = (opts.maxMsgBytes ?? MAX_ENVELOPE_BYTES) + MSG_HEADER_ALLOWANCE_BYTES;
  const common = {
    storage: StorageType.File,
    duplicate_window: (opts.duplicateWindowMs ?? 2 * 60_000) * MS_TO_NS,
    max_msg_size: maxMsgSize,
    num_replicas: opts.replicas ?? 1,
  };
  return {
    submit: { ...common, name: SUBMIT_STREAM, subjects: [subjects.submitAll], retention: RetentionPolicy.Workqueue, discard: DiscardPolicy.New, max_age: 0 },
    deliver: {
      ...common,
      name: DELIVER_STREAM,
      subjects: [subjects.deliverAll],
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      max_age: (opts.deliverMaxAgeMs ?? 30 * DAY_MS) * MS_TO_NS,
    },
  };
}

/**
 * Creates SUBMIT and DELIVER, or updates them in place when a mutable setting differs. Never
 * deletes: a difference in retention or storage throws `STREAM_CONFIG_CONFLICT` and leaves the
 * stream and its messages as they are. Other failures throw `STREAM_ENSURE_FAILED`.
 */
export async function ensureStreams(jsm: JetStreamManager, opts: EnsureStreamsOptions = {}): Promise<{ submit: EnsureOutcome; deliver: EnsureOutcome }> {
  const wanted = wantedStreams(opts);
  return { submit: await ensureStream(jsm, wanted.submit), deliver: await ensureStream(jsm, wanted.deliver) };
}

function ensureStream(jsm: JetStreamManager, wanted: WantedStream): Promise<EnsureOutcome> {
  return reconcileStream(jsm, wanted, {
    fixedKeys: FIXED_STREAM_KEYS,
    mutableKeys: MUTABLE_STREAM_KEYS,
    failed: (what, err) => new StreamError(STREAM_ENSURE_FAILED, `stream ${wanted.name}: ${what} failed: ${errorText(err)}`, { cause: err }),
    conflict: (detail) => new StreamError(STREAM_CONFIG_CONFLICT, `stream ${wanted.name} exists with settings that cannot change without losing its messages: ${detail}`),
  });
}

/** How {@link reconcileStream} judges and reports one stream. */
export interface StreamReconcileRules<W extends Partial<StreamConfig>> {
  /** Settings nats-server cannot change in place: a difference is a conflict, never a recreate. */
  fixedKeys: readonly (keyof W & string)[];
  /** Settings updated in place when they differ. */
  mutableKeys: readonly (keyof W & string)[];
  /** The error for a failed info, create or update call. */
  failed: (what: 'info' | 'create' | 'update', err: unknown) => Error;
  /** The error for fixed settings that differ; `detail` lists them as `key is X, want Y`. */
  conflict: (detail: string) => Error;
}

/**
 * Creates a stream, or updates its mutable settings in place. Never deletes: a difference in a
 * fixed setting throws the caller's conflict error and leaves the stream and its data alone.
 * Shared by SUBMIT/DELIVER and AUDIT.
 */
export async function reconcileStream<W extends Partial<StreamConfig> & { name: string }>(jsm: JetStreamManager, wanted: W, rules: StreamReconcileRules<W>): Promise<EnsureOutcome> {
  let info: StreamInfo | undefined;
  try {
    info = await jsm.streams.info(wanted.name);
  } catch (err) {
    if (!isApiError(err, JetStreamApiCodes.StreamNotFound)) throw rules.failed('info', err);
  }
  if (info === undefined) {
    try {
      await jsm.streams.add(wanted);
    } catch (err) {
      throw rules.failed('create', err);
    }
    return { action: 'created', changed: [] };
  }
  const config = info.config as Partial<W>;
  const conflicts = differing(config, wanted, rules.fixedKeys);
  if (conflicts.length > 0) {
    throw rules.conflict(conflicts.map((k) => `${k} is ${JSON.stringify(config[k])}, want ${JSON.stringify(wanted[k])}`).join('; '));
  }
  const changed = differing(config, wanted, rules.mutableKeys);
  if (changed.length === 0) return { action: 'unchanged', changed };
  try {
    // The client merges this onto the current config, so settings set by hand elsewhere stay.
    await jsm.streams.update(wanted.name, pick(wanted, changed));
  } catch (err) {
    throw rules.failed('update', err);
  }
  return { action: 'updated', changed };
}

/** The wanted `deliver-<CC>` consumer (pure). Throws `SUBJECT_BAD_COUNTRY` for a bad code. */
export function wantedCountryConsumer(country: string, opts: ConsumerOptions = {}): Partial<ConsumerConfig> & { durable_name: string } {
  return {
    durable_name: deliverConsumer(country),
    filter_subject: subjects.deliver(country),
    ack_policy: AckPolicy.Explicit,
    // All, not New: copies routed before the consumer existed (or after a restart) are delivered.
    deliver_policy: DeliverPolicy.All,
    ack_wait: (opts.ackWaitMs ?? 30_000) * MS_TO_NS,
    // Unlimited: a message is never given up on while the country is a member; it waits for max_age.
    max_deliver: -1,
  };
}

/**
 * Creates the durable pull consumer `deliver-<CC>` on DELIVER (filter `ncb.deliver.<CC>`,
 * explicit ack), or updates its mutable settings. Throws `STREAM_CONFIG_CONFLICT` or
 * `STREAM_CONSUMER_FAILED`.
 */
export async function ensureCountryConsumer(jsm: JetStreamManager, country: string, opts: ConsumerOptions = {}): Promise<EnsureOutcome> {
  return ensureConsumer(jsm, DELIVER_STREAM, wantedCountryConsumer(country, opts));
}

/**
 * Creates the router's durable pull consumer on SUBMIT (all subjects, explicit ack, unlimited
 * redelivery), or updates it. Throws `STREAM_CONFIG_CONFLICT` or `STREAM_CONSUMER_FAILED`.
 */
export async function ensureRouterConsumer(jsm: JetStreamManager, opts: ConsumerOptions & { maxAckPending?: number } = {}): Promise<EnsureOutcome> {
  return ensureConsumer(jsm, SUBMIT_STREAM, {
    durable_name: ROUTER_CONSUMER,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: (opts.ackWaitMs ?? 30_000) * MS_TO_NS,
    max_deliver: -1,
    // Submissions the router holds back (nak with a delay) stay pending on the server; see hub/router/router.ts.
    ...(opts.maxAckPending === undefined ? {} : { max_ack_pending: opts.maxAckPending }),
  });
}

async function ensureConsumer(jsm: JetStreamManager, stream: string, wanted: Partial<ConsumerConfig> & { durable_name: string }): Promise<EnsureOutcome> {
  const name = wanted.durable_name;
  const failed = (what: string, err: unknown): StreamError =>
    new StreamError(STREAM_CONSUMER_FAILED, `consumer ${stream}/${name}: ${what} failed: ${errorText(err)}`, { cause: err });
  let info: ConsumerInfo | undefined;
  try {
    info = await jsm.consumers.info(stream, name);
  } catch (err) {
    if (!isApiError(err, JetStreamApiCodes.ConsumerNotFound)) throw failed('info', err);
  }
  if (info === undefined) {
    try {
      await jsm.consumers.add(stream, wanted);
    } catch (err) {
      throw failed('create', err);
    }
    return { action: 'created', changed: [] };
  }
  const config: Partial<ConsumerConfig> = info.config;
  const conflicts = differing(config, wanted, FIXED_CONSUMER_KEYS);
  if (conflicts.length > 0) {
    throw new StreamError(
      STREAM_CONFIG_CONFLICT,
      `consumer ${stream}/${name} exists with settings that cannot change without losing its delivery state: ${conflicts
        .map((k) => `${k} is ${JSON.stringify(config[k])}, want ${JSON.stringify(wanted[k])}`)
        .join('; ')}`,
    );
  }
  const changed = differing(config, wanted, MUTABLE_CONSUMER_KEYS);
  if (changed.length === 0) return { action: 'unchanged', changed };
  try {
    await jsm.consumers.update(stream, name, pick(wanted, changed));
  } catch (err) {
    throw failed('update', err);
  }
  return { action: 'updated', changed };
}

/**
 * Revocation: deletes `deliver-<CC>` and purges `ncb.deliver.<CC>` from DELIVER. Idempotent.
 *
 * Purge, not keep, because (1) a revoked identity may be compromised, and a backlog kept for a later
 * re-enrolment would hand police data to whoever holds the next certificate without the senders
 * deciding it again; (2) DELIVER keeps acked copies until max_age, so a consumer recreated with
 * `deliver_policy: all` would replay everything the country already received; (3) data kept for a
 * non-member is data kept without purpose. `undelivered` is returned so the caller can audit it and
 * tell the senders. Throws `STREAM_REMOVE_FAILED`.
 */
export async function removeCountryConsumer(jsm: JetStreamManager, country: string): Promise<RemoveCountryOutcome> {
  const name = deliverConsumer(country);
  const failed = (what: string, err: unknown): StreamError =>
    new StreamError(STREAM_REMOVE_FAILED, `country ${country}: ${what} failed: ${errorText(err)}`, { cause: err });
  let undelivered = 0;
  let consumerDeleted = false;
  try {
    const info = await jsm.consumers.info(DELIVER_STREAM, name);
    undelivered = info.num_pending + info.num_ack_pending;
    consumerDeleted = await jsm.consumers.delete(DELIVER_STREAM, name);
  } catch (err) {
    if (!isApiError(err, JetStreamApiCodes.ConsumerNotFound)) throw failed(`deleting consumer ${name}`, err);
  }
  // After the delete, so a failed purge is retried by calling this again (the delete is then a no-op).
  try {
    const { purged } = await jsm.streams.purge(DELIVER_STREAM, { filter: subjects.deliver(country) });
    return { consumerDeleted, undelivered, purged };
  } catch (err) {
    throw failed(`purging ${subjects.deliver(country)}`, err);
  }
}

/** True when `err` is a JetStream API error with the given `err_code`. */
export function isApiError(err: unknown, code: number): boolean {
  return err instanceof JetStreamApiError && err.code === code;
}

function differing<T extends object, K extends keyof T>(current: Partial<T>, wanted: Partial<T>, keys: readonly K[]): K[] {
  // A server omits false booleans from the config it returns: absent means false there.
  const norm = (v: unknown, isBoolean: boolean): string => JSON.stringify(isBoolean ? (v ?? false) : v);
  return keys.filter((k) => {
    const want = wanted[k];
    return want !== undefined && norm(current[k], typeof want === 'boolean') !== norm(want, typeof want === 'boolean');
  });
}

function pick<T extends object, K extends keyof T>(from: T, keys: readonly K[]): Pick<T, K> {
  const out = {} as Pick<T, K>;
  for (const k of keys) out[k] = from[k];
  return out;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
