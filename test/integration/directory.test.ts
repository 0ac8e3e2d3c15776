import t, { type Test } from 'tap';
import { readFile } from 'node:fs/promises';
import { Value } from 'typebox/value';
import type { Bundle } from '../../hub/enrollment/bundle.js';
import { identityPaths } from '../../hub/state-init.js';
import { normalizeSerial } from '../../pki/serial.js';
import { x509 } from '../../pki/x509.js';
import { DirectorySchema, type Directory } from '../../protocol/directory.js';
import { countryKeys } from '../helpers/country-identity.js';
import { httpsCall, type HttpsAnswer } from '../helpers/https.js';
import { startHubServices } from '../helpers/hub-inprocess.js';

type Hub = Awaited<ReturnType<typeof startHubServices>>;

/** A country's mTLS identity as its agent holds it after enrolling: certificate + chain, key. */
interface CountryIdentity {
  code: string;
  cert: string;
  key: string;
  serial: string;
  certificate: string;
}

/** Adds the country, makes a token and enrolls it through the real enrollment API, as an agent does. */
async function enroll(t: Test, hub: Hub, code: string, name: string): Promise<CountryIdentity> {
  t.equal((await hub.admin('POST', '/countries', { code, name })).status, 201);
  const token = ((await hub.admin('POST', '/tokens', { country: code })).json as { token: string }).token;
  const keys = await countryKeys(code);
  const answer = await httpsCall(`${hub.url}/v1/enroll`, { ca: hub.operator.ca, body: { token, csr: keys.csr, wgPublicKey: keys.wgPublicKey } });
  t.equal(answer.status, 200, answer.status === 200 ? `${code} enrolls` : answer.text);
  const bundle = answer.json as Bundle;
  return { code, cert: bundle.certificate + bundle.chain, key: keys.keyPem, serial: bundle.serial, certificate: bundle.certificate };
}

function directoryAs(hub: Hub, who: { cert: string; key: string } | undefined): Promise<HttpsAnswer> {
  return httpsCall(`${hub.url}/v1/directory`, { ca: hub.operator.ca, ...(who ? { cert: who.cert, key: who.key } : {}) });
}

function codesIn(answer: HttpsAnswer): string[] {
  return (answer.json as Directory).countries.map((c) => c.code);
}

function codeOf(answer: HttpsAnswer): string | undefined {
  return (answer.json as { code?: string } | undefined)?.code;
}

t.test('hub directory: an enrolled country and an operator read every active member and its current certificate', async (t) => {
  const hub = await startHubServices(t);
  const fr = await enroll(t, hub, 'FR', 'France');
  const de = await enroll(t, hub, 'DE', 'Germany');
  await hub.admin('POST', '/countries', { code: 'IT', name: 'Italy' }); // pending: no certificate yet

  const before = Date.now();
  const asFr = await directoryAs(hub, fr);
  t.equal(asFr.status, 200, asFr.status === 200 ? 'FR reads it' : asFr.text);
  t.ok(Value.Check(DirectorySchema, asFr.json), 'the answer fits protocol/directory.ts');
  const dir = asFr.json as Directory;
  t.same(codesIn(asFr), ['DE', 'FR'], 'active countries only, by code; pending IT is absent');
  t.ok(Math.abs(Date.parse(dir.generatedAt) - before) < 60_000, 'generatedAt is now');
  for (const own of [fr, de]) {
    const entry = dir.countries.find((c) => c.code === own.code);
    const record = hub.services.registry.get(own.code);
    if (!entry || !record) throw new Error(`${own.code} missing`);
    const cert = new x509.X509Certificate(entry.certificate);
    t.equal(normalizeSerial(cert.serialNumber), entry.certSerial, `${own.code}: the PEM is the certificate of the listed serial`);
    t.equal(entry.certSerial, record.certSerial, `${own.code}: the serial the registry holds`);
    t.equal(entry.certSerial, own.serial, `${own.code}: the certificate the country itself was given`);
    t.equal(entry.certificate, own.certificate, `${own.code}: byte for byte`);
    t.equal(entry.notAfter, record.certNotAfter);
    t.equal(entry.name, record.name);
    t.ok(cert.getExtension(x509.SubjectAlternativeNameExtension)?.names.items.some((n) => n.value === `urn:ncbnet:country:${own.code}`), `${own.code}: the SAN names the country`);
  }

  const asOperator = await directoryAs(hub, hub.operator);
  t.equal(asOperator.status, 200, asOperator.status === 200 ? 'the operator reads it' : asOperator.text);
  t.same(codesIn(asOperator), ['DE', 'FR'], 'an operator reads the same directory');

  const anonymous = await directoryAs(hub, undefined);
  t.equal(anonymous.status, 401);
  t.equal(codeOf(anonymous), 'AUTH_CLIENT_CERT_REQUIRED', 'strangers do not learn the members');

  const paths = identityPaths(hub.dir);
  const asHub = await directoryAs(hub, { cert: await readFile(paths.hubCert, 'utf8'), key: await readFile(paths.hubKey, 'utf8') });
  t.equal(asHub.status, 403, 'a certificate of another kind (hub)');
  t.equal(codeOf(asHub), 'AUTH_WRONG_IDENTITY');

  const doc = await httpsCall(`${hub.url}/openapi.json`, { ca: hub.operator.ca });
  const op = (doc.json as { paths: Record<string, { get?: { tags?: string[]; security?: unknown[] } }> }).paths['/v1/directory']?.get;
  t.same(op?.tags, ['directory'], 'OpenAPI lists GET /v1/directory');
  t.same(op?.security, [{ clientCertificate: [] }]);
});

