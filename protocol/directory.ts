/**
 * The member directory (ARCHITECTURE, "Messages": end-to-end encryption): what an agent needs to
 * encrypt a restricted or confidential body to its recipients — every active country and its
 * current country certificate. Served by the hub at `GET /v1/directory` to the client certificate
 * of an active country or of an operator, unrevoked (certificates are public; the list of members
 * is not for strangers, nor for suspended or revoked members), cached by agents so they can
 * encrypt while the hub is away.
 *
 * The directory is only a hint about *which* certificate to use: an agent checks each one against
 * the network's root (chain, validity, country in the SAN) before it encrypts to it.
 */
import Type, { type Static } from 'typebox';
import { CountryCodeSchema } from './country.js';

/** One active member country and the certificate its agent holds the key of. */
export const DirectoryEntrySchema = Type.Object(
  {
    code: CountryCodeSchema,
    name: Type.String({ minLength: 1, maxLength: 100 }),
    /** The country's current certificate, PEM. */
    certificate: Type.String({ minLength: 1, maxLength: 8192, pattern: '^-----BEGIN CERTIFICATE-----' }),
    /** Its serial, lower-case hex (as in the registry and the CA ledger). */
    certSerial: Type.String({ pattern: '^[0-9a-f]{2,40}$' }),
    notAfter: Type.String({ format: 'date-time' }),
  },
  { additionalProperties: false },
);
export type DirectoryEntry = Static<typeof DirectoryEntrySchema>;

/**
 * `GET /v1/directory`: active countries that have a certificate, by code (code-point order). A
 * country enrolled before the hub kept certificates in its registry appears after its next renewal.
 */
export const DirectorySchema = Type.Object(
  {
    generatedAt: Type.String({ format: 'date-time' }),
    countries: Type.Array(DirectoryEntrySchema, { maxItems: 512 }),
  },
  { additionalProperties: false },
);
export type Directory = Static<typeof DirectorySchema>;
