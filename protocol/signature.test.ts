// Envelope signatures against a real throwaway CA (pki/): sign, verify, and every way a signature,
// a certificate or a sender can be wrong.
import fc from 'fast-check';
import t from 'tap';
import { initCa } from '../pki/ca-init.js';
import { CertificateAuthority } from '../pki/ca.js';
import { createCsr } from '../pki/csr-create.js';
import { generateP256, readPrivateKey } from '../pki/keys.js';
import type { IdentityKind } from './identity.js';
import { tempDir } from '../test/helpers/tmpdir.js';
import { EnvelopeError, encodeEnvelope, newUlid, parseEnvelope, type Envelope } from './envelope.js';
import { canonicalize } from './jcs.js';
import { signEnvelope, signingInput, verifyEnvelopeSignature, type VerifyEnvelopeOptions } from './signature.js';

interface Identity {
  keys: CryptoKeyPair;
  der: Uint8Array;
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

async function newCa(t: Parameters<typeof tempDir>[0], now?: Date): Promise<{ ca: CertificateAuthority; trust: VerifyEnvelopeOptions }> {
  const dir = await tempDir(t);
  await initCa(dir, now === undefined ? {} : { now });
  const ca = await CertificateAuthority.load(dir);
  return { ca, trust: { trustedRoots: [ca.root.toString('pem')], intermediates: [ca.issuer.toString('pem')] } };
}

async function issue(ca: CertificateAuthority, kind: IdentityKind, name: string): Promise<Identity> {
  const keys = await generateP256();
  const issued = await ca.issue({ kind, name, csr: await createCsr(kind, name, keys) });
  return { keys, der: new Uint8Array(issued.certificate.rawData), serial: issued.serial, notBefore: issued.notBefore, notAfter: issued.notAfter };
}

// One CA and its identities for the whole file: key generation is the slow part.
const main = await newCa(t);
const fr = await issue(main.ca, 'country', 'FR');
const de = await issue(main.ca, 'country', 'DE');

function draft(over: Partial<Envelope> = {}): Envelope {
  return {
    v: 1,
    id: newUlid(),
    kind: 'notice',
    notice: { colour: 'red' },
    from: 'FR',
    to: ['DE', 'IT'],
    priority: 'urgent',
    created: new Date().toISOString(),
    subject: 'Red notice',
    body: 'wanted for armed robbery — recherché',
    ...over,
  };
}

/** The code verification failed with, or 'verified'; anything but an EnvelopeError fails the test. */
async function outcome(env: Envelope, opts: VerifyEnvelopeOptions = main.trust): Promise<string> {
  try {
    await verifyEnvelopeSignature(env, opts);
    return 'verified';
  } catch (err) {
    if (!(err instanceof EnvelopeError)) throw err;
    if (err.problems.length !== 1) throw new Error(`expected one problem, got ${err.problems.length}`);
    return err.code;
  }
}

async function problem(env: Envelope, opts: VerifyEnvelopeOptions = main.trust): Promise<string> {
  try {
    await verifyEnvelopeSignature(env, opts);
  } catch (err) {
    if (err instanceof EnvelopeError) return `${err.code} ${err.problems.join(' | ')}`;
    throw err;
  }
  return 'verified';
}

t.test('signature: sign then verify names the signer; the signed envelope survives the wire', async (t) => {
  const signed = await signEnvelope(draft(), fr.keys.privateKey, fr.der);
  t.match(signed.sig, /^[A-Za-z0-9_-]{86}$/, '64 bytes, base64url');
  t.equal(signed.sigCert, Buffer.from(fr.der).toString('base64'));
  t.same(await verifyEnvelopeSignature(signed, main.trust), { country: 'FR', serial: fr.serial }, 'serial as the CA ledger writes it');
  const wire = parseEnvelope(encodeEnvelope(signed));
  t.same(await verifyEnvelopeSignature(wire, main.trust), { country: 'FR', serial: fr.serial }, 'after encode and parse');
  const resigned = await signEnvelope({ ...signed, subject: 'edited' }, fr.keys.privateKey, fr.der);
  t.equal(await outcome(resigned), 'verified', 'an old sig is replaced, not signed over');
  const encrypted = await signEnvelope(draft({ handling: 'confidential', body: undefined, encrypted: Buffer.from('ciphertext').toString('base64') }), fr.keys.privateKey, fr.der);
  t.equal(await outcome(encrypted), 'verified', 'encrypted content is signed as it travels');
  t.equal(await outcome({ ...encrypted, encrypted: Buffer.from('ciphertexu').toString('base64') }), 'ENVELOPE_BAD_SIGNATURE', 'so the ciphertext cannot be swapped');
  const withUndefined = await signEnvelope({ ...draft(), expires: undefined }, fr.keys.privateKey, fr.der);
  t.equal(await outcome(parseEnvelope(encodeEnvelope(withUndefined))), 'verified', 'an undefined member is signed as absent, as on the wire');
});

t.test('signature: the key order of the JSON does not matter (JCS)', async (t) => {
  const signed = await signEnvelope(draft(), fr.keys.privateKey, fr.der);
  const reversed = Object.fromEntries(Object.entries(signed).reverse()) as Envelope;
  t.not(JSON.stringify(reversed), JSON.stringify(signed), 'really another byte order');
  t.equal(await outcome(parseEnvelope(JSON.stringify(reversed))), 'verified');
  const { sig: _sig, ...unsigned } = signed;
  t.equal(Buffer.from(signingInput(reversed)).toString('utf8'), canonicalize(unsigned), 'what is signed is the JCS form without sig');
});

t.test('signature: one changed character in any field never verifies', async (t) => {
  const signed = await signEnvelope(draft({ to: ['DE', 'IT', 'ES'], body: 'VIN WVWZZZ1JZXW000001 seen in Lyon' }), fr.keys.privateKey, fr.der);
  const fields = ['id', 'from', 'created', 'subject', 'body', 'sigCert', 'sig', 'to', 'priority', 'kind'] as const;
  const changeChar = (text: string, at: number, delta: number): string => {
    const i = at % text.length;
    return text.slice(0, i) + String.fromCharCode(((text.charCodeAt(i) + delta) % 0x7f) + 1) + text.slice(i + 1);
  };
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...fields), fc.nat(), fc.integer({ min: 1, max: 125 }), async (field, at, delta) => {
      const copy = structuredClone(signed) as unknown as Record<string, unknown>;
      const value = copy[field];
      if (Array.isArray(value)) copy[field] = value.map((cc: string, i) => (i === at % value.length ? changeChar(cc, at, delta) : cc));
      else if (typeof value === 'string') copy[field] = changeChar(value, at, delta);
      const code = await outcome(copy as unknown as Envelope);
      if (code !== 'ENVELOPE_BAD_SIGNATURE' && code !== 'ENVELOPE_BAD_CERTIFICATE') throw new Error(`${field} changed: ${code}`);
    }),
    { numRuns: 400 },
  );
  // The same at the byte level: whatever still parses must fail verification.
  const bytes = encodeEnvelope(signed);
  let parsed = 0;
  await fc.assert(
    fc.asyncProperty(fc.nat({ max: bytes.length - 1 }), fc.integer({ min: 1, max: 255 }), async (at, delta) => {
      const changed = Uint8Array.from(bytes);
      changed[at] = ((changed[at] ?? 0) + delta) & 0xff;
      let env: Envelope;
      try {
        env = parseEnvelope(changed);
      } catch (err) {
        if (err instanceof EnvelopeError) return;
        throw err;
      }
      parsed++;
      const code = await outcome(env);
      if (code !== 'ENVELOPE_BAD_SIGNATURE' && code !== 'ENVELOPE_BAD_CERTIFICATE') throw new Error(`byte ${at} changed: ${code}`);
    }),
    { numRuns: 1500 },
  );
  t.ok(parsed > 100, `many changed envelopes still parsed and were refused (${parsed})`);
});

