import { randomBytes } from 'node:crypto';
import { PKI_SERIAL_MALFORMED, RevocationError } from './errors.js';

/**
 * A random 128-bit certificate serial as lower-case hex (RFC 5280 §4.1.2.2: positive, at most
 * 20 octets; CA/B BR §7.1: ≥ 64 bits from a CSPRNG). The top bit is cleared so the DER INTEGER
 * stays positive in 16 octets, and the first octet is non-zero so the encoding is minimal.
 */
export function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] as number) & 0x7f || 0x01;
  return bytes.toString('hex');
}

/**
 * Normalizes a serial typed by a person or a tool: accepts `0A:1B:…`, `0x0a1b…`, any case;
 * returns lower-case hex without leading zero octets. Throws `PKI_SERIAL_MALFORMED` otherwise.
 */
export function normalizeSerial(input: string): string {
  const hex = input.trim().replace(/^0x/i, '').replaceAll(':', '').toLowerCase();
  if (!/^[0-9a-f]{1,40}$/.test(hex)) {
    throw new RevocationError(PKI_SERIAL_MALFORMED, `serial: not a hexadecimal serial of at most 20 octets (got ${JSON.stringify(input.slice(0, 60))})`);
  }
  const even = hex.length % 2 ? `0${hex}` : hex;
  const trimmed = even.replace(/^(00)+(?=[0-9a-f]{2})/, '');
  return trimmed;
}
