// B2B national databases end to end, nothing mocked: the real hub daemon (its nats-server with
// per-country permissions rendered from the registry) and three real agent daemons enrolled with
// tokens. FR publishes `vehicles` (a JSON-lines export) to DE only, DE seeing four fields and
// nobody the keeper; its agent sends the policy to the hub over mTLS, the hub reloads the broker,
// FR's agent serves. DE gets a hit with the allowed fields only; IT is refused by the broker
// (403 B2B_NOT_ALLOWED, no request reaches FR); FR has the notice of each enquiry.
import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { waitFor } from '../helpers/wait.js';
import { startLoopbackNetwork } from '../helpers/loopback-network.js';
import { localApiCall } from '../helpers/local-api-call.js';

t.setTimeout(300_000);

const COUNTRIES = ['FR', 'DE', 'IT'] as const;
type Cc = (typeof COUNTRIES)[number];

// FR's national database: synthetic vehicles, with a keeper's name the policy never shares.
const stolen = { vin: 'VF1AB000000000001', status: 'stolen', make: 'Renault', model: 'Clio', plate: 'AB-123-CD', keeper: 'Synthetic Keeper', stolenOn: '2026-10-01' };
const policy = { db: 'vehicles', allow: ['DE'], fields: { default: ['vin', 'status'], perCountry: { DE: ['vin', 'status', 'make', 'plate'] } }, notifyEnquiries: true };
const { states, agents, tokens } = await startLoopbackNetwork(t, {
  prefix: 'b2b',
  countries: COUNTRIES,
  agentConfig: async (cc, stateDir) => {
    if (cc !== 'FR') return {};
    const vehiclesFile = join(stateDir, 'vehicles.jsonl');
    await writeFile(vehiclesFile, [stolen, { vin: 'VF1AB000000000002', status: 'recovered', make: 'Peugeot', keeper: 'Other Keeper' }].map((r) => JSON.stringify(r)).join('\n') + '\n');
    return { b2b: { databases: [{ policy, source: { jsonl: vehiclesFile, keyField: 'vin' } }] } };
  },
});

interface Answer {
  status: number;
  json: Record<string, unknown>;
  text: string;
}
async function call(cc: Cc, method: 'GET' | 'POST', path: string, body?: unknown): Promise<Answer> {
  const answer = await localApiCall(`${agents[cc].endpoints.localApiUrl}${path}`, tokens[cc], method, body);
  return { ...answer, json: answer.json as Record<string, unknown> };
}
const ask = (cc: Cc, key: string) => call(cc, 'POST', '/v1/b2b/FR/vehicles', { key });

// FR's agent sends the policy once connected; the hub grants, then FR subscribes.
await waitFor('FR serves vehicles to DE', async () => (await ask('DE', 'VF1AB000000000002')).status === 200, 60_000, 250);

t.test('b2b e2e: DE, allowed, gets a hit with only the fields FR shares with DE', async (t) => {
  const hit = await ask('DE', 'vf1ab 0000-0000 0001');
  t.equal(hit.status, 200, hit.text);
  t.same(hit.json, { v: 1, ok: true, owner: 'FR', db: 'vehicles', key: stolen.vin, hit: true, record: { vin: stolen.vin, status: 'stolen', make: 'Renault', plate: 'AB-123-CD' } });
  t.notMatch(hit.text, /Keeper|Clio|2026-10-01/, 'nothing the policy hides');
  const miss = await ask('DE', 'VF1AB999999999999');
  t.same([miss.status, miss.json['hit'], 'record' in miss.json], [200, false, false], 'no hit is an answer, not an error');
  t.match(await ask('DE', '#?'), { status: 400, json: { code: 'B2B_BAD_KEY' } });
  t.match(await call('DE', 'POST', '/v1/b2b/FR/vehicles', { key: 'X1', more: 1 }), { status: 400, json: { code: 'LOCAL_BAD_REQUEST' } });
});

