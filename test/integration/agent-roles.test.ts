// Access levels inside a country (issue 8), with nothing mocked: a real hub daemon (nats-server,
// router, database services) and two real agent daemons (FR, DE) enrolled with tokens. FR's NCB
// administrator adds users with `ncbnet-agent user add` (a real CLI process) while FR's agent
// runs, and the users call FR's local API as their applications would. Done when: "A `border`
// user can query SLTD but cannot send a Red Notice nor read a confidential message."
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { localApiUsersPath } from '../../node-agent/local-api/users.js';
import { runCli } from '../helpers/cli.js';
import { waitFor } from '../helpers/wait.js';
import { startLoopbackNetwork } from '../helpers/loopback-network.js';
import { localApiCall } from '../helpers/local-api-call.js';

interface Json {
  [k: string]: unknown;
}

t.setTimeout(300_000);

const COUNTRIES = ['FR', 'DE'] as const;
type Cc = (typeof COUNTRIES)[number];
const { states, agents, tokens: admins } = await startLoopbackNetwork(t, { prefix: 'roles', countries: COUNTRIES });

/** One call to a country's local API with `token`, as an NCB application makes it. */
async function call(cc: Cc, token: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: Json; text: string }> {
  const answer = await localApiCall(`${agents[cc].endpoints.localApiUrl}${path}`, token, method, body);
  return { ...answer, json: answer.json as Json };
}

/** `ncbnet-agent user add` on FR's state; resolves with the token it printed (its last line). */
async function addUser(name: string, role: string): Promise<string> {
  const r = await runCli('ncbnet-agent', ['user', 'add', name, '--role', role, '--state', states.FR]);
  if (r.code !== 0) throw new Error(`user add ${name}: exit ${r.code}: ${r.stderr}`);
  return r.stdout.trim().split('\n').at(-1) ?? '';
}

const users = {} as { border: string; officer: string };

t.test('agent roles: user add, list and remove through the CLI, with coded refusals and exit codes', async (t) => {
  const add = await runCli('ncbnet-agent', ['user', 'add', 'border-lyon', '--role', 'border', '--state', states.FR]);
  t.equal(add.code, 0, add.stderr);
  const token = add.stdout.trim().split('\n').at(-1) ?? '';
  t.match(token, /^[A-Za-z0-9_-]{43}$/, 'the token is printed once, on its own line');
  t.match(add.stdout, /user border-lyon added with role border/);
  users.border = token;
  const usersFile = localApiUsersPath(states.FR);
  t.equal((await stat(usersFile)).mode & 0o777, 0o600, 'users file 0600');
  t.notMatch(await readFile(usersFile, 'utf8'), token, 'only its hash is stored');
  users.officer = await addUser('officer-1', 'officer');

  const refusals: [string[], number, string][] = [
    [['user', 'add', 'border-lyon', '--role', 'customs'], 73, 'LOCAL_USER_EXISTS'],
    [['user', 'add', 'operator', '--role', 'border'], 73, 'LOCAL_USER_EXISTS'],
    [['user', 'add', 'imm-1', '--role', 'immigration'], 64, 'LOCAL_USER_BAD_ROLE'],
    [['user', 'add', 'Border Lyon', '--role', 'border'], 64, 'LOCAL_USER_BAD_NAME'],
    [['user', 'remove', 'nobody'], 66, 'LOCAL_USER_UNKNOWN'],
    [['user', 'remove', 'operator'], 65, 'LOCAL_USER_IN_TOKENS_FILE'],
  ];
  for (const [args, code, errCode] of refusals) {
    const r = await runCli('ncbnet-agent', [...args, '--state', states.FR]);
    t.equal(r.code, code, `${args.join(' ')}: exit ${code}`);
    t.match(r.stderr, new RegExp(`^ncbnet-agent: ${errCode}: `), args.join(' '));
  }
  const noRole = await runCli('ncbnet-agent', ['user', 'add', 'x1', '--state', states.FR]);
  t.equal(noRole.code, 64, '--role is required');

  const list = await runCli('ncbnet-agent', ['user', 'list', '--state', states.FR]);
  t.equal(list.code, 0, list.stderr);
  t.match(list.stdout, /^name\s+role\s+created\s+source$/m);
  t.match(list.stdout, /^operator\s+ncb-admin\s+tokens-file$/m, 'the tokens file entry, as ncb-admin');
  t.match(list.stdout, /^border-lyon\s+border\s+\d{4}-\d\d-\d\dT\S+\s+users-file$/m);
  t.match(list.stdout, /^officer-1\s+officer\s/m);
  t.notMatch(list.stdout, token, 'never a token');
  const json = await runCli('ncbnet-agent', ['user', 'list', '--state', states.FR, '--json']);
  const rows = JSON.parse(json.stdout) as Json[];
  t.same(
    rows.map((r) => [r['name'], r['role'], r['source']]),
    [
      ['operator', 'ncb-admin', 'tokens-file'],
      ['border-lyon', 'border', 'users-file'],
      ['officer-1', 'officer', 'users-file'],
    ],
  );
  t.notMatch(json.stdout, token, 'no token in the JSON either');
  t.notMatch(json.stdout, /tokenSha256|[0-9a-f]{64}/, 'nor its hash');
});

