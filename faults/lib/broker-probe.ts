/**
 * One broker attempt at a time, judged two ways: by the broker's answer (a permission violation
 * naming the subject is a refusal) and by what actually moved, seen by the hub's own connection
 * subscribed to `>` (every attempt carries a unique marker; a marker seen there, or any message
 * or reply the attacker receives, is a leak). An attempt with neither outcome is unexplained and
 * fails the row too: "refused" has to be proven, not assumed from silence.
 */
import { randomBytes } from 'node:crypto';
import { PermissionViolationError, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { setTimeout as delay } from 'node:timers/promises';
import { describeError } from '../../test/helpers/errors.js';

export type ProbeResult = 'refused' | 'leaked' | 'unexplained';

export interface ProbeOutcome {
  op: 'request' | 'publish' | 'subscribe';
  subject: string;
  result: ProbeResult;
  detail: string;
}

const ANSWER_MS = 2_000;

/** The permission violation in `err` or its causes, if any. */
export function permissionViolation(err: unknown): PermissionViolationError | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof PermissionViolationError) return e;
  }
  return undefined;
}

function describe(err: unknown): string {
  return describeError(err) || String(err);
}

/**
 * Attempts made over `attacker`'s connection, watched by `observer` (the hub identity). Call
 * {@link start} once; close both connections at the end.
 */
export class BrokerProbe {
  readonly #attacker: NatsConnection;
  readonly #observer: NatsConnection;
  readonly #seen = new Map<string, string>();
  readonly #violations: PermissionViolationError[] = [];
  readonly #prefix = `faults-${randomBytes(6).toString('hex')}-`;
  #count = 0;

  constructor(attacker: NatsConnection, observer: NatsConnection) {
    this.#attacker = attacker;
    this.#observer = observer;
  }

  async start(): Promise<void> {
    this.#observer.subscribe('>', {
      callback: (err, m) => {
        if (err !== null) return;
        const text = m.string();
        const at = text.indexOf(this.#prefix);
        if (at >= 0) this.#seen.set(text.slice(at, at + this.#prefix.length + 8), m.subject);
      },
    });
    await this.#observer.flush();
    void (async () => {
      for await (const s of this.#attacker.status()) {
        if (s.type === 'error' && s.error instanceof PermissionViolationError) this.#violations.push(s.error);
      }
    })();
  }

  #marker(): string {
    this.#count += 1;
    return `${this.#prefix}${String(this.#count).padStart(8, '0')}`;
  }

  /** Both connections flushed: anything the server routed for the attempt has arrived. */
  async #settle(): Promise<void> {
    await this.#attacker.flush();
    await this.#observer.flush();
  }

  #sawMarker(marker: string): string | undefined {
    return this.#seen.get(marker);
  }

  async #violationFor(op: 'publish' | 'subscription', subject: string, ms = ANSWER_MS): Promise<PermissionViolationError | undefined> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.#violations.find((v) => v.operation === op && v.subject === subject);
      if (found) {
        this.#violations.splice(this.#violations.indexOf(found), 1);
        return found;
      }
      if (Date.now() > deadline) return undefined;
      await delay(10);
    }
  }

  /**
   * A request (publish with a reply subject on the attacker's inbox). Refused: the request fails
   * with a publish violation on `subject`. Leaked: any reply at all (even a JetStream error
   * answer means the API was reached), or the marker seen by the hub.
   */
  async request(subject: string, body?: (marker: string) => string): Promise<ProbeOutcome> {
    const marker = this.#marker();
    const payload = body ? body(marker) : marker;
    let outcome: ProbeOutcome;
    try {
      const reply = await this.#attacker.request(subject, payload, { timeout: ANSWER_MS });
      outcome = { op: 'request', subject, result: 'leaked', detail: `answered: ${reply.string().slice(0, 160)}` };
    } catch (err) {
      const pv = permissionViolation(err);
      if (pv && pv.operation === 'publish' && pv.subject === subject) outcome = { op: 'request', subject, result: 'refused', detail: pv.message };
      else outcome = { op: 'request', subject, result: 'unexplained', detail: describe(err) };
    }
    // A refused request also leaves its violation on the status stream; drop it so it is not
    // mistaken for a later publish's.
    await this.#violationFor('publish', subject, 200);
    await this.#settle();
    const seenOn = this.#sawMarker(marker);
    if (seenOn !== undefined) outcome = { ...outcome, result: 'leaked', detail: `the hub saw it on ${seenOn}` };
    return outcome;
  }

  /** A plain publish. Refused: a publish violation on `subject` and nothing seen by the hub. */
  async publish(subject: string, body?: (marker: string) => string): Promise<ProbeOutcome> {
    const marker = this.#marker();
    this.#attacker.publish(subject, body ? body(marker) : marker);
    await this.#settle();
    const seenOn = this.#sawMarker(marker);
    if (seenOn !== undefined) return { op: 'publish', subject, result: 'leaked', detail: `the hub saw it on ${seenOn}` };
    const pv = await this.#violationFor('publish', subject);
    if (pv) return { op: 'publish', subject, result: 'refused', detail: pv.message };
    return { op: 'publish', subject, result: 'unexplained', detail: 'no permission error and nothing seen' };
  }

  /**
   * A subscription, then the hub publishes a marker on `trigger` (a subject the pattern matches;
   * none when every matching subject belongs to a stream, where a marker would be stored).
   * Refused: the subscription is closed with a subscription violation and received nothing.
   */
  async subscribe(subject: string, trigger: string | undefined, queue?: string): Promise<ProbeOutcome> {
    const marker = this.#marker();
    const got: Msg[] = [];
    // On a permission error nats.js calls back once with the error and an empty message.
    const sub = this.#attacker.subscribe(subject, { callback: (err, m) => void (err === null && got.push(m)), ...(queue === undefined ? {} : { queue }) });
    await this.#settle();
    if (trigger !== undefined) {
      this.#observer.publish(trigger, marker);
      await this.#observer.flush();
    }
    await this.#settle();
    const received = got.find((m) => m.string().includes(this.#prefix));
    if (received) {
      sub.unsubscribe();
      return { op: 'subscribe', subject, result: 'leaked', detail: `received ${received.subject}` };
    }
    const closed = await Promise.race([sub.closed, delay(ANSWER_MS).then(() => 'open' as const)]);
    if (!sub.isClosed()) sub.unsubscribe();
    const pv = permissionViolation(closed);
    if (pv && pv.operation === 'subscription' && pv.subject === subject) return { op: 'subscribe', subject, result: 'refused', detail: pv.message };
    return { op: 'subscribe', subject, result: 'unexplained', detail: closed === 'open' ? 'subscription stayed open, nothing received' : describe(closed) };
  }
}
