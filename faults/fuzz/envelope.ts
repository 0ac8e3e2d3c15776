/**
 * Fuzz target (c): the envelope validator `parseEnvelope` (protocol/envelope.ts), which the hub's
 * router and every recipient agent run on bytes from the network. Inputs: random bytes, random and
 * hostile JSON, valid envelopes of every kind (shared arbitraries), near-valid ones (field edits),
 * and byte-level damage to valid encodings (cut, spliced, a byte flipped, keys duplicated).
 *
 * Oracle: `parseEnvelope` either returns an envelope with no problems, which re-encodes to the same
 * value and has a canonical signing input (so it can be signed and verified), or throws an
 * `EnvelopeError` with a parse-time code and at least one problem. Anything else — another
 * exception, a crash, a valid-by-construction envelope refused — counts as a failure.
 */
import fc from 'fast-check';
import { isDeepStrictEqual } from 'node:util';
import { ENVELOPE_INVALID, ENVELOPE_MALFORMED_JSON, ENVELOPE_TOO_LARGE, EnvelopeError, encodeEnvelope, envelopeProblems, parseEnvelope } from '../../protocol/envelope.js';
import { signingInput } from '../../protocol/signature.js';
import type { FaultContext } from '../lib/context.js';
import type { RowInput } from '../lib/report.js';
import { envelopeArb, ENVELOPE_KEYS, hostileJsonArb, mutatedArb } from './arbitraries.js';
import { fuzzSeed, runCases, Tally, type Judgement } from './tally.js';

const PARSE_CODES = new Set([ENVELOPE_MALFORMED_JSON, ENVELOPE_INVALID, ENVELOPE_TOO_LARGE]);
/** Small enough that the size check is reached by generated inputs too. */
const MAX_BYTES = 4096;

interface EnvelopeCase {
  input: Uint8Array | string;
  /** Built to be valid: refusing it is a failure (of the validator or of the arbitrary). */
  isValid: boolean;
}

const encode = (v: unknown): string => JSON.stringify(v) ?? 'null';

/** Byte-level damage to an encoded envelope. */
const damagedArb: fc.Arbitrary<Uint8Array> = fc
  .tuple(envelopeArb, fc.constantFrom('cut', 'flip', 'splice', 'dupkey', 'bom', 'latin1'), fc.nat())
  .map(([env, how, n]) => {
    const bytes = Buffer.from(encode(env), 'utf8');
    const at = bytes.length === 0 ? 0 : n % bytes.length;
    switch (how) {
      case 'cut':
        return bytes.subarray(0, at);
      case 'flip': {
        const copy = Buffer.from(bytes);
        copy[at] = (copy[at] ?? 0) ^ (1 << n % 8);
        return copy;
      }
      case 'splice':
        return Buffer.concat([bytes.subarray(0, at), Buffer.from([0xc3, 0x28, 0xff, 0x00]), bytes.subarray(at)]);
      case 'dupkey':
        // JSON.parse keeps the last of duplicate keys: the later `from` wins.
        return Buffer.from(encode(env).replace(/^\{/, '{"from":"DE",'), 'utf8');
      case 'bom':
        return Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), bytes]);
      default:
        return Buffer.from(encode(env), 'latin1');
    }
  });

const caseArb: fc.Arbitrary<EnvelopeCase> = fc.oneof(
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 600 }).map((input) => ({ input, isValid: false })) },
  { weight: 2, arbitrary: hostileJsonArb.map((v) => ({ input: encode(v), isValid: false })) },
  { weight: 3, arbitrary: envelopeArb.map((e) => ({ input: encode(e), isValid: true })) },
  { weight: 6, arbitrary: mutatedArb(envelopeArb as unknown as fc.Arbitrary<Record<string, unknown>>, ENVELOPE_KEYS).map((e) => ({ input: encode(e), isValid: false })) },
  { weight: 2, arbitrary: damagedArb.map((input) => ({ input, isValid: false })) },
  { weight: 1, arbitrary: envelopeArb.map((e) => ({ input: encode({ ...e, body: 'x'.repeat(MAX_BYTES) }), isValid: false })) },
);

/** Judges one input; returns the refusal code, 'accepted', or why the outcome is wrong. */
function judge(c: EnvelopeCase): Judgement {
  let env;
  try {
    env = parseEnvelope(c.input, { maxBytes: MAX_BYTES });
  } catch (err) {
    if (!(err instanceof EnvelopeError)) return { ok: false, kind: 'threw something else than EnvelopeError', why: `threw ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}` };
    if (!PARSE_CODES.has(err.code)) return { ok: false, kind: `refused with ${err.code}`, why: `refused with ${err.code}, not a parse-time code` };
    if (err.problems.length === 0) return { ok: false, kind: 'refused without problems', why: `${err.code} without problems` };
    if (c.isValid && err.code !== ENVELOPE_TOO_LARGE) return { ok: false, kind: 'valid envelope refused', why: `valid envelope refused: ${err.problems.join('; ')}` };
    return { ok: 'refused', code: err.code };
  }
  const problems = envelopeProblems(env);
  if (problems.length > 0) return { ok: false, kind: 'accepted with problems', why: `accepted with problems: ${problems.join('; ')}` };
  try {
    const again = parseEnvelope(encodeEnvelope(env, { maxBytes: MAX_BYTES * 2 }), { maxBytes: MAX_BYTES * 2 });
    if (!isDeepStrictEqual(again, env)) return { ok: false, kind: 'accepted, not stable through encode and parse', why: 'accepted, but does not survive encode → parse' };
    signingInput(env);
  } catch (err) {
    return { ok: false, kind: 'accepted, cannot be re-encoded or signed', why: `accepted, but cannot be re-encoded or signed: ${err instanceof Error ? err.message : String(err)}` };
  }
  return { ok: 'accepted' };
}

/** Runs `cases` generated inputs through `parseEnvelope`. */
export async function fuzzEnvelope(_ctx: FaultContext, cases: number): Promise<RowInput[]> {
  const tally = new Tally();
  const seed = fuzzSeed();
  const started = performance.now();
  await runCases(caseArb, cases, seed, (c) => {
    const verdict = judge(c);
    if (verdict.ok === false) tally.fail(verdict.kind, verdict.why, c.input);
    else if (verdict.ok === 'refused') tally.refuse(verdict.code);
    else tally.accept();
  });
  return [tally.row('fuzz: envelope validator parseEnvelope', performance.now() - started, seed)];
}
