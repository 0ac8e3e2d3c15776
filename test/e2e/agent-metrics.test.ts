// The agent daemon's observability as an operator meets it: the real hub daemon and one real agent
// process (FR) on loopback without a tunnel (test/e2e/agent.test.ts has tunnels and firewalls).
// The agent writes its metrics URL into run/endpoints.json, serves Prometheus text and health
// there, and keeps relaying when the metrics port is taken.
import { createServer, type AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { pino } from 'pino';
import t from 'tap';
import { Value } from 'typebox/value';
import { initHubState } from '../../hub/state-init.js';
import { parseAgentConfig } from '../../node-agent/config.js';
import { AgentDaemon } from '../../node-agent/daemon.js';
import { enroll } from '../../node-agent/enroll/enroll.js';
import { readAgentEndpoints } from '../../node-agent/runtime.js';
import { HeartbeatSchema, type Heartbeat } from '../../protocol/heartbeat.js';
import { subjects } from '../../protocol/subjects.js';
import { VERSION } from '../../protocol/version.js';
import { startAgentProcess, startHubProcess } from '../helpers/daemon-process.js';
import { httpsCall } from '../helpers/https.js';
import { closedPort } from '../helpers/ports.js';
import { scrape, valueOf } from '../helpers/prometheus-text.js';
import { tempDir } from '../helpers/tmpdir.js';
import { waitFor } from '../helpers/wait.js';

t.setTimeout(120_000);

const hubState = await tempDir(t, 'ncbnet-agent-metrics-hub-');
await initHubState({ state: hubState, hubName: 'hub-1', sans: ['127.0.0.1', 'localhost'], operator: 'admin' });
const [apiPort, natsPort] = [await closedPort(), await closedPort()];
const hub = await startHubProcess(t, hubState, {
  api: { host: '127.0.0.1', port: apiPort, publicUrl: `https://127.0.0.1:${apiPort}` },
  broker: { host: '127.0.0.1', port: natsPort, monitorPort: 0, natsUrlForAgents: `tls://127.0.0.1:${natsPort}` },
});
const rootPem = await readFile(join(hubState, 'pki', 'root.crt'), 'utf8');
const operator = { ca: rootPem, cert: await readFile(join(hubState, 'operator', 'operator.crt'), 'utf8'), key: await readFile(join(hubState, 'operator', 'operator.key'), 'utf8') };
const admin = (path: string, body: unknown) => httpsCall(`${hub.endpoints.apiUrl}/v1/admin${path}`, { ...operator, method: 'POST', body });
if ((await admin('/countries', { code: 'FR', name: 'France' })).status !== 201) throw new Error('country add FR failed');
const { token } = (await admin('/tokens', { country: 'FR' })).json as { token: string };
const state = await tempDir(t, 'ncbnet-agent-metrics-fr-');
const bundle = await enroll({ hubUrl: hub.endpoints.apiUrl, token, stateDir: state, country: 'FR' });
const FR = { country: 'FR' };

t.test('agent daemon: run/endpoints.json names the metrics listener, which serves metrics, health and readiness', async (t) => {
  const agent = await startAgentProcess(t, state, { localApi: { host: '127.0.0.1', port: 0 }, metrics: { host: '127.0.0.1', port: 0 }, heartbeatIntervalMs: 1000 });
  const { metricsUrl } = agent.endpoints;
  t.match(metricsUrl, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/, 'metricsUrl written with the port actually bound');
  const base = (metricsUrl as string).replace(/\/metrics$/, '');
  await waitFor('connected to the broker', async () => valueOf(await scrape(metricsUrl as string), 'ncbnet_agent_broker_connected', FR) === 1, 30_000, 100);

  const m = await scrape(metricsUrl as string);
  t.match(m.contentType, /^text\/plain/);
  t.equal(valueOf(m, 'ncbnet_agent_up', FR), 1);
  t.equal(valueOf(m, 'ncbnet_agent_info', { ...FR, version: VERSION }), 1);
  t.equal(valueOf(m, 'ncbnet_agent_certificate_expiry_timestamp_seconds', FR), Date.parse(bundle.notAfter) / 1000, 'the enrolled certificate expiry');
  t.equal(valueOf(m, 'ncbnet_agent_outbox_depth', FR), 0);
  t.equal(valueOf(m, 'ncbnet_agent_tunnel_up'), undefined, 'no tunnel on loopback: no tunnel series');
  t.equal(valueOf(m, 'ncbnet_agent_renewals_total', { ...FR, result: 'ok' }), 0);
  t.equal((await fetch(`${base}/healthz`)).status, 200);
  const ready = await fetch(`${base}/readyz`);
  t.equal(ready.status, 200);
  t.same(await ready.json(), { ready: true, checks: { tunnel: true, broker: true } }, 'the same checks as the local API');

  // The hub's view: the heartbeat reports no firewall policy (none runs without a tunnel).
  const hubNc = await connect({
    servers: hub.endpoints.natsUrl,
    tls: { ca: rootPem, cert: await readFile(join(hubState, 'hub', 'hub.crt'), 'utf8'), key: await readFile(join(hubState, 'hub', 'hub.key'), 'utf8') },
  });
  t.teardown(() => hubNc.close());
  const sub = hubNc.subscribe(subjects.heartbeat('FR'), { max: 1 });
  let beat: Heartbeat | undefined;
  for await (const msg of sub) beat = msg.json<Heartbeat>();
  t.ok(Value.Check(HeartbeatSchema, beat), 'a valid heartbeat');
  t.equal(beat?.policyHash, null, 'policyHash null when the firewall is off');

  t.equal(await agent.stop(), 0, 'SIGTERM stops it cleanly, metrics listener included');
  await t.rejects(fetch(metricsUrl as string, { signal: AbortSignal.timeout(2_000) }), 'the listener is gone');
  t.equal(await readAgentEndpoints(state), undefined, 'endpoints file removed');
});

t.test('agent daemon: a metrics port already taken is logged and the agent relays all the same', async (t) => {
  const squatter = createServer();
  await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => squatter.close(() => resolve())));
  const port = (squatter.address() as AddressInfo).port;
  const agent = await startAgentProcess(t, state, { localApi: { host: '127.0.0.1', port: 0 }, metrics: { port } });
  t.equal(agent.endpoints.metricsUrl, undefined, 'no metricsUrl for a listener that is not there');
  t.match(agent.output(), /"msg":"metrics listener not started; the agent runs without it"/);
  await waitFor('ready all the same', async () => (await fetch(`${agent.endpoints.localApiUrl}/readyz`)).status === 200, 30_000, 100);
  t.equal(await agent.stop(), 0);
});

