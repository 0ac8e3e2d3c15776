/**
 * The outbox drain: publishes waiting envelopes to `ncb.submit.<CC>` through JetStream with
 * `Nats-Msg-Id = <envelope id>`, and forgets each only after JetStream's ack.
 *
 * A window of up to `window` publishes (default 32) is in flight at once: the oldest waiting ids
 * are read, published in id order without waiting for one another, and once every publish of the
 * window has settled the acked ones are marked `submitted` and removed from the outbox, all
 * concurrently (the stores coalesce the fsyncs). One at a time, a message cost a JetStream round
 * trip plus a status fsync and a directory fsync before the next could leave; a burst of
 * submissions then waited in the outbox behind it.
 *
 * Order. Publishes go out in id order (= acceptance order) on the one connection, and the server
 * stores them in the order it reads them, so SUBMIT holds them in submission order as long as
 * none fails. When one publish of a window fails (timeout, JetStream away), the others may
 * already be stored: the failed one is kept and published again after the back-off, behind
 * them. So the order guarantee is "in order unless a publish failed", and nothing downstream
 * relies on more: envelopes are identified by id, receipts name the message they are about and
 * the sender's status store takes them in any order (a recipient's state only moves forward), and
 * the recipient's inbox drops duplicates by id. The one exception is a `deletion`: the hub's
 * router refuses a deletion whose original it has not routed yet (ROUTER_DELETION_UNKNOWN_MESSAGE),
 * so a deletion whose original is still in this outbox ends the window before it and is published
 * only once the original was acked (SUBMIT is routed in order).
 *
 * Failures: any failed publish in a window means a back-off (as before, growing with consecutive
 * failed windows) before the next window; nothing is skipped, the failed ids stay first.
 *
 * Crash windows:
 * - after the publish, before the ack arrives, or after the ack but before the outbox file is
 *   removed: the next run publishes again with the same Nats-Msg-Id, and SUBMIT (duplicate window
 *   2 min) answers `duplicate: true` without storing it again.
 * - beyond the window (the agent was down > 2 min in between): SUBMIT stores a second copy, the
 *   router routes it again and DELIVER (same 2-min window on `<id>.<TO>`) stores second copies;
 *   the recipient's inbox drops them by envelope id (kept 35 days). Nothing is lost either way;
 *   the duplicate costs bandwidth, never a second message for the recipient's application.
 * The status is marked `submitted` before the file is removed, so a crash between the two leaves
 * a file to republish (harmless, above), never a message stuck "queued" with no file.
 */
import type { JetStreamClient, PubAck } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { SUBMIT_STREAM, subjects } from '../../protocol/subjects.js';
import type { Outbox, OutboxEntry } from './outbox.js';
import type { StatusStore } from './status.js';
import { Wakeup, backoffDelayMs, type RetryBackoff } from './wakeup.js';

/** Publishes in flight at once when {@link DrainOptions.window} is not given. */
export const DEFAULT_DRAIN_WINDOW = 32;

/** What the drain needs. */
export interface DrainOptions {
  country: string;
  js: JetStreamClient;
  outbox: Outbox;
  status: StatusStore;
  log: Logger;
  /** Whether the connection is up now; while it is not, the drain waits for {@link Drain.wake}. */
  isConnected: () => boolean;
  publishTimeoutMs: number;
  retry: RetryBackoff;
  /** Publishes in flight at once (default {@link DEFAULT_DRAIN_WINDOW}); 1 gives strict order even across failures. */
  window?: number;
  /** Told of each publish JetStream acked (a duplicate ack included: it confirms a publish whose first ack was lost). */
  onSubmitted?: () => void;
}

/** One publish of a window and how it ended. */
type Outcome = { id: string; ack: PubAck } | { id: string; err: unknown };

/** See the module comment. `start()` once, `wake()` on new work or reconnect, `stop()` at the end. */
export class Drain {
  readonly #opts: DrainOptions;
  readonly #log: Logger;
  readonly #window: number;
  /** New work, reconnect or stop. */
  readonly #work = new Wakeup();
  /** Reconnect or stop: ends a back-off early (new submissions do not, or failures would spin). */
  readonly #retry = new Wakeup();
  #loop: Promise<void> | undefined;
  #isStopping = false;

