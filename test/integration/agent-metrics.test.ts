// The agent's metrics listener against real parts: a real Relay on a real nats-server (JetStream
// with the hub's SUBMIT/DELIVER streams, no TLS: the broker's permissions are proven elsewhere),
// scraped over HTTP and parsed as Prometheus does; probes answered over core NATS; and, as root,
// the WireGuard and nftables series read from a real wireguard-go tunnel and `inet ncbnet` table
// in throwaway network namespaces. Every wait polls with a deadline.
import { join } from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { pino, type Logger } from 'pino';
import { Registry } from 'prom-client';
import t from 'tap';
import { Value } from 'typebox/value';
import { ensureCountryConsumer, ensureStreams } from '../../hub/broker/streams.js';
import { HubTunnel } from '../../hub/wireguard/hub-tunnel.js';
import { AgentFirewall } from '../../node-agent/firewall/agent-firewall.js';
import { AgentMetrics, startMetricsServer, type AgentMetricsSources, type MetricsServer } from '../../node-agent/metrics.js';
import { Relay } from '../../node-agent/relay/relay.js';
import type { MessageDraft } from '../../node-agent/relay/types.js';
import { AgentTunnel } from '../../node-agent/tunnel/agent-tunnel.js';
import { writeSecretFile } from '../../pki/files.js';
import { policyDigest, type Policy } from '../../protocol/bundle.js';
import { newUlid, type Envelope } from '../../protocol/envelope.js';
import { ProbeAnswerSchema } from '../../protocol/probe.js';
import { DELIVER_STREAM, deliverConsumer, subjects } from '../../protocol/subjects.js';
import { VERSION } from '../../protocol/version.js';
import { genKey, pubKey } from '../../system/wg.js';
import { canConnectTcp, createNetnsLab, netnsSkipReason, pollUntil } from '../helpers/netns.js';
import { startNatsServerForTest } from '../helpers/nats-server.js';
import { scrape, valueOf, type Exposition } from '../helpers/prometheus-text.js';
import { tempDir, type Teardownable } from '../helpers/tmpdir.js';
import { waitFor } from '../helpers/wait.js';

interface LogLine {
  msg?: string;
  level?: number;
  [k: string]: unknown;
}

function captureLog(): { log: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  return { log: pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) }), lines };
}

function draft(): MessageDraft {
  return { kind: 'message', to: ['DE'], body: 'hello' } as unknown as MessageDraft;
}

/** A metrics listener on a free port for `sources`, closed at teardown. */
async function listen(t: Teardownable, metrics: AgentMetrics, readiness: () => Record<string, boolean>, log = pino({ level: 'silent' })): Promise<MetricsServer> {
  const server = await startMetricsServer({ metrics, readiness, host: '127.0.0.1', port: 0, log });
  t.teardown(() => server.close());
  return server;
}

/** The readiness the daemon uses, for an agent without a tunnel. */
const readinessOf = (relay: Relay) => () => ({ tunnel: true, broker: relay.isConnected() });

const CC = { country: 'FR' };

