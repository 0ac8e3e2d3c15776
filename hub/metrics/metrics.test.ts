import { pino } from 'pino';
import { Registry as PromRegistry } from 'prom-client';
import t from 'tap';
import { newUlid } from '../../protocol/envelope.js';
import type { CountryRecord } from '../registry/record.js';
import { backlogOf } from './backlog.js';
import { countriesInConnz } from './connz.js';
import { CountryStatusCollector, type CountryStatusSources } from './country-status.js';
import { HubMetrics } from './hub-metrics.js';
import { Presence } from './presence.js';
import { startMetricsServer } from './server.js';

const silent = pino({ level: 'silent' });
const at = '2026-01-01T00:00:00.000Z';
const record = (code: string, status: CountryRecord['status'], extra: Partial<CountryRecord> = {}): CountryRecord => ({ code, name: code, status, createdAt: at, updatedAt: at, ...extra });

/** Log lines written by a pino logger, parsed. */
function capture() {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
  return { log, lines };
}

t.test('metrics: connz gives the countries among the open connections, by their mapped user', async (t) => {
  const body = { connections: [{ authorized_user: 'CN=FR,OU=ncb,O=ncbnet' }, { authorized_user: 'CN=hub-1,OU=hub,O=ncbnet' }, { authorized_user: 'CN=ZZ,OU=ncb,O=ncbnet' }, {}, { authorized_user: 'CN=DE,OU=ncb,O=ncbnet' }] };
  t.same([...countriesInConnz(body)].sort(), ['DE', 'FR'], 'hub user, unknown codes and anonymous connections ignored');
  t.same([...countriesInConnz({ connections: null })], [], 'nats-server writes null for none');
  t.throws(() => countriesInConnz({ error: 'x' }), { code: 'METRICS_CONNZ_BAD_ANSWER' });
});

t.test('metrics: the backlog is pending plus unacked, per deliver-<CC> consumer', async (t) => {
  const b = backlogOf([
    { name: 'deliver-FR', num_pending: 2, num_ack_pending: 1 },
    { name: 'router', num_pending: 9, num_ack_pending: 9 },
    { name: 'deliver-ZZ', num_pending: 1, num_ack_pending: 0 },
  ]);
  t.same([...b], [['FR', 3]]);
});

t.test('metrics: presence logs connected on the first heartbeat and disconnected after the timeout, once each', async (t) => {
  let now = 0;
  const { log, lines } = capture();
  const p = new Presence({ timeoutMs: 30_000, log, now: () => now });
  p.heard('FR', undefined);
  p.heard('FR', undefined);
  now = 29_000;
  p.check();
  now = 31_000;
  p.check();
  p.check();
  const msgs = lines.filter((l) => l['country'] === 'FR').map((l) => l['msg']);
  t.same(msgs, ['country connected', 'country disconnected']);
  t.equal(p.lastHeardMs('FR'), 0);
  t.equal(p.policyHash('FR'), undefined, 'no valid heartbeat: digest unknown');
  p.heard('FR', undefined);
  p.forget('FR', 'revoked');
  t.same(lines.slice(-2).map((l) => [l['msg'], l['reason']]), [['country connected', undefined], ['country disconnected', 'revoked']]);
  t.equal(p.lastHeardMs('FR'), undefined);
});

function sources(over: Partial<CountryStatusSources> = {}): CountryStatusSources {
  return {
    countries: () => [record('FR', 'active', { certNotAfter: '2026-02-01T00:00:00.000Z' }), record('DE', 'revoked'), record('IT', 'pending')],
    presence: { lastHeardMs: (cc) => (cc === 'FR' ? 1_000_000 : undefined), policyHash: (cc) => (cc === 'FR' ? 'a'.repeat(64) : undefined) },
    policyDigest: () => 'a'.repeat(64),
    connz: () => Promise.resolve(new Set(['FR'])),
    backlog: () => Promise.resolve(new Map([['FR', 4]])),
    ...over,
  };
}

t.test('metrics: a source that does not answer in time leaves its values unknown, not zero', async (t) => {
  const { log, lines } = capture();
  const never = new Promise<ReadonlySet<string>>(() => undefined);
  const c = new CountryStatusCollector({ sources: sources({ connz: () => never }), log, timeoutMs: 50, cacheMs: 0 });
  const started = Date.now();
  const snap = await c.snapshot();
  t.ok(Date.now() - started < 1_000, 'bounded by the timeout');
  t.same(snap.sources, { connz: 'failed', consumers: 'ok', wireguard: 'off' });
  const fr = snap.countries.find((x) => x.code === 'FR');
  t.equal(fr?.connected, undefined);
  t.equal(fr?.deliveryPending, 4);
  t.equal(fr?.policyInSync, true);
  await c.snapshot();
  t.equal(lines.filter((l) => l['msg'] === 'status source failed; its values are unknown until it answers').length, 1, 'warned once, not at every scrape');
});

