/**
 * Message ids for the outbox: ULIDs that increase strictly within one agent, so "id order" is
 * submission order even for several messages in the same millisecond (plain {@link newUlid} is
 * random within a millisecond). This is the ULID spec's monotonic mode.
 */
import { newUlid, ulidTime } from '../../protocol/envelope.js';

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/**
 * A ULID greater than `last` (when given): a fresh one when the clock has moved past `last`'s
 * millisecond, else `last` plus one in its random part. Throws RangeError in the 2^-80 case of
 * an exhausted millisecond, as the spec says to.
 */
export function nextUlid(last: string | undefined, nowMs: number = Date.now()): string {
  const fresh = newUlid(nowMs);
  if (last === undefined || fresh > last) return fresh;
  // Clock at or behind `last`'s millisecond (same ms, or stepped back): continue from `last`.
  if (Number.isNaN(ulidTime(last))) return fresh;
  const chars = last.split('');
  for (let i = chars.length - 1; i >= 10; i--) {
    const digit = CROCKFORD.indexOf(chars[i] ?? '0');
    if (digit < 31) {
      chars[i] = CROCKFORD.charAt(digit + 1);
      return chars.join('');
    }
    chars[i] = '0';
  }
  throw new RangeError(`nextUlid: random part exhausted after ${last}`);
}
