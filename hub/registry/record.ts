import Type, { type Static } from 'typebox';
import { B2bPolicySchema, MAX_B2B_DATABASES } from '../../protocol/b2b.js';
import { CountryCodeSchema } from '../../protocol/country.js';

/** Lifecycle of a member country in the registry (ARCHITECTURE, Enrollment). */
export const CountryStatusSchema = Type.Union([Type.Literal('pending'), Type.Literal('active'), Type.Literal('suspended'), Type.Literal('revoked')]);
export type CountryStatus = Static<typeof CountryStatusSchema>;

const IsoDate = Type.String({ format: 'date-time' });

/** One country as the registry keeps it: in the KV bucket (value JSON) and in the disk snapshot. */
export const CountryRecordSchema = Type.Object(
  {
    code: CountryCodeSchema,
    name: Type.String({ minLength: 1, maxLength: 100 }),
    status: CountryStatusSchema,
    createdAt: IsoDate,
    updatedAt: IsoDate,
    certSerial: Type.Optional(Type.String({ pattern: '^[0-9a-f]{2,40}$' })),
    certNotAfter: Type.Optional(IsoDate),
    /** nats-server `pinned_certs` value of the current certificate: SHA-256 of its SPKI, hex. */
    certPin: Type.Optional(Type.String({ pattern: '^[0-9a-f]{64}$' })),
    /**
     * The current certificate itself (PEM), served by the member directory (`GET /v1/directory`)
     * so agents can encrypt to this country; the CA ledger keeps serials only. Set with
     * `certSerial` on enroll and renew; records written before it existed lack it until the next
     * renewal. Same bounds as `protocol/directory.ts`, so whatever is stored can be served.
     */
    certificate: Type.Optional(Type.String({ minLength: 1, maxLength: 8192, pattern: '^-----BEGIN CERTIFICATE-----' })),
    wgPublicKey: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$' })),
    overlayAddress: Type.Optional(Type.String({ format: 'ipv4' })),
    enrolledAt: Type.Optional(IsoDate),
    lastSeen: Type.Optional(IsoDate),
    statusReason: Type.Optional(Type.String({ maxLength: 200 })),
    /**
     * The national databases this country publishes (B2B, issue 8) and their sharing policies, as
     * its agent last sent them (`PUT /v1/b2b`). Here rather than in a bucket of their own because
     * the broker's permissions are rendered from them, before JetStream runs (the snapshot).
     */
    b2b: Type.Optional(Type.Array(B2bPolicySchema, { maxItems: MAX_B2B_DATABASES })),
  },
  { additionalProperties: false },
);
export type CountryRecord = Static<typeof CountryRecordSchema>;

/** Which status changes an operator or the enrollment flow may make. */
export const TRANSITIONS: Readonly<Record<CountryStatus, readonly CountryStatus[]>> = {
  pending: ['active', 'revoked'],
  active: ['active', 'suspended', 'revoked'],
  suspended: ['active', 'revoked'],
  // A revoked country starts again from pending (new token, new keys): never straight to active.
  revoked: ['pending'],
};
