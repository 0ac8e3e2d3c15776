// `PUT /v1/b2b` and `GET /v1/b2b` on the hub's real HTTPS API (in process, registry on a real
// nats-server): only an active country's own certificate publishes, only its own databases, every
// problem of a bad policy at once; the registry keeps the set (snapshot included, so the broker is
// rendered with it before JetStream runs) and tells its listeners, as the daemon's broker reload
// needs. The agent's own `putB2bPolicies` is the client.
import { readFile } from 'node:fs/promises';
import t from 'tap';
import { snapshotPath } from '../../hub/services.js';
import { readSnapshot, type RegistryChange } from '../../hub/registry/registry.js';
import { putB2bPolicies } from '../../node-agent/b2b/policy-sync.js';
import type { B2bPolicy } from '../../protocol/b2b.js';
import { startHubServices } from '../helpers/hub-inprocess.js';
import { httpsCall } from '../helpers/https.js';
import { enrollCountry } from '../helpers/identities.js';

const hub = await startHubServices(t);
const rootPem = hub.operator.ca;
const fr = await enrollCountry({ apiUrl: hub.url, rootPem, admin: hub.admin }, 'FR');
const de = await enrollCountry({ apiUrl: hub.url, rootPem, admin: hub.admin }, 'DE');
const changes: RegistryChange[] = [];
hub.services.registry.onChange((c) => void changes.push(c));

const vehicles: B2bPolicy = { db: 'vehicles', allow: ['DE'], fields: { default: ['vin', 'status'] }, notifyEnquiries: true };
const as = (id: { cert: string; key: string }) => ({ ca: rootPem, cert: id.cert, key: id.key });

t.test('b2b api: FR publishes its databases with its own certificate; the registry and snapshot keep them', async (t) => {
  await putB2bPolicies(hub.url, as(fr), [vehicles]);
  t.same(hub.services.registry.get('FR')?.b2b, [vehicles]);
  t.same(changes.map((c) => [c.code, c.before?.b2b, c.after.b2b]), [['FR', undefined, [vehicles]]], 'one change for the listeners (the daemon reloads the broker)');
  const snap = await readSnapshot(snapshotPath(hub.dir));
  t.same(snap.find((c) => c.code === 'FR')?.b2b, [vehicles], 'in the disk snapshot');
  await putB2bPolicies(hub.url, as(fr), [vehicles]);
  t.equal(changes.length, 1, 'the same set again writes nothing (no reload)');
  const audited = (await hub.services.audit.forCountry('FR')).filter((r) => r.event === 'b2b-published');
  t.match(audited, [{ event: 'b2b-published', country: 'FR', actor: 'FR', databases: ['vehicles'] }], 'the change is audited once');
  const own = await httpsCall(`${hub.url}/v1/b2b`, { ...as(fr) });
  t.same([own.status, own.json], [200, { databases: [vehicles] }]);
  const others = await httpsCall(`${hub.url}/v1/b2b`, { ...as(de) });
  t.same([others.status, others.json], [200, { databases: [] }], "DE sees its own (none), never FR's policy");
});

t.test('b2b api: a bad policy is refused with every problem; nothing changes', async (t) => {
  const bad = await httpsCall(`${hub.url}/v1/b2b`, { ...as(fr), method: 'PUT', body: { databases: [{ ...vehicles, allow: ['FR', 'ZZ'] }, { ...vehicles, extra: true }] } });
  t.equal(bad.status, 400);
  t.match(bad.json, { code: 'B2B_POLICY_INVALID', problems: [/extra: unknown key/] });
  const semantic = await httpsCall(`${hub.url}/v1/b2b`, { ...as(fr), method: 'PUT', body: { databases: [{ ...vehicles, allow: ['FR', 'ZZ'] }, vehicles] } });
  t.match(semantic.json, { code: 'B2B_POLICY_INVALID', problems: [/allow\[0\]: the owner/, /allow\[1\]: not an assigned/, /databases\[1\]\.db: duplicate/] });
  t.same(hub.services.registry.get('FR')?.b2b, [vehicles], 'unchanged');
});

t.test('b2b api: no certificate, an operator, a suspended country: refused before the body is read', async (t) => {
  const none = await httpsCall(`${hub.url}/v1/b2b`, { ca: rootPem, method: 'PUT', body: { databases: [] } });
  t.match([none.status, none.json], [401, { code: 'AUTH_CLIENT_CERT_REQUIRED' }]);
  const operator = await httpsCall(`${hub.url}/v1/b2b`, { ...hub.operator, method: 'PUT', body: { databases: [] } });
  t.match([operator.status, operator.json], [403, { code: 'AUTH_WRONG_IDENTITY' }]);
  const suspended = await hub.admin('POST', '/countries/DE/suspend', { reason: 'test' });
  t.ok(suspended.status < 300, suspended.text);
  const refused = await httpsCall(`${hub.url}/v1/b2b`, { ...as(de), method: 'PUT', body: { databases: [{ ...vehicles, allow: ['FR'] }] } });
  t.match([refused.status, refused.json], [403, { code: 'AUTH_WRONG_IDENTITY', message: /DE is suspended/ }]);
  t.equal(hub.services.registry.get('DE')?.b2b, undefined);
});

t.test('b2b api: an empty set unpublishes everything', async (t) => {
  await putB2bPolicies(hub.url, as(fr), []);
  t.equal(hub.services.registry.get('FR')?.b2b, undefined, 'the key is gone from the record');
  t.ok((await readFile(snapshotPath(hub.dir), 'utf8')).length > 0);
});
