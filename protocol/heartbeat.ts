import Type, { type Static } from 'typebox';
import { CountryCodeSchema } from './country.js';

/**
 * What an agent publishes on `ncb.heartbeat.<CC>` every 10 s (ARCHITECTURE, Observability): the
 * hub's registry records "last seen" from it, and its fields feed per-country metrics.
 */
export const HeartbeatSchema = Type.Object(
  {
    v: Type.Literal(1),
    country: CountryCodeSchema,
    version: Type.String({ maxLength: 32 }),
    at: Type.String({ format: 'date-time' }),
    tunnel: Type.Object(
      {
        up: Type.Boolean(),
        lastHandshake: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
        rxBytes: Type.Integer({ minimum: 0 }),
        txBytes: Type.Integer({ minimum: 0 }),
      },
      { additionalProperties: false },
    ),
    certSerial: Type.String({ maxLength: 40 }),
    certNotAfter: Type.String({ format: 'date-time' }),
    /** `policyDigest` (protocol/bundle.ts) of the firewall policy in force, or null when the firewall is off. */
    policyHash: Type.Union([Type.String({ pattern: '^[0-9a-f]{64}$' }), Type.Null()]),
    outboxDepth: Type.Integer({ minimum: 0 }),
  },
  { additionalProperties: false },
);
export type Heartbeat = Static<typeof HeartbeatSchema>;
