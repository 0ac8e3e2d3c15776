import t from 'tap';
import { readFile } from 'node:fs/promises';
import type { CountryRecord } from '../../hub/registry/record.js';
import { readSnapshot } from '../../hub/registry/snapshot.js';
import { snapshotPath } from '../../hub/services.js';
import type { Bundle } from '../../hub/enrollment/bundle.js';
import { x509 } from '../../pki/x509.js';
import { countryKeys } from '../helpers/country-identity.js';
import { httpsCall } from '../helpers/https.js';
import { startHubServices, TEST_NETWORK } from '../helpers/hub-inprocess.js';
import { openssl } from '../helpers/openssl.js';
import { tempDir } from '../helpers/tmpdir.js';

const NETWORK = TEST_NETWORK;
const startHub = startHubServices;

t.test('hub api: an operator adds FR, makes a token; FR enrolls with its own CSR and gets the designed bundle', async (t) => {
  const hub = await startHub(t);
  const added = await hub.admin('POST', '/countries', { code: 'FR', name: 'France' });
  t.equal(added.status, 201, added.text);
  t.equal((added.json as CountryRecord).status, 'pending');
  const tok = await hub.admin('POST', '/tokens', { country: 'FR' });
  t.equal(tok.status, 201, tok.text);
  const token = (tok.json as { token: string }).token;
  t.match(token, /^ncbnet1\./);
  const fr = await countryKeys('FR');
  const enrolled = await httpsCall(`${hub.url}/v1/enroll`, { ca: hub.operator.ca, body: { token, csr: fr.csr, wgPublicKey: fr.wgPublicKey } });
  t.equal(enrolled.status, 200, enrolled.text);
  const bundle = enrolled.json as Bundle;
  t.equal(bundle.country, 'FR');
  t.equal(bundle.overlayAddress, '10.77.0.2', 'first free address after the hub');
  t.equal(bundle.hub.natsUrl, NETWORK.natsUrl);
  t.same(bundle.policy, NETWORK.policy);
  const cert = new x509.X509Certificate(bundle.certificate);
  t.equal(cert.subject, 'O=ncbnet, OU=ncb, CN=FR', 'the subject of ARCHITECTURE (RFC 2253 order CN=FR,OU=ncb,O=ncbnet)');
  const dir = await tempDir(t);
  const { writeFile } = await import('node:fs/promises');
  await writeFile(`${dir}/fr.crt`, bundle.certificate);
  await writeFile(`${dir}/chain.crt`, bundle.chain);
  await writeFile(`${dir}/root.crt`, bundle.caCertificate);
  const v = await openssl(['verify', '-CAfile', `${dir}/root.crt`, '-untrusted', `${dir}/chain.crt`, '-purpose', 'sslclient', `${dir}/fr.crt`]);
  t.equal(v.code, 0, `openssl accepts the issued chain: ${v.stderr}`);
  const record = hub.services.registry.get('FR');
  t.equal(record?.status, 'active');
  t.equal(record?.certSerial, bundle.serial);
  t.equal(record?.wgPublicKey, fr.wgPublicKey);
  const again = await httpsCall(`${hub.url}/v1/enroll`, { ca: hub.operator.ca, body: { token, csr: fr.csr, wgPublicKey: fr.wgPublicKey } });
  t.equal(again.status, 409);
  t.equal((again.json as { code: string }).code, 'ENROLL_TOKEN_USED', 'a token works once');
  t.equal(hub.services.registry.get('FR')?.certSerial, bundle.serial, 'registry unchanged by the refused reuse');
  const snap = await readSnapshot(snapshotPath(hub.dir));
  t.equal(snap.find((c) => c.code === 'FR')?.status, 'active', 'the disk snapshot follows the registry');
});

