/**
 * Synthetic probes (ARCHITECTURE, observability): every `probeIntervalMs` the hub sends each
 * active country a probe on `ncb.event.<CC>` (core NATS, through the broker and the country's
 * tunnel); the agent answers at once on `ncb.probe.<CC>`, which only that country may publish.
 * The hub measures the round trip on its own clock (no clock skew enters) and counts a probe with
 * no answer within its timeout as missed. Core NATS, not JetStream: a probe is about *now*, so a
 * country that is away must miss it, not receive it later.
 */
import Type, { type Static } from 'typebox';
import { CountryCodeSchema } from './country.js';

/** Hub → agent, on `ncb.event.<CC>` (beside rejection events, told apart by `type`). */
export const ProbeRequestSchema = Type.Object(
  {
    type: Type.Literal('probe'),
    /** Opaque, unique per probe (the hub matches the answer with it). */
    id: Type.String({ pattern: '^[A-Za-z0-9_-]{8,64}$' }),
    sentAt: Type.String({ format: 'date-time' }),
  },
  { additionalProperties: false },
);
export type ProbeRequest = Static<typeof ProbeRequestSchema>;

/** Agent → hub, on `ncb.probe.<CC>`. */
export const ProbeAnswerSchema = Type.Object(
  {
    v: Type.Literal(1),
    type: Type.Literal('probe-answer'),
    id: Type.String({ pattern: '^[A-Za-z0-9_-]{8,64}$' }),
    country: CountryCodeSchema,
    /** When the agent answered, its clock (informative only; the RTT uses the hub's clock). */
    at: Type.String({ format: 'date-time' }),
  },
  { additionalProperties: false },
);
export type ProbeAnswer = Static<typeof ProbeAnswerSchema>;
