import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from '../test/helpers/tmpdir.js';
import { loadHubConfig, parseHubConfig } from './config.js';

t.test('hub config: defaults fill an empty file, and the result is frozen', async (t) => {
  const c = parseHubConfig({});
  t.equal(c.api.port, 8443);
  t.equal(c.broker.port, 4222);
  t.equal(c.broker.deliverMaxAgeMs, 30 * 24 * 3600 * 1000, 'DELIVER keeps 30 days by default');
  t.equal(c.wireguard.overlayCidr, '10.77.0.0/16');
  t.equal(c.certificates.countryLifetimeMs, 7 * 24 * 3600 * 1000);
  t.equal(c.router.urgentDeadlineMs, 10 * 60 * 1000, 'urgent messages must be confirmed within 10 minutes by default');
  t.equal(parseHubConfig({ router: { urgentDeadlineMs: 120_000 } }).router.urgentDeadlineMs, 120_000);
  t.same(c.router.ratePerCountry, { perSecond: 50, burst: 200 }, 'each country held to 50/s, burst 200, by default');
  t.equal(c.router.maxInFlight, 32);
  t.same(c.databases.notifyOwnerOnHit, ['sltd', 'smv', 'woa', 'firearms', 'nominal'], "every service tells a record's owner of hits by default");
  t.same(parseHubConfig({ databases: { notifyOwnerOnHit: [] } }).databases.notifyOwnerOnHit, []);
  t.same(c.agentFirewall.allowFromHubTcp, [], 'agents open no port to the hub unless told');
  t.same(parseHubConfig({ agentFirewall: { allowFromHubTcp: [9465, 9100] } }).agentFirewall.allowFromHubTcp, [9100, 9465], 'sorted: one policy, one digest');
  t.ok(Object.isFrozen(c) && Object.isFrozen(c.broker) && Object.isFrozen(c.router));
  t.same(await loadHubConfig(undefined), c, 'no file means defaults');
  t.equal(c.broker.host, '0.0.0.0');
  t.same(c.metrics, { host: '127.0.0.1', port: 9464 }, '/metrics on loopback by default');
  t.same(c.probes, { intervalMs: 30_000, timeoutMs: 5_000 });
  t.same(c.heartbeats, { timeoutMs: 30_000 }, 'three agent heartbeats');
  t.equal(parseHubConfig({ metrics: { port: 0 } }).metrics.port, 0, 'port 0 = any free port');
  const wg = parseHubConfig({ wireguard: { enabled: true, endpoint: 'hub.example.org:51820', overlayCidr: '10.9.0.0/16' } });
  t.equal(wg.broker.host, '10.9.0.1', 'with WireGuard on, the broker listens on the overlay only');
});

t.test('hub config: every problem is listed at once with its path', async (t) => {
  const err = t.throws(() =>
    parseHubConfig({ api: { port: 70000, colour: 'red' }, broker: { host: '' }, wireguard: { listenPort: 0 }, log: { level: 'loud' }, extra: 1 }),
  ) as unknown as { code: string; problems: string[] };
  t.equal(err.code, 'HUB_CONFIG_INVALID');
  t.ok(err.problems.includes('hub.api.port: must be <= 65535 (got 70000)'), 'bad port, with the value');
  for (const p of ['hub.api.colour: unknown key', 'hub.extra: unknown key']) t.ok(err.problems.includes(p), p);
  t.ok(err.problems.some((p) => p.startsWith('hub.broker.host:')), 'empty host');
  t.ok(err.problems.some((p) => p.startsWith('hub.wireguard.listenPort:')), 'port 0 for WireGuard');
  t.ok(err.problems.some((p) => p.startsWith('hub.log.level:')), 'unknown level');
  const problemsOf = (value: unknown): string[] => {
    try {
      parseHubConfig(value);
    } catch (e) {
      return (e as { problems: string[] }).problems;
    }
    return [];
  };
  t.match(problemsOf({ wireguard: { enabled: true } }), [/hub\.wireguard\.endpoint: required/], 'enabled WireGuard needs the endpoint agents dial');
  t.match(problemsOf({ wireguard: { overlayCidr: '999.1.1.1/16' } }), [/overlayCidr: not an IPv4 network/]);
  t.match(problemsOf({ router: { urgentDeadlineMs: 500, other: 1 } }), ['hub.router.other: unknown key', 'hub.router.urgentDeadlineMs: must be >= 1000 (got 500)']);
  t.match(problemsOf({ router: { ratePerCountry: { perSecond: 0, x: 1 } } }), ['hub.router.ratePerCountry.x: unknown key', 'hub.router.ratePerCountry.perSecond: must be >= 1 (got 0)']);
  t.match(problemsOf({ databases: { notifyOwnerOnHit: ['sltd', 'dna'] } }), [/^hub\.databases\.notifyOwnerOnHit\[1\]: /]);
  t.match(problemsOf({ agentFirewall: { allowFromHubTcp: [9465, 0] } }), [/^hub\.agentFirewall\.allowFromHubTcp\[1\]: must be >= 1 \(got 0\)/]);
  t.match(problemsOf({ agentFirewall: { allowFromHubTcp: [9465, 9465] } }), [/^hub\.agentFirewall\.allowFromHubTcp: .*duplicate/i]);
  t.match(problemsOf({ router: { urgentDeadlineMs: '10m' } }), [/hub\.router\.urgentDeadlineMs: /], 'milliseconds, like every duration in hub.json');
  const metricsProblems = problemsOf({ metrics: { host: '', port: 70000, path: '/x' } });
  for (const p of ['hub.metrics.host: ', 'hub.metrics.port: must be <= 65535 (got 70000)', 'hub.metrics.path: unknown key']) t.ok(metricsProblems.some((m) => m.startsWith(p)), p);
  t.match(problemsOf({ probes: { intervalMs: 1000, timeoutMs: 1000 } }), [/^hub\.probes\.timeoutMs: must be less than probes\.intervalMs \(1000\) \(got 1000\)$/], 'one probe in flight per country');
  t.same(problemsOf({ probes: { intervalMs: 10_000 } }), [], 'the default timeout fits a shorter interval');
  t.throws(() => parseHubConfig([]), { code: 'HUB_CONFIG_INVALID' }, 'not an object');
});

t.test('hub config: files that are not JSON or not there get their own codes', async (t) => {
  const dir = await tempDir(t);
  const bad = join(dir, 'hub.json');
  await writeFile(bad, '{ "api": ');
  await t.rejects(loadHubConfig(bad), { code: 'HUB_CONFIG_INVALID', problems: [/hub: not JSON/] });
  await t.rejects(loadHubConfig(join(dir, 'missing.json')), { code: 'HUB_CONFIG_UNREADABLE' });
  await writeFile(bad, JSON.stringify({ api: { port: 0 }, broker: { port: 0, monitorPort: 0 } }));
  t.equal((await loadHubConfig(bad)).api.port, 0, 'port 0 = any free port');
});
