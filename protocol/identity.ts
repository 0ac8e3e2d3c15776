/**
 * Identity names shared on the wire: certificate subjects (which nats-server's `verify_and_map`
 * turns into NATS user names, RFC 2253 order) and SAN URIs. Build them only here.
 */

/** Organization of every ncbnet identity. */
export const ORGANIZATION = 'ncbnet';

/** The kinds of leaf identity, and the OU each carries. */
export type IdentityKind = 'country' | 'operator' | 'hub';

export const OU_BY_KIND: Readonly<Record<IdentityKind, string>> = { country: 'ncb', operator: 'operator', hub: 'hub' };

/** Operator and hub names: DNS-label-like so they are safe in a DN, a URI and a file name. */
export const NAME_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** Subject DN in RFC 2253 order, e.g. `CN=FR,OU=ncb,O=ncbnet` — also the NATS user string. */
export function subjectDn(kind: IdentityKind, name: string): string {
  return `CN=${name},OU=${OU_BY_KIND[kind]},O=${ORGANIZATION}`;
}

/** SAN URI naming the identity, e.g. `urn:ncbnet:country:FR`. */
export function identityUri(kind: IdentityKind, name: string): string {
  return `urn:ncbnet:${kind}:${name}`;
}

/** Parses `urn:ncbnet:<kind>:<name>`; undefined for any other URI. */
export function parseIdentityUri(uri: string): { kind: IdentityKind; name: string } | undefined {
  const m = /^urn:ncbnet:(country|operator|hub):([A-Za-z0-9-]+)$/.exec(uri);
  if (!m) return undefined;
  return { kind: m[1] as IdentityKind, name: m[2] as string };
}