t.test('hub api: bad enrollments get coded errors and change nothing', async (t) => {
  const hub = await startHub(t);
  await hub.admin('POST', '/countries', { code: 'FR', name: 'France' });
  await hub.admin('POST', '/countries', { code: 'DE', name: 'Germany' });
  const token = ((await hub.admin('POST', '/tokens', { country: 'FR' })).json as { token: string }).token;
  const de = await countryKeys('DE');
  const enroll = (body: unknown) => httpsCall(`${hub.url}/v1/enroll`, { ca: hub.operator.ca, body });
  const codeOf = (a: { json: unknown }) => (a.json as { code?: string }).code;

  const mismatch = await enroll({ token, csr: de.csr, wgPublicKey: de.wgPublicKey });
  t.equal(mismatch.status, 422);
  t.equal(codeOf(mismatch), 'PKI_CSR_COUNTRY_MISMATCH', 'a CSR naming DE with FR’s token');

  const missing = await enroll({ token });
  t.equal(missing.status, 400);
  t.equal(codeOf(missing), 'API_BAD_REQUEST');
  t.match((missing.json as { problems: string[] }).problems, ['body.csr: required', 'body.wgPublicKey: required'], 'every problem, with its path');

  const extra = await enroll({ token, csr: de.csr, wgPublicKey: de.wgPublicKey, country: 'DE' });
  t.match((extra.json as { problems: string[] }).problems, ['body.country: unknown key'], 'a country in the body is refused, not used');

  const badWg = await enroll({ token, csr: de.csr, wgPublicKey: 'not-a-key' });
  t.match((badWg.json as { problems: string[] }).problems, [/^body\.wgPublicKey: .*\(got "not-a-key"\)/]);

  const garbled = await enroll({ token: `${token}x`, csr: de.csr, wgPublicKey: de.wgPublicKey });
  t.equal(codeOf(garbled), 'ENROLL_TOKEN_MALFORMED');
  const forged = token.replace(/\.([A-Za-z0-9_-]{43})\./, (_m, s: string) => `.${s.startsWith('A') ? 'B' : 'A'}${s.slice(1)}.`);
  const unknown = await enroll({ token: forged, csr: de.csr, wgPublicKey: de.wgPublicKey });
  t.equal(unknown.status, 401);
  t.equal(codeOf(unknown), 'ENROLL_TOKEN_UNKNOWN');

  const foreignCa = await enroll({ token: token.replace(/\.[0-9a-f]{64}$/, `.${'ab'.repeat(32)}`), csr: de.csr, wgPublicKey: de.wgPublicKey });
  t.equal(codeOf(foreignCa), 'ENROLL_TOKEN_WRONG_CA', 'a token made for another hub CA');

  const badJson = await httpsCall(`${hub.url}/v1/enroll`, { ca: hub.operator.ca, raw: '{"token": "x",', contentType: 'application/json' });
  t.equal(badJson.status, 400, 'malformed JSON');
  t.match(codeOf(badJson), /^FST_ERR_CTP_|^API_/);
  const huge = await httpsCall(`${hub.url}/v1/enroll`, { ca: hub.operator.ca, body: { token, csr: 'x'.repeat(20_000), wgPublicKey: de.wgPublicKey } });
  t.equal(huge.status, 413, 'body over the limit');

  const fr = await countryKeys('FR');
  const der = Buffer.from(fr.csr.replace(/-----[A-Z ]+-----/g, '').replace(/\s/g, ''), 'base64');
  der[der.length - 3] = (der[der.length - 3] as number) ^ 0x01; // inside the signature's s
  const damaged = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
  const badCsr = await enroll({ token, csr: damaged, wgPublicKey: fr.wgPublicKey });
  t.equal(badCsr.status, 422, 'CSR with a damaged signature');
  t.equal(codeOf(badCsr), 'PKI_CSR_BAD_SIGNATURE');

  t.equal(hub.services.registry.get('FR')?.status, 'pending', 'FR still pending');
  t.equal(hub.services.registry.get('DE')?.status, 'pending', 'DE still pending');
  t.equal(hub.services.tokens.list()[0]?.usedAt, undefined, 'the token is still usable after refused attempts');
  const ok = await enroll({ token, csr: fr.csr, wgPublicKey: fr.wgPublicKey });
  t.equal(ok.status, 200, 'and works for the right CSR');
});

