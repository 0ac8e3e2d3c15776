// Monitoring end to end: a real Prometheus (the Debian package) scrapes a running hub and agents in
// network namespaces this test creates, with the alert rules shipped in deploy/prometheus, and
// answers PromQL through its HTTP API as a dashboard would. Prometheus runs in the test's own
// namespace and reaches the daemons over the lab's root links only.
import t from 'tap';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { netnsSkipReason, hasCommand } from '../helpers/netns.js';
import { startNetnsNetwork } from '../helpers/netns-network.js';
import { closedPort } from '../helpers/ports.js';
import { tempDir } from '../helpers/tmpdir.js';
import { waitFor } from '../helpers/wait.js';

const RULES = join(import.meta.dirname, '..', '..', 'deploy', 'prometheus', 'ncbnet-rules.yml');
const HUB_METRICS_PORT = 9464;
const AGENT_METRICS_PORT = 9465;

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}
interface Alert {
  labels: Record<string, string>;
  state: string;
}

t.setTimeout(300_000);

const skip = netnsSkipReason() || (hasCommand('prometheus') ? false : 'prometheus is not installed (apt-get install --no-install-recommends prometheus)');

t.test('Prometheus scrapes the hub and the agents; a stopped agent turns its series to 0 and its alert to pending', { skip }, async (t) => {
  const countries = ['FR', 'DE'] as const;
  const net = await startNetnsNetwork(t, {
    countries,
    linkHub: true,
    hubConfig: { metrics: { host: '0.0.0.0', port: HUB_METRICS_PORT }, probes: { intervalMs: 2000, timeoutMs: 1000 } },
    agentConfig: (_cc, link) => ({ metrics: { host: link, port: AGENT_METRICS_PORT } }),
  });
  const hubTarget = `${net.hubLinkAddress as string}:${HUB_METRICS_PORT}`;
  const agentTargets = countries.map((cc) => `${net.linkAddress[cc] as string}:${AGENT_METRICS_PORT}`);

  const dir = await tempDir(t, 'ncbnet-prometheus-');
  const config = join(dir, 'prometheus.yml');
  await writeFile(
    config,
    [
      'global: { scrape_interval: 1s, evaluation_interval: 1s }',
      `rule_files: [${JSON.stringify(RULES)}]`,
      'scrape_configs:',
      `  - { job_name: ncbnet-hub, static_configs: [{ targets: [${JSON.stringify(hubTarget)}] }] }`,
      `  - { job_name: ncbnet-agent, static_configs: [{ targets: [${agentTargets.map((a) => JSON.stringify(a)).join(', ')}] }] }`,
      '',
    ].join('\n'),
  );
  const port = await closedPort();
  const api = `http://127.0.0.1:${port}/api/v1`;
  let output = '';
  const prometheus = spawn('prometheus', [`--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  prometheus.stdout.on('data', (d: Buffer) => (output += d.toString()));
  prometheus.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => prometheus.once('exit', () => resolve()));
  t.teardown(async () => {
    prometheus.kill('SIGTERM');
    await exited;
    if (!t.passing()) t.comment(`prometheus output:\n${output.slice(-4000)}`);
  });

  const query = async (expr: string): Promise<Sample[]> => {
    const res = await fetch(`${api}/query?query=${encodeURIComponent(expr)}`).catch(() => undefined);
    if (res?.status !== 200) return [];
    return ((await res.json()) as { data: { result: Sample[] } }).data.result;
  };
  const byCountry = (samples: Sample[]): Record<string, string> => Object.fromEntries(samples.map((s) => [s.metric['country'] ?? '?', s.value[1]]));

  await waitFor('every target up', async () => (await query('up == 1')).length === 3, 60_000, 500);
  t.same((await query('up')).map((s) => s.metric['job']).sort(), ['ncbnet-agent', 'ncbnet-agent', 'ncbnet-hub'], 'the hub and both agents are scraped');
  await waitFor('both countries connected', async () => Object.keys(byCountry(await query('ncbnet_country_connected == 1'))).length === 2, 30_000, 500);
  t.same(byCountry(await query('ncbnet_country_connected == 1')), { FR: '1', DE: '1' }, 'ncbnet_country_connected == 1 for each country');
  await waitFor('handshakes and heartbeats seen', async () => (await query('ncbnet_wireguard_last_handshake_timestamp_seconds')).length === 2 && (await query('ncbnet_country_last_seen_timestamp_seconds')).length === 2, 30_000, 500);
  t.same(Object.keys(byCountry(await query('ncbnet_agent_broker_connected == 1'))).sort(), ['DE', 'FR'], "each agent's own view agrees");
  await waitFor('probes answered', async () => (await query('ncbnet_probe_rtt_seconds_count > 0')).length === 2, 30_000, 500);

  t.equal(await net.agents.DE?.stop(), 0, "DE's agent stops cleanly");
  await waitFor('DE disconnected', async () => byCountry(await query('ncbnet_country_connected'))['DE'] === '0', 30_000, 500);
  t.same(byCountry(await query('ncbnet_country_connected')), { FR: '1', DE: '0' }, "DE's series turned to 0, FR's did not move");
  let alerts: Alert[] = [];
  await waitFor('the country-down alert pending for DE', async () => {
    const res = await fetch(`${api}/alerts`);
    alerts = ((await res.json()) as { data: { alerts: Alert[] } }).data.alerts;
    return alerts.some((a) => a.labels['alertname'] === 'NcbnetCountryDown' && a.labels['country'] === 'DE');
  }, 30_000, 500);
  t.match(alerts.find((a) => a.labels['alertname'] === 'NcbnetCountryDown'), { state: 'pending', labels: { country: 'DE' } }, 'pending: it fires only after 5 minutes down');
  t.notOk(alerts.some((a) => a.labels['alertname'] === 'NcbnetCountryDown' && a.labels['country'] === 'FR'), 'nothing for FR');
});
