import t, { type Test } from 'tap';
import { closedPort } from '../helpers/ports.js';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { localApiTokensPath, writeAgentEndpoints } from '../../node-agent/runtime.js';
import { runCli } from '../helpers/cli.js';
import { startLocalApiForTest, type LocalApiForTest } from '../helpers/fake-relay.js';
import { tempDir } from '../helpers/tmpdir.js';
import { waitFor } from '../helpers/wait.js';

/**
 * The local API on a fake relay, listening on a free loopback port, with a state directory laid
 * out as the daemon leaves it: `run/endpoints.json` and `local-api.tokens` (the API's own file).
 */
async function agentState(t: Test, opts: LocalApiForTest = {}) {
  const api = await startLocalApiForTest(t, { ...opts, listen: true });
  const state = api.dir;
  t.equal(localApiTokensPath(state), api.tokensPath, 'the API uses the default tokens path');
  await writeAgentEndpoints(state, { pid: process.pid, localApiUrl: api.url, startedAt: new Date().toISOString(), metricsUrl: 'http://127.0.0.1:1/metrics' });
  return { ...api, state };
}

t.test('agent cli: send puts a message in the outbox and prints its id; status follows it', async (t) => {
  const agent = await agentState(t);
  const sent = await runCli('ncbnet-agent', ['send', '--state', agent.state, '--to', 'de, it', '--subject', 'stolen car', '--body', 'VIN WVWZZZ1JZXW000001', '--priority', 'urgent']);
  t.equal(sent.code, 0, sent.stderr);
  const stored = agent.relay.outbox[0];
  t.match(stored, { from: 'FR', to: ['DE', 'IT'], kind: 'message', subject: 'stolen car', priority: 'urgent', body: 'VIN WVWZZZ1JZXW000001' });
  t.match(sent.stdout, new RegExp(`^id\\s+status\\n${stored?.id ?? '?'}\\s+queued\\n$`), 'a table with id and status');

  const bodyFile = join(agent.state, 'notice.txt');
  await writeFile(bodyFile, 'Red notice: wanted for fraud\nsecond line\n');
  const json = await runCli('ncbnet-agent', ['send', '--state', agent.state, '--to', '*', '--kind', 'notice', '--notice-colour', 'red', '--body-file', bodyFile, '--json']);
  t.equal(json.code, 0, json.stderr);
  const answer = JSON.parse(json.stdout) as { id: string; status: string };
  t.equal(answer.status, 'queued');
  t.match(agent.relay.status(answer.id), { to: '*' });
  t.equal(agent.relay.outbox[1]?.body, 'Red notice: wanted for fraud\nsecond line\n', 'body read from the file as is');

  const one = await runCli('ncbnet-agent', ['status', answer.id, '--state', agent.state]);
  t.equal(one.code, 0, one.stderr);
  t.match(one.stdout, /^state\s+queued$/m);
  const oneJson = await runCli('ncbnet-agent', ['status', answer.id, '--state', agent.state, '--json']);
  t.match(JSON.parse(oneJson.stdout), { id: answer.id, state: 'queued', to: '*' });
});

t.test('agent cli: send --kind deletion names the message to purge and why', async (t) => {
  const agent = await agentState(t);
  const target = '01JD0000000000000000000000';
  const sent = await runCli('ncbnet-agent', ['send', '--state', agent.state, '--to', 'DE', '--kind', 'deletion', '--deletes', target, '--reason', 'CCF_ORDER', '--body', 'wrong data', '--json']);
  t.equal(sent.code, 0, sent.stderr);
  t.match(agent.relay.outbox[0], { kind: 'deletion', to: ['DE'], deletes: target, reason: 'CCF_ORDER' });
});

t.test('agent cli: status without an id shows the agent, exit 69 while it is not ready', async (t) => {
  let broker = true;
  const agent = await agentState(t, { country: 'PT', readiness: () => ({ tunnel: true, broker }) });
  agent.relay.deliver('ES');
  const [human, json] = await Promise.all([
    runCli('ncbnet-agent', ['status', '--state', agent.state]),
    runCli('ncbnet-agent', ['status', '--state', agent.state, '--json']),
  ]);
  t.equal(human.code, 0, human.stderr);
  t.match(human.stdout, /^country\s+PT$/m);
  t.match(human.stdout, /^ready\s+yes$/m);
  t.match(human.stdout, /^inbox unacked\s+1$/m);
  t.match(JSON.parse(json.stdout), { country: 'PT', ready: true, checks: { tunnel: true, broker: true }, inboxUnacked: 1, outboxDepth: 0 });
  broker = false;
  const down = await runCli('ncbnet-agent', ['status', '--state', agent.state]);
  t.equal(down.code, 69, 'not ready');
  t.match(down.stdout, /^check broker\s+FAILING$/m);
});

