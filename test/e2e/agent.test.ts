// The node agent end to end, in network namespaces this test creates: a hub namespace (hub
// daemon, WireGuard, nftables, nats-server) with a bridge as the "internet", and FR and DE each in
// their own namespace running `ncbnet-agent`. The test process reaches each daemon's API over a
// veth link into its namespace, and runs the CLIs inside the namespaces like an operator would.
import t from 'tap';
import { spawn } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { show } from '../../system/wg.js';
import { listTable } from '../../system/nft.js';
import { runCliIn } from '../helpers/cli.js';
import { startAgentProcess, startHubProcess } from '../helpers/daemon-process.js';
import { canConnectTcp, netnsSkipReason, pollUntil } from '../helpers/netns.js';
import { HUB_UNDERLAY, startNetnsNetwork } from '../helpers/netns-network.js';
import { waitFor } from '../helpers/wait.js';
import { localApiCall } from '../helpers/local-api-call.js';

interface Json {
  [k: string]: unknown;
}

/** One HTTP call to an agent's local API (plain HTTP on the link into its namespace). */
function local(url: string, token: string | undefined, method: string, path: string, body?: unknown, raw?: string) {
  return localApiCall(`${url}${path}`, token, method, body, raw === undefined ? {} : { raw });
}

// Hub and agents are restarted several times; well over tap's default per-file limit.
t.setTimeout(420_000);

