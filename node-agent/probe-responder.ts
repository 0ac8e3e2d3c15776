/**
 * Answers the hub's synthetic probes (`protocol/probe.ts`): a `{type:'probe', id, sentAt}` event
 * on `ncb.event.<CC>` gets a {@link ProbeAnswer} on `ncb.probe.<CC>` at once, over core NATS (a
 * probe is about now; JetStream would make an absent country look present later). The hub times
 * the round trip on its own clock, so nothing here waits, retries or stores anything.
 */
import { Value } from 'typebox/value';
import type { Logger } from 'pino';
import { ProbeRequestSchema, type ProbeAnswer } from '../protocol/probe.js';
import { subjects } from '../protocol/subjects.js';
import { schemaProblems } from '../protocol/validate.js';

/** The part of a NATS connection an answer needs. */
export interface ProbePublisher {
  publish(subject: string, payload: string): void;
}

/** Options of {@link ProbeResponder}. */
export interface ProbeResponderOptions {
  /** This agent's country: the answer's `country` and its subject. */
  country: string;
  log: Logger;
  /** Called once per answer handed to the connection (metrics). */
  onAnswered?: (() => void) | undefined;
  /** The clock of the answer's `at` (tests). */
  now?: (() => Date) | undefined;
}

/** See the module comment. One per relay; {@link answer} is called for every `type: 'probe'` event. */
export class ProbeResponder {
  readonly #opts: ProbeResponderOptions;
  readonly #log: Logger;
  readonly #subject: string;

  constructor(opts: ProbeResponderOptions) {
    this.#opts = opts;
    this.#log = opts.log.child({ component: 'probe-responder', country: opts.country });
    this.#subject = subjects.probe(opts.country);
  }

  /**
   * Answers `request` (a parsed event with `type: 'probe'`) on `nc` and returns the answer sent;
   * undefined when the request does not match {@link ProbeRequestSchema} (logged, not answered) or
   * the connection refused the publish (closed, draining; logged). Never throws: it runs inside a
   * subscription callback.
   */
  answer(nc: ProbePublisher, request: unknown): ProbeAnswer | undefined {
    if (!Value.Check(ProbeRequestSchema, request)) {
      this.#log.warn({ problems: schemaProblems(ProbeRequestSchema, request).slice(0, 8) }, 'malformed probe ignored');
      return undefined;
    }
    const answer: ProbeAnswer = { v: 1, type: 'probe-answer', id: request.id, country: this.#opts.country, at: (this.#opts.now?.() ?? new Date()).toISOString() };
    try {
      nc.publish(this.#subject, JSON.stringify(answer));
    } catch (err) {
      this.#log.warn({ err, id: request.id }, 'probe answer not sent');
      return undefined;
    }
    this.#opts.onAnswered?.();
    // Debug: the hub probes every few seconds; a line each would drown the lifecycle lines.
    this.#log.debug({ id: request.id, sentAt: request.sentAt }, 'probe answered');
    return answer;
  }
}