t.test('b2b e2e: IT, not allowed, is refused by the broker (403 B2B_NOT_ALLOWED) and learns nothing', async (t) => {
  const refused = await ask('IT', stolen.vin);
  t.match(refused, { status: 403, json: { code: 'B2B_NOT_ALLOWED' } });
  t.notMatch(refused.text, /Renault|Keeper|stolen"/, 'nothing of the record');
  const unknownDb = await call('IT', 'POST', '/v1/b2b/FR/boats', { key: 'X1' });
  t.same([unknownDb.status, unknownDb.json['code']], [403, 'B2B_NOT_ALLOWED'], 'a database that does not exist looks the same: the broker does not tell');
  const nobody = await call('DE', 'POST', '/v1/b2b/IT/vehicles', { key: 'X1' });
  t.same([nobody.status, nobody.json['code']], [403, 'B2B_NOT_ALLOWED'], 'IT publishes nothing, so nobody may ask it');
});

t.test('b2b e2e: FR has the notice of every enquiry (who, when, key, hit or no hit), none from IT', async (t) => {
  let notices: { from: string; key: string; hit: boolean; db: string; at: string }[] = [];
  await waitFor('the notices', async () => {
    notices = (await call('FR', 'GET', '/v1/b2b/enquiries?limit=100')).json['enquiries'] as typeof notices;
    return notices.some((n) => n.key === 'VF1AB999999999999');
  }, 10_000, 100);
  t.ok(notices.some((n) => n.from === 'DE' && n.db === 'vehicles' && n.key === stolen.vin && n.hit), 'the hit');
  t.ok(notices.some((n) => n.from === 'DE' && n.key === 'VF1AB999999999999' && !n.hit), 'the miss');
  t.notOk(notices.some((n) => n.from === 'IT'), 'IT never reached FR');
  t.ok(notices.every((n) => Math.abs(Date.now() - Date.parse(n.at)) < 120_000), 'dated now');
  t.same((await call('DE', 'GET', '/v1/b2b/enquiries')).json, { enquiries: [] }, "DE publishes nothing; it sees nobody's enquiries");

  // Each notice is also a message in FR's inbox (issue 8: "delivered as a message to its inbox").
  let items: { envelope: { from: string; subject?: string; body?: string } }[] = [];
  await waitFor('the notices in the inbox', async () => {
    items = (await call('FR', 'GET', '/v1/inbox?limit=100')).json['items'] as typeof items;
    return items.filter((i) => i.envelope.subject?.startsWith('B2B enquiry:') === true).length >= 2;
  }, 10_000, 100);
  const inInbox = items.filter((i) => i.envelope.subject?.startsWith('B2B enquiry:') === true);
  t.ok(inInbox.every((i) => i.envelope.from === 'FR'), 'made by FR for itself');
  t.ok(inInbox.some((i) => i.envelope.subject === `B2B enquiry: DE asked vehicles for ${stolen.vin} (hit)`), 'the hit, as a message');
  t.ok(inInbox.some((i) => (JSON.parse(i.envelope.body ?? '{}') as { key?: string }).key === 'VF1AB999999999999'), 'the miss, with the notice as its body');
});

t.test('b2b e2e: `ncbnet-agent query b2b` exits 0 on a hit, 2 on no hit, 77 when the broker refuses', async (t) => {
  const cli = await runCli('ncbnet-agent', ['query', 'b2b', '--country', 'FR', '--db', 'vehicles', '--key', stolen.vin, '--state', states.DE, '--json']);
  t.equal(cli.code, 0, cli.stderr);
  t.match(JSON.parse(cli.stdout), { hit: true, record: { make: 'Renault' } });
  const refused = await runCli('ncbnet-agent', ['query', 'b2b', '--country', 'FR', '--db', 'vehicles', '--key', stolen.vin, '--state', states.IT]);
  t.equal(refused.code, 77, refused.stderr);
  t.match(refused.stderr, /B2B_NOT_ALLOWED/);
  const none = await runCli('ncbnet-agent', ['query', 'b2b', '--country', 'FR', '--db', 'vehicles', '--key', 'VF1AB999999999999', '--state', states.DE]);
  t.same([none.code, none.stdout.trim()], [2, 'no hit']);
});

t.test('b2b e2e: FR shares with IT too by editing agent.json and SIGHUP, no restart; a bad file changes nothing', async (t) => {
  const configPath = join(states.FR, 'agent.json');
  const config = JSON.parse(await readFile(configPath, 'utf8')) as { b2b: { databases: { policy: typeof policy }[] } };
  const pid = agents.FR.child.pid as number;
  // A policy naming a code that is no country: refused at reload, the one in force stays.
  await writeFile(configPath, JSON.stringify({ ...config, b2b: { databases: [{ ...config.b2b.databases[0], policy: { ...policy, allow: ['DE', 'XX'] } }] } }));
  process.kill(pid, 'SIGHUP');
  await waitFor('the refusal logged', () => agents.FR.output().includes('"msg":"configuration not reloaded; the one in force stays"'), 30_000, 100);
  t.match(await ask('DE', stolen.vin), { status: 200, json: { hit: true } }, 'DE still served');

  await writeFile(configPath, JSON.stringify({ ...config, localApi: { ...(config as { localApi?: object }).localApi, bodyLimitBytes: 100_000 }, b2b: { databases: [{ ...config.b2b.databases[0], policy: { ...policy, allow: ['DE', 'IT'] } }] } }));
  process.kill(pid, 'SIGHUP');
  await waitFor('IT served', async () => (await ask('IT', stolen.vin)).status === 200, 60_000, 250);
  const it = await ask('IT', stolen.vin);
  t.same(it.json['record'], { vin: stolen.vin, status: 'stolen' }, "IT sees the policy's default fields only");
  t.match(await ask('DE', stolen.vin), { status: 200, json: { record: { make: 'Renault', plate: 'AB-123-CD' } } }, 'DE keeps its fields');
  t.equal(agents.FR.child.pid, pid, 'the same process');
  t.match(agents.FR.output(), /"settings":\["localApi.bodyLimitBytes"\],"msg":"changed settings take effect at the next restart"/, 'what a reload does not apply is named');
});