t.test('agent e2e: enroll by CLI, tunnel and firewall, store-and-forward across agent and hub outages', { skip: netnsSkipReason() }, async (t) => {
  // Daemons restarted inside a subtest belong to this test: a subtest's teardown would stop them.
  const top = t;
  const countries = ['FR', 'DE'] as const;
  const net = await startNetnsNetwork(t, { countries, check: (ok, message) => void t.ok(ok, message) });
  const { lab, hubNs, hubState, hubConfig, nsOf, states, agents, tokens, hubCli } = net;
  let hub = net.hub;
  for (const cc of countries) {
    const token = (JSON.parse((await hubCli('token', 'create', cc, '--ttl', '10m')).stdout) as { token: string }).token;
    const again = await runCliIn(nsOf[cc], 'ncbnet-agent', ['enroll', '--hub', `https://${HUB_UNDERLAY}:8443`, '--token', token, '--state', states[cc] as string]);
    t.equal(again.code, 73, `${cc}: a second enroll on an enrolled state dir is refused`);
    for (const key of ['identity/country.key', 'wireguard/private.key']) {
      t.equal((await stat(join(states[cc] as string, key))).mode & 0o777, 0o600, `${cc} ${key} is 0600`);
    }
  }
  const agentConfig = net.agentConfig;

  await t.test('tunnel up, broker only through the tunnel, firewall drops what the policy does not open', async (t) => {
    const fr = nsOf.FR as string;
    const peers = (await show(lab.ifname('wfr'), { netns: fr })).peers;
    t.ok(peers[0]?.latestHandshake, 'handshake seen in wg show');
    t.ok(await canConnectTcp(lab, fr, '10.77.0.1', 4222), 'NATS over the tunnel');
    t.notOk(await canConnectTcp(lab, fr, '10.200.0.1', 4222), 'not over the underlay: the hub firewall only opens it on the tunnel');
    const table = await listTable({ netns: fr });
    t.ok(table, 'the agent applied its inet ncbnet table');
    // The hub probes a port on FR that the policy does not open: dropped and counted on FR.
    const frAddress = ((await hubCli('country', 'show', 'FR')).stdout.match(/"overlayAddress": "([0-9.]+)"/) ?? [])[1] as string;
    t.notOk(await canConnectTcp(lab, hubNs, frAddress, 9999), 'a port the policy does not open is dropped');
    const countersAfter = JSON.stringify(await listTable({ netns: fr }));
    t.match(countersAfter, /tunnel-input-drop/, 'the drop rule is there, counted');
    const shown = JSON.parse((await hubCli('country', 'show', 'FR')).stdout) as { country: { lastSeen?: string } };
    t.ok(shown.country.lastSeen, `the hub saw FR's heartbeats (last seen ${shown.country.lastSeen ?? 'never'})`);
  });

  await t.test('bad input to the local API: coded errors, outbox unchanged', async (t) => {
    const url = agents.FR?.endpoints.localApiUrl as string;
    const before = await local(url, tokens.FR, 'GET', '/v1/status');
    t.equal((await local(url, undefined, 'POST', '/v1/messages', { kind: 'message', to: ['DE'], body: 'x' })).status, 401, 'no token');
    t.equal((await local(url, 'wrong', 'POST', '/v1/messages', { kind: 'message', to: ['DE'], body: 'x' })).status, 401, 'wrong token');
    const bad = await local(url, tokens.FR, 'POST', '/v1/messages', undefined, '{"kind": ');
    t.equal(bad.status, 400, 'malformed JSON');
    // The agent answers 413 as soon as the limit is passed and closes the connection; the client
    // may see the answer or only the reset, depending on how much it had written by then.
    const huge = await local(url, tokens.FR, 'POST', '/v1/messages', { kind: 'message', to: ['DE'], body: 'x'.repeat(2_000_000) }).catch(() => ({ status: 413 }));
    t.equal(huge.status, 413, 'oversized body');
    const unknown = await local(url, tokens.FR, 'POST', '/v1/messages', { kind: 'message', to: ['ZZ'], body: 'x' });
    t.equal(unknown.status, 422);
    t.equal((unknown.json as Json).code, 'LOCAL_UNKNOWN_RECIPIENT');
    const after = await local(url, tokens.FR, 'GET', '/v1/status');
    t.same((after.json as Json).outboxDepth, (before.json as Json).outboxDepth, 'outbox unchanged');
  });

  await t.test('FR sends to DE while DE is stopped; DE starts later and receives it exactly once', async (t) => {
    t.equal(await agents.DE?.stop(), 0, 'DE stopped cleanly');
    t.notOk(await pollUntil(async () => (await listTable({ netns: nsOf.DE })) !== undefined, { timeoutMs: 200 }), 'DE removed its table on SIGTERM');
    const sent = await local(agents.FR?.endpoints.localApiUrl as string, tokens.FR, 'POST', '/v1/messages', { kind: 'notice', notice: { colour: 'red' }, to: ['DE'], subject: 'while DE was away', body: 'wanted person' });
    t.equal(sent.status, 202, sent.text);
    const id = (sent.json as Json).id as string;
    agents.DE = await startAgentProcess(top, states.DE as string, agentConfig('DE'), { netns: nsOf.DE });
    let items: Json[] = [];
    await waitFor('DE to receive it', async () => {
      items = ((await local(agents.DE?.endpoints.localApiUrl as string, tokens.DE, 'GET', '/v1/inbox')).json as { items: Json[] }).items;
      return items.some((i) => i.id === id);
    }, 60_000, 250);
    t.equal(items.filter((i) => i.id === id).length, 1, 'exactly once');
    const envelope = items.find((i) => i.id === id)?.envelope as Json | undefined;
    t.match(envelope, { from: 'FR', sig: /^[A-Za-z0-9_-]{86}$/, sigCert: /^[A-Za-z0-9+/]+=*$/ }, 'signed by FR (verified by the hub and again by DE)');
    t.equal((await local(agents.DE?.endpoints.localApiUrl, tokens.DE, 'POST', `/v1/inbox/${id}/ack`)).status, 200);
    let state: unknown;
    await waitFor("DE's read receipt at FR", async () => {
      const s = await local(agents.FR?.endpoints.localApiUrl as string, tokens.FR, 'GET', `/v1/messages/${id}`);
      state = ((s.json as Json).recipients as Record<string, { state: string }> | undefined)?.DE?.state;
      return state === 'read';
    }, 30_000, 250);
    t.equal(state, 'read', 'receipts came back through the hub: delivered, then read');
  });

  await t.test('the hub goes down: FR keeps accepting (202) and delivers everything once the hub is back', async (t) => {
    t.equal(await hub.stop(), 0, 'hub stopped');
    const url = agents.FR?.endpoints.localApiUrl as string;
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) {
      const r = await local(url, tokens.FR, 'POST', '/v1/messages', { kind: 'message', to: ['DE'], subject: `outage ${i}`, body: `n${i}` });
      t.equal(r.status, 202, `message ${i} accepted while the hub is down`);
      ids.push((r.json as Json).id as string);
    }
    // And the agent itself restarts while the hub is away: it comes up from its last-known-good bundle.
    t.equal(await agents.FR?.stop(), 0);
    agents.FR = await startAgentProcess(top, states.FR as string, agentConfig('FR'), { netns: nsOf.FR });
    const status = await local(agents.FR.endpoints.localApiUrl, tokens.FR, 'GET', '/v1/status');
    t.equal((status.json as Json).outboxDepth, 10, 'the outbox survived the agent restart');
    hub = await startHubProcess(top, hubState, hubConfig, { netns: hubNs });
    let got: string[] = [];
    await waitFor('all ten at DE', async () => {
      const items = ((await local(agents.DE?.endpoints.localApiUrl as string, tokens.DE, 'GET', '/v1/inbox?limit=100')).json as { items: Json[] }).items;
      got = items.map((i) => i.id as string).filter((x) => ids.includes(x));
      return got.length >= ids.length;
    }, 90_000, 500);
    t.same([...got].sort(), [...ids].sort(), 'nothing lost');
    t.equal(new Set(got).size, got.length, 'nothing duplicated');
    const s = await local(agents.FR?.endpoints.localApiUrl, tokens.FR, 'GET', `/v1/messages/${ids[0] as string}`);
    t.equal((s.json as Json).state, 'submitted');
  });

  await t.test('the hub restarts with a new agent firewall policy: the running agents apply it, no restart', async (t) => {
    const fr = nsOf.FR as string;
    const frAddress = ((await hubCli('country', 'show', 'FR')).stdout.match(/"overlayAddress": "([0-9.]+)"/) ?? [])[1] as string;
    // Something listening on FR's side, so an open port answers (bounded: it exits by itself).
    const listener = spawn('ip', ['netns', 'exec', fr, process.execPath, '-e', "require('net').createServer((s) => s.end()).listen(9999); setTimeout(() => process.exit(0), 120000)"], { stdio: 'ignore' });
    t.teardown(() => void listener.kill());
    t.notOk(await canConnectTcp(lab, hubNs, frAddress, 9999), 'the hub cannot open FR:9999 under the enrollment policy');
    t.equal(await hub.stop(), 0);
    hub = await startHubProcess(top, hubState, { ...hubConfig, agentFirewall: { allowFromHubTcp: [9999] } }, { netns: hubNs });
    t.ok(await pollUntil(() => canConnectTcp(lab, hubNs, frAddress, 9999), { timeoutMs: 90_000, intervalMs: 500 }), 'after reconnecting, FR opened 9999 to the hub');
    t.notOk(await canConnectTcp(lab, hubNs, frAddress, 9998), 'and nothing else');
    const saved = JSON.parse(await readFile(join(states.FR as string, 'bundle.json'), 'utf8')) as { policy: { allowFromHubTcp: number[] } };
    t.same(saved.policy.allowFromHubTcp, [9999], 'the new policy is in the bundle the next start begins with');
    t.match(agents.FR?.output() ?? '', /"msg":"firewall policy updated"/, 'FR logged the change');
  });

  for (const cc of countries) t.equal(await agents[cc]?.stop(), 0, `${cc} agent stops cleanly`);
  t.equal(await hub.stop(), 0);
  t.notOk(await pollUntil(async () => (await listTable({ netns: nsOf.FR })) !== undefined, { timeoutMs: 200 }), 'no table left in FR');
});
