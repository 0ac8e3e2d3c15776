import t from 'tap';
import fc from 'fast-check';
import {
  AUDIT_EVENTS,
  EMPTY_TAIL,
  GENESIS_PREV,
  canonicalJson,
  chainNext,
  checkLink,
  decodeAuditRecord,
  encodeAuditRecord,
  envelopeDigest,
  hashRecord,
  verifyChain,
  type AuditFields,
  type AuditRecord,
  type ChainTail,
} from './audit.js';
import { countryCodes } from './country.js';
import { newUlid } from './envelope.js';

const CODES = countryCodes();
const cc = fc.constantFrom(...CODES);
const hex64 = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('hex'));

/** Any valid set of fields a caller may append. */
const fieldsArb: fc.Arbitrary<AuditFields> = fc
  .tuple(
    fc.record(
      {
        event: fc.constantFrom(...AUDIT_EVENTS),
        messageId: fc.option(fc.stringMatching(/^[0-7][0-9A-HJKMNP-TV-Z]{25}$/), { nil: null }),
        from: cc,
        to: fc.uniqueArray(cc, { maxLength: 5 }),
        country: cc,
        actor: fc.string({ minLength: 1, maxLength: 20 }),
        code: fc.stringMatching(/^[A-Z][A-Z0-9_]{0,20}$/),
        problems: fc.array(fc.string({ maxLength: 40 }), { maxLength: 4 }),
        envelopeSha256: hex64,
      },
      { requiredKeys: ['event'] },
    ),
    fc.option(fc.integer({ min: 1, max: 2 ** 40 }), { nil: undefined }),
  )
  // `seqs` holds one DELIVER sequence per recipient, so it can only come with `to`.
  .map(([fields, firstSeq]) => (firstSeq === undefined || fields.to === undefined ? fields : { ...fields, seqs: fields.to.map((_, i) => firstSeq + i) }));

function chainOf(fields: readonly AuditFields[], start = Date.parse('2025-01-01T00:00:00Z')): AuditRecord[] {
  const out: AuditRecord[] = [];
  let tail: ChainTail = EMPTY_TAIL;
  fields.forEach((f, i) => {
    const r = chainNext(tail, f, new Date(start + i * 1000));
    out.push(r);
    tail = { seq: r.seq, hash: r.hash };
  });
  return out;
}

/** A copy of `r` with one field changed to a different value of a plausible kind. */
function altered(r: AuditRecord, key: string, salt: number): Record<string, unknown> {
  const copy: Record<string, unknown> = structuredClone(r);
  const old = copy[key];
  if (typeof old === 'number') copy[key] = old + 1 + salt;
  else if (typeof old === 'string' && /^[0-9a-f]{64}$/.test(old)) copy[key] = old.slice(0, -1) + (old.endsWith('0') ? '1' : '0');
  else if (key === 'at') copy[key] = new Date(Date.parse(String(old)) + 1000 + salt).toISOString();
  else if (key === 'event') copy[key] = AUDIT_EVENTS[(AUDIT_EVENTS.indexOf(old as never) + 1 + salt) % AUDIT_EVENTS.length];
  else if (key === 'from' || key === 'country') copy[key] = old === 'FR' ? 'DE' : 'FR';
  else if (key === 'to') copy[key] = Array.isArray(old) && old.includes('FR') ? [] : ['FR'];
  else if (key === 'problems') copy[key] = [...(Array.isArray(old) ? (old as string[]) : []), 'x'];
  else if (key === 'seqs') copy[key] = (old as number[]).length === 0 ? [1] : (old as number[]).map((n) => n + 1 + salt);
  else if (key === 'messageId') copy[key] = old === null ? newUlid() : null;
  else copy[key] = `${String(old)}X`;
  return copy;
}

t.test('audit: canonical JSON is RFC 8785 (protocol/jcs.ts); undefined fields count as absent', async (t) => {
  t.equal(canonicalJson({ b: 1, a: [{ d: 'x', c: null }] }), '{"a":[{"c":null,"d":"x"}],"b":1}');
  t.equal(canonicalJson({ é: 1, z: 2, A: 3 }), '{"A":3,"z":2,"é":1}');
  t.throws(() => canonicalJson({ n: Number.NaN }), { code: 'AUDIT_RECORD_INVALID' });
  t.throws(() => canonicalJson({ u: undefined }), { code: 'AUDIT_RECORD_INVALID' });
  const plain = chainNext(EMPTY_TAIL, { event: 'routed' }, new Date(0));
  const withUndefined = chainNext(EMPTY_TAIL, { event: 'routed', code: undefined, to: undefined }, new Date(0));
  t.same(Object.keys(withUndefined), Object.keys(plain), 'nothing undefined is stored');
  t.equal(withUndefined.hash, plain.hash);
  t.equal(hashRecord({ ...plain, actor: undefined }), plain.hash);
  fc.assert(
    fc.property(fc.jsonValue(), (v) => {
      // The text parses back to a value with the same canonical text.
      const text = canonicalJson(v);
      t.equal(canonicalJson(JSON.parse(text)), text);
    }),
    { numRuns: 200 },
  );
});

