// Enrollment and renewal bodies and the bundle the hub answers with: the wire contract between
// hub and agent, so it lives here where both may import it (hub and node-agent never import each other).
import { createHash } from 'node:crypto';
import Type, { type Static } from 'typebox';
import { canonicalize } from './jcs.js';
import { CountryCodeSchema } from './country.js';

/** A WireGuard public key: base64 of 32 bytes (the last character carries only 4 bits, hence the class). */
export const WgPublicKeySchema = Type.String({ pattern: '^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$', description: 'WireGuard public key (base64, 32 bytes)' });

const Pem = (description: string) => Type.String({ minLength: 1, maxLength: 16384, description });

/** `POST /v1/enroll`: the one-time token, the CSR and the WireGuard public key, all made at the NCB. */
export const EnrollRequestSchema = Type.Object(
  {
    token: Type.String({ minLength: 1, maxLength: 256, description: 'ncbnet1.<id>.<secret>.<ca-fingerprint>' }),
    csr: Pem('PKCS#10 certificate request, PEM, P-256 key made at the NCB'),
    wgPublicKey: WgPublicKeySchema,
  },
  { additionalProperties: false },
);
export type EnrollRequest = Static<typeof EnrollRequestSchema>;

/** `POST /v1/renew` over mTLS: a CSR for the next certificate. */
export const RenewRequestSchema = Type.Object({ csr: Pem('PKCS#10 certificate request, PEM') }, { additionalProperties: false });
export type RenewRequest = Static<typeof RenewRequestSchema>;

/** What the agent's firewall must let in from the hub, and where the hub's services are (ARCHITECTURE step 4). */
export const PolicySchema = Type.Object(
  {
    version: Type.Integer({ minimum: 1 }),
    hubAddress: Type.String(),
    natsPort: Type.Integer(),
    apiPort: Type.Integer(),
    /** TCP ports on the agent that the hub may open over the tunnel (metrics scrape, probes). */
    allowFromHubTcp: Type.Array(Type.Integer({ minimum: 1, maximum: 65535 })),
  },
  { additionalProperties: false },
);
export type Policy = Static<typeof PolicySchema>;

/** The enrollment answer: everything the agent stores as its last-known-good bundle. */
export const BundleSchema = Type.Object(
  {
    v: Type.Literal(1),
    country: CountryCodeSchema,
    serial: Type.String(),
    notAfter: Type.String({ format: 'date-time' }),
    certificate: Pem('the country certificate'),
    chain: Pem('hub intermediate then root'),
    caCertificate: Pem('the root CA the agent trusts'),
    overlayAddress: Type.String({ format: 'ipv4' }),
    overlayCidr: Type.String(),
    hub: Type.Object(
      {
        wgPublicKey: Type.Union([WgPublicKeySchema, Type.Null()]),
        wgEndpoint: Type.Union([Type.String(), Type.Null()]),
        overlayAddress: Type.String({ format: 'ipv4' }),
        apiUrl: Type.String(),
        natsUrl: Type.String(),
      },
      { additionalProperties: false },
    ),
    policy: PolicySchema,
  },
  { additionalProperties: false },
);
export type Bundle = Static<typeof BundleSchema>;

/** The answer to a renewal: the new certificate and its chain. */
export const RenewResponseSchema = Type.Object(
  { serial: Type.String(), notAfter: Type.String({ format: 'date-time' }), certificate: Pem('the new certificate'), chain: Pem('hub intermediate then root') },
  { additionalProperties: false },
);
export type RenewResponse = Static<typeof RenewResponseSchema>;

/**
 * The digest that says which firewall policy is in force: SHA-256 (hex) of the RFC 8785 canonical
 * JSON of the {@link Policy}. An agent reports it in its heartbeat (`policyHash`) for the policy it
 * applied; the hub computes it for the policy it would hand out now; equal means in sync
 * (`ncbnet_policy_in_sync`). A digest of the policy rather than of the nftables text, because the
 * text also holds agent-local choices (interface name) the hub does not know.
 */
export function policyDigest(policy: Policy): string {
  return createHash('sha256').update(canonicalize(policy), 'utf8').digest('hex');
}