t.test('hub api: the admin API needs a valid operator certificate', async (t) => {
  const hub = await startHub(t);
  const noCert = await httpsCall(`${hub.url}/v1/admin/countries`, { ca: hub.operator.ca });
  t.equal(noCert.status, 401);
  t.equal((noCert.json as { code: string }).code, 'AUTH_CLIENT_CERT_REQUIRED');
  await hub.admin('POST', '/countries', { code: 'FR', name: 'France' });
  const token = ((await hub.admin('POST', '/tokens', { country: 'FR' })).json as { token: string }).token;
  const fr = await countryKeys('FR');
  const bundle = (await httpsCall(`${hub.url}/v1/enroll`, { ca: hub.operator.ca, body: { token, csr: fr.csr, wgPublicKey: fr.wgPublicKey } })).json as Bundle;
  const asCountry = await httpsCall(`${hub.url}/v1/admin/countries`, { ca: hub.operator.ca, cert: bundle.certificate + bundle.chain, key: fr.keyPem });
  t.equal(asCountry.status, 403, 'a country certificate is not an operator');
  t.equal((asCountry.json as { code: string }).code, 'AUTH_WRONG_IDENTITY');
  const unknownBody = await hub.admin('POST', '/countries', { code: 'ZZ', name: 'Nowhere' });
  t.equal(unknownBody.status, 400, 'ZZ is no ISO code');
  const dup = await hub.admin('POST', '/countries', { code: 'FR', name: 'France' });
  t.equal(dup.status, 409);
  t.equal((dup.json as { code: string }).code, 'REGISTRY_COUNTRY_EXISTS');
  const missing = await hub.admin('GET', '/countries/IT');
  t.equal(missing.status, 404);
  const list = await hub.admin('GET', '/countries');
  t.same((list.json as CountryRecord[]).map((c) => c.code), ['FR']);
  const doc = await httpsCall(`${hub.url}/openapi.json`, { ca: hub.operator.ca });
  const paths = Object.keys((doc.json as { paths: Record<string, unknown> }).paths);
  t.ok(['/v1/enroll', '/v1/renew', '/pki/crl', '/pki/ocsp', '/v1/admin/countries', '/v1/admin/tokens'].every((p) => paths.includes(p)), 'OpenAPI lists the routes');
});