t.test('signature: the certificate must be the sender country, from this CA, valid, not revoked', async (t) => {
  const byDe = await signEnvelope(draft({ from: 'FR' }), de.keys.privateKey, de.der);
  t.equal(await problem(byDe), 'ENVELOPE_SENDER_MISMATCH from: must be DE, the country of the signing certificate (got "FR")');
  const deKeyFrCert = await signEnvelope(draft(), de.keys.privateKey, fr.der);
  t.match(await problem(deKeyFrCert), /^ENVELOPE_BAD_SIGNATURE sig: does not verify/, "another country's key under FR's certificate");

  const other = await newCa(t);
  const otherFr = await issue(other.ca, 'country', 'FR');
  const foreign = await signEnvelope(draft(), otherFr.keys.privateKey, otherFr.der);
  t.match(await problem(foreign), /^ENVELOPE_BAD_CERTIFICATE sigCert: does not chain to a trusted root/, 'another CA');
  t.equal(await outcome(foreign, { ...main.trust, intermediates: [...main.trust.intermediates, ...other.trust.intermediates] }), 'ENVELOPE_BAD_CERTIFICATE', 'its intermediate given is not enough');
  t.equal(await outcome(foreign, other.trust), 'verified', 'and fine for whoever trusts that CA');
  t.match(await problem(foreign), /^ENVELOPE_BAD_CERTIFICATE sigCert: does not chain/, 'a path found under other roots is not reused (chain cache)');
  const signed = await signEnvelope(draft(), fr.keys.privateKey, fr.der);
  t.equal(await outcome(signed, { ...main.trust, intermediates: [] }), 'ENVELOPE_BAD_CERTIFICATE', 'no path without the intermediate');

  t.equal(await problem(signed, { ...main.trust, isRevoked: (s) => s === fr.serial }), `ENVELOPE_CERT_REVOKED sigCert: revoked (got serial ${fr.serial}, CN=FR,OU=ncb,O=ncbnet)`);
  t.equal(await outcome(signed, { ...main.trust, isRevoked: (s) => s === de.serial }), 'verified', "someone else's revocation");

  t.match(await problem(signed, { ...main.trust, now: new Date(fr.notAfter.getTime() + 1000) }), /^ENVELOPE_BAD_CERTIFICATE sigCert: expired at /);
  t.match(await problem(signed, { ...main.trust, now: new Date(fr.notBefore.getTime() - 1000) }), /^ENVELOPE_BAD_CERTIFICATE sigCert: not valid before /);
  t.equal(await outcome(signed, { ...main.trust, now: new Date(fr.notAfter.getTime() - 1000) }), 'verified', 'valid until its last second');
  // A CA whose root and intermediate only start tomorrow, issuing a leaf valid today.
  const early = await newCa(t, new Date(Date.now() + 86_400_000));
  const earlyFr = await issue(early.ca, 'country', 'FR');
  const byEarly = await signEnvelope(draft(), earlyFr.keys.privateKey, earlyFr.der);
  t.match(await problem(byEarly, early.trust), /^ENVELOPE_BAD_CERTIFICATE sigCert: does not chain to a trusted root valid at/, 'every link must be valid now, not only the leaf');
  t.equal(await outcome(byEarly, { ...early.trust, now: new Date(Date.now() + 2 * 86_400_000) }), 'verified', 'and it verifies once they are');
  t.match(await problem(byEarly, early.trust), /^ENVELOPE_BAD_CERTIFICATE sigCert: does not chain/, 'a remembered path is not used outside its validity (chain cache)');
});