t.test('hub directory: renewal replaces the certificate; suspended, revoked and superseded ones are neither listed nor let in', async (t) => {
  const hub = await startHubServices(t);
  const fr = await enroll(t, hub, 'FR', 'France');
  const de = await enroll(t, hub, 'DE', 'Germany');

  const next = await countryKeys('DE');
  const renewed = await httpsCall(`${hub.url}/v1/renew`, { ca: hub.operator.ca, cert: de.cert, key: de.key, body: { csr: next.csr } });
  t.equal(renewed.status, 200, renewed.status === 200 ? 'DE renews over mTLS' : renewed.text);
  const r = renewed.json as { serial: string; certificate: string; chain: string };
  const deNow: CountryIdentity = { code: 'DE', cert: r.certificate + r.chain, key: next.keyPem, serial: r.serial, certificate: r.certificate };
  const afterRenew = (await directoryAs(hub, fr)).json as Directory;
  const deEntry = afterRenew.countries.find((c) => c.code === 'DE');
  t.equal(deEntry?.certSerial, r.serial, 'the renewed serial');
  t.equal(deEntry?.certificate, r.certificate, 'the renewed certificate, not the superseded one');
  const superseded = await directoryAs(hub, de);
  t.equal(superseded.status, 403, 'the superseded certificate is refused');
  t.equal(codeOf(superseded), 'AUTH_WRONG_IDENTITY');
  t.equal((await directoryAs(hub, deNow)).status, 200, 'the renewed one is let in');

  t.equal((await hub.admin('POST', '/countries/DE/suspend', { reason: 'audit' })).status, 200);
  t.same(codesIn(await directoryAs(hub, fr)), ['FR'], 'suspended DE is absent');
  const suspended = await directoryAs(hub, deNow);
  t.equal(suspended.status, 403, 'a suspended country cannot read the directory with its (unrevoked) certificate');
  t.equal(codeOf(suspended), 'AUTH_WRONG_IDENTITY');
  t.equal((await hub.admin('POST', '/countries/DE/resume')).status, 200);
  t.same(codesIn(await directoryAs(hub, fr)), ['DE', 'FR'], 'resumed DE is back');

  const revoked = await hub.admin('POST', '/countries/DE/revoke', { reason: 'keyCompromise' });
  t.equal(revoked.status, 200, revoked.status === 200 ? 'an operator revokes DE' : revoked.text);
  t.same(codesIn(await directoryAs(hub, fr)), ['FR'], 'revoked DE is absent');
  t.same(codesIn(await directoryAs(hub, hub.operator)), ['FR'], 'for operators too');
  const refused = await directoryAs(hub, deNow);
  t.equal(refused.status, 403, "DE's revoked certificate is refused");
  t.equal(codeOf(refused), 'AUTH_WRONG_IDENTITY');
  t.match((refused.json as { message: string }).message, /revoked/);
});

t.test('hub directory: a certificate revoked in the CA ledger is left out even while the registry still says active', async (t) => {
  const hub = await startHubServices(t);
  const fr = await enroll(t, hub, 'FR', 'France');
  const de = await enroll(t, hub, 'DE', 'Germany');
  // What an admin revocation interrupted between its two writes, or `ncbnet pki revoke` of the
  // current serial, leaves behind: the ledger says revoked, the registry has not caught up.
  await hub.services.ca.revoke(de.serial, 'keyCompromise');
  t.equal(hub.services.registry.get('DE')?.status, 'active');
  t.same(codesIn(await directoryAs(hub, fr)), ['FR'], 'DE is not handed out');
  t.equal((await directoryAs(hub, de)).status, 403, 'and its certificate does not get in');
});
