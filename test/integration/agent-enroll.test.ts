import t from 'tap';
import { cp, readFile, stat } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { enroll } from '../../node-agent/enroll/enroll.js';
import { renewalDelayMs, renewCertificate } from '../../node-agent/enroll/renew.js';
import { agentPaths, readBundle } from '../../node-agent/state.js';
import { startHubServices, TEST_NETWORK } from '../helpers/hub-inprocess.js';
import { tempDir } from '../helpers/tmpdir.js';

// The agent's enrollment and renewal against the hub's real API (in this process, on loopback).
const withRealApi = (apiUrl: string) => ({ ...TEST_NETWORK, apiUrl });

async function tokenFor(hub: Awaited<ReturnType<typeof startHubServices>>, cc: string): Promise<string> {
  await hub.admin('POST', '/countries', { code: cc, name: cc });
  return ((await hub.admin('POST', '/tokens', { country: cc })).json as { token: string }).token;
}

t.test('agent enroll: keys made here (0600), hub pinned from the token, bundle stored; a second enroll needs --force', async (t) => {
  const hub = await startHubServices(t, undefined, withRealApi);
  const state = await tempDir(t);
  const token = await tokenFor(hub, 'FR');
  const bundle = await enroll({ hubUrl: hub.url, token, stateDir: state, country: 'FR' });
  t.equal(bundle.country, 'FR');
  const paths = agentPaths(state);
  for (const key of [paths.countryKey, paths.wgKey]) t.equal((await stat(key)).mode & 0o777, 0o600, `${key} is 0600`);
  t.same(await readBundle(state), bundle, 'the bundle is the last-known-good state');
  t.equal(hub.services.registry.get('FR')?.certSerial, bundle.serial);
  await t.rejects(enroll({ hubUrl: hub.url, token: await (async () => ((await hub.admin('POST', '/tokens', { country: 'FR' })).json as { token: string }).token)(), stateDir: state }), { code: 'AGENT_ALREADY_ENROLLED' });
  const second = ((await hub.admin('POST', '/tokens', { country: 'FR' })).json as { token: string }).token;
  const again = await enroll({ hubUrl: hub.url, token: second, stateDir: state, force: true });
  t.not(again.serial, bundle.serial, '--force enrolls again with new keys');
  t.equal(hub.services.ca.ledger.get(bundle.serial)?.reason, 'superseded', 'and the hub revokes the old certificate');
});

t.test('agent enroll: wrong hub, wrong country, bad URL and used tokens leave nothing behind', async (t) => {
  const hub = await startHubServices(t, undefined, withRealApi);
  const other = await startHubServices(t, undefined, withRealApi);
  const token = await tokenFor(hub, 'DE');
  const state = await tempDir(t);
  await t.rejects(enroll({ hubUrl: other.url, token, stateDir: state }), { code: 'AGENT_HUB_NOT_PINNED' }, 'a hub without the token’s root CA is not trusted');
  await t.rejects(enroll({ hubUrl: hub.url, token, stateDir: state, country: 'FR' }), { code: 'PKI_CSR_COUNTRY_MISMATCH' }, 'a token for DE refused by an NCB that says it is FR');
  await t.rejects(enroll({ hubUrl: 'http://127.0.0.1:1', token, stateDir: state }), { code: 'AGENT_BAD_HUB_URL' });
  await t.rejects(enroll({ hubUrl: hub.url, token: 'ncbnet1.x', stateDir: state }), { code: 'ENROLL_TOKEN_MALFORMED' });
  await t.rejects(readBundle(state), { code: 'AGENT_NOT_ENROLLED' }, 'no bundle after failures');
  await t.rejects(stat(`${agentPaths(state).countryKey}.pending`), { code: 'ENOENT' }, 'no pending key left behind');
  await enroll({ hubUrl: hub.url, token, stateDir: state, country: 'DE' });
  await t.rejects(enroll({ hubUrl: hub.url, token, stateDir: await tempDir(t) }), { code: 'ENROLL_TOKEN_USED' });
});

t.test('agent renew: a new key and certificate over mTLS; the old one is superseded and cannot renew again', async (t) => {
  const hub = await startHubServices(t, undefined, withRealApi);
  const state = await tempDir(t);
  const bundle = await enroll({ hubUrl: hub.url, token: await tokenFor(hub, 'IT'), stateDir: state });
  const oldKey = await readFile(agentPaths(state).countryKey, 'utf8');
  const stale = join(await tempDir(t), 'copy');
  await cp(state, stale, { recursive: true }); // an old copy of the identity, e.g. from a backup
  const next = await renewCertificate(state, bundle);
  t.not(next.serial, bundle.serial);
  t.not(await readFile(agentPaths(state).countryKey, 'utf8'), oldKey, 'a new private key');
  t.equal((await stat(agentPaths(state).countryKey)).mode & 0o777, 0o600);
  t.equal(new X509Certificate(await readFile(agentPaths(state).countryCert, 'utf8')).serialNumber.toLowerCase(), next.serial);
  t.same(await readBundle(state), next, 'the bundle follows');
  t.equal(hub.services.registry.get('IT')?.certSerial, next.serial);
  t.equal(hub.services.ca.ledger.get(bundle.serial)?.reason, 'superseded');
  await t.rejects(renewCertificate(stale, bundle), { code: 'AUTH_WRONG_IDENTITY' }, 'the superseded certificate cannot renew again');
  await t.rejects(stat(join(state, 'identity', 'country.key.pending')), { code: 'ENOENT' });
});

t.test('agent renew: scheduled at 2/3 of the lifetime, with jitter, never in the past', async (t) => {
  const hub = await startHubServices(t, undefined, withRealApi);
  const state = await tempDir(t);
  const bundle = await enroll({ hubUrl: hub.url, token: await tokenFor(hub, 'ES'), stateDir: state });
  const cert = new X509Certificate(bundle.certificate);
  const from = Date.parse(cert.validFrom);
  const life = Date.parse(cert.validTo) - from;
  const mid = renewalDelayMs(bundle.certificate, 2 / 3, from, () => 0.5);
  t.equal(mid, Math.round((2 / 3) * life), 'no jitter at 0.5: exactly 2/3');
  t.ok(renewalDelayMs(bundle.certificate, 2 / 3, from, () => 0) >= (2 / 3 - 0.05) * life - 1, 'at most 5 % early');
  t.ok(renewalDelayMs(bundle.certificate, 2 / 3, from, () => 0.999) <= (2 / 3 + 0.05) * life, 'at most 5 % late');
  t.ok(renewalDelayMs(bundle.certificate, 2 / 3, from + life, () => 0.5) < 60_000, 'overdue: within a minute');
});
