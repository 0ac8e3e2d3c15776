/**
 * The hub's part of a deletion (the right to have wrong data deleted): a `deletion` envelope from
 * a message's originator makes every recipient purge its copy (the agents' part) and makes the hub
 * erase the copies it still stores in DELIVER (this file). The audit keeps the fact (`deleted`),
 * never the content — it never held content.
 *
 * Which message, whose and to whom come from the original's `routed` audit records, the only
 * place the hub remembers what it routed: DELIVER has no index by message id, and its messages
 * age out. Those records also hold the DELIVER sequence of each copy (`seqs`), which is how the
 * copies are found again.
 */
import type { JetStreamManager, StoredMsg } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import type { AuditRecord } from '../../protocol/audit.js';
import type { Envelope } from '../../protocol/envelope.js';
import { DELIVER_STREAM, subjects } from '../../protocol/subjects.js';
import { describeValue } from '../../protocol/validate.js';
import { ROUTER_DELETION_NOT_ORIGINATOR, ROUTER_DELETION_UNKNOWN_MESSAGE, ROUTER_ERASE_FAILED, RouterError } from './errors.js';

/**
 * What the hub recorded about a message: the audit log's records for one id, in order
 * (`AuditLog.forMessage`). That is a full scan of AUDIT; acceptable because deletions are rare
 * (a correction of wrong data, not a routine operation). A deletion waits for it.
 */
export interface MessageHistory {
  forMessage(id: string): Promise<readonly AuditRecord[]>;
}

/** Who may send and receive (the router's {@link ./router.ts RecipientDirectory}). */
interface ActiveCountries {
  isActive(country: string): boolean;
  isSuspended?(country: string): boolean;
}

/** One stored copy of the original in DELIVER. */
export interface StoredCopy {
  to: string;
  seq: number;
}

/** What {@link planDeletion} concluded. */
export type DeletionPlan =
  | {
      ok: true;
      /** The id of the message to delete. */
      original: string;
      /** Who gets the deletion: the original's recipients still active or suspended (and named by the deletion's `to`). */
      recipients: string[];
      /** The original's copies the hub stored, to erase (every recipient's, active or not). */
      copies: StoredCopy[];
      /** Recipients whose copy no record locates (routed before `seqs` was recorded): they age out. */
      unlocated: string[];
    }
  | { ok: false; code: string; problems: string[] };

/**
 * Decides what a deletion from `sender` does (pure), from the original's audit records.
 *
 * - No `routed` record of the original: `ROUTER_DELETION_UNKNOWN_MESSAGE`.
 * - Only records of another sender: `ROUTER_DELETION_NOT_ORIGINATOR`. Ids are chosen by senders,
 *   so two countries may have used one id; only the records of `sender` count, and a country can
 *   never reach copies of another country's message.
 * - Recipients: the original's (every `routed` record of it by `sender`: a resubmission routed
 *   after the duplicate window has records of its own) that are active now, or suspended (it may
 *   have fetched the original before its suspension; the deletion waits in its backlog, which a
 *   suspension keeps, and purges its copy when it returns), intersected with the deletion's `to`
 *   when that is a list (`*` = all of the original's). A listed country that never got the
 *   original gets nothing; a revoked one is skipped rather than refusing the deletion, since the
 *   originator must be able to delete whatever became of a recipient (a revoked country's backlog
 *   is purged and its keys are void).
 * - None left (every recipient revoked): the deletion is still accepted, the hub's
 *   copies are still erased — so a country that comes back never receives the original from its
 *   backlog — and the decision is audited with an empty `to`.
 */