t.test('signature: CA and operator certificates cannot sign for a country', async (t) => {
  const caKey = await readPrivateKey(main.ca.paths.caKey);
  const byCa = await signEnvelope(draft(), caKey, new Uint8Array(main.ca.issuer.rawData));
  t.match(await problem(byCa), /^ENVELOPE_BAD_CERTIFICATE sigCert: a CA certificate cannot sign envelopes/);
  const admin = await issue(main.ca, 'operator', 'admin');
  const byOperator = await signEnvelope(draft(), admin.keys.privateKey, admin.der);
  t.match(await problem(byOperator), /^ENVELOPE_SENDER_MISMATCH sigCert: not a country certificate/);
});

t.test('signature: unsigned, unreadable and misconfigured cases each have their code', async (t) => {
  const signed = await signEnvelope(draft(), fr.keys.privateKey, fr.der);
  t.match(await problem({ ...signed, sig: undefined }), /^ENVELOPE_UNSIGNED sig: required/);
  t.match(await problem({ ...signed, sigCert: undefined }), /^ENVELOPE_UNSIGNED sigCert: required/);
  t.match(await problem(draft()), /^ENVELOPE_UNSIGNED/);
  t.match(await problem({ ...signed, sigCert: 'AAAA' }), /^ENVELOPE_BAD_CERTIFICATE sigCert: not a base64 DER X.509 certificate/);
  t.match(await problem({ ...signed, sigCert: `${signed.sigCert ?? ''}#` }), /^ENVELOPE_BAD_CERTIFICATE/, 'characters Buffer would skip');
  t.match(await problem({ ...signed, sig: 'short' }), /^ENVELOPE_BAD_SIGNATURE sig: not a base64url 64-byte/);
  t.match(await problem({ ...signed, body: 'half \ud800' }), /^ENVELOPE_BAD_SIGNATURE \(root\): has no canonical JSON form/);
  await t.rejects(verifyEnvelopeSignature(signed, { trustedRoots: ['not a certificate'], intermediates: [] }), { code: 'ENVELOPE_TRUST_CONFIG', problems: [/^trustedRoots\[0\]: not a PEM certificate/] });
  await t.rejects(
    verifyEnvelopeSignature(signed, { ...main.trust, isRevoked: () => { throw new RangeError('ledger down'); } }),
    RangeError,
    "the verifier's own failure is passed through, not blamed on the sender",
  );

  await t.rejects(signEnvelope(draft({ kind: 'reply' }), fr.keys.privateKey, fr.der), { code: 'ENVELOPE_INVALID', problems: ['notice: only allowed when kind is notice (got "reply")', 'inReplyTo: required when kind is reply'] });
  const p384 = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, false, ['sign', 'verify']);
  await t.rejects(signEnvelope(draft(), p384.privateKey, fr.der), { code: 'ENVELOPE_SIGN_FAILED', problems: [/must be an ECDSA P-256 private key/] });
  await t.rejects(signEnvelope(draft(), fr.keys.publicKey, fr.der), { code: 'ENVELOPE_SIGN_FAILED' });
});

