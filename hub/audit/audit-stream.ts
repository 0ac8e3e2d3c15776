/**
 * The AUDIT stream (ARCHITECTURE, "Beyond one machine": audit lives in JetStream so hubs share it).
 * Kept apart from `broker/streams.ts` (SUBMIT, DELIVER) because its settings exist to protect
 * evidence rather than to move messages. Idempotent, never deletes: the stream is the evidence.
 */
import { DiscardPolicy, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import type { JetStreamManager, StreamConfig } from '@nats-io/jetstream';
import { reconcileStream, type EnsureOutcome } from '../broker/streams.js';
import { AUDIT_STREAM, AUDIT_SUBJECT } from '../../protocol/audit.js';
import { AUDIT_STREAM_CONFLICT, AUDIT_UNAVAILABLE, AuditLogError } from './errors.js';

/** Largest stored record; a record holds ids, codes and at most 32 problem lines, never content. */
export const MAX_AUDIT_RECORD_BYTES = 64 * 1024;

const MS_TO_NS = 1_000_000;

/** Options of {@link ensureAuditStream}. */
export interface AuditStreamOptions {
  /** 1 on one hub, 3 in a hub cluster (default 1). */
  replicas?: number;
  /** Records older than this are removed by the server; default 0 = kept for ever. */
  maxAgeMs?: number;
}

/** What ensuring the stream did; `changed` names the settings an update changed. */
export type AuditStreamOutcome = EnsureOutcome;

type WantedAudit = Pick<
  StreamConfig,
  'name' | 'subjects' | 'retention' | 'storage' | 'discard' | 'max_age' | 'max_msg_size' | 'num_replicas' | 'deny_delete' | 'deny_purge' | 'allow_rollup_hdrs'
>;

// nats-server cannot change these in place; changing them would mean recreating the stream.
const FIXED_KEYS = ['retention', 'storage'] as const;
const MUTABLE_KEYS = ['subjects', 'discard', 'max_age', 'max_msg_size', 'num_replicas', 'deny_delete', 'deny_purge', 'allow_rollup_hdrs'] as const;

/**
 * The wanted AUDIT configuration (pure). Limits retention with no limit set: records stay until
 * `maxAgeMs`, if one is ever configured. `deny_delete`/`deny_purge` make the server refuse
 * `$JS.API.STREAM.MSG.DELETE` and `STREAM.PURGE`, and no roll-up headers (a roll-up purges), so a
 * record cannot be removed through the API. `discard: new`: were a size limit ever set, new
 * records would be refused loudly rather than old ones dropped silently.
 */
export function wantedAuditStream(opts: AuditStreamOptions = {}): WantedAudit {
  return {
    name: AUDIT_STREAM,
    subjects: [AUDIT_SUBJECT],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.New,
    max_age: (opts.maxAgeMs ?? 0) * MS_TO_NS,
    max_msg_size: MAX_AUDIT_RECORD_BYTES,
    num_replicas: opts.replicas ?? 1,
    deny_delete: true,
    deny_purge: true,
    allow_rollup_hdrs: false,
  };
}

/**
 * Creates AUDIT, or updates its mutable settings in place. Throws `AUDIT_STREAM_CONFLICT` when
 * retention or storage differ (the stream and its records are left alone) and `AUDIT_UNAVAILABLE`
 * when JetStream cannot be reached.
 */
export function ensureAuditStream(jsm: JetStreamManager, opts: AuditStreamOptions = {}): Promise<AuditStreamOutcome> {
  return reconcileStream(jsm, wantedAuditStream(opts), {
    fixedKeys: FIXED_KEYS,
    mutableKeys: MUTABLE_KEYS,
    failed: (what, err) => new AuditLogError(AUDIT_UNAVAILABLE, `stream ${AUDIT_STREAM}: ${what} failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err }),
    conflict: (detail) => new AuditLogError(AUDIT_STREAM_CONFLICT, `stream ${AUDIT_STREAM} exists with settings that cannot change without losing its records: ${detail}`),
  });
}
