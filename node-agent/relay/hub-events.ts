/**
 * What the hub tells one country on `ncb.event.<CC>` (core NATS): the router's rejections of its
 * submissions, recorded in the status store, and the hub's synthetic probes, answered at once
 * (`../probe-responder.ts`). Anything else is logged and ignored; nothing here throws.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import Type from 'typebox';
import { Value } from 'typebox/value';
import { schemaProblems } from '../../protocol/validate.js';
import type { ProbeResponder } from '../probe-responder.js';
import type { StatusStore } from './status.js';

/** `{type:'rejected', id, code, problems}`, as the hub's router publishes it. */
const RejectionEventSchema = Type.Object({
  type: Type.Literal('rejected'),
  id: Type.Union([Type.String(), Type.Null()]),
  code: Type.String({ maxLength: 128 }),
  problems: Type.Array(Type.String({ maxLength: 4096 }), { maxItems: 256 }),
});

export interface HubEventsOptions {
  log: Logger;
  status: StatusStore;
  probes: ProbeResponder;
}

/** See the module comment. */
export class HubEvents {
  readonly #o: HubEventsOptions;

  constructor(opts: HubEventsOptions) {
    this.#o = opts;
  }

  /** Handles one event received on `nc`; never throws. */
  async handle(nc: NatsConnection, data: Uint8Array): Promise<void> {
    const log = this.#o.log;
    let value: unknown;
    try {
      value = JSON.parse(new TextDecoder().decode(data));
    } catch (err) {
      log.warn({ err }, 'event is not JSON, ignored');
      return;
    }
    const type = typeof value === 'object' && value !== null ? (value as { type?: unknown }).type : undefined;
    if (type === 'probe') {
      this.#o.probes.answer(nc, value);
      return;
    }
    if (type !== 'rejected') {
      log.debug({ type }, 'event ignored');
      return;
    }
    if (!Value.Check(RejectionEventSchema, value)) {
      log.warn({ problems: schemaProblems(RejectionEventSchema, value) }, 'malformed rejection event ignored');
      return;
    }
    const { id, code, problems } = value;
    if (id === null) {
      log.warn({ code, problems }, 'the hub rejected a submission without a readable id');
      return;
    }
    try {
      const status = await this.#o.status.markRejected(id, { code, problems }, new Date().toISOString());
      if (status === undefined) log.warn({ id, code }, 'rejection for an unknown message ignored');
      else log.warn({ id, code, problems }, 'message rejected by the hub');
    } catch (err) {
      log.error({ err, id, code }, 'rejection not recorded');
    }
  }
}