export function planDeletion(sender: string, deletion: Envelope, records: readonly AuditRecord[], directory: ActiveCountries): DeletionPlan {
  const original = deletion.deletes;
  if (original === undefined) {
    // parseEnvelope requires `deletes` on a deletion; reaching here is a caller's mistake.
    return { ok: false, code: ROUTER_DELETION_UNKNOWN_MESSAGE, problems: ['deletes: required when kind is deletion'] };
  }
  const routed = records.filter((r) => r.event === 'routed' && r.messageId === original);
  if (routed.length === 0) {
    return { ok: false, code: ROUTER_DELETION_UNKNOWN_MESSAGE, problems: [`deletes: no message with this id was routed by the hub (got ${describeValue(original)})`] };
  }
  const own = routed.filter((r) => r.from === sender);
  if (own.length === 0) {
    // Who did send it is not said: the deleting country has no business knowing.
    return { ok: false, code: ROUTER_DELETION_NOT_ORIGINATOR, problems: [`deletes: message was not sent by ${sender}; only its sender may delete it (got ${describeValue(original)})`] };
  }
  const originalTo: string[] = [];
  const copies: StoredCopy[] = [];
  const located = new Set<string>();
  const seen = new Set<number>();
  for (const record of own) {
    const to = record.to ?? [];
    to.forEach((cc, i) => {
      if (!originalTo.includes(cc)) originalTo.push(cc);
      const seq = record.seqs?.[i];
      if (seq === undefined) return;
      located.add(cc);
      // A redelivered submission inside the duplicate window records the same sequences again.
      if (seen.has(seq)) return;
      seen.add(seq);
      copies.push({ to: cc, seq });
    });
  }
  const named = deletion.to === '*' ? undefined : new Set(deletion.to);
  const reachable = (cc: string): boolean => directory.isActive(cc) || directory.isSuspended?.(cc) === true;
  const recipients = originalTo.filter((cc) => reachable(cc) && (named === undefined || named.has(cc)));
  return { ok: true, original, recipients, copies, unlocated: originalTo.filter((cc) => !located.has(cc)) };
}

/** What {@link eraseCopies} did. */
export interface EraseOutcome {
  /** Copies erased now. */
  erased: number;
  /** Copies already gone (aged out, erased by an earlier try of this deletion). */
  gone: number;
  /** Sequences now holding another message (DELIVER was recreated): left alone. */
  foreign: number;
}

/**
 * Erases the copies of message `id` from DELIVER (`STREAM.MSG.DELETE` with erase: the bytes are
 * overwritten, not only unlinked). Each sequence is read first and erased only when it holds the
 * copy it should (subject `ncb.deliver.<TO>`, `Nats-Msg-Id: <id>.<TO>`): sequences are not reused
 * by a stream, but a DELIVER deleted and recreated by an operator starts again from 1. A sequence
 * already gone is fine. Idempotent, so a retried deletion does no harm. Throws `ROUTER_ERASE_FAILED`
 * when a copy could not be read or erased; the caller retries the whole deletion.
 */
export async function eraseCopies(jsm: JetStreamManager, id: string, copies: readonly StoredCopy[], log: Logger): Promise<EraseOutcome> {
  const outcome: EraseOutcome = { erased: 0, gone: 0, foreign: 0 };
  for (const copy of copies) {
    const fail = (err: unknown): RouterError =>
      new RouterError(ROUTER_ERASE_FAILED, `router: copy ${copy.seq} of ${id} for ${copy.to} not erased from ${DELIVER_STREAM}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    let stored: StoredMsg | null;
    try {
      stored = await jsm.streams.getMessage(DELIVER_STREAM, { seq: copy.seq });
    } catch (err) {
      throw fail(err);
    }
    if (stored === null) {
      outcome.gone++;
      continue;
    }
    if (stored.subject !== subjects.deliver(copy.to) || stored.header.get('Nats-Msg-Id') !== `${id}.${copy.to}`) {
      log.warn({ id, to: copy.to, seq: copy.seq, subject: stored.subject }, 'DELIVER sequence holds another message; left alone');
      outcome.foreign++;
      continue;
    }
    try {
      await jsm.streams.deleteMessage(DELIVER_STREAM, copy.seq, true);
      outcome.erased++;
    } catch (err) {
      // The server answers a sequence that holds nothing with the same code as a real failure
      // (10057, "message delete failed"), so look again: gone between the read and the delete
      // (aged out, or another hub's router erased it) is what was wanted.
      const again = await jsm.streams.getMessage(DELIVER_STREAM, { seq: copy.seq }).catch(() => stored);
      if (again !== null) throw fail(err);
      outcome.gone++;
    }
  }
  return outcome;
}

