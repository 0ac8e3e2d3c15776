/**
 * The outbox drain: publishes waiting envelopes, oldest first, to `ncb.submit.<CC>` through
 * JetStream with `Nats-Msg-Id = <envelope id>`, and forgets each only after JetStream's ack.
 *
 * One message in flight at a time: strict submission order, and a failure never leaves a later
 * message stored ahead of an earlier one. (Hundreds of messages per second per agent would need a
 * window; an NCB sends far fewer.)
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
import type { JetStreamClient } from '@nats-io/jetstream';
import type { Logger } from 'pino';
import { SUBMIT_STREAM, subjects } from '../../protocol/subjects.js';
import type { Outbox } from './outbox.js';
import type { StatusStore } from './status.js';
import { Wakeup, backoffDelayMs, type RetryBackoff } from './wakeup.js';

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
  /** Told of each publish JetStream acked (a duplicate ack included: it confirms a publish whose first ack was lost). */
  onSubmitted?: () => void;
}

/** See the module comment. `start()` once, `wake()` on new work or reconnect, `stop()` at the end. */
export class Drain {
  readonly #opts: DrainOptions;
  readonly #log: Logger;
  /** New work, reconnect or stop. */
  readonly #work = new Wakeup();
  /** Reconnect or stop: ends a back-off early (new submissions do not, or failures would spin). */
  readonly #retry = new Wakeup();
  #loop: Promise<void> | undefined;
  #isStopping = false;

  constructor(opts: DrainOptions) {
    this.#opts = opts;
    this.#log = opts.log;
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

  /** Ends the loop after the publish in flight (at most `publishTimeoutMs`). */
  async stop(): Promise<void> {
    this.#isStopping = true;
    this.#retry.notify();
    this.#work.notify();
    await this.#loop;
  }

  async #run(): Promise<void> {
    const { outbox, status, js, country } = this.#opts;
    const subject = subjects.submit(country);
    let failures = 0;
    while (!this.#isStopping) {
      const id = outbox.first();
      if (id === undefined || !this.#opts.isConnected()) {
        await this.#work.wait();
        continue;
      }
      try {
        const entry = await outbox.read(id);
        if (entry === undefined) continue; // quarantined by read(), logged there
        // expect.streamName: the message must land in SUBMIT, not in some other stream on the subject.
        const ack = await js.publish(subject, entry.bytes, { msgID: id, timeout: this.#opts.publishTimeoutMs, expect: { streamName: SUBMIT_STREAM } });
        this.#opts.onSubmitted?.();
        await status.markSubmitted(id, new Date().toISOString());
        await outbox.remove(id);
        failures = 0;
        this.#log.debug({ id, seq: ack.seq, duplicate: ack.duplicate }, ack.duplicate ? 'submission was already in SUBMIT' : 'submitted');
      } catch (err) {
        failures++;
        const delayMs = backoffDelayMs(failures, this.#opts.retry);
        this.#log.warn({ err, id, failures, delayMs, depth: outbox.size }, 'submit failed, will retry');
        await this.#retry.wait(delayMs);
      }
    }
  }
}
