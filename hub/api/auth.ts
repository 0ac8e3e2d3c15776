import type { TLSSocket } from 'node:tls';
import type { FastifyRequest } from 'fastify';
import type { CertificateAuthority } from '../../pki/ca.js';
import { normalizeSerial } from '../../pki/serial.js';
import { parseIdentityUri, type IdentityKind } from '../../protocol/identity.js';
import { AUTH_CLIENT_CERT_REQUIRED, AUTH_WRONG_IDENTITY, HubError } from '../errors.js';

/** Who is calling, proven by a client certificate that chains to our root and is not revoked. */
export interface Caller {
  kind: IdentityKind;
  name: string;
  serial: string;
}

/**
 * The caller's identity from the TLS client certificate. The TLS layer has already checked the
 * chain to our root (`requestCert` with our CA; `authorized` says whether it passed); TLS does not
 * read our CRL, so revocation is checked here against the CA ledger. The identity comes from the
 * SAN URI `urn:ncbnet:<kind>:<name>` that only our CA writes. `want` is one kind or several
 * (the member directory serves countries and operators alike).
 */
export function callerOf(req: FastifyRequest, ca: CertificateAuthority, want: IdentityKind | readonly IdentityKind[]): Caller {
  const kinds: readonly IdentityKind[] = typeof want === 'string' ? [want] : want;
  const wanted = kinds.join(' or ');
  const socket = req.raw.socket as TLSSocket;
  const peer = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate() : undefined;
  if (!peer || !peer.raw || Object.keys(peer).length === 0) {
    throw new HubError(AUTH_CLIENT_CERT_REQUIRED, `this endpoint needs a ${wanted} client certificate`);
  }
  if (!socket.authorized) {
    throw new HubError(AUTH_CLIENT_CERT_REQUIRED, `client certificate refused: ${String(socket.authorizationError)}`);
  }
  const serial = normalizeSerial(peer.serialNumber);
  const known = ca.ledger.get(serial);
  if (!known) throw new HubError(AUTH_WRONG_IDENTITY, `client certificate ${serial} was not issued by this hub`);
  if (known.revokedAt) throw new HubError(AUTH_WRONG_IDENTITY, `client certificate ${serial} was revoked at ${known.revokedAt}`);
  const uris = (peer.subjectaltname ?? '')
    .split(', ')
    .filter((s) => s.startsWith('URI:'))
    .map((s) => parseIdentityUri(s.slice(4)));
  const id = uris.find((u) => u !== undefined);
  if (!id || !kinds.includes(id.kind)) throw new HubError(AUTH_WRONG_IDENTITY, `this endpoint needs a ${wanted} certificate; this one is ${id ? `${id.kind} ${id.name}` : 'not an ncbnet identity'}`);
  return { kind: id.kind, name: id.name, serial };
}

/**
 * An `onRequest` hook that lets only operators through (admin and audit routes): it runs before
 * body parsing and validation, so a stranger learns nothing, not even which bodies would pass.
 */
export function operatorOnly(ca: CertificateAuthority) {
  return (req: FastifyRequest, _reply: unknown, next: (err?: Error) => void): void => {
    try {
      const caller = callerOf(req, ca, 'operator');
      operators.set(req, caller.name);
      req.log.debug({ operator: caller.name, url: req.url }, 'operator request');
      next();
    } catch (err) {
      next(err as Error);
    }
  };
}

/** The operator each request passed {@link operatorOnly} as; a WeakMap, so nothing outlives its request. */
const operators = new WeakMap<FastifyRequest, string>();

/** The audit `actor` of a request that went through {@link operatorOnly}: `operator:<name>`. */
export function operatorActor(req: FastifyRequest): string {
  const name = operators.get(req);
  return name === undefined ? 'operator' : `operator:${name}`;
}