t.test('agent metrics: relay gauges and message counters follow a real broker, scraped over HTTP', async (t) => {
  const server = await startNatsServerForTest(t);
  const hub = await connect({ servers: server.url });
  t.teardown(() => hub.close());
  const jsm = await jetstreamManager(hub);
  await ensureStreams(jsm);
  await ensureCountryConsumer(jsm, 'FR');

  const registry = new Registry();
  let notAfter = '2031-05-01T12:00:00.000Z';
  // The sources are read at scrape time only, so they may name the relay opened just below.
  const sources: AgentMetricsSources = { tunnel: () => undefined, firewall: () => undefined, relay: () => relay, certificateNotAfter: () => notAfter };
  const metrics = new AgentMetrics({ registry, country: 'FR', version: VERSION, sources, log: pino({ level: 'silent' }) });
  const relay = await Relay.open({ country: 'FR', stateDir: await tempDir(t), log: pino({ level: 'silent' }), publishTimeoutMs: 2_000, retry: { initialMs: 50, maxMs: 300 }, stats: metrics.relayStats });
  t.teardown(() => relay.stop());
  const listener = await listen(t, metrics, readinessOf(relay));
  t.match(listener.url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
  const base = listener.url.replace(/\/metrics$/, '');

  let m: Exposition = await scrape(listener.url);
  t.match((await fetch(listener.url)).headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  t.equal(valueOf(m, 'ncbnet_agent_up', CC), 1, 'up, labelled with the country');
  t.equal(valueOf(m, 'ncbnet_agent_info', { ...CC, version: VERSION }), 1, 'info carries the version');
  t.equal(valueOf(m, 'ncbnet_agent_broker_connected', CC), 0, 'not attached: not connected');
  t.equal(valueOf(m, 'ncbnet_agent_outbox_depth', CC), 0);
  t.equal(valueOf(m, 'ncbnet_agent_inbox_unacked', CC), 0);
  t.equal(valueOf(m, 'ncbnet_agent_certificate_expiry_timestamp_seconds', CC), Date.parse(notAfter) / 1000, 'certificate expiry present');
  for (const name of ['ncbnet_agent_tunnel_up', 'ncbnet_agent_wireguard_last_handshake_timestamp_seconds', 'ncbnet_agent_wireguard_receive_bytes_total', 'ncbnet_agent_wireguard_transmit_bytes_total']) {
    t.equal(valueOf(m, name), undefined, `${name} absent without a tunnel`);
    t.ok(m.help.has(name), `${name} has HELP all the same`);
  }
  t.equal(valueOf(m, 'ncbnet_agent_firewall_dropped_packets_total'), undefined, 'no firewall, no drop counters');
  t.equal(valueOf(m, 'ncbnet_agent_firewall_dropped_bytes_total'), undefined);
  t.equal(valueOf(m, 'ncbnet_agent_renewals_total', { result: 'ok' }), 0, 'renewal results exist from the start');
  t.equal(valueOf(m, 'ncbnet_agent_renewals_total', { result: 'failed' }), 0);
  t.equal(valueOf(m, 'ncbnet_agent_messages_total', { direction: 'sent' }), 0);
  t.equal(valueOf(m, 'ncbnet_agent_messages_total', { direction: 'received' }), 0);
  t.equal(valueOf(m, 'ncbnet_agent_probes_answered_total'), 0);
  t.equal(m.type.get('ncbnet_agent_messages_total'), 'counter');
  t.equal(m.type.get('ncbnet_agent_wireguard_receive_bytes_total'), 'counter');
  t.equal(m.type.get('ncbnet_agent_outbox_depth'), 'gauge');
  t.ok(m.samples.every((s) => s.labels['country'] === 'FR'), 'every sample carries country="FR"');

  const health = await fetch(`${base}/healthz`);
  t.equal(health.status, 200);
  let ready = await fetch(`${base}/readyz`);
  t.equal(ready.status, 503, 'not ready before the broker');
  t.same(await ready.json(), { ready: false, checks: { tunnel: true, broker: false } }, 'the body names the failing check');

  // Accepted while the broker is away: it waits in the outbox.
  const first = await relay.submit(draft());
  m = await scrape(listener.url);
  t.equal(valueOf(m, 'ncbnet_agent_outbox_depth', CC), 1, 'outbox depth rises while not connected');

  const nc: NatsConnection = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 50, inboxPrefix: subjects.inboxPrefix('FR') });
  t.teardown(() => nc.close());
  await relay.attach(nc);
  await waitFor('the outbox drained', async () => valueOf(await scrape(listener.url), 'ncbnet_agent_outbox_depth') === 0);
  m = await scrape(listener.url);
  t.equal(relay.status(first.id)?.state, 'submitted');
  t.equal(valueOf(m, 'ncbnet_agent_broker_connected', CC), 1, 'connected');
  t.equal(valueOf(m, 'ncbnet_agent_messages_total', { direction: 'sent' }), 1, 'one message sent');
  ready = await fetch(`${base}/readyz`);
  t.equal(ready.status, 200);
  t.same(await ready.json(), { ready: true, checks: { tunnel: true, broker: true } });

  // DE's message arrives (as the router stores it in DELIVER): stored, unacked, receipt sent back.
  const incoming: Envelope = { v: 1, id: newUlid(), kind: 'message', from: 'DE', to: ['FR'], priority: 'routine', created: new Date().toISOString(), body: 'bonjour' };
  await jetstream(hub).publish(subjects.deliver('FR'), JSON.stringify(incoming), { msgID: `${incoming.id}.FR` });
  await waitFor('the message in the inbox', async () => valueOf(await scrape(listener.url), 'ncbnet_agent_inbox_unacked') === 1);
  await waitFor('its delivered receipt sent', async () => valueOf(await scrape(listener.url), 'ncbnet_agent_messages_total', { direction: 'sent' }) === 2);
  m = await scrape(listener.url);
  t.equal(valueOf(m, 'ncbnet_agent_messages_total', { direction: 'received' }), 1, 'one message received');
  // The same delivery again (a redelivery beyond the duplicate window): dropped, not counted.
  await jetstream(hub).publish(subjects.deliver('FR'), JSON.stringify(incoming), { msgID: `${incoming.id}.FR.again` });
  await relay.ack(incoming.id);
  await waitFor('the read receipt sent', async () => valueOf(await scrape(listener.url), 'ncbnet_agent_messages_total', { direction: 'sent' }) === 3);
  await waitFor('both deliveries acked', async () => {
    const info = await jsm.consumers.info(DELIVER_STREAM, deliverConsumer('FR'));
    return info.num_pending === 0 && info.num_ack_pending === 0;
  });
  m = await scrape(listener.url);
  t.equal(valueOf(m, 'ncbnet_agent_inbox_unacked', CC), 0, 'acked: nothing unacked');
  t.equal(valueOf(m, 'ncbnet_agent_messages_total', { direction: 'received' }), 1, 'the duplicate is not counted');

  // The broker goes away: not connected, not ready, and what is submitted now waits.
  await server.kill();
  await waitFor('broker_connected 0', async () => valueOf(await scrape(listener.url), 'ncbnet_agent_broker_connected') === 0);
  ready = await fetch(`${base}/readyz`);
  t.equal(ready.status, 503);
  t.match(await ready.json(), { ready: false, checks: { broker: false } }, 'readyz says the broker is the problem');
  await relay.submit(draft());
  await relay.submit(draft());
  t.equal(valueOf(await scrape(listener.url), 'ncbnet_agent_outbox_depth', CC), 2, 'the outbox fills while the broker is down');
  await server.restart();
  await waitFor('reconnected and drained', async () => {
    const now = await scrape(listener.url);
    return valueOf(now, 'ncbnet_agent_broker_connected') === 1 && valueOf(now, 'ncbnet_agent_outbox_depth') === 0;
  }, 20_000, 50);
  t.equal(valueOf(await scrape(listener.url), 'ncbnet_agent_messages_total', { direction: 'sent' }), 5);

  // Renewal: the counter by result, and the expiry of the certificate now in force.
  metrics.renewal('ok');
  metrics.renewal('failed');
  metrics.renewal('failed');
  notAfter = '2031-09-01T12:00:00.000Z';
  m = await scrape(listener.url);
  t.equal(valueOf(m, 'ncbnet_agent_renewals_total', { result: 'ok' }), 1);
  t.equal(valueOf(m, 'ncbnet_agent_renewals_total', { result: 'failed' }), 2);
  t.equal(valueOf(m, 'ncbnet_agent_certificate_expiry_timestamp_seconds', CC), Date.parse(notAfter) / 1000, 'the expiry follows the renewed certificate');
});

