/**
 * RFC 8785 JSON Canonicalization Scheme (JCS): the one byte form of a JSON value that every
 * signer and verifier computes alike, whatever key order or number spelling the wire used.
 * Envelope signatures are made over it (ARCHITECTURE, "Messages"). Pure: no I/O.
 */
import { JcsError } from './envelope-errors.js';
import { describeValue } from './validate.js';

export { JCS_UNSUPPORTED_VALUE, JcsError } from './envelope-errors.js';

/**
 * Deeper nesting is refused rather than left to exhaust the stack (a RangeError would not say
 * which value was at fault). Far beyond anything ncbnet signs: an envelope nests two levels.
 */
export const MAX_JCS_DEPTH = 256;

// A high surrogate not followed by a low one, or a low one not preceded by a high one.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** True when `text` holds a UTF-16 surrogate that is not half of a pair (so it is not Unicode text). */
export function hasLoneSurrogate(text: string): boolean {
  return LONE_SURROGATE.test(text);
}

/**
 * The RFC 8785 canonical form of `value`:
 * - object keys sorted by UTF-16 code units (§3.2.3), which is what the default
 *   `Array.prototype.sort` compares, so no locale can creep in;
 * - numbers in ECMAScript `Number.prototype.toString` form (§3.2.2.3), e.g. `1e+30`, `4.5`, `0`
 *   for -0, which is what `JSON.stringify` emits for a finite number;
 * - strings with the minimal JSON escapes of ECMAScript `JSON.stringify` (§3.2.2.2);
 * - no whitespace.
 *
 * Throws {@link JcsError} (`JCS_UNSUPPORTED_VALUE`) for anything that is not I-JSON data
 * (RFC 7493): `undefined` (also as an object member or array element), functions, symbols,
 * bigints, NaN and ±Infinity, strings with lone surrogates, objects other than plain ones
 * (Date, Map, typed arrays: `JSON.stringify` would silently turn them into something else),
 * cycles, and nesting deeper than {@link MAX_JCS_DEPTH}.
 */
export function canonicalize(value: unknown): string {
  return serialize(value, '(root)', []);
}

function serialize(value: unknown, path: string, ancestors: object[]): string {
  switch (typeof value) {
    case 'string':
      if (hasLoneSurrogate(value)) throw new JcsError(`${path}: string with a lone surrogate (got ${describeValue(value)})`);
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new JcsError(`${path}: not a finite number (got ${String(value)})`);
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      if (value === null) return 'null';
      return serializeContainer(value, path, ancestors);
    default:
      // undefined, function, symbol, bigint: JSON has no such value.
      throw new JcsError(`${path}: not a JSON value (got ${typeof value})`);
  }
}

function serializeContainer(value: object, path: string, ancestors: object[]): string {
  if (ancestors.includes(value)) throw new JcsError(`${path}: cycle (got a reference to an enclosing value)`);
  if (ancestors.length >= MAX_JCS_DEPTH) throw new JcsError(`${path}: nested deeper than ${MAX_JCS_DEPTH} levels`);
  ancestors.push(value);
  try {
    if (Array.isArray(value)) {
      const parts: string[] = [];
      // An index loop, not map(): map skips holes, which must be refused like undefined.
      for (let i = 0; i < value.length; i++) parts.push(serialize((value as unknown[])[i], `${path}[${i}]`, ancestors));
      return `[${parts.join(',')}]`;
    }
    const proto: unknown = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      throw new JcsError(`${path}: not a plain object (got ${describeConstructor(value)})`);
    }
    if (Object.getOwnPropertySymbols(value).length > 0) throw new JcsError(`${path}: has symbol keys, which JSON cannot hold`);
    const record = value as Record<string, unknown>;
    const parts: string[] = [];
    for (const key of Object.keys(record).sort()) {
      const at = path === '(root)' ? key : `${path}.${key}`;
      if (hasLoneSurrogate(key)) throw new JcsError(`${at}: key with a lone surrogate (got ${describeValue(key)})`);
      parts.push(`${JSON.stringify(key)}:${serialize(record[key], at, ancestors)}`);
    }
    return `{${parts.join(',')}}`;
  } finally {
    ancestors.pop();
  }
}

function describeConstructor(value: object): string {
  const ctor: unknown = (value as { constructor?: unknown }).constructor;
  return typeof ctor === 'function' && ctor.name !== '' ? ctor.name : 'an object with a prototype';
}
