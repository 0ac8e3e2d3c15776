// The shipped configuration in a real Prometheus: it scrapes a stand-in hub and agent (static
// exposition text with the contract's names), loads the rules, and answers the dashboard's
// per-country table queries. promtool checks syntax; this checks what only a running server shows:
// the agent job's labels (country from the target, no exported_country), alerts going pending
// and firing, and that the table's queries return one row per country with the labels the
// dashboard's merge transformation joins on.
import { spawn } from 'node:child_process';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import t from 'tap';
import { hasCommand } from '../../test/helpers/netns.js';
import { closedPort } from '../../test/helpers/ports.js';
import { tempDir, type Teardownable } from '../../test/helpers/tmpdir.js';
import { waitFor } from '../../test/helpers/wait.js';

const SKIP = hasCommand('prometheus') ? false : 'needs prometheus (Debian package prometheus; make sysdeps installs it)';

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

interface Alert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: string;
}

/** The hub's /metrics as the contract describes it: FR active and connected, DE active and down. */
function hubExposition(nowSeconds: number): string {
  return [
    '# TYPE ncbnet_country_info gauge',
    'ncbnet_country_info{country="FR",status="active"} 1',
    'ncbnet_country_info{country="DE",status="active"} 1',
    'ncbnet_country_info{country="BR",status="suspended"} 1',
    '# TYPE ncbnet_country_connected gauge',
    'ncbnet_country_connected{country="FR"} 1',
    'ncbnet_country_connected{country="DE"} 0',
    'ncbnet_country_connected{country="BR"} 0',
    '# TYPE ncbnet_country_last_seen_timestamp_seconds gauge',
    `ncbnet_country_last_seen_timestamp_seconds{country="FR"} ${nowSeconds - 5}`,
    `ncbnet_country_last_seen_timestamp_seconds{country="DE"} ${nowSeconds - 3600}`,
    '# TYPE ncbnet_wireguard_last_handshake_timestamp_seconds gauge',
    `ncbnet_wireguard_last_handshake_timestamp_seconds{country="FR"} ${nowSeconds - 30}`,
    '# TYPE ncbnet_delivery_pending gauge',
    'ncbnet_delivery_pending{country="FR"} 0',
    'ncbnet_delivery_pending{country="DE"} 42',
    '# TYPE ncbnet_certificate_expiry_timestamp_seconds gauge',
    `ncbnet_certificate_expiry_timestamp_seconds{country="FR"} ${nowSeconds + 5 * 86400}`,
    `ncbnet_certificate_expiry_timestamp_seconds{country="DE"} ${nowSeconds + 3600}`,
    '# TYPE ncbnet_policy_in_sync gauge',
    'ncbnet_policy_in_sync{country="FR"} 1',
    'ncbnet_policy_in_sync{country="DE"} 1',
    '# TYPE ncbnet_messages_total counter',
    'ncbnet_messages_total{country="FR",direction="sent"} 3',
    '# TYPE ncbnet_broker_up gauge',
    'ncbnet_broker_up 1',
    '',
  ].join('\n');
}

const AGENT_EXPOSITION = ['# TYPE ncbnet_agent_outbox_depth gauge', 'ncbnet_agent_outbox_depth{country="FR"} 2', ''].join('\n');