t.test('audit: a lone surrogate in free text is replaced, so the record can be hashed', async (t) => {
  const r = chainNext(EMPTY_TAIL, { event: 'rejected', actor: 'a\uD800', problems: ['\uDC00x: unknown key'] });
  t.equal(r.actor, 'a\uFFFD');
  t.same(r.problems, ['\uFFFDx: unknown key']);
  t.same(verifyChain([r]), { ok: true, count: 1 });
  const forged = { ...r, actor: 'b\uD800' };
  t.match(verifyChain([forged]), { ok: false, seq: 1, reason: /not a valid audit record: .*lone surrogate/ });
});

t.test('audit: the first record chains on 64 zeros; hash covers everything but itself', async (t) => {
  const r = chainNext(EMPTY_TAIL, { event: 'routed', messageId: newUlid(), from: 'FR', to: ['DE', 'IT'], envelopeSha256: envelopeDigest('{"v":1}') }, new Date('2025-05-01T10:00:00Z'));
  t.match(r, { v: 1, seq: 1, at: '2025-05-01T10:00:00.000Z', prev: GENESIS_PREV });
  t.equal(r.hash, hashRecord(r));
  t.equal(hashRecord(r), hashRecord({ ...r, hash: 'ignored' }));
  t.equal(Buffer.from(encodeAuditRecord(r)).toString('utf8'), canonicalJson(r), 'the stored bytes are the canonical form');
  t.same(decodeAuditRecord(encodeAuditRecord(r)), r);
  t.equal(decodeAuditRecord(new Uint8Array([0xff, 0xfe])), undefined, 'bytes that are not UTF-8 JSON decode to nothing');
  t.same(verifyChain([]), { ok: true, count: 0 });
});

t.test('audit: chainNext refuses bad fields, listing every problem', async (t) => {
  t.throws(() => chainNext(EMPTY_TAIL, { event: 'nope' } as unknown as AuditFields), { code: 'AUDIT_RECORD_INVALID', message: /fields\.event/ });
  t.throws(() => chainNext(EMPTY_TAIL, { event: 'routed', from: 'UK', to: ['FR', 'FX'] }), { code: 'AUDIT_RECORD_INVALID', message: /fields\.from: not an assigned.*fields\.to\[1\]/ });
  t.throws(() => chainNext(EMPTY_TAIL, { event: 'routed', body: 'secret' } as unknown as AuditFields), { code: 'AUDIT_RECORD_INVALID', message: /fields\.body: unknown key/ });
  t.throws(() => chainNext({ seq: -1, hash: 'zz' }, { event: 'routed' }), { code: 'AUDIT_RECORD_INVALID', message: /prev\.seq.*prev\.hash/ });
});

t.test('audit: seqs (DELIVER sequences of a routed record) line up with to; records without them stay valid', async (t) => {
  const withSeqs = chainNext(EMPTY_TAIL, { event: 'routed', messageId: newUlid(), from: 'FR', to: ['DE', 'IT'], seqs: [7, 8] });
  t.same(withSeqs.seqs, [7, 8]);
  const without = chainNext({ seq: 1, hash: withSeqs.hash }, { event: 'routed', messageId: newUlid(), from: 'FR', to: ['DE'] });
  t.same(verifyChain([withSeqs, without]), { ok: true, count: 2 }, 'old and new records chain together');
  t.throws(() => chainNext(EMPTY_TAIL, { event: 'routed', to: ['DE', 'IT'], seqs: [7] }), { code: 'AUDIT_RECORD_INVALID', message: /fields\.seqs: must hold one sequence per recipient in to \(got 1 for 2 recipients\)/ });
  t.throws(() => chainNext(EMPTY_TAIL, { event: 'routed', seqs: [7] }), { code: 'AUDIT_RECORD_INVALID', message: /fields\.seqs: .*for no recipients/ });
  t.throws(() => chainNext(EMPTY_TAIL, { event: 'routed', to: ['DE'], seqs: [0] }), { code: 'AUDIT_RECORD_INVALID', message: /fields\.seqs\[0\]: must be >= 1/ });
});

t.test('audit: problems keep the path and the problem, never the quoted value', async (t) => {
  const r = chainNext(EMPTY_TAIL, { event: 'rejected', code: 'ENVELOPE_INVALID', problems: ['subject: must be at most 512 characters (got "the suspect (name) lives at…")', 'to[0]: required'] });
  t.same(r.problems, ['subject: must be at most 512 characters', 'to[0]: required']);
});