t.test('agent roles: a border user can query SLTD but cannot send a Red Notice nor read a confidential message', async (t) => {
  t.ok(users.border, 'border user added by the previous test');
  // FR's NCB administrator records a stolen passport (put: ncb-admin only).
  const passport = { number: `FR${randomBytes(4).toString('hex').toUpperCase()}`, country: 'FR', type: 'passport', status: 'stolen' };
  const put = await call('FR', admins.FR, 'POST', '/v1/query/sltd', { op: 'put', record: passport });
  t.equal(put.status, 200, put.text);

  // SLTD: the border user's lookup goes agent → hub → service → agent.
  const hit = await call('FR', users.border, 'POST', '/v1/query/sltd', { key: { number: passport.number, country: 'FR' } });
  t.equal(hit.status, 200, hit.text);
  t.match(hit.json, { ok: true, service: 'sltd', op: 'get', hit: true, result: { owner: 'FR' } });
  const write = await call('FR', users.border, 'POST', '/v1/query/sltd', { op: 'delete', key: { number: passport.number, country: 'FR' } });
  t.same([write.status, write.json['code']], [403, 'LOCAL_ROLE_FORBIDDEN'], 'border may not delete the record');
  const firearms = await call('FR', users.border, 'POST', '/v1/query/firearms', { key: { serial: 'S1', make: 'Acme' } });
  t.same([firearms.status, firearms.json['code']], [403, 'LOCAL_ROLE_FORBIDDEN'], 'nor query firearms');

  // A Red Notice: refused for border (nothing queued), accepted from an officer.
  const red = { kind: 'notice', notice: { colour: 'red' }, to: ['DE'], subject: 'wanted: synthetic person', body: 'provisional arrest requested' };
  const refused = await call('FR', users.border, 'POST', '/v1/messages', red);
  t.equal(refused.status, 403);
  t.same(refused.json, { code: 'LOCAL_ROLE_FORBIDDEN', message: 'role border may not send kind notice' });
  const sent = await call('FR', users.officer, 'POST', '/v1/messages', red);
  t.equal(sent.status, 202, sent.text);
  const deInbox = async () => ((await call('DE', admins.DE, 'GET', '/v1/inbox?limit=1000')).json['items'] as { id: string; envelope: Json }[]) ?? [];
  await waitFor('DE to receive the officer’s notice', async () => (await deInbox()).some((i) => i.id === sent.json['id']), 20_000, 100);
  t.notOk((await deInbox()).some((i) => i.envelope['from'] === 'FR' && i.id !== sent.json['id'] && i.envelope['kind'] === 'notice'), 'DE got no notice from the refused request');

  // DE sends FR a confidential and a public message: the border user sees only the public one.
  const marker = `CONFIDENTIAL-${randomBytes(6).toString('hex')}`;
  const secret = await call('DE', admins.DE, 'POST', '/v1/messages', { kind: 'message', to: ['FR'], handling: 'confidential', body: marker });
  t.equal(secret.status, 202, secret.text);
  const open = await call('DE', admins.DE, 'POST', '/v1/messages', { kind: 'message', to: ['FR'], subject: 'public note', body: 'for every FR user' });
  t.equal(open.status, 202, open.text);
  const inboxOf = async (token: string) => (await call('FR', token, 'GET', '/v1/inbox?limit=1000')).json['items'] as { id: string; plaintext?: string }[];
  await waitFor('FR to receive both', async () => {
    const ids = (await inboxOf(admins.FR)).map((i) => i.id);
    return ids.includes(secret.json['id'] as string) && ids.includes(open.json['id'] as string);
  }, 20_000, 100);
  const officerView = (await inboxOf(users.officer)).find((i) => i.id === secret.json['id']);
  t.equal(officerView?.plaintext, marker, 'an officer reads the confidential message');
  const borderList = await call('FR', users.border, 'GET', '/v1/inbox?limit=1000');
  const borderIds = (borderList.json['items'] as { id: string }[]).map((i) => i.id);
  t.ok(borderIds.includes(open.json['id'] as string), 'border sees the public message');
  t.notOk(borderIds.includes(secret.json['id'] as string), 'but not the confidential one');
  t.notMatch(borderList.text, marker, 'nothing of its content');
  const byId = await call('FR', users.border, 'GET', `/v1/inbox/${String(secret.json['id'])}`);
  t.same([byId.status, byId.json['code']], [404, 'LOCAL_UNKNOWN_MESSAGE'], 'by id it does not exist for border');
  const ack = await call('FR', users.border, 'POST', `/v1/inbox/${String(secret.json['id'])}/ack`);
  t.same([ack.status, ack.json['code']], [404, 'LOCAL_UNKNOWN_MESSAGE'], 'nor can border ack it');
  t.ok((await inboxOf(admins.FR)).some((i) => i.id === secret.json['id']), 'it is still unacked for the NCB');
  const status = await call('FR', users.border, 'GET', '/v1/status');
  t.same([status.status, status.json['code']], [403, 'LOCAL_ROLE_FORBIDDEN'], 'nor may border count the inbox');
});

t.test('agent roles: a user removed with the CLI is refused by the running agent at once', async (t) => {
  t.equal((await call('FR', users.border, 'GET', '/v1/inbox')).status, 200);
  const removed = await runCli('ncbnet-agent', ['user', 'remove', 'border-lyon', '--state', states.FR]);
  t.equal(removed.code, 0, removed.stderr);
  const after = await call('FR', users.border, 'GET', '/v1/inbox');
  t.same([after.status, after.json['code']], [401, 'LOCAL_AUTH_BAD_TOKEN']);
  t.equal((await call('FR', admins.FR, 'GET', '/v1/status')).status, 200, 'the operator token works as before');
});