t.test('metrics: I/O results are reused for cacheMs and concurrent callers share one collection', async (t) => {
  let calls = 0;
  let now = 0;
  const c = new CountryStatusCollector({
    sources: sources({ connz: () => (calls++, Promise.resolve(new Set(['FR']))) }),
    log: silent,
    cacheMs: 2_000,
    now: () => now,
  });
  await Promise.all([c.snapshot(), c.snapshot(), c.snapshot()]);
  t.equal(calls, 1, 'one collection for three concurrent callers');
  now = 1_999;
  await c.snapshot();
  t.equal(calls, 1, 'cached');
  now = 2_000;
  await c.snapshot();
  t.equal(calls, 2, 'collected again once the cache is older than cacheMs');
});

t.test('metrics: series for members only, never-happened times absent, revoked countries dropped', async (t) => {
  let countries = [record('FR', 'active', { certNotAfter: '2026-02-01T00:00:00.000Z' }), record('DE', 'active'), record('IT', 'pending')];
  const src = sources({ countries: () => countries });
  const collector = new CountryStatusCollector({ sources: src, log: silent, cacheMs: 0 });
  const m = new HubMetrics(new PromRegistry(), { countries: () => countries, snapshot: () => collector.snapshot(), brokerUp: () => true, urgentOverdue: () => 0 });
  m.routerStats.onRouted('FR', ['DE'], 1);
  // The original's id carries its creation time; DE stored it 1.5 s later.
  const receipt = (status: 'delivered' | 'read') => ({ v: 1 as const, id: newUlid(), kind: 'receipt' as const, from: 'DE', to: ['FR'], priority: 'routine' as const, created: new Date(Date.parse(at) + 1500).toISOString(), receipt: { of: newUlid(Date.parse(at)), status } });
  m.routerStats.onReceipt?.(receipt('delivered'));
  m.routerStats.onReceipt?.(receipt('read'));
  // A batched envelope: each delivered receipt in it is one delivery time (the read one is not).
  const batch = receipt('delivered');
  m.routerStats.onReceipt?.({ ...batch, receipt: { ...batch.receipt, more: [{ of: newUlid(Date.parse(at) + 500), status: 'delivered' }, { of: newUlid(Date.parse(at)), status: 'read' }] } });
  let text = await m.register.metrics();
  t.match(text, /^ncbnet_country_last_seen_timestamp_seconds\{country="FR"\} 1000$/m);
  t.notMatch(text, /ncbnet_country_last_seen_timestamp_seconds\{country="DE"\}/, 'DE never heard from: absent');
  t.match(text, /^ncbnet_certificate_expiry_timestamp_seconds\{country="FR"\} 1769904000$/m);
  t.notMatch(text, /ncbnet_certificate_expiry_timestamp_seconds\{country="IT"\}/);
  t.match(text, /^ncbnet_messages_total\{country="DE",direction="received"\} 1$/m);
  t.match(text, /^ncbnet_delivery_seconds_sum\{country="DE"\} 4$/m, 'delivery times from the delivered receipts: 1.5 + 1.5 + 1');
  t.match(text, /^ncbnet_delivery_seconds_count\{country="DE"\} 3$/m, 'read receipts are not deliveries');
  t.match(text, /^ncbnet_messages_total\{country="IT",direction="sent"\} 0$/m, 'zero series for members');
  t.match(text, /^ncbnet_country_connected\{country="DE"\} 0$/m);
  countries = [countries[0] as CountryRecord, record('DE', 'revoked'), record('IT', 'pending')];
  m.countryChanged({ code: 'DE', before: record('DE', 'active'), after: record('DE', 'revoked') });
  // A probe swept just after the revocation must not bring DE back.
  m.probeStats.onProbeMissed('DE');
  m.probeStats.onProbeAnswered('DE', 0.01);
  text = await m.register.metrics();
  t.notMatch(text, /country="DE"/, 'every DE series gone');
  t.match(text, /^ncbnet_revocations_total 1$/m);
  t.match(text, /^ncbnet_registry_countries\{status="revoked"\} 1$/m);
});

t.test('metrics: /readyz on the metrics listener names what is not ready, with 503', async (t) => {
  let routerUp = false;
  const server = await startMetricsServer({ host: '127.0.0.1', port: 0, register: new PromRegistry(), readiness: () => ({ broker: true, router: routerUp }), log: silent });
  t.teardown(() => server.close());
  const url = new URL('/readyz', server.url);
  let res = await fetch(url);
  t.equal(res.status, 503);
  t.same(await res.json(), { ready: false, checks: { broker: true, router: false }, failing: ['router'] });
  routerUp = true;
  res = await fetch(url);
  t.equal(res.status, 200);
  t.equal((await fetch(server.url)).status, 200, '/metrics answers');
  t.equal((await fetch(new URL('/nope', server.url))).status, 404);
  const taken = Number(new URL(server.url).port);
  await t.rejects(startMetricsServer({ host: '127.0.0.1', port: taken, register: new PromRegistry(), readiness: () => ({}), log: silent }), { code: 'METRICS_LISTEN_FAILED' });
});