t.test('agent metrics: a probe on ncb.event.FR is answered at once on ncb.probe.FR; malformed ones are ignored', async (t) => {
  const server = await startNatsServerForTest(t, { jetstream: false });
  const { log, lines } = captureLog();
  const metrics = new AgentMetrics({ registry: new Registry(), country: 'FR', version: VERSION, log, sources: { tunnel: () => undefined, firewall: () => undefined, relay: () => undefined, certificateNotAfter: () => undefined } });
  // No JetStream here: the relay's loops retry in the background; events are core NATS.
  const relay = await Relay.open({ country: 'FR', stateDir: await tempDir(t), log, retry: { initialMs: 200, maxMs: 1000 }, stats: metrics.relayStats });
  t.teardown(() => relay.stop());
  const agentNc = await connect({ servers: server.url });
  t.teardown(() => agentNc.close());
  await relay.attach(agentNc);
  const listener = await listen(t, metrics, readinessOf(relay));

  const hub = await connect({ servers: server.url });
  t.teardown(() => hub.close());
  const answers: unknown[] = [];
  const sub = hub.subscribe(subjects.probe('FR'), { callback: (_err, msg) => void answers.push(msg.json()) });
  await hub.flush();
  const send = (body: unknown) => hub.publish(subjects.event('FR'), typeof body === 'string' ? body : JSON.stringify(body));
  // The relay subscribed inside attach(); a round trip through the server makes sure it is in place.
  await agentNc.flush();

  const sentAt = new Date().toISOString();
  send({ type: 'probe', id: 'x', sentAt }); // id too short
  send({ type: 'probe', id: 'probe-00000001', sentAt, extra: true }); // unknown key
  send({ type: 'probe', id: 'probe-00000002' }); // no sentAt
  send('{"type":"probe",'); // not JSON
  send({ type: 'policy-changed' }); // another kind of event: not a probe
  const before = Date.now();
  send({ type: 'probe', id: 'probe-00000003', sentAt });
  await waitFor('the answer', () => answers.length >= 1, 5_000, 5);
  const answer = answers[0] as Record<string, unknown>;
  t.ok(Value.Check(ProbeAnswerSchema, answer), 'the answer matches ProbeAnswerSchema');
  t.match(answer, { v: 1, type: 'probe-answer', id: 'probe-00000003', country: 'FR' }, 'same id, this country');
  t.ok(Date.parse(answer['at'] as string) >= before - 1000, 'answered now');
  // Events are handled in order: once the good probe's answer is here, the bad ones were seen.
  t.equal(answers.length, 1, 'malformed probes get no answer');
  t.equal(lines.filter((l) => l.msg === 'malformed probe ignored').length, 3, 'each malformed probe is logged');
  t.ok(lines.some((l) => l.msg === 'event is not JSON, ignored'));
  t.equal(valueOf(await scrape(listener.url), 'ncbnet_agent_probes_answered_total', CC), 1, 'one probe answered');

  send({ type: 'probe', id: 'probe-00000004', sentAt: new Date().toISOString() });
  await waitFor('the second answer', () => answers.length >= 2, 5_000, 5);
  t.match(answers[1], { id: 'probe-00000004' });
  t.equal(valueOf(await scrape(listener.url), 'ncbnet_agent_probes_answered_total', CC), 2, 'the relay still answers after the bad ones');
  t.ok(relay.isConnected());
  sub.unsubscribe();
});

