// The hub's observability, driven from outside a real `ncbnet hub run` process: Prometheus text
// from /metrics (parsed, not grepped), countries connecting over NATS with their own certificates,
// messages and receipts through the router, probes answered by a plain NATS client standing in for
// the agent, the admin status endpoint and `ncbnet status`.
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { jetstream } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import t from 'tap';
import { identityPaths, initHubState } from '../../hub/state-init.js';
import type { HubStatus } from '../../hub/metrics/status.js';
import { importP256PrivateKey } from '../../pki/keys.js';
import { policyDigest, type Bundle } from '../../protocol/bundle.js';
import { encodeEnvelope, newUlid, type Envelope } from '../../protocol/envelope.js';
import type { Heartbeat } from '../../protocol/heartbeat.js';
import type { ProbeAnswer, ProbeRequest } from '../../protocol/probe.js';
import { signEnvelope } from '../../protocol/signature.js';
import { subjects } from '../../protocol/subjects.js';
import { runCli } from '../helpers/cli.js';
import { countryKeys } from '../helpers/country-identity.js';
import { startHubProcess } from '../helpers/daemon-process.js';
import { describeError } from '../helpers/errors.js';
import { httpsCall } from '../helpers/https.js';
import { canConnectTcp, netnsSkipReason, pollUntil } from '../helpers/netns.js';
import { tempDir } from '../helpers/tmpdir.js';
import { waitFor } from '../helpers/wait.js';
import { startWgHubLab } from '../helpers/wg-hub-lab.js';

const state = await tempDir(t, 'ncbnet-hub-metrics-');
await initHubState({ state, hubName: 'hub-1', sans: ['127.0.0.1', 'localhost'], operator: 'admin' });
const hub = await startHubProcess(t, state, {
  api: { host: '127.0.0.1', port: 0 },
  broker: { host: '127.0.0.1', port: 0, monitorPort: 0 },
  metrics: { host: '127.0.0.1', port: 0 },
  probes: { intervalMs: 400, timeoutMs: 250 },
  heartbeats: { timeoutMs: 1_500 },
  log: { level: 'debug' },
});
const root = await readFile(join(state, 'pki', 'root.crt'), 'utf8');
const ids = identityPaths(state);
const operator = { ca: root, cert: await readFile(ids.operatorCert, 'utf8'), key: await readFile(ids.operatorKey, 'utf8') };
const admin = (method: string, path: string, body?: unknown) => httpsCall(`${hub.endpoints.apiUrl}/v1/admin${path}`, { method, body, ...operator });
const connections: NatsConnection[] = [];
t.teardown(async () => {
  for (const nc of connections) if (!nc.isClosed()) await nc.close();
});

interface Country {
  cc: string;
  bundle: Bundle;
  cert: string;
  key: string;
  signingKey: CryptoKey;
  certDer: Uint8Array;
}

async function onboard(cc: string, name: string): Promise<Country> {
  const add = await admin('POST', '/countries', { code: cc, name });
  if (add.status !== 201) throw new Error(`add ${cc}: ${add.text}`);
  const tok = await admin('POST', '/tokens', { country: cc });
  const keys = await countryKeys(cc);
  const res = await httpsCall(`${hub.endpoints.apiUrl}/v1/enroll`, { ca: root, body: { token: (tok.json as { token: string }).token, csr: keys.csr, wgPublicKey: keys.wgPublicKey } });
  if (res.status !== 200) throw new Error(`enroll ${cc}: ${res.text}`);
  const bundle = res.json as Bundle;
  return {
    cc,
    bundle,
    cert: bundle.certificate + bundle.chain,
    key: keys.keyPem,
    signingKey: await importP256PrivateKey(keys.keyPem, cc),
    certDer: new Uint8Array(new X509Certificate(bundle.certificate).raw),
  };
}

async function connectAs(c: Country): Promise<NatsConnection> {
  const nc = await connect({ servers: hub.endpoints.natsUrl, tls: { cert: c.cert, key: c.key, ca: root }, inboxPrefix: subjects.inboxPrefix(c.cc), timeout: 3000, reconnect: false });
  connections.push(nc);
  return nc;
}

/** One sample line of the text format: name, labels, value. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text exposition format (version 0.0.4) that prom-client writes. */
function parseMetrics(text: string): { samples: Sample[]; help: Map<string, string>; types: Map<string, string> } {
  const samples: Sample[] = [];
  const help = new Map<string, string>();
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (meta) {
      (meta[1] === 'HELP' ? help : types).set(meta[2] as string, meta[3] as string);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1] as string] = l[2] as string;
    samples.push({ name: m[1] as string, labels, value: Number(m[3]) });
  }
  return { samples, help, types };
}

