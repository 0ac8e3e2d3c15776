import { createHash } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { REVOCATION_REASONS, type CertificateState } from './ledger.js';
import type { x509 } from './x509.js';

/** How long a relying party may cache an answer (RFC 6960 nextUpdate). */
export const DEFAULT_OCSP_LIFETIME_MS = 60 * 60 * 1000;
/** More single requests than this in one OCSP request is refused as malformed: it is not a real client. */
export const MAX_OCSP_REQUESTS = 32;

const OID_BASIC_RESPONSE = '1.3.6.1.5.5.7.48.1.1';
const OID_NONCE = '1.3.6.1.5.5.7.48.1.2';
const HASHES: Readonly<Record<string, string>> = {
  '1.3.14.3.2.26': 'sha1',
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
};

/** RFC 6960 §4.2.1 OCSPResponseStatus. */
export const OcspStatus = { successful: 0, malformedRequest: 1, internalError: 2 } as const;

export interface OcspContext {
  issuer: x509.X509Certificate;
  key: CryptoKey;
  now: Date;
  lookup: (serial: string) => CertificateState | undefined;
  lifetimeMs?: number;
}

function statusOnly(status: number): Uint8Array {
  const resp = new pkijs.OCSPResponse({ responseStatus: new asn1js.Enumerated({ value: status }) });
  return new Uint8Array(resp.toSchema().toBER(false));
}

function hex(view: Uint8Array): string {
  return Buffer.from(view).toString('hex');
}

/** Both hashes that identify an issuer in a CertID (§4.1.1), for one hash algorithm. */
function issuerHashes(issuer: pkijs.Certificate, algorithm: string): { name: string; key: string } {
  const nameDer = new Uint8Array(issuer.subject.toSchema().toBER(false));
  const keyBits = issuer.subjectPublicKeyInfo.subjectPublicKey.valueBlock.valueHexView;
  return {
    name: createHash(algorithm).update(nameDer).digest('hex'),
    key: createHash(algorithm).update(keyBits).digest('hex'),
  };
}

/** Whole seconds: RFC 5280 §4.1.2.5.2 forbids fractional GeneralizedTime, and strict OCSP clients follow it. */
function wholeSeconds(date: Date): Date {
  return new Date(Math.floor(date.getTime() / 1000) * 1000);
}

function certStatus(state: CertificateState | undefined): asn1js.BaseBlock {
  if (!state) return new asn1js.Primitive({ idBlock: { tagClass: 3, tagNumber: 2 } }); // unknown [2] NULL
  if (!state.revokedAt) return new asn1js.Primitive({ idBlock: { tagClass: 3, tagNumber: 0 } }); // good [0] NULL
  const value: asn1js.BaseBlock[] = [new asn1js.GeneralizedTime({ valueDate: wholeSeconds(new Date(state.revokedAt)) })];
  const reason = REVOCATION_REASONS[state.reason ?? 'unspecified'];
  if (reason !== 0) {
    value.push(new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber: 0 }, value: [new asn1js.Enumerated({ value: reason })] }));
  }
  return new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber: 1 }, value }); // revoked [1] RevokedInfo
}

/**
 * Answers an OCSP request (DER) for certificates of `issuer`: good, revoked (time and reason) or
 * unknown (not issued by this CA, or asked about another issuer). Signed by the issuing CA
 * itself (§4.2.2.2 allows it), ecdsa-with-SHA256, responder ID by key hash, nonce echoed.
 * Garbage gets a `malformedRequest` response, never an exception.
 */
export async function respondOcsp(requestDer: Uint8Array, ctx: OcspContext): Promise<Uint8Array> {
  let request: pkijs.OCSPRequest;
  try {
    request = pkijs.OCSPRequest.fromBER(new Uint8Array(requestDer));
  } catch {
    return statusOnly(OcspStatus.malformedRequest);
  }
  const entries = request.tbsRequest.requestList;
  if (entries.length === 0 || entries.length > MAX_OCSP_REQUESTS) return statusOnly(OcspStatus.malformedRequest);

  const issuer = pkijs.Certificate.fromBER(new Uint8Array(ctx.issuer.rawData));
  const hashesByAlg = new Map<string, { name: string; key: string }>();
  const thisUpdate = wholeSeconds(ctx.now);
  const nextUpdate = new Date(thisUpdate.getTime() + (ctx.lifetimeMs ?? DEFAULT_OCSP_LIFETIME_MS));
  const responses: pkijs.SingleResponse[] = [];
  for (const { reqCert } of entries) {
    const alg = HASHES[reqCert.hashAlgorithm.algorithmId];
    let state: CertificateState | undefined;
    if (alg) {
      const ours = hashesByAlg.get(alg) ?? issuerHashes(issuer, alg);
      hashesByAlg.set(alg, ours);
      const sameIssuer = hex(reqCert.issuerNameHash.valueBlock.valueHexView) === ours.name && hex(reqCert.issuerKeyHash.valueBlock.valueHexView) === ours.key;
      const serial = hex(reqCert.serialNumber.valueBlock.valueHexView);
      state = sameIssuer && /^[0-9a-f]{2,40}$/.test(serial) ? ctx.lookup(serial) : undefined;
    }
    responses.push(new pkijs.SingleResponse({ certID: reqCert, certStatus: certStatus(state), thisUpdate, nextUpdate }));
  }

  const basic = new pkijs.BasicOCSPResponse();
  const keyHash = createHash('sha1').update(issuer.subjectPublicKeyInfo.subjectPublicKey.valueBlock.valueHexView).digest();
  basic.tbsResponseData.responderID = new asn1js.OctetString({ valueHex: keyHash });
  basic.tbsResponseData.producedAt = thisUpdate;
  basic.tbsResponseData.responses = responses;
  const nonce = request.tbsRequest.requestExtensions?.find((e) => e.extnID === OID_NONCE);
  if (nonce) basic.tbsResponseData.responseExtensions = [nonce];
  basic.certs = [issuer];
  await basic.sign(ctx.key, 'SHA-256');

  const response = new pkijs.OCSPResponse({
    responseStatus: new asn1js.Enumerated({ value: OcspStatus.successful }),
    responseBytes: new pkijs.ResponseBytes({
      responseType: OID_BASIC_RESPONSE,
      response: new asn1js.OctetString({ valueHex: basic.toSchema().toBER(false) }),
    }),
  });
  return new Uint8Array(response.toSchema().toBER(false));
}