t.test('agent metrics: a source that does not answer costs its series for that scrape, never the scrape', async (t) => {
  const { log, lines } = captureLog();
  // An nft that hangs (a wedged netlink socket) cannot be made on purpose; this source stands in for it.
  const hanging = { counters: () => new Promise<ReadonlyMap<string, { packets: number; bytes: number }>>(() => undefined) };
  const metrics = new AgentMetrics({
    registry: new Registry(), country: 'FR', version: VERSION, log, collectTimeoutMs: 200,
    sources: { tunnel: () => undefined, firewall: () => hanging, relay: () => undefined, certificateNotAfter: () => undefined },
  });
  const listener = await listen(t, metrics, () => ({ broker: false }));
  for (let i = 0; i < 2; i++) {
    const started = Date.now();
    const m = await scrape(listener.url);
    t.ok(Date.now() - started < 2_000, `scrape ${i + 1} ends in time (${Date.now() - started} ms)`);
    t.equal(valueOf(m, 'ncbnet_agent_up'), 1);
    t.equal(valueOf(m, 'ncbnet_agent_firewall_dropped_packets_total'), undefined, 'the hanging source has no sample');
    t.equal(valueOf(m, 'ncbnet_agent_certificate_expiry_timestamp_seconds'), undefined, 'no certificate, no expiry (never 0)');
  }
  t.equal(lines.filter((l) => l.msg === 'metrics source failed; its series are absent until it answers').length, 1, 'logged once, not at every scrape');
});

