import { deepStrictEqual } from 'node:assert/strict';
import fc from 'fast-check';
import t from 'tap';
import { JcsError, MAX_JCS_DEPTH, canonicalize } from './jcs.js';

// The test data of RFC 8785's reference implementation (github.com/cyberphone/json-canonicalization,
// testdata/input and testdata/outhex): input JSON text, and the canonical form as UTF-8 bytes in hex.
const VECTORS: Record<string, { input: string; hex: string }> = {
  arrays: {
    input: '[\n  56,\n  {\n    "d": true,\n    "10": null,\n    "1": [ ]\n  }\n]\n',
    hex: '5b 35 36 2c 7b 22 31 22 3a 5b 5d 2c 22 31 30 22 3a 6e 75 6c 6c 2c 22 64 22 3a 74 72 75 65 7d 5d',
  },
  french: {
    input: '{\n  "peach": "This sorting order",\n  "péché": "is wrong according to French",\n  "pêche": "but canonicalization MUST",\n  "sin":   "ignore locale"\n}\n',
    hex: `7b 22 70 65 61 63 68 22 3a 22 54 68 69 73 20 73 6f 72 74 69 6e 67 20 6f 72 64 65 72 22 2c 22 70
      c3 a9 63 68 c3 a9 22 3a 22 69 73 20 77 72 6f 6e 67 20 61 63 63 6f 72 64 69 6e 67 20 74 6f 20 46
      72 65 6e 63 68 22 2c 22 70 c3 aa 63 68 65 22 3a 22 62 75 74 20 63 61 6e 6f 6e 69 63 61 6c 69 7a
      61 74 69 6f 6e 20 4d 55 53 54 22 2c 22 73 69 6e 22 3a 22 69 67 6e 6f 72 65 20 6c 6f 63 61 6c 65
      22 7d`,
  },
  structures: {
    input: '{\n  "1": {"f": {"f": "hi","F": 5} ,"\\n": 56.0},\n  "10": { },\n  "": "empty",\n  "a": { },\n  "111": [ {"e": "yes","E": "no" } ],\n  "A": { }\n}',
    hex: `7b 22 22 3a 22 65 6d 70 74 79 22 2c 22 31 22 3a 7b 22 5c 6e 22 3a 35 36 2c 22 66 22 3a 7b 22 46
      22 3a 35 2c 22 66 22 3a 22 68 69 22 7d 7d 2c 22 31 30 22 3a 7b 7d 2c 22 31 31 31 22 3a 5b 7b 22
      45 22 3a 22 6e 6f 22 2c 22 65 22 3a 22 79 65 73 22 7d 5d 2c 22 41 22 3a 7b 7d 2c 22 61 22 3a 7b
      7d 7d`,
  },
  unicode: {
    input: '{\n  "Unnormalized Unicode":"A\\u030a"\n}',
    hex: '7b 22 55 6e 6e 6f 72 6d 61 6c 69 7a 65 64 20 55 6e 69 63 6f 64 65 22 3a 22 41 cc 8a 22 7d',
  },
  values: {
    input:
      '{\n  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],\n  "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",\n  "literals": [null, true, false]\n}',
    hex: `7b 22 6c 69 74 65 72 61 6c 73 22 3a 5b 6e 75 6c 6c 2c 74 72 75 65 2c 66 61 6c 73 65 5d 2c 22 6e
      75 6d 62 65 72 73 22 3a 5b 33 33 33 33 33 33 33 33 33 2e 33 33 33 33 33 33 33 2c 31 65 2b 33 30
      2c 34 2e 35 2c 30 2e 30 30 32 2c 31 65 2d 32 37 5d 2c 22 73 74 72 69 6e 67 22 3a 22 e2 82 ac 24
      5c 75 30 30 30 66 5c 6e 41 27 42 5c 22 5c 5c 5c 5c 5c 22 2f 22 7d`,
  },
  weird: {
    input:
      '{\n  "\\u20ac": "Euro Sign",\n  "\\r": "Carriage Return",\n  "\\u000a": "Newline",\n  "1": "One",\n  "\\u0080": "Control\\u007f",\n  "\\ud83d\\ude02": "Smiley",\n  "\\u00f6": "Latin Small Letter O With Diaeresis",\n  "\\ufb33": "Hebrew Letter Dalet With Dagesh",\n  "</script>": "Browser Challenge"\n}',
    hex: `7b 22 5c 6e 22 3a 22 4e 65 77 6c 69 6e 65 22 2c 22 5c 72 22 3a 22 43 61 72 72 69 61 67 65 20 52
      65 74 75 72 6e 22 2c 22 31 22 3a 22 4f 6e 65 22 2c 22 3c 2f 73 63 72 69 70 74 3e 22 3a 22 42 72
      6f 77 73 65 72 20 43 68 61 6c 6c 65 6e 67 65 22 2c 22 c2 80 22 3a 22 43 6f 6e 74 72 6f 6c 7f 22
      2c 22 c3 b6 22 3a 22 4c 61 74 69 6e 20 53 6d 61 6c 6c 20 4c 65 74 74 65 72 20 4f 20 57 69 74 68
      20 44 69 61 65 72 65 73 69 73 22 2c 22 e2 82 ac 22 3a 22 45 75 72 6f 20 53 69 67 6e 22 2c 22 f0
      9f 98 82 22 3a 22 53 6d 69 6c 65 79 22 2c 22 ef ac b3 22 3a 22 48 65 62 72 65 77 20 4c 65 74 74
      65 72 20 44 61 6c 65 74 20 57 69 74 68 20 44 61 67 65 73 68 22 7d`,
  },
};