async function serve(t: Teardownable, body: () => string): Promise<string> {
  const server: Server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
    res.end(body());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    // Prometheus keeps its scrape connections open; close them rather than wait for them.
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

t.test('prometheus live: the shipped config scrapes hub and agents, evaluates the rules, serves the dashboard table', { skip: SKIP }, async (t) => {
  const hub = await serve(t, () => hubExposition(Math.floor(Date.now() / 1000)));
  const agent = await serve(t, () => AGENT_EXPOSITION);
  const dir = await tempDir(t, 'ncbnet-prometheus-');

  // The shipped files, with the hub's address and intervals of a second so the test is quick.
  const shipped = await readFile(new URL('prometheus.yml', import.meta.url), 'utf8');
  const config = shipped
    .replace("'127.0.0.1:9464'", `'${hub}'`)
    .replace(/scrape_interval: 15s/, 'scrape_interval: 1s')
    .replace(/scrape_timeout: 10s/, 'scrape_timeout: 1s')
    .replace(/evaluation_interval: 15s/, 'evaluation_interval: 1s');
  t.not(config, shipped);
  t.match(config, hub);
  await writeFile(join(dir, 'prometheus.yml'), config);
  await copyFile(new URL('ncbnet-rules.yml', import.meta.url), join(dir, 'ncbnet-rules.yml'));
  await writeFile(join(dir, 'agents.json'), JSON.stringify([{ targets: [agent], labels: { country: 'FR' } }]));

  const port = await closedPort();
  const child = spawn('prometheus', [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (output += c.toString('utf8')));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  t.teardown(async () => {
    if (!t.passing()) t.comment(`prometheus output:\n${output.slice(-10_000)}`);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      if ((await Promise.race([exited.then(() => true), delay(10_000, undefined, { ref: false }).then(() => false)])) === false) child.kill('SIGKILL');
    }
  });

  const base = `http://127.0.0.1:${port}`;
  const get = async <T>(path: string): Promise<T> => {
    const res = await fetch(base + path);
    const body = (await res.json()) as { status: string; data: T };
    if (body.status !== 'success') throw new Error(`${path}: ${JSON.stringify(body)}`);
    return body.data;
  };
  const query = async (expr: string): Promise<Sample[]> => (await get<{ result: Sample[] }>(`/api/v1/query?query=${encodeURIComponent(expr)}`)).result;

  await waitFor('prometheus ready', async () => (await fetch(`${base}/-/ready`).catch(() => undefined))?.ok === true, 30_000, 100);
  await waitFor('both targets scraped', async () => (await query('up == 1')).length === 2, 30_000, 200);

  const agentUp = await query('up{job="ncbnet-agent"}');
  t.same(agentUp[0]?.metric, { __name__: 'up', job: 'ncbnet-agent', instance: agent, country: 'FR' }, 'agent target carries its country');
  const outbox = await query('ncbnet_agent_outbox_depth');
  t.same(outbox[0]?.metric, { __name__: 'ncbnet_agent_outbox_depth', job: 'ncbnet-agent', instance: agent, country: 'FR' }, 'country from the target label, exported_country dropped');

  // Alerts: CertificateExpiring has no `for` and fires; CountryDown (5m) is pending for DE only.
  let alerts: Alert[] = [];
  await waitFor('alerts evaluated', async () => {
    alerts = (await get<{ alerts: Alert[] }>('/api/v1/alerts')).alerts;
    return alerts.some((a) => a.labels.alertname === 'NcbnetCertificateExpiring' && a.state === 'firing') && alerts.some((a) => a.labels.alertname === 'NcbnetCountryDown');
  }, 30_000, 200);
  const cert = alerts.filter((a) => a.labels.alertname === 'NcbnetCertificateExpiring');
  t.same(cert.map((a) => [a.labels.country, a.labels.severity, a.state]), [['DE', 'warning', 'firing']]);
  t.match(cert[0]?.annotations.summary, /^DE: certificate expires in 59m \d+s$/);
  const down = alerts.filter((a) => a.labels.alertname === 'NcbnetCountryDown');
  t.same(down.map((a) => [a.labels.country, a.labels.severity, a.state]), [['DE', 'critical', 'pending']], 'suspended BR does not count');
  t.match(down[0]?.annotations.description, /last heartbeat: 1h 0m \d+s ago/);
  // Pending (not firing) is allowed: before the first scrape absent(up) holds for a moment.
  t.notOk(alerts.some((a) => (a.labels.alertname === 'NcbnetHubDown' || a.labels.alertname === 'NcbnetAgentDown') && a.state === 'firing'), 'targets are up');

  // The dashboard's per-country table: each query returns rows keyed by country alone (plus status).
  const dashboard = JSON.parse(await readFile(new URL('../grafana/ncbnet-dashboard.json', import.meta.url), 'utf8')) as {
    panels: { title?: string; targets?: { refId: string; expr: string }[] }[];
  };
  const table = dashboard.panels.find((p) => p.title === 'Per-country status');
  t.ok(table, 'table panel found');
  for (const target of table?.targets ?? []) {
    let rows: Sample[] = [];
    // A rate() needs two scrapes of its counter; poll rather than assume they happened.
    await waitFor(`${target.refId}: rows`, async () => (rows = await query(target.expr.replaceAll('$country', '.*'))).length > 0, 30_000, 200);
    for (const row of rows) {
      const keys = Object.keys(row.metric).sort();
      t.ok(keys.join() === 'country' || keys.join() === 'country,status', `${target.refId}: labels ${keys.join()}`);
    }
  }
  const connected = await query((table?.targets ?? []).find((x) => x.refId === 'B')?.expr.replaceAll('$country', '.*') ?? '');
  t.same(Object.fromEntries(connected.map((r) => [r.metric.country, r.value[1]])), { FR: '1', DE: '0', BR: '0' });
});