t.test('agent metrics: WireGuard and firewall series come from the real tunnel and nftables table', { skip: netnsSkipReason() }, async (t) => {
  const HUB_IP = '10.77.0.1';
  const AGENT_IP = '10.77.0.2';
  const HUB_UNDERLAY = '10.200.9.1';
  const AGENT_UNDERLAY = '10.200.9.2';
  const WG_PORT = 51820;
  const lab = createNetnsLab(t);
  const dir = await tempDir(t);
  const log = pino({ level: 'silent' });
  const hubNs = await lab.ns('hub');
  const agentNs = await lab.ns('fr');
  await lab.veth({ ns: hubNs, address: `${HUB_UNDERLAY}/24` }, { ns: agentNs, address: `${AGENT_UNDERLAY}/24` });
  const agentKeyPath = join(dir, 'agent-wg.key');
  const agentPrivate = await genKey();
  await writeSecretFile(agentKeyPath, `${agentPrivate}\n`);
  const hubKeyPath = join(dir, 'hub-wg.key');
  const hubPrivate = await genKey();
  await writeSecretFile(hubKeyPath, `${hubPrivate}\n`);

  const agentIf = lab.ifname('fr');
  const policy: Policy = { version: 3, hubAddress: HUB_IP, natsPort: 4222, apiPort: 8443, allowFromHubTcp: [9465] };
  const tunnel = new AgentTunnel({ ifname: agentIf, privateKeyPath: agentKeyPath, address: AGENT_IP, netns: agentNs, hub: { publicKey: await pubKey(hubPrivate), endpoint: `${HUB_UNDERLAY}:${WG_PORT}`, overlayAddress: HUB_IP } }, log);
  const firewall = new AgentFirewall({ wgInterface: agentIf, hubAddress: HUB_IP, allowFromHubTcp: policy.allowFromHubTcp, agentAddress: AGENT_IP, netns: agentNs, policy }, log);
  t.teardown(() => firewall.stop());
  t.teardown(() => tunnel.stop());
  await tunnel.start();
  await firewall.start();
  t.equal(firewall.policyDigest, policyDigest(policy), 'the firewall reports the digest of the bundle policy it applied (heartbeat policyHash)');

  const metrics = new AgentMetrics({ registry: new Registry(), country: 'FR', version: VERSION, log, sources: { tunnel: () => tunnel, firewall: () => firewall, relay: () => undefined, certificateNotAfter: () => undefined } });
  const listener = await listen(t, metrics, () => ({ tunnel: tunnel.isUp() }));

  // The hub is not there yet: the interface is up, no handshake ever happened.
  let m = await scrape(listener.url);
  t.equal(valueOf(m, 'ncbnet_agent_tunnel_up', CC), 1, 'tunnel up');
  t.equal(valueOf(m, 'ncbnet_agent_wireguard_last_handshake_timestamp_seconds'), undefined, 'no handshake yet: absent, not 0');
  t.equal(valueOf(m, 'ncbnet_agent_wireguard_receive_bytes_total', CC), 0, 'nothing received');
  t.equal(valueOf(m, 'ncbnet_agent_firewall_dropped_packets_total', CC), 0, 'the drop counters are read from the table');
  t.equal(valueOf(m, 'ncbnet_agent_firewall_dropped_bytes_total', CC), 0);

  const started = Date.now();
  const hub = new HubTunnel({ ifname: lab.ifname('hub'), listenPort: WG_PORT, privateKeyPath: hubKeyPath, address: `${HUB_IP}/16`, netns: hubNs }, log);
  t.teardown(() => hub.stop());
  await hub.start();
  await hub.syncPeers([{ publicKey: await pubKey(agentPrivate), allowedIp: AGENT_IP }]);
  // The hub opens a port the policy does not allow: the agent's firewall drops and counts it.
  await pollUntil(async () => !(await canConnectTcp(lab, hubNs, AGENT_IP, 9999)) && (await tunnel.state()).lastHandshake !== undefined, { timeoutMs: 15_000 });
  await waitFor('a handshake and a counted drop', async () => {
    const now = await scrape(listener.url);
    return (valueOf(now, 'ncbnet_agent_wireguard_last_handshake_timestamp_seconds') ?? 0) > 0 && (valueOf(now, 'ncbnet_agent_firewall_dropped_packets_total') ?? 0) > 0;
  }, 20_000, 200);
  m = await scrape(listener.url);
  const handshake = valueOf(m, 'ncbnet_agent_wireguard_last_handshake_timestamp_seconds', CC) as number;
  t.ok(handshake >= Math.floor(started / 1000) && handshake <= Date.now() / 1000 + 1, 'the handshake time is the real one');
  t.ok((valueOf(m, 'ncbnet_agent_wireguard_receive_bytes_total', CC) ?? 0) > 0, 'bytes received from the hub');
  t.ok((valueOf(m, 'ncbnet_agent_wireguard_transmit_bytes_total', CC) ?? 0) > 0, 'bytes sent to the hub');
  t.ok((valueOf(m, 'ncbnet_agent_firewall_dropped_bytes_total', CC) ?? 0) > 0, 'dropped bytes counted');

  // The tunnel goes: up 0 and nothing from wg; the table goes: no drop counters.
  await firewall.stop();
  await tunnel.stop();
  t.equal(firewall.policyDigest, undefined, 'no table, no policy in force');
  m = await scrape(listener.url);
  t.equal(valueOf(m, 'ncbnet_agent_tunnel_up', CC), 0, 'tunnel down');
  t.equal(valueOf(m, 'ncbnet_agent_wireguard_last_handshake_timestamp_seconds'), undefined);
  t.equal(valueOf(m, 'ncbnet_agent_firewall_dropped_packets_total'), undefined, 'table removed: drop counters absent');
});
