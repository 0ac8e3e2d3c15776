// The key-derivation half of CMS key agreement (RFC 5753), apart from the message handling in
// cms.ts: pure functions of their inputs, checked through cms.test.ts's openssl round trips.
import * as asn1js from 'asn1js';
import { webcrypto } from './x509.js';

/** ANSI X9.63 KDF (RFC 5753 §7.2, SEC 1 §3.6.1): Hash(Z ‖ counter ‖ SharedInfo) for counter = 1, 2, … */
export async function x963Kdf(hash: string, z: ArrayBuffer, sharedInfo: Uint8Array, bits: number): Promise<Uint8Array<ArrayBuffer>> {
  const blocks: Uint8Array[] = [];
  for (let counter = 1, have = 0; have * 8 < bits; counter++) {
    const input = Buffer.alloc(z.byteLength + 4 + sharedInfo.byteLength);
    input.set(new Uint8Array(z), 0);
    input.writeUInt32BE(counter, z.byteLength);
    input.set(sharedInfo, z.byteLength + 4);
    const digest = new Uint8Array(await webcrypto.subtle.digest(hash, input));
    blocks.push(digest);
    have += digest.byteLength;
  }
  return new Uint8Array(Buffer.concat(blocks).subarray(0, bits / 8));
}

/**
 * DER ECC-CMS-SharedInfo (RFC 5753 §7.2). entityUInfo appears only when the sender sent a ukm:
 * pkijs encodes an empty one when it did not, so its own decrypt cannot read openssl's default
 * output (no ukm) — the reason this module derives the key-encryption key itself.
 */
export function eccCmsSharedInfo(wrapOid: string, withNullParams: boolean, ukm: Uint8Array | undefined, bits: number): Uint8Array {
  const keyInfo = new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: wrapOid }), ...(withNullParams ? [new asn1js.Null()] : [])] });
  const explicit = (tagNumber: number, bytes: Uint8Array) =>
    new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber }, value: [new asn1js.OctetString({ valueHex: bytes })] });
  const suppPubInfo = new Uint8Array(4);
  new DataView(suppPubInfo.buffer).setUint32(0, bits);
  const value: asn1js.BaseBlock[] = [keyInfo];
  if (ukm) value.push(explicit(0, ukm));
  value.push(explicit(2, suppPubInfo));
  return new Uint8Array(new asn1js.Sequence({ value }).toBER(false));
}