t.test('signature: fuzz — random and malformed envelopes give an EnvelopeError with a code, never a crash', async (t) => {
  const signed = await signEnvelope(draft(), fr.keys.privateKey, fr.der);
  const base = signed as unknown as Record<string, unknown>;
  const field = fc.constantFrom(...Object.keys(base), 'zzz');
  const codes = new Set<string>();
  await fc.assert(
    fc.asyncProperty(fc.array(fc.tuple(field, fc.option(fc.jsonValue(), { nil: undefined })), { maxLength: 4 }), async (edits) => {
      const env: Record<string, unknown> = { ...base };
      for (const [k, v] of edits) env[k] = v;
      const code = await outcome(env as unknown as Envelope);
      codes.add(code);
      // Compare what the edits left, not the edits: a key set and then unset changes nothing.
      const changed = Object.keys({ ...base, ...env }).some((k) => JSON.stringify(env[k]) !== JSON.stringify(base[k]));
      if (code === 'verified' && changed) throw new Error('a changed envelope verified');
    }),
    { numRuns: 1000 },
  );
  await fc.assert(
    fc.asyncProperty(fc.jsonValue(), async (value) => {
      try {
        await verifyEnvelopeSignature(value as Envelope, main.trust);
      } catch (err) {
        if (err instanceof EnvelopeError && /^ENVELOPE_/.test(err.code)) return;
        // A non-object has no fields to read: a TypeError from destructuring would be a crash.
        throw err;
      }
      throw new Error('verified a random value');
    }),
    { numRuns: 300 },
  );
  t.ok(codes.has('ENVELOPE_BAD_SIGNATURE') && codes.has('ENVELOPE_UNSIGNED'), `codes seen: ${[...codes].join(', ')}`);
});