async function scrape(url = hub.endpoints.metricsUrl ?? '') {
  const res = await fetch(url);
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  return { contentType: res.headers.get('content-type') ?? '', ...parseMetrics(await res.text()) };
}

/** The value of the one sample of `name` whose labels include `labels`, or undefined when absent. */
function value(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)}: ${found.length} samples`);
  return found[0]?.value;
}

/** Scrapes until `check` holds on the samples (the status sources are cached for 2 s). */
async function scrapeUntil(what: string, check: (s: Sample[]) => boolean, ms = 10_000, url?: string): Promise<Sample[]> {
  let last: Sample[] = [];
  await waitFor(what, async () => check((last = (await scrape(url)).samples)), ms, 200);
  return last;
}

async function message(from: Country, to: string[], receiptOf?: string): Promise<{ id: string; bytes: Uint8Array }> {
  const base = { v: 1 as const, id: newUlid(), from: from.cc, to, priority: 'routine' as const, created: new Date().toISOString() };
  const unsigned: Envelope = receiptOf === undefined ? { ...base, kind: 'message', subject: 'metrics', body: 'body' } : { ...base, kind: 'receipt', receipt: { of: receiptOf, status: 'delivered' } };
  const signed = await signEnvelope(unsigned, from.signingKey, from.certDer);
  return { id: signed.id, bytes: encodeEnvelope(signed) };
}

function heartbeat(c: Country, policyHash: string | null): Heartbeat {
  return {
    v: 1,
    country: c.cc,
    version: '0.1.0',
    at: new Date().toISOString(),
    tunnel: { up: true, lastHandshake: null, rxBytes: 0, txBytes: 0 },
    certSerial: c.bundle.serial,
    certNotAfter: c.bundle.notAfter,
    policyHash,
    outboxDepth: 0,
  };
}

const fr = await onboard('FR', 'France');
const de = await onboard('DE', 'Germany');
await admin('POST', '/countries', { code: 'IT', name: 'Italy' });

t.test('hub metrics: /metrics on its own port, HELP on every metric, and no series for what never happened', async (t) => {
  t.match(hub.endpoints.metricsUrl, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/, 'recorded in run/endpoints.json');
  const refused = await httpsCall(`${hub.endpoints.apiUrl}/v1/enroll`, { ca: root, body: { token: 'ncbnet1.0000000000000000.x.y', csr: 'x', wgPublicKey: `${'A'.repeat(43)}=` } });
  t.not(refused.status, 200, 'a bad token is refused');
  const { contentType, samples, help, types } = await scrape();
  t.match(contentType, /^text\/plain; version=0\.0\.4/);
  for (const name of types.keys()) t.ok((help.get(name) ?? '').length > 10, `${name} has HELP text`);
  t.equal(value(samples, 'ncbnet_country_info', { country: 'FR', status: 'active' }), 1);
  t.equal(value(samples, 'ncbnet_country_info', { country: 'IT', status: 'pending' }), 1, 'pending countries have series too');
  t.equal(value(samples, 'ncbnet_registry_countries', { status: 'active' }), 2);
  t.equal(value(samples, 'ncbnet_registry_countries', { status: 'pending' }), 1);
  t.equal(value(samples, 'ncbnet_enrollments_total', { result: 'ok' }), 2);
  t.equal(value(samples, 'ncbnet_enrollments_total', { result: 'refused' }), 1, 'the refusal is counted');
  t.equal(value(samples, 'ncbnet_broker_up'), 1);
  t.equal(value(samples, 'ncbnet_urgent_overdue'), 0);
  const expiry = value(samples, 'ncbnet_certificate_expiry_timestamp_seconds', { country: 'FR' });
  t.equal(expiry, Date.parse(fr.bundle.notAfter) / 1000, "FR's certificate expiry");
  t.equal(value(samples, 'ncbnet_certificate_expiry_timestamp_seconds', { country: 'IT' }), undefined, 'IT has no certificate yet: absent, not 0');
  t.equal(value(samples, 'ncbnet_country_last_seen_timestamp_seconds', { country: 'DE' }), undefined, 'no heartbeat yet: absent');
  t.equal(value(samples, 'ncbnet_policy_in_sync', { country: 'DE' }), undefined, 'no heartbeat yet: absent');
  t.equal(value(samples, 'ncbnet_wireguard_last_handshake_timestamp_seconds', { country: 'FR' }), undefined, 'WireGuard off: absent');
  t.equal(value(samples, 'ncbnet_delivery_pending', { country: 'IT' }), undefined, 'IT has no consumer yet: absent');
  t.equal(value(samples, 'ncbnet_messages_total', { country: 'IT', direction: 'sent' }), 0, 'counters start at 0 for every member');
  t.equal(value(samples, 'ncbnet_metrics_source_up', { source: 'connz' }), 1);
  t.equal(value(samples, 'ncbnet_metrics_source_up', { source: 'wireguard' }), undefined, 'WireGuard off: not a source');
  for (const path of ['/healthz', '/readyz']) {
    const res = await fetch(new URL(path, hub.endpoints.metricsUrl));
    t.equal(res.status, 200, `${path} on the metrics port`);
  }
  const ready = (await (await fetch(new URL('/readyz', hub.endpoints.metricsUrl))).json()) as { ready: boolean; checks: Record<string, boolean>; failing: string[] };
  t.same(ready, { ready: true, checks: { broker: true, brokerConnection: true, router: true }, failing: [] }, 'says what it checked');
});

t.test('hub metrics: connected while FR holds a connection, 0 once it closes; heartbeats give last seen and policy sync', async (t) => {
  const nc = await connectAs(fr);
  await scrapeUntil('FR connected', (s) => value(s, 'ncbnet_country_connected', { country: 'FR' }) === 1);
  const before = Date.now() / 1000;
  nc.publish(subjects.heartbeat('FR'), JSON.stringify(heartbeat(fr, policyDigest(fr.bundle.policy))));
  await nc.flush();
  let s = await scrapeUntil('FR last seen', (x) => value(x, 'ncbnet_country_last_seen_timestamp_seconds', { country: 'FR' }) !== undefined);
  t.ok((value(s, 'ncbnet_country_last_seen_timestamp_seconds', { country: 'FR' }) ?? 0) >= Math.floor(before), 'last seen is now');
  t.equal(value(s, 'ncbnet_policy_in_sync', { country: 'FR' }), 1, 'the policy FR applied is the one the hub hands out');
  t.equal(value(s, 'ncbnet_country_connected', { country: 'DE' }), 0, 'DE is not connected');
  nc.publish(subjects.heartbeat('FR'), JSON.stringify(heartbeat(fr, 'f'.repeat(64))));
  await nc.flush();
  await scrapeUntil('FR out of sync', (x) => value(x, 'ncbnet_policy_in_sync', { country: 'FR' }) === 0);
  await waitFor('the connected log line', () => /"country":"FR"[^\n]*"msg":"country connected"/.test(hub.output()));
  await nc.close();
  s = await scrapeUntil('FR disconnected', (x) => value(x, 'ncbnet_country_connected', { country: 'FR' }) === 0);
  t.pass('0 after the connection closed');
  await waitFor('the disconnected log line (no heartbeat for heartbeats.timeoutMs)', () => /"country":"FR"[^\n]*"msg":"country disconnected"/.test(hub.output()));
});

t.test('hub metrics: messages, the backlog waiting for DE, and delivery time from its receipt', async (t) => {
  const nc = await connectAs(fr);
  const sent = await message(fr, ['DE']);
  await jetstream(nc).publish(subjects.submit('FR'), sent.bytes);
  const s = await scrapeUntil('the message waiting for DE', (x) => value(x, 'ncbnet_delivery_pending', { country: 'DE' }) === 1);
  t.equal(value(s, 'ncbnet_messages_total', { country: 'FR', direction: 'sent' }), 1);
  t.equal(value(s, 'ncbnet_messages_total', { country: 'DE', direction: 'received' }), 1);
  t.equal(value(s, 'ncbnet_delivery_pending', { country: 'FR' }), 0);
  const deNc = await connectAs(de);
  const receipt = await message(de, ['FR'], sent.id);
  await jetstream(deNc).publish(subjects.submit('DE'), receipt.bytes);
  const after = await scrapeUntil('the delivery time', (x) => value(x, 'ncbnet_delivery_seconds_count', { country: 'DE' }) === 1);
  const sum = value(after, 'ncbnet_delivery_seconds_sum', { country: 'DE' }) ?? -1;
  t.ok(sum >= 0 && sum < 60, `delivery time of the message to DE: ${sum} s`);
  t.equal(value(after, 'ncbnet_messages_total', { country: 'DE', direction: 'sent' }), 1, 'the receipt is an envelope DE sent');
  await deNc.close();
  await nc.close();
});

t.test('hub metrics: probes answered by FR give round trips; DE, silent, misses; FR may not answer for DE', async (t) => {
  const nc = await connectAs(fr);
  const errors: string[] = [];
  void (async () => {
    for await (const st of nc.status()) if (st.type === 'error') errors.push(describeError(st.error));
  })();
  nc.subscribe(subjects.event('FR'), {
    callback: (_err, msg) => {
      const req = msg.json<ProbeRequest>();
      if (req.type !== 'probe') return;
      const answer: ProbeAnswer = { v: 1, type: 'probe-answer', id: req.id, country: 'FR', at: new Date().toISOString() };
      nc.publish(subjects.probe('FR'), JSON.stringify(answer));
      // Also claims to be DE: refused by the broker, and DE keeps missing.
      nc.publish(subjects.probe('DE'), JSON.stringify({ ...answer, country: 'DE' }));
    },
  });
  const s = await scrapeUntil('answered probes from FR and missed ones for DE', (x) => (value(x, 'ncbnet_probe_rtt_seconds_count', { country: 'FR' }) ?? 0) > 0 && (value(x, 'ncbnet_probes_missed_total', { country: 'DE' }) ?? 0) > 0);
  t.ok((value(s, 'ncbnet_probe_rtt_seconds_sum', { country: 'FR' }) ?? 1) < 1, 'round trips well under a second on loopback');
  t.equal(value(s, 'ncbnet_probe_rtt_seconds_count', { country: 'DE' }), undefined, 'no answered probe for DE');
  await waitFor('the permission error', () => errors.length > 0, 5_000);
  t.match(errors[0], /Permissions Violation for Publish to "ncb\.probe\.DE"/);
  t.match(hub.output(), /"country":"DE"[^\n]*"msg":"probe missed"/, 'each missed probe is a debug line');
  await nc.close();
});

t.test('hub metrics: the admin status endpoint and `ncbnet status` show the same view', async (t) => {
  await scrapeUntil('FR disconnected again', (x) => value(x, 'ncbnet_country_connected', { country: 'FR' }) === 0);
  const api = await admin('GET', '/status');
  t.equal(api.status, 200, api.text);
  const status = api.json as HubStatus;
  t.same(status.countries.map((c) => [c.code, c.status]), [['DE', 'active'], ['FR', 'active'], ['IT', 'pending']]);
  const frRow = status.countries.find((c) => c.code === 'FR');
  t.match(frRow, { connected: false, policyInSync: false, certNotAfter: new Date(Date.parse(fr.bundle.notAfter)).toISOString(), lastHandshake: null });
  t.type(frRow?.lastSeen, 'string');
  t.equal(status.countries.find((c) => c.code === 'DE')?.deliveryPending, 1, 'the message for DE');
  t.equal(frRow?.deliveryPending, 1, "DE's receipt for FR");
  t.match(status, { hub: { brokerUp: true }, sources: { connz: 'ok', consumers: 'ok', wireguard: 'off' } });
  const openapi = await httpsCall(`${hub.endpoints.apiUrl}/openapi.json`, { ca: root });
  t.ok((openapi.json as { paths: Record<string, unknown> }).paths['/v1/admin/status'], 'documented in OpenAPI');
  const noCert = await httpsCall(`${hub.endpoints.apiUrl}/v1/admin/status`, { ca: root });
  t.equal(noCert.status, 401, 'operators only');
  const cli = await runCli('ncbnet', ['status', '--state', state]);
  t.equal(cli.code, 0, cli.stderr);
  t.match(cli.stdout, /code\s+status\s+connected\s+last seen\s+handshake\s+backlog\s+cert expires\s+policy in sync/);
  t.match(cli.stdout, /\nDE\s+active\s+no\s+-\s+-\s+1\s+\d{4}-\d\d-\d\d \(in \d+[dh]\)\s+-/, 'DE: not connected, never seen, one message waiting');
  t.match(cli.stdout, /\nFR\s+active\s+no\s+\d+s ago\s+-\s+1\s+\S+ \(in \d+[dh]\)\s+no/);
  t.match(cli.stdout, /\nIT\s+pending\s+no\s+-\s+-\s+-\s+-\s+-/);
  t.match(cli.stdout, /broker up/);
});

t.test('hub metrics: suspend, resume and revoke are logged once each; a revoked country has no series', async (t) => {
  t.equal((await admin('POST', '/countries/FR/suspend', { reason: 'audit' })).status, 200);
  t.equal((await admin('POST', '/countries/FR/resume')).status, 200);
  t.equal((await admin('POST', '/countries/DE/revoke', { reason: 'keyCompromise' })).status, 200);
  const s = await scrapeUntil('DE gone', (x) => value(x, 'ncbnet_country_info', { country: 'DE' }) === undefined);
  t.equal(value(s, 'ncbnet_revocations_total'), 1);
  for (const name of ['ncbnet_messages_total', 'ncbnet_delivery_seconds_count', 'ncbnet_probes_missed_total', 'ncbnet_delivery_pending', 'ncbnet_certificate_expiry_timestamp_seconds', 'ncbnet_country_connected']) {
    t.notOk(s.some((x) => x.name === name && x.labels['country'] === 'DE'), `no ${name} for DE`);
  }
  t.equal(value(s, 'ncbnet_registry_countries', { status: 'revoked' }), 1);
  const log = hub.output();
  for (const [msg, cc] of [['country suspended', 'FR'], ['country resumed', 'FR'], ['country revoked', 'DE'], ['country enrolled', 'FR']] as const) {
    const lines = log.split('\n').filter((l) => l.includes(`"msg":"${msg}"`) && l.includes(`"country":"${cc}"`));
    t.equal(lines.length, 1, `one "${msg}" line for ${cc}`);
  }
});

t.test('hub metrics: with WireGuard on, handshake time and tunnel bytes per country, and the tunnel in /readyz', { skip: netnsSkipReason() }, async (t) => {
  // The hub in a namespace of its own (as in test/e2e/hub-wireguard.test.ts), FR's tunnel end set
  // up by hand in another; the test reaches the API and /metrics over a veth into the hub's.
  const { lab, frNs, hub: wgHub, enrollFr, frTunnel } = await startWgHubLab(t, {
    rootNet: 202,
    underlayNet: 2,
    hubConfig: (host) => ({ api: { host, port: 0 }, broker: { host: '0.0.0.0', port: 0, monitorPort: 0 }, metrics: { host, port: 0 } }),
  });
  const { enrolled, bundle, wgPrivateKey: frWgPrivate } = await enrollFr();
  t.equal(enrolled.status, 200, enrolled.text);
  const metricsUrl = wgHub.endpoints.metricsUrl ?? '';
  let s = await scrapeUntil('FR listed', (x) => value(x, 'ncbnet_country_info', { country: 'FR' }) === 1, 10_000, metricsUrl);
  t.equal(value(s, 'ncbnet_wireguard_last_handshake_timestamp_seconds', { country: 'FR' }), undefined, 'no handshake yet: absent');
  t.equal(value(s, 'ncbnet_wireguard_receive_bytes_total', { country: 'FR' }), 0, 'a peer with no traffic yet');
  t.equal(value(s, 'ncbnet_metrics_source_up', { source: 'wireguard' }), 1);

  await frTunnel(bundle, frWgPrivate);
  const natsPort = Number(new URL(wgHub.endpoints.natsUrl).port);
  t.ok(await pollUntil(() => canConnectTcp(lab, frNs, '10.77.0.1', natsPort), { timeoutMs: 15_000, intervalMs: 200 }), 'FR reaches the broker over the tunnel');
  const before = Math.floor(Date.now() / 1000) - 60;
  s = await scrapeUntil('the handshake', (x) => value(x, 'ncbnet_wireguard_last_handshake_timestamp_seconds', { country: 'FR' }) !== undefined, 10_000, metricsUrl);
  t.ok((value(s, 'ncbnet_wireguard_last_handshake_timestamp_seconds', { country: 'FR' }) ?? 0) >= before, 'handshake time is recent');
  t.ok((value(s, 'ncbnet_wireguard_receive_bytes_total', { country: 'FR' }) ?? 0) > 0, 'bytes received from FR');
  t.ok((value(s, 'ncbnet_wireguard_transmit_bytes_total', { country: 'FR' }) ?? 0) > 0, 'bytes sent to FR');
  const ready = (await (await fetch(new URL('/readyz', metricsUrl))).json()) as { checks: Record<string, boolean> };
  t.equal(ready.checks['tunnel'], true, 'the tunnel is a readiness condition when WireGuard is on');
  t.equal(await wgHub.stop(), 0);
});