// IEEE-754 bit patterns and their ECMAScript serialization, from the same repository's testdata/README.md.
const NUMBERS: [string, string][] = [
  ['4340000000000001', '9007199254740994'],
  ['4340000000000002', '9007199254740996'],
  ['444b1ae4d6e2ef50', '1e+21'],
  ['3eb0c6f7a0b5ed8d', '0.000001'],
  ['3eb0c6f7a0b5ed8c', '9.999999999999997e-7'],
  ['8000000000000000', '0'],
  ['0', '0'],
];

function fromBits(hex: string): number {
  return Buffer.from(hex.padStart(16, '0'), 'hex').readDoubleBE(0);
}

function problemOf(value: unknown): string {
  try {
    canonicalize(value);
  } catch (err) {
    if (err instanceof JcsError && err.code === 'JCS_UNSUPPORTED_VALUE') return err.problem;
    throw err;
  }
  return 'accepted';
}

/** The same JSON value with every object's keys in a random order (defineProperty keeps `__proto__` a plain key). */
function shuffled(value: unknown, random: () => number): unknown {
  if (Array.isArray(value)) return value.map((v) => shuffled(v, random));
  if (typeof value !== 'object' || value === null) return value;
  const entries = Object.entries(value).sort(() => random() - 0.5);
  const out = {};
  for (const [k, v] of entries) Object.defineProperty(out, k, { value: shuffled(v, random), enumerable: true, writable: true, configurable: true });
  return out;
}

t.test('jcs: the RFC 8785 reference test vectors give the expected bytes', async (t) => {
  for (const [name, { input, hex }] of Object.entries(VECTORS)) {
    const bytes = Buffer.from(canonicalize(JSON.parse(input)), 'utf8');
    t.equal(bytes.toString('hex'), hex.replace(/\s+/g, ''), name);
  }
  for (const [bits, text] of NUMBERS) t.equal(canonicalize(fromBits(bits)), text, `number ${bits}`);
  t.equal(canonicalize({ b: [1, { d: 2, c: null }], a: 'x' }), '{"a":"x","b":[1,{"c":null,"d":2}]}');
  // UTF-16 code units, not code points: U+1F600 (D83D DE00) sorts before U+FB33 although its code point is larger.
  t.equal(canonicalize({ '\uFB33': 1, '\u{1F600}': 2, é: 3 }), '{"é":3,"\u{1F600}":2,"\uFB33":1}');
  t.equal(canonicalize(Object.assign(Object.create(null) as object, { z: 1, a: 2 })), '{"a":2,"z":1}', 'null-prototype objects are plain');
});

