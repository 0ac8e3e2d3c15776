/**
 * Metrics scrape benchmark: a real hub (the `HubDaemon` of `ncbnet hub run`, in this process, with
 * its supervised nats-server) with 195 active countries, each connected over TLS with its own
 * certificate, sending a heartbeat and answering probes; `/metrics` is scraped over HTTP.
 *
 * Figures, all in the same run:
 * - baseline: a prom-client registry holding the same series as static gauges, served over HTTP:
 *   what any exporter of that size costs, so the ratio shows what our collection adds;
 * - `/metrics` with fresh I/O on every scrape (`/connz`, DELIVER's consumer list), the worst case;
 * - `/metrics` as the hub runs it (I/O results reused for 2 s);
 * - each I/O source alone, and the alternative to the consumer list: 195 `consumers.info` at once.
 * Histograms are filled for every country (delivery times fed through the router's stats hook,
 * probe round trips from real answers), so the payload is the largest a full membership gives.
 * WireGuard is off (it needs root and a kernel or wireguard-go interface): the two byte counters
 * and the handshake gauge would add 3 × 195 short lines.
 *
 * Run: `make bench` (or `tsx bench/metrics-scrape.ts [--scrapes 200]`).
 */
import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';
import { Gauge, Registry as PromRegistry } from 'prom-client';
import { pinnedCertHash } from '../hub/broker/pins.js';
import { parseHubConfig } from '../hub/config.js';
import { HubDaemon } from '../hub/daemon.js';
import { fetchConnectedCountries } from '../hub/metrics/connz.js';
import { deliveryBacklog } from '../hub/metrics/backlog.js';
import type { CountryRecord } from '../hub/registry/record.js';
import { writeSnapshot } from '../hub/registry/snapshot.js';
import { snapshotPath } from '../hub/services.js';
import { identityPaths, initHubState } from '../hub/state-init.js';
import { CertificateAuthority } from '../pki/ca.js';
import { createCsr } from '../pki/csr-create.js';
import { generateP256, privateKeyToPem } from '../pki/keys.js';
import { policyDigest, type Policy } from '../protocol/bundle.js';
import { countryCodes } from '../protocol/country.js';
import { newUlid, type Envelope } from '../protocol/envelope.js';
import type { Heartbeat } from '../protocol/heartbeat.js';
import type { ProbeAnswer, ProbeRequest } from '../protocol/probe.js';
import { DELIVER_STREAM, deliverConsumer, subjects } from '../protocol/subjects.js';
import { reportLatency, type LatencyRow } from './lib/report.js';

function flag(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  const value = at >= 0 ? Number(process.argv[at + 1]) : fallback;
  if (!Number.isInteger(value) || value <= 0) throw new Error(`--${name}: a positive integer (got ${process.argv[at + 1]})`);
  return value;
}

const SCRAPES = flag('scrapes', process.env['BENCH_QUICK'] === '1' ? 50 : 200);
const COUNTRIES = 195;
const TARGET_MS = 50;
const TARGET_BYTES = 1024 * 1024;
const log = (text: string) => process.stderr.write(`${text}\n`);

interface Member {
  cc: string;
  cert: string;
  key: string;
}

/** Times `op` `n` times in a row (ms each) and keeps the largest payload it returned. */
async function timed(n: number, op: () => Promise<number | undefined>): Promise<{ latencies: number[]; bytes: number | undefined }> {
  const latencies: number[] = [];
  let bytes: number | undefined;
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const b = await op();
    latencies.push(performance.now() - t0);
    if (b !== undefined) bytes = Math.max(bytes ?? 0, b);
  }
  return { latencies, bytes };
}