t.test('hub api: renewal over mTLS supersedes the old certificate; suspend, resume, revoke; CRL and OCSP follow', async (t) => {
  const hub = await startHub(t);
  await hub.admin('POST', '/countries', { code: 'FR', name: 'France' });
  const token = ((await hub.admin('POST', '/tokens', { country: 'FR' })).json as { token: string }).token;
  // A crash after signing but before the registry was updated leaves an orphan certificate;
  // the retry with the same token must work and revoke the orphan.
  const orphan = await hub.services.ca.issue({ kind: 'country', name: 'FR', csr: (await countryKeys('FR')).csr });
  const fr = await countryKeys('FR');
  const bundle = (await httpsCall(`${hub.url}/v1/enroll`, { ca: hub.operator.ca, body: { token, csr: fr.csr, wgPublicKey: fr.wgPublicKey } })).json as Bundle;
  t.equal(hub.services.ca.ledger.get(orphan.serial)?.reason, 'superseded', 'the orphan of an interrupted enrollment is revoked');

  const next = await countryKeys('FR');
  const renewed = await httpsCall(`${hub.url}/v1/renew`, { ca: hub.operator.ca, cert: bundle.certificate + bundle.chain, key: fr.keyPem, body: { csr: next.csr } });
  t.equal(renewed.status, 200, renewed.text);
  const r = renewed.json as { serial: string; certificate: string };
  t.not(r.serial, bundle.serial);
  t.equal(hub.services.registry.get('FR')?.certSerial, r.serial);
  t.equal(hub.services.ca.ledger.get(bundle.serial)?.reason, 'superseded');
  const stale = await httpsCall(`${hub.url}/v1/renew`, { ca: hub.operator.ca, cert: bundle.certificate + bundle.chain, key: fr.keyPem, body: { csr: next.csr } });
  t.equal(stale.status, 403, 'the superseded certificate cannot renew again');
  const noCert = await httpsCall(`${hub.url}/v1/renew`, { ca: hub.operator.ca, body: { csr: next.csr } });
  t.equal(noCert.status, 401);

  // The firewall policy a running agent follows (node-agent/firewall/policy-sync.ts).
  const policy = await httpsCall(`${hub.url}/v1/policy`, { ca: hub.operator.ca, cert: r.certificate + bundle.chain, key: next.keyPem });
  t.equal(policy.status, 200, policy.text);
  t.same(policy.json, TEST_NETWORK.policy, "the policy the hub hands out now, as in a bundle");
  t.equal((await httpsCall(`${hub.url}/v1/policy`, { ca: hub.operator.ca })).status, 401, 'only with a client certificate');
  const policyAsOperator = await httpsCall(`${hub.url}/v1/policy`, { ...hub.operator });
  t.equal(policyAsOperator.status, 403, 'and only a country certificate');
  t.equal((await httpsCall(`${hub.url}/v1/policy`, { ca: hub.operator.ca, cert: bundle.certificate + bundle.chain, key: fr.keyPem })).status, 403, 'not a superseded one');

  t.equal(((await hub.admin('POST', '/countries/FR/suspend', { reason: 'audit' })).json as CountryRecord).status, 'suspended');
  t.equal((await hub.admin('POST', '/countries/FR/suspend', {})).status, 409, 'suspending twice is a bad transition');
  t.equal(((await hub.admin('POST', '/countries/FR/resume')).json as CountryRecord).status, 'active');
  const badReason = await hub.admin('POST', '/countries/FR/revoke', { reason: 'because' });
  t.equal(badReason.status, 400);
  const revoked = await hub.admin('POST', '/countries/FR/revoke', { reason: 'keyCompromise', note: 'laptop stolen' });
  t.equal(revoked.status, 200, revoked.text);
  t.equal((revoked.json as CountryRecord).status, 'revoked');
  t.equal(hub.services.ca.ledger.get(r.serial)?.reason, 'keyCompromise');
  t.equal((await hub.admin('POST', '/tokens', { country: 'FR' })).status, 409, 'no tokens for a revoked country');

  const dir = await tempDir(t);
  const { writeFile } = await import('node:fs/promises');
  const crl = await httpsCall(`${hub.url}/pki/crl?format=pem`, { ca: hub.operator.ca });
  t.equal(crl.status, 200);
  await writeFile(`${dir}/crl.pem`, crl.text);
  await writeFile(`${dir}/fr.crt`, r.certificate);
  await writeFile(`${dir}/chain.pem`, `${hub.services.ca.issuer.toString('pem')}\n${hub.services.ca.root.toString('pem')}\n`);
  await writeFile(`${dir}/issuer.pem`, hub.services.ca.issuer.toString('pem'));
  const text = await openssl(['crl', '-in', `${dir}/crl.pem`, '-noout', '-text']);
  t.match(text.stdout.toUpperCase(), r.serial.toUpperCase(), 'the revoked serial is in the served CRL');
  const req = await openssl(['ocsp', '-issuer', `${dir}/issuer.pem`, '-cert', `${dir}/fr.crt`, '-reqout', `${dir}/req.der`, '-no_nonce']);
  t.equal(req.code, 0, req.stderr);
  const der = await readFile(`${dir}/req.der`);
  const ocsp = await httpsCall(`${hub.url}/pki/ocsp`, { ca: hub.operator.ca, raw: der, contentType: 'application/ocsp-request' });
  t.equal(ocsp.status, 200);
  t.equal(ocsp.headers['content-type'], 'application/ocsp-response');
  await writeFile(`${dir}/resp.der`, ocsp.body);
  const check = await openssl(['ocsp', '-respin', `${dir}/resp.der`, '-issuer', `${dir}/issuer.pem`, '-cert', `${dir}/fr.crt`, '-CAfile', `${dir}/chain.pem`]);
  t.match(check.stdout, /fr\.crt: revoked/, `openssl reads the served OCSP answer: ${check.stderr}`);
});

t.test('hub api: the registry survives a restart, and a lost bucket is restored from the snapshot', async (t) => {
  const first = await startHub(t);
  await first.admin('POST', '/countries', { code: 'FR', name: 'France' });
  await first.admin('POST', '/countries', { code: 'JP', name: 'Japan' });
  await first.services.api.close();
  await first.nc.close();
  // Same state dir, but a brand-new nats-server: its JetStream (and the KV bucket) is empty.
  const second = await startHub(t, first.dir);
  t.same(
    second.services.registry.list().map((c) => [c.code, c.status]),
    [
      ['FR', 'pending'],
      ['JP', 'pending'],
    ],
  );
  const list = await second.admin('GET', '/countries');
  t.equal((list.json as CountryRecord[]).length, 2, 'served by the API after the restart');
});