t.test('jcs: values JSON cannot carry are refused with JCS_UNSUPPORTED_VALUE and a path', async (t) => {
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic['self'] = { back: cyclic };
  let deep: unknown = 0;
  for (let i = 0; i <= MAX_JCS_DEPTH; i++) deep = [deep];
  const cases: [string, unknown, RegExp][] = [
    ['NaN', { n: Number.NaN }, /^n: not a finite number \(got NaN\)$/],
    ['Infinity', [1, Number.POSITIVE_INFINITY], /^\(root\)\[1\]: not a finite number \(got Infinity\)$/],
    ['-Infinity', Number.NEGATIVE_INFINITY, /^\(root\): not a finite number/],
    ['undefined', undefined, /^\(root\): not a JSON value \(got undefined\)$/],
    ['undefined member', { a: { b: undefined } }, /^a\.b: not a JSON value \(got undefined\)$/],
    ['undefined element', [undefined], /^\(root\)\[0\]: not a JSON value/],
    // eslint-disable-next-line no-sparse-arrays -- a hole is what is being tested
    ['hole', [1, , 3], /^\(root\)\[1\]: not a JSON value/],
    ['function', { f: () => 1 }, /^f: not a JSON value \(got function\)$/],
    ['symbol', Symbol('s'), /got symbol/],
    ['bigint', 10n, /got bigint/],
    ['Map', new Map([['a', 1]]), /not a plain object \(got Map\)/],
    ['Date', { at: new Date(0) }, /^at: not a plain object \(got Date\)$/],
    ['Uint8Array', new Uint8Array(2), /got Uint8Array/],
    ['symbol key', { [Symbol('k')]: 1 }, /symbol keys/],
    ['lone surrogate', { s: 'a\uD800b' }, /^s: string with a lone surrogate/],
    ['lone surrogate key', { '\uDC00': 1 }, /key with a lone surrogate/],
    ['cycle', cyclic, /^self\.back: cycle/],
    ['depth', deep, /nested deeper than 256 levels/],
  ];
  for (const [name, value, problem] of cases) t.match(problemOf(value), problem, name);
  t.equal(problemOf({ shared: [1], again: [1] }), 'accepted', 'a repeated value is not a cycle');
  const shared = [1];
  t.equal(canonicalize({ a: shared, b: shared }), '{"a":[1],"b":[1]}', 'the same array twice is fine');
});

t.test('jcs: properties — key order independence, idempotence, round trip, agreement with sorted JSON.stringify', async (t) => {
  const json = fc.jsonValue({ stringUnit: 'grapheme' });
  fc.assert(
    fc.property(json, fc.integer(), (value, seed) => {
      let state = seed;
      const random = (): number => ((state = (state * 1103515245 + 12345) % 2 ** 31) & 0xffff) / 0x10000;
      return canonicalize(shuffled(value, random)) === canonicalize(value);
    }),
    { numRuns: 500 },
  );
  fc.assert(
    fc.property(json, (value) => {
      const once = canonicalize(value);
      if (canonicalize(JSON.parse(once)) !== once) throw new Error('not idempotent');
      // Equal in the Object.is sense, except that -0 comes back as 0 (RFC 8785 §3.2.2.3 writes it "0").
      deepStrictEqual(JSON.parse(once), minusZeroAsZero(value));
      // An oracle: JSON.stringify of the value with keys pre-sorted is the canonical form.
      if (JSON.stringify(shuffled(value, () => 0), sortedReplacer) !== once) throw new Error('differs from sorted JSON.stringify');
    }),
    { numRuns: 1000 },
  );
  t.pass('all properties held');
});

function minusZeroAsZero(value: unknown): unknown {
  if (Object.is(value, -0)) return 0;
  if (Array.isArray(value)) return value.map(minusZeroAsZero);
  if (typeof value !== 'object' || value === null) return value;
  const out = {};
  for (const [k, v] of Object.entries(value)) Object.defineProperty(out, k, { value: minusZeroAsZero(v), enumerable: true, writable: true, configurable: true });
  return out;
}

// A JSON.stringify replacer that emits object members in code-unit order.
function sortedReplacer(this: unknown, _key: string, value: unknown): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return value;
  const out = {};
  for (const k of Object.keys(value).sort()) Object.defineProperty(out, k, { value: (value as Record<string, unknown>)[k], enumerable: true, writable: true, configurable: true });
  return out;
}