t.test('audit: any sequence of records chains and verifies', async () => {
  fc.assert(
    fc.property(fc.array(fieldsArb, { maxLength: 30 }), (fields) => {
      const chain = chainOf(fields);
      chain.forEach((r, i) => {
        if (r.seq !== i + 1) throw new Error(`seq ${r.seq} at ${i}`);
        if (r.prev !== (i === 0 ? GENESIS_PREV : chain[i - 1]?.hash)) throw new Error(`prev at ${i}`);
      });
      const verdict = verifyChain(chain.map((r) => decodeAuditRecord(encodeAuditRecord(r))));
      if (!verdict.ok || verdict.count !== fields.length) throw new Error(JSON.stringify(verdict));
    }),
    { numRuns: 200 },
  );
});

t.test('audit: altering any field of any record is reported at that record', async () => {
  fc.assert(
    fc.property(fc.array(fieldsArb, { minLength: 1, maxLength: 12 }), fc.nat(), fc.nat(), fc.nat(5), (fields, i, k, salt) => {
      const chain: unknown[] = chainOf(fields);
      const at = i % chain.length;
      const victim = chain[at] as AuditRecord;
      const keys = Object.keys(victim);
      const key = keys[k % keys.length] ?? 'seq';
      chain[at] = altered(victim, key, salt);
      const verdict = verifyChain(chain);
      if (verdict.ok || verdict.seq !== at + 1) throw new Error(`${key} of record ${at + 1}: ${JSON.stringify(verdict)}`);
    }),
    { numRuns: 500 },
  );
});

t.test('audit: adding or removing a field of a record is reported at that record', async (t) => {
  const chain = chainOf([{ event: 'routed', from: 'FR', to: ['DE'] }, { event: 'rejected', from: 'FR', code: 'ROUTER_EXPIRED' }, { event: 'revoked', country: 'DE' }]);
  const { code: _dropped, ...withoutCode } = chain[1] as AuditRecord;
  t.match(verifyChain([chain[0], withoutCode, chain[2]]), { ok: false, seq: 2, reason: /bad hash/ });
  t.match(verifyChain([chain[0], { ...chain[1], actor: 'mallory' }, chain[2]]), { ok: false, seq: 2, reason: /bad hash/ });
  t.match(verifyChain([chain[0], { ...chain[1], extra: 1 }, chain[2]]), { ok: false, seq: 2, reason: /not a valid audit record.*extra: unknown key/ });
  t.match(verifyChain([chain[0], undefined, chain[2]]), { ok: false, seq: 2, reason: /not a valid audit record/ });
});

t.test('audit: deleting or reordering one record is reported at the first position that changed', async () => {
  fc.assert(
    fc.property(fc.array(fieldsArb, { minLength: 2, maxLength: 15 }), fc.nat(), fc.nat(), fc.boolean(), (fields, i, j, isDelete) => {
      const chain: AuditRecord[] = chainOf(fields);
      const a = i % chain.length;
      let expected: number;
      if (isDelete) {
        chain.splice(a, 1);
        // Deleting the last record leaves a shorter chain that still holds: only the tail's
        // anchor (the stream's sequence, or a copy of the last hash) can tell; see the log tests.
        if (a === chain.length) {
          if (!verifyChain(chain).ok) throw new Error('prefix must verify');
          return;
        }
        expected = a + 1;
      } else {
        const b = j % chain.length === a ? (a + 1) % chain.length : j % chain.length;
        const ra = chain[a] as AuditRecord;
        chain[a] = chain[b] as AuditRecord;
        chain[b] = ra;
        expected = Math.min(a, b) + 1;
      }
      const verdict = verifyChain(chain);
      if (verdict.ok || verdict.seq !== expected) throw new Error(`${isDelete ? 'delete' : 'swap'} at ${a}: want ${expected}, got ${JSON.stringify(verdict)}`);
    }),
    { numRuns: 500 },
  );
});

t.test('audit: checkLink reasons name what is wrong', async (t) => {
  const [r1, r2] = chainOf([{ event: 'routed' }, { event: 'deleted' }]) as [AuditRecord, AuditRecord];
  const tail1 = { seq: 1, hash: r1.hash };
  t.equal(checkLink(tail1, r2, 2), undefined);
  t.match(checkLink(tail1, r2, 3), /seq gap: record says 2, expected 3/);
  t.match(checkLink({ seq: 1, hash: GENESIS_PREV }, r2, 2), /bad prev/);
  t.match(checkLink(tail1, { ...r2, hash: GENESIS_PREV }, 2), /bad hash: stored 0{64}, computed/);
});