  constructor(opts: DrainOptions) {
    this.#opts = opts;
    this.#log = opts.log;
    this.#window = Math.max(1, Math.floor(opts.window ?? DEFAULT_DRAIN_WINDOW));
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  /** Something was added to the outbox. */
  wake(): void {
    this.#work.notify();
  }

  /** The connection came back: retry now rather than at the end of the back-off. */
  reconnected(): void {
    this.#retry.notify();
    this.#work.notify();
  }

  /** Ends the loop after the window in flight (at most `publishTimeoutMs` plus its store writes). */
  async stop(): Promise<void> {
    this.#isStopping = true;
    this.#retry.notify();
    this.#work.notify();
    await this.#loop;
  }

  async #run(): Promise<void> {
    const { outbox } = this.#opts;
    let failures = 0;
    while (!this.#isStopping) {
      if (outbox.size === 0 || !this.#opts.isConnected()) {
        await this.#work.wait();
        continue;
      }
      let failed: Outcome[];
      try {
        failed = await this.#drainWindow();
      } catch (err) {
        // Reading a file or a store write failed: nothing was lost, the ids are still waiting.
        failed = [{ id: outbox.first() ?? '', err }];
      }
      if (failed.length === 0) {
        failures = 0;
        continue;
      }
      failures++;
      const delayMs = backoffDelayMs(failures, this.#opts.retry);
      const first = failed[0] as Outcome;
      this.#log.warn({ err: 'err' in first ? first.err : undefined, id: first.id, failed: failed.length, failures, delayMs, depth: outbox.size }, 'submit failed, will retry');
      await this.#retry.wait(delayMs);
    }
  }

  /** Publishes one window (see the module comment); returns the publishes that failed. */
  async #drainWindow(): Promise<Outcome[]> {
    const { outbox, status } = this.#opts;
    const entries = await this.#nextWindow();
    if (entries.length === 0) return [];
    // Issued in id order with no await in between, so they leave on the connection in that order.
    const outcomes = await Promise.all(entries.map((entry) => this.#publish(entry)));
    const acked = outcomes.filter((o): o is { id: string; ack: PubAck } => 'ack' in o);
    const at = new Date().toISOString();
    await Promise.all(acked.map((o) => status.markSubmitted(o.id, at)));
    await Promise.all(acked.map((o) => outbox.remove(o.id)));
    for (const { id, ack } of acked) this.#log.debug({ id, seq: ack.seq, duplicate: ack.duplicate }, ack.duplicate ? 'submission was already in SUBMIT' : 'submitted');
    return outcomes.filter((o) => 'err' in o);
  }

  /**
   * The oldest waiting entries, at most a window's worth, cut before a deletion whose original is
   * still waiting. Its original is older (ids increase), so it sits ahead of the deletion and the
   * window that carries it comes first; a deletion at the head of a window therefore has no
   * original waiting any more, and goes. Damaged files are quarantined by `read()` and skipped.
   */
  async #nextWindow(): Promise<OutboxEntry[]> {
    const { outbox } = this.#opts;
    const ids = outbox.list().slice(0, this.#window);
    const read = await Promise.all(ids.map((id) => outbox.read(id)));
    const entries: OutboxEntry[] = [];
    for (const entry of read) {
      if (entry === undefined) continue;
      const target = entry.envelope.kind === 'deletion' ? entry.envelope.deletes : undefined;
      if (target !== undefined && entries.length > 0 && outbox.has(target)) break;
      entries.push(entry);
    }
    return entries;
  }

  async #publish(entry: OutboxEntry): Promise<Outcome> {
    const { js, country } = this.#opts;
    try {
      // expect.streamName: the message must land in SUBMIT, not in some other stream on the subject.
      const ack = await js.publish(subjects.submit(country), entry.bytes, { msgID: entry.id, timeout: this.#opts.publishTimeoutMs, expect: { streamName: SUBMIT_STREAM } });
      this.#opts.onSubmitted?.();
      return { id: entry.id, ack };
    } catch (err) {
      return { id: entry.id, err };
    }
  }
}