t.test('agent cli: inbox lists unacked messages, --ack takes them out, --wait gets one as it arrives', async (t) => {
  const agent = await agentState(t);
  agent.relay.deliver('DE', { subject: 'first', kind: 'query' });
  agent.relay.deliver('IT', { subject: 'second' });
  const list = await runCli('ncbnet-agent', ['inbox', '--state', agent.state]);
  t.equal(list.code, 0, list.stderr);
  const lines = list.stdout.trim().split('\n');
  t.match(lines[0], /^id\s+from\s+kind\s+subject\s+received$/);
  t.match(lines[1], /^\S{26}\s+DE\s+query\s+first\s+\d{4}-/);
  t.match(lines[2], /\s+IT\s+message\s+second\s+/);

  const acked = await runCli('ncbnet-agent', ['inbox', '--state', agent.state, '--ack', '--json']);
  t.equal(acked.code, 0, acked.stderr);
  const items = JSON.parse(acked.stdout) as { envelope: { subject: string }; ackedAt?: string }[];
  t.same(items.map((i) => i.envelope.subject), ['first', 'second']);
  t.ok(items.every((i) => i.ackedAt), 'printed as acked');
  t.equal(agent.relay.inbox().length, 0, 'nothing left unacked');
  const empty = await runCli('ncbnet-agent', ['inbox', '--state', agent.state]);
  t.equal(empty.stdout, 'no messages waiting\n');

  const waiting = runCli('ncbnet-agent', ['inbox', '--state', agent.state, '--wait', '30', '--json']);
  await waitFor('the CLI to long-poll', () => agent.relay.waiters.size === 1, 30_000);
  agent.relay.deliver('ES', { subject: 'late' });
  const late = await waiting;
  t.equal(late.code, 0, late.stderr);
  t.same((JSON.parse(late.stdout) as { envelope: { subject: string } }[]).map((i) => i.envelope.subject), ['late']);
});

t.test('agent cli: --api and --token-file replace the state directory', async (t) => {
  const agent = await agentState(t);
  const elsewhere = await tempDir(t);
  const r = await runCli('ncbnet-agent', ['status', '--state', elsewhere, '--api', agent.url, '--token-file', agent.tokensPath, '--json']);
  t.equal(r.code, 0, r.stderr);
  t.match(JSON.parse(r.stdout), { country: 'FR' });
});

t.test('agent cli: exit codes say what went wrong', async (t) => {
  const agent = await agentState(t);
  const empty = await tempDir(t);
  const badTokens = join(empty, 'bad.tokens');
  await writeFile(badTokens, `operator:${'A'.repeat(43)}\n`, { mode: 0o600 });
  const loose = join(empty, 'loose.tokens');
  await writeFile(loose, `operator:${'A'.repeat(43)}\n`);
  await chmod(loose, 0o644);
  await mkdir(join(empty, 'run'));
  const port = await closedPort();
  const s = agent.state;
  const cases: [string, string[], number, RegExp][] = [
    ['agent unreachable', ['status', '--state', s, '--api', `http://127.0.0.1:${port}`], 69, /AGENT_UNREACHABLE/],
    ['agent not running', ['inbox', '--state', empty, '--token-file', agent.tokensPath], 69, /AGENT_NOT_RUNNING/],
    ['unknown flag', ['inbox', '--state', s, '--bogus'], 64, /unknown option '--bogus'/],
    ['unknown command', ['sned'], 64, /unknown command/],
    ['send without --to', ['send', '--state', s, '--body', 'x'], 64, /--to <countries>/],
    ['send without a body', ['send', '--state', s, '--to', 'DE'], 64, /AGENT_CLI_BAD_FLAG/],
    ['send with --body and --body-file', ['send', '--state', s, '--to', 'DE', '--body', 'x', '--body-file', 'f'], 64, /cannot be used with/],
    ['bad kind', ['send', '--state', s, '--to', 'DE', '--body', 'x', '--kind', 'gossip'], 64, /Allowed choices are/],
    ['wait out of range', ['inbox', '--state', s, '--wait', '99'], 64, /must be a number from 0 to 60/],
    ['not a country', ['send', '--state', s, '--to', 'DE,ZZ', '--body', 'x'], 65, /LOCAL_UNKNOWN_RECIPIENT[\s\S]*body\.to\[1\]/],
    ['invalid draft', ['send', '--state', s, '--to', 'DE', '--body', 'x', '--in-reply-to', 'not-an-id'], 65, /LOCAL_BAD_REQUEST[\s\S]*body\.inReplyTo/],
    ['unknown message', ['status', '01J0000000000000000000000A', '--state', s], 66, /LOCAL_UNKNOWN_MESSAGE/],
    ['wrong token', ['status', '--state', s, '--token-file', badTokens], 77, /LOCAL_AUTH_BAD_TOKEN/],
    ['tokens file others can read', ['status', '--state', s, '--token-file', loose], 77, /LOCAL_TOKENS_PERMISSIONS/],
    ['missing tokens file', ['status', '--state', s, '--token-file', join(empty, 'none')], 66, /ENOENT/],
  ];
  const before = agent.relay.snapshot();
  const results = await Promise.all(cases.map(([, args]) => runCli('ncbnet-agent', args)));
  results.forEach((r, i) => {
    const [name, , code, stderr] = cases[i] ?? ['?', [], -1, /./];
    t.equal(r.code, code, `${name}: exit ${code}`);
    t.match(r.stderr, stderr, `${name}: says why`);
  });
  t.same(agent.relay.snapshot(), before, 'no refused command stored anything');
  const help = await runCli('ncbnet-agent', ['--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /send[\s\S]*inbox[\s\S]*status[\s\S]*Exit codes:/);
});
