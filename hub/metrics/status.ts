/**
 * `GET /v1/admin/status` (`ncbnet status`): the same snapshot `/metrics` reads, as JSON for
 * operators and scripts. Unknown values are `null` (a source failed, or it never happened).
 */
import Type, { type Static, type TSchema } from 'typebox';
import { CountryCodeSchema } from '../../protocol/country.js';
import { CountryStatusSchema } from '../registry/record.js';
import type { StatusSnapshot } from './country-status.js';

const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);
const IsoDate = Type.String({ format: 'date-time' });
const SourceStateSchema = Type.Union([Type.Literal('ok'), Type.Literal('failed'), Type.Literal('off')], { description: 'off: not configured (WireGuard disabled)' });

/** One row of `ncbnet status`. */
export const CountryHealthSchema = Type.Object(
  {
    code: CountryCodeSchema,
    name: Type.String(),
    status: CountryStatusSchema,
    connected: Nullable(Type.Boolean({ description: 'a live broker connection (nats-server /connz)' })),
    lastSeen: Nullable(Type.String({ format: 'date-time', description: 'last heartbeat (hub clock)' })),
    lastHandshake: Nullable(Type.String({ format: 'date-time', description: 'last WireGuard handshake with its peer' })),
    rxBytes: Nullable(Type.Integer({ minimum: 0 })),
    txBytes: Nullable(Type.Integer({ minimum: 0 })),
    deliveryPending: Nullable(Type.Integer({ minimum: 0, description: 'messages waiting on deliver-<CC>' })),
    certNotAfter: Nullable(IsoDate),
    policyInSync: Nullable(Type.Boolean({ description: "the policy digest of its last heartbeat is the hub's current one" })),
  },
  { additionalProperties: false },
);
export type CountryHealthJson = Static<typeof CountryHealthSchema>;

export const HubStatusSchema = Type.Object(
  {
    generatedAt: IsoDate,
    hub: Type.Object(
      {
        brokerUp: Type.Boolean(),
        urgentOverdue: Type.Integer({ minimum: 0 }),
      },
      { additionalProperties: false },
    ),
    sources: Type.Object({ connz: SourceStateSchema, consumers: SourceStateSchema, wireguard: SourceStateSchema }, { additionalProperties: false }),
    countries: Type.Array(CountryHealthSchema),
  },
  { additionalProperties: false },
);
export type HubStatus = Static<typeof HubStatusSchema>;

const iso = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString());

/** The API's JSON for a snapshot and the hub-wide values. */
export function statusJson(snap: StatusSnapshot, hub: HubStatus['hub']): HubStatus {
  return {
    generatedAt: iso(snap.atMs) ?? new Date().toISOString(),
    hub,
    sources: snap.sources,
    countries: snap.countries.map((c) => ({
      code: c.code,
      name: c.name,
      status: c.status,
      connected: c.connected ?? null,
      lastSeen: iso(c.lastSeenMs),
      lastHandshake: iso(c.handshakeMs),
      rxBytes: c.rxBytes ?? null,
      txBytes: c.txBytes ?? null,
      deliveryPending: c.deliveryPending ?? null,
      certNotAfter: iso(c.certNotAfterMs),
      policyInSync: c.policyInSync ?? null,
    })),
  };
}