// Last: it stops the hub to make a renewal fail.
t.test('agent daemon: renewals are counted by result and the expiry follows the renewed certificate', async (t) => {
  const lines: { msg?: string; component?: string }[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as { msg?: string }) });
  const daemon = new AgentDaemon({ stateDir: state, config: parseAgentConfig({ localApi: { port: 0 }, metrics: { port: 0 } }), log });
  let isStopped = false;
  t.teardown(() => (isStopped ? undefined : daemon.stop()));
  const { metricsUrl } = await daemon.start();
  const url = metricsUrl as string;
  await waitFor('connected to the broker', async () => valueOf(await scrape(url), 'ncbnet_agent_broker_connected', FR) === 1, 30_000, 100);

  const next = await daemon.renewNow();
  let m = await scrape(url);
  t.equal(valueOf(m, 'ncbnet_agent_renewals_total', { ...FR, result: 'ok' }), 1, 'one renewal ok');
  t.equal(valueOf(m, 'ncbnet_agent_certificate_expiry_timestamp_seconds', FR), Date.parse(next.notAfter) / 1000, 'the renewed certificate expiry');
  t.ok(lines.some((l) => l.msg === 'certificate renewed' && l.component === 'renewal'), 'one info line for the renewal');

  t.equal(await hub.stop(), 0, 'the hub goes away');
  await t.rejects(daemon.renewNow(), 'a renewal without the hub fails');
  m = await scrape(url);
  t.equal(valueOf(m, 'ncbnet_agent_renewals_total', { ...FR, result: 'failed' }), 1, 'counted as failed');
  t.equal(valueOf(m, 'ncbnet_agent_renewals_total', { ...FR, result: 'ok' }), 1);
  await waitFor('the broker is seen gone', async () => valueOf(await scrape(url), 'ncbnet_agent_broker_connected', FR) === 0, 30_000, 100);
  const ready = await fetch(url.replace(/\/metrics$/, '/readyz'));
  t.equal(ready.status, 503);
  t.same(await ready.json(), { ready: false, checks: { tunnel: true, broker: false } }, 'readyz names the broker');

  // Every stop step bounded: with the broker away the relay must still be stopped, and promptly.
  const stopping = Date.now();
  await daemon.stop();
  isStopped = true;
  t.ok(Date.now() - stopping < 5_000, `stopped in ${Date.now() - stopping} ms with the broker away`);
  t.notOk(lines.some((l) => l.msg === 'stop step took too long; going on'), 'no stop step overran');
  t.ok(lines.some((l) => l.msg === 'relay stopped'), 'the relay was stopped');
});