async function scrapeBytes(url: string): Promise<number> {
  const res = await fetch(url);
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${url}: HTTP ${res.status}`);
  return Buffer.byteLength(text);
}

/** 195 countries enrolled the way the registry records them, written to the snapshot the hub seeds its registry from. */
async function enrollAll(state: string, codes: readonly string[]): Promise<Member[]> {
  const ca = await CertificateAuthority.load(state);
  const members: Member[] = [];
  const records: CountryRecord[] = [];
  const now = new Date().toISOString();
  for (const [i, cc] of codes.entries()) {
    const keys = await generateP256();
    const issued = await ca.issue({ kind: 'country', name: cc, csr: await createCsr('country', cc, keys) });
    const wg = generateKeyPairSync('x25519').publicKey.export({ format: 'der', type: 'spki' }).subarray(-32).toString('base64');
    records.push({
      code: cc,
      name: `Country ${cc}`,
      status: 'active',
      createdAt: now,
      updatedAt: now,
      certSerial: issued.serial,
      certNotAfter: issued.notAfter.toISOString(),
      certPin: pinnedCertHash(issued.pem),
      certificate: issued.pem,
      wgPublicKey: wg,
      overlayAddress: `10.77.${Math.floor((i + 2) / 256)}.${(i + 2) % 256}`,
      enrolledAt: now,
    });
    members.push({ cc, cert: issued.pem + issued.chainPem, key: await privateKeyToPem(keys.privateKey) });
  }
  await writeSnapshot(snapshotPath(state), records, new Date());
  return members;
}

/** Connects every member (20 handshakes at a time), answers probes, sends one heartbeat each. */
async function connectMembers(members: readonly Member[], natsUrl: string, root: string, policy: Policy): Promise<NatsConnection[]> {
  const out: NatsConnection[] = [];
  for (let i = 0; i < members.length; i += 20) {
    const batch = await Promise.all(
      members.slice(i, i + 20).map(async (m) => {
        const nc = await connect({ servers: natsUrl, tls: { cert: m.cert, key: m.key, ca: root }, inboxPrefix: subjects.inboxPrefix(m.cc), reconnect: false, timeout: 10_000 });
        nc.subscribe(subjects.event(m.cc), {
          callback: (_err, msg) => {
            const req = msg.json<ProbeRequest>();
            if (req.type !== 'probe') return;
            const answer: ProbeAnswer = { v: 1, type: 'probe-answer', id: req.id, country: m.cc, at: new Date().toISOString() };
            nc.publish(subjects.probe(m.cc), JSON.stringify(answer));
          },
        });
        const beat: Heartbeat = {
          v: 1,
          country: m.cc,
          version: 'bench',
          at: new Date().toISOString(),
          tunnel: { up: true, lastHandshake: null, rxBytes: 0, txBytes: 0 },
          certSerial: '01',
          certNotAfter: new Date().toISOString(),
          policyHash: policyDigest(policy),
          outboxDepth: 0,
        };
        nc.publish(subjects.heartbeat(m.cc), JSON.stringify(beat));
        await nc.flush();
        return nc;
      }),
    );
    out.push(...batch);
  }
  return out;
}

/**
 * Starts the hub on `state`, connects the members, fills the histograms, and runs `measure`
 * against it; stops everything afterwards.
 */
async function withHub<T>(state: string, members: readonly Member[], cacheMs: number | undefined, measure: (hub: { metricsUrl: string; monitorUrl: string; hubNc: NatsConnection }) => Promise<T>): Promise<T> {
  const config = parseHubConfig({
    api: { host: '127.0.0.1', port: 0 },
    broker: { host: '127.0.0.1', port: 0, monitorPort: 0 },
    metrics: { host: '127.0.0.1', port: 0 },
    probes: { intervalMs: 1_000, timeoutMs: 500 },
    log: { level: 'warn' },
  });
  const daemon = new HubDaemon({ stateDir: state, config, log: pino({ level: 'warn' }), ...(cacheMs === undefined ? {} : { metricsCacheMs: cacheMs }) });
  const t0 = performance.now();
  const endpoints = await daemon.start();
  log(`  hub started with ${members.length} active countries in ${Math.round(performance.now() - t0)} ms`);
  const ids = identityPaths(state);
  const root = await readFile(join(state, 'pki', 'root.crt'), 'utf8');
  const apiPort = Number(new URL(endpoints.apiUrl).port);
  const natsPort = Number(new URL(endpoints.natsUrl).port);
  const policy: Policy = { version: 1, hubAddress: '10.77.0.1', natsPort, apiPort, allowFromHubTcp: [] };
  const conns = await connectMembers(members, endpoints.natsUrl, root, policy);
  const hubNc = await connect({ servers: endpoints.natsUrl, tls: { cert: await readFile(ids.hubCert, 'utf8'), key: await readFile(ids.hubKey, 'utf8'), ca: root } });
  try {
    log(`  ${conns.length} countries connected; waiting for probe answers…`);
    // Delivery times through the router's receipt hook (one per country, 1.5 s each).
    for (const m of members) {
      const receipt: Envelope = { v: 1, id: newUlid(), kind: 'receipt', from: m.cc, to: ['FR'], priority: 'routine', created: new Date().toISOString(), receipt: { of: newUlid(Date.now() - 1500), status: 'delivered' } };
      daemon.metrics.routerStats.onReceipt?.(receipt);
    }
    // Each country's first heartbeat after a start writes its last seen to the registry (KV and
    // the disk snapshot, one after the other); measure once those writes are done.
    const settling = performance.now();
    for (const deadline = Date.now() + 120_000; !(daemon.services?.registry.list().every((r) => r.lastSeen !== undefined) ?? false); ) {
      if (Date.now() > deadline) throw new Error('last seen not recorded for every country');
      await new Promise((r) => setTimeout(r, 100));
    }
    log(`  registry writes of the first heartbeats settled after ${Math.round(performance.now() - settling)} ms`);
    const metricsUrl = endpoints.metricsUrl ?? '';
    for (const deadline = Date.now() + 15_000; ; ) {
      const text = await (await fetch(metricsUrl)).text();
      const answered = text.split('\n').filter((l) => l.startsWith('ncbnet_probe_rtt_seconds_count{')).length;
      const connected = text.split('\n').filter((l) => l.startsWith('ncbnet_country_connected{') && l.endsWith(' 1')).length;
      if (answered === members.length && connected === members.length) break;
      if (Date.now() > deadline) throw new Error(`only ${answered} countries answered probes and ${connected} are connected`);
      await new Promise((r) => setTimeout(r, 250));
    }
    return await measure({ metricsUrl, monitorUrl: endpoints.monitorUrl, hubNc });
  } finally {
    await hubNc.close();
    await Promise.all(conns.map((nc) => nc.close()));
    await daemon.stop();
  }
}

/** A registry with the same series as `text` (every sample line), each a static gauge. */
function staticTwin(text: string): PromRegistry {
  const register = new PromRegistry();
  const byName = new Map<string, { labels: Record<string, string>; value: number }[]>();
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1] as string] = l[2] as string;
    const list = byName.get(m[1] as string) ?? [];
    list.push({ labels, value: Number(m[3]) });
    byName.set(m[1] as string, list);
  }
  for (const [name, samples] of byName) {
    const labelNames = [...new Set(samples.flatMap((s) => Object.keys(s.labels)))];
    const g = new Gauge({ name, help: `static copy of ${name}`, labelNames, registers: [register] });
    for (const s of samples) g.set(s.labels, s.value);
  }
  return register;
}

const state = await mkdtemp(join(tmpdir(), 'ncbnet-bench-metrics-'));
try {
  await initHubState({ state, hubName: 'hub-1', sans: ['127.0.0.1', 'localhost'], operator: 'admin' });
  const codes = countryCodes().slice(0, COUNTRIES);
  log(`issuing ${codes.length} country certificates…`);
  const members = await enrollAll(state, codes);
  const rows: LatencyRow[] = [];
  let payload = '';

  log(`fresh I/O on every scrape (cache off): ${SCRAPES} scrapes`);
  await withHub(state, members, 0, async ({ metricsUrl, monitorUrl, hubNc }) => {
    payload = await (await fetch(metricsUrl)).text();
    const fresh = await timed(SCRAPES, () => scrapeBytes(metricsUrl));
    rows.push({ figure: `/metrics, ${COUNTRIES} countries, fresh I/O each scrape`, latencies: fresh.latencies, bytes: fresh.bytes ?? 0, baseline: 'baseline: same series, static registry', target: { maxMs: TARGET_MS, maxBytes: TARGET_BYTES, label: `≤ ${TARGET_MS} ms, ≤ 1 MiB` } });
    const jsm = await jetstreamManager(hubNc);
    rows.push({ figure: `  source: /connz?auth=true (${COUNTRIES} connections)`, latencies: (await timed(SCRAPES, async () => void (await fetchConnectedCountries(monitorUrl, 2_000)))).latencies });
    rows.push({ figure: `  source: consumers.list(DELIVER), ${COUNTRIES} consumers`, latencies: (await timed(SCRAPES, async () => void (await deliveryBacklog(jsm)))).latencies });
    rows.push({
      figure: `  alternative: ${COUNTRIES} × consumers.info at once`,
      latencies: (await timed(Math.min(SCRAPES, 50), async () => void (await Promise.all(codes.map((cc) => jsm.consumers.info(DELIVER_STREAM, deliverConsumer(cc))))))).latencies,
    });
  });

  log(`as the hub runs (I/O reused for 2 s): ${SCRAPES} scrapes`);
  await withHub(state, members, undefined, async ({ metricsUrl }) => {
    const cached = await timed(SCRAPES, () => scrapeBytes(metricsUrl));
    rows.push({ figure: `/metrics, ${COUNTRIES} countries, I/O cached 2 s (default)`, latencies: cached.latencies, bytes: cached.bytes ?? 0, baseline: 'baseline: same series, static registry', target: { maxMs: TARGET_MS, maxBytes: TARGET_BYTES, label: `≤ ${TARGET_MS} ms, ≤ 1 MiB` } });
  });

  const twin = staticTwin(payload);
  const server = createServer((_req, res) => {
    void twin.metrics().then((body) => res.writeHead(200, { 'content-type': twin.contentType }).end(body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
  const base = await timed(SCRAPES, () => scrapeBytes(baseUrl));
  server.close();
  rows.unshift({ figure: 'baseline: same series, static registry', latencies: base.latencies, bytes: base.bytes ?? 0 });

  const series = payload.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length;
  const note = `${COUNTRIES} active countries connected over TLS to the hub's nats-server; ${series} series; ${SCRAPES} sequential scrapes over HTTP per figure; WireGuard off.`;
  const md = await reportLatency('Metrics scrape', rows, 'bench/results/metrics-latest.json', note);
  await writeFile('bench/results/metrics-latest.md', `${md}\n`);
  console.log('\nwritten: bench/results/metrics-latest.json, bench/results/metrics-latest.md');
} finally {
  await rm(state, { recursive: true, force: true });
}
