// The broker's permissions and supervision, proven against the real nats-server (2.9.10) through
// BrokerSupervisor, with a throwaway CA: one identity per country mapped by verify_and_map, each
// allowed only its own subjects, revocation by reload, crash restart, orphan cleanup.
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AckPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';
import t from 'tap';
import { renderBrokerConfig } from '../../hub/broker/config-render.js';
import { BROKER_RELOAD_FAILED, BROKER_STOPPED } from '../../hub/broker/errors.js';
import { isAlive, killOrphan } from '../../hub/broker/nats-server.js';
import { pinnedCertHash } from '../../hub/broker/pins.js';
import { BrokerSupervisor, type BrokerRestartInfo } from '../../hub/broker/supervisor.js';
import { initCa } from '../../pki/ca-init.js';
import { CertificateAuthority } from '../../pki/ca.js';
import { createCsr } from '../../pki/csr-create.js';
import { generateP256, privateKeyToPem } from '../../pki/keys.js';
import type { IdentityKind } from '../../protocol/identity.js';
import { DELIVER_STREAM, deliverConsumer, SUBMIT_STREAM, subjects } from '../../protocol/subjects.js';
import { describeError as describe, rejection } from '../helpers/errors.js';
import { tempDir } from '../helpers/tmpdir.js';
import { waitFor } from '../helpers/wait.js';

interface Identity {
  /** Leaf then intermediate, PEM. */
  cert: string;
  key: string;
  /** SHA-256 of the leaf's SPKI, as pinned_certs wants it. */
  pin: string;
}

async function issue(ca: CertificateAuthority, kind: IdentityKind, name: string, ips: string[] = [], dns: string[] = []): Promise<Identity> {
  const keys = await generateP256();
  const issued = await ca.issue({ kind, name, csr: await createCsr(kind, name, keys), ipAddresses: ips, dnsNames: dns });
  return { cert: issued.pem + ca.issuer.toString('pem') + '\n', key: await privateKeyToPem(keys.privateKey), pin: pinnedCertHash(issued.pem) };
}

const state = await tempDir(t, 'ncbnet-broker-');
await initCa(join(state, 'ca'));
const ca = await CertificateAuthority.load(join(state, 'ca'));
await initCa(join(state, 'other-ca'));
const otherCa = await CertificateAuthority.load(join(state, 'other-ca'));
const rootPem = ca.root.toString('pem');
const hub = await issue(ca, 'hub', 'hub-1', ['127.0.0.1'], ['localhost']);
const fr = await issue(ca, 'country', 'FR');
const de = await issue(ca, 'country', 'DE');
const frFromOtherCa = await issue(otherCa, 'country', 'FR');
const tlsDir = join(state, 'tls');
await mkdir(tlsDir, { mode: 0o700 });
const tls = { certFile: join(tlsDir, 'hub.crt'), keyFile: join(tlsDir, 'hub.key'), caFile: join(tlsDir, 'root.crt') };
await writeFile(tls.certFile, hub.cert);
await writeFile(tls.keyFile, hub.key, { mode: 0o600 });
await writeFile(tls.caFile, rootPem);

const logs: string[] = [];
const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(line) });

/** A supervisor in `state/<name>` whose config renders from the returned mutable settings. */
function supervisor(name: string, opts: { backoffMs?: number } = {}) {
  const dir = join(state, name);
  const settings: { countries: string[]; port: number; monitorPort: number; pinnedCerts?: string[] } = { countries: ['FR', 'DE'], port: 0, monitorPort: 0 };
  const sup = new BrokerSupervisor({
    dir,
    logger: logger.child({ component: 'broker', name }),
    backoff: { initialMs: opts.backoffMs ?? 50, maxMs: opts.backoffMs ?? 1_000 },
    render: () =>
      renderBrokerConfig({
        serverName: `test-${name}`,
        host: '127.0.0.1',
        port: settings.port,
        monitorPort: settings.monitorPort,
        portsFileDir: dir,
        jetstream: { storeDir: join(dir, 'jetstream'), maxMemoryBytes: 64 * 1024 * 1024, maxFileBytes: 256 * 1024 * 1024 },
        tls,
        hubUser: 'CN=hub-1,OU=hub,O=ncbnet',
        countries: settings.countries,
        maxPayloadBytes: 1024 * 1024,
        pinnedCerts: settings.pinnedCerts,
      }),
  });
  t.teardown(async () => {
    if (!t.passing()) t.comment(`nats-server ${name} output:\n${sup.output()}\nlogs:\n${logs.join('')}`);
    await sup.stop();
  });
  return { sup, settings };
}

const connections: NatsConnection[] = [];
t.teardown(async () => {
  await Promise.all(connections.map((nc) => nc.close().catch(() => undefined)));
});

/** Connects with `id`'s certificate; a country uses its own inbox prefix, as its permissions require. */
async function connectAs(sup: BrokerSupervisor, id: Identity | undefined, country?: string, reconnect = false): Promise<NatsConnection> {
  const nc = await connect({
    servers: sup.url,
    tls: id === undefined ? { ca: rootPem } : { cert: id.cert, key: id.key, ca: rootPem },
    timeout: 3_000,
    reconnect,
    reconnectTimeWait: 50,
    maxReconnectAttempts: -1,
    ...(country === undefined ? {} : { inboxPrefix: subjects.inboxPrefix(country) }),
  });
  connections.push(nc);
  return nc;
}

const main = supervisor('main');
const sup = main.sup;
const t0 = Date.now();
await sup.start();
t.comment(`nats-server started in ${Date.now() - t0} ms at ${sup.url}`);
// Pin the chosen client port so a restarted server comes back where clients reconnect.
main.settings.port = Number(new URL(sup.url).port);
await sup.reload();

const hubNc = await connectAs(sup, hub, undefined, true);
const jsm = await jetstreamManager(hubNc);
await jsm.streams.add({ name: SUBMIT_STREAM, subjects: [subjects.submitAll], retention: RetentionPolicy.Workqueue, storage: StorageType.File });
await jsm.streams.add({ name: DELIVER_STREAM, subjects: [subjects.deliverAll], storage: StorageType.File });
for (const cc of ['FR', 'DE']) {
  await jsm.consumers.add(DELIVER_STREAM, { durable_name: deliverConsumer(cc), filter_subject: subjects.deliver(cc), ack_policy: AckPolicy.Explicit });
}
const hubJs = jetstream(hubNc);

t.test('broker: the config on disk is 0600 and the monitoring port answers on loopback only', async (t) => {
  t.equal((await stat(sup.configPath)).mode & 0o777, 0o600);
  t.match(sup.monitorUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
  const varz = (await (await fetch(`${sup.monitorUrl}/varz`)).json()) as Record<string, unknown>;
  t.equal(varz['server_name'], 'test-main');
  t.equal(Number(await readFile(sup.pidFile, 'utf8')), sup.pid, 'pid file names the child');
});

t.test('broker: FR publishes to its own submit subject and gets a JetStream ack', async (t) => {
  const nc = await connectAs(sup, fr, 'FR');
  const ack = await jetstream(nc).publish(subjects.submit('FR'), 'hello from FR');
  t.equal(ack.stream, SUBMIT_STREAM);
  await nc.close();
});

t.test("broker: FR is refused DE's submit subject, DE's consumer and DE's events", async (t) => {
  const nc = await connectAs(sup, fr, 'FR');
  const js = jetstream(nc, { timeout: 2_000 });
  const pub = await rejection(js.publish(subjects.submit('DE'), 'forged'));
  t.match(describe(pub), /Permissions Violation for Publish to "ncb\.submit\.DE"/, 'publish refused');

  await hubJs.publish(subjects.deliver('DE'), 'for DE only');
  const info = await rejection(js.consumers.get(DELIVER_STREAM, deliverConsumer('DE')));
  t.match(describe(info), /Permissions Violation for Publish to "\$JS\.API\.CONSUMER\.INFO\.DELIVER\.deliver-DE"/, 'consumer info refused');
  const next = await rejection(nc.request(`$JS.API.CONSUMER.MSG.NEXT.${DELIVER_STREAM}.${deliverConsumer('DE')}`, JSON.stringify({ batch: 1, expires: 1e9 }), { timeout: 2_000 }));
  t.match(describe(next), /Permissions Violation for Publish to "\$JS\.API\.CONSUMER\.MSG\.NEXT\.DELIVER\.deliver-DE"/, 'fetch refused');
  const ci = await jsm.consumers.info(DELIVER_STREAM, deliverConsumer('DE'));
  t.equal(ci.num_pending, 1, "DE's message is still waiting for DE");

  const sub = nc.subscribe(subjects.event('DE'));
  const closed = await sub.closed;
  t.match(describe(closed), /Permissions Violation for Subscription to "ncb\.event\.DE"/, 'subscribe refused');
  t.notOk(nc.isClosed(), 'permission errors do not drop the connection');
  await nc.close();
});

t.test('broker: FR fetches and acks from its own consumer deliver-FR', async (t) => {
  await hubJs.publish(subjects.deliver('FR'), 'for FR', { msgID: 'm1.FR' });
  const nc = await connectAs(sup, fr, 'FR');
  const consumer = await jetstream(nc).consumers.get(DELIVER_STREAM, deliverConsumer('FR'));
  const msg = await consumer.next({ expires: 2_000 });
  t.equal(msg?.string(), 'for FR');
  t.equal(await msg?.ackAck(), true, 'ack confirmed by the server');
  const ci = await jsm.consumers.info(DELIVER_STREAM, deliverConsumer('FR'));
  t.equal(ci.num_pending + ci.num_ack_pending, 0, 'nothing left for FR');
  await nc.close();
});

t.test("broker: FR answers probes on ncb.probe.FR only; ncb.probe.DE is a permission error", async (t) => {
  const got: string[] = [];
  const hubSub = hubNc.subscribe(subjects.probeAll, {
    callback: (_err, m) => {
      got.push(`${m.subject} ${m.string()}`);
    },
  });
  await hubNc.flush();
  const nc = await connectAs(sup, fr, 'FR');
  const errors: string[] = [];
  void (async () => {
    for await (const s of nc.status()) if (s.type === 'error') errors.push(describe(s.error));
  })();
  nc.publish(subjects.probe('DE'), 'forged answer');
  nc.publish(subjects.probe('FR'), 'own answer');
  await nc.flush();
  await waitFor('FR\'s answer at the hub', () => got.length > 0, 2_000);
  await waitFor('the permission error', () => errors.length > 0, 2_000);
  t.same(got, ['ncb.probe.FR own answer'], 'only FR\'s own probe subject reaches the hub');
  t.match(errors[0], /Permissions Violation for Publish to "ncb\.probe\.DE"/);
  t.notOk(nc.isClosed(), 'the connection stays');
  hubSub.unsubscribe();
  await nc.close();
});

t.test('broker: a certificate from another CA, or none, cannot connect', async (t) => {
  // TLS 1.3: the server checks the client certificate after the client's side of the handshake,
  // so the client sees the server's alert 42 (bad_certificate) on its first read.
  const other = await rejection(connectAs(sup, frFromOtherCa, 'FR'));
  t.match(describe(other), /bad certificate|ECONNRESET/, `other CA refused: ${describe(other)}`);
  const none = await rejection(connectAs(sup, undefined, 'FR'));
  t.match(describe(none), /bad certificate|ECONNRESET/, `no certificate refused: ${describe(none)}`);
  await waitFor('server logs both handshake errors', () => (sup.output().match(/TLS handshake error/g) ?? []).length >= 2, 2_000);
  t.match(sup.output(), /certificate signed by unknown authority/, 'server names the unknown CA');
});

t.test("broker: removing DE and reloading drops DE's live connection in < 1 s, keeps FR's", async (t) => {
  const deNc = await connectAs(sup, de, 'DE');
  const frNc = await connectAs(sup, fr, 'FR', true);
  const frStatus: string[] = [];
  void (async () => {
    for await (const s of frNc.status()) frStatus.push(s.type);
  })();
  await deNc.flush();
  let deClosedAt = 0;
  void deNc.closed().then(() => {
    deClosedAt = Date.now();
  });
  main.settings.countries = ['FR'];
  const reloadStart = Date.now();
  await sup.reload();
  await waitFor('DE connection closed', () => deClosedAt !== 0, 5_000);
  const elapsed = deClosedAt - reloadStart;
  t.comment(`DE dropped ${elapsed} ms after reload() was called (render, nats-server -t, SIGHUP included)`);
  t.ok(elapsed < 1_000, `DE dropped within 1 s (${elapsed} ms)`);
  const again = await rejection(connectAs(sup, de, 'DE'));
  t.match(describe(again), /Authorization Violation/i, 'DE cannot come back');
  await frNc.flush();
  const ack = await jetstream(frNc).publish(subjects.submit('FR'), 'still here');
  t.equal(ack.stream, SUBMIT_STREAM);
  t.notOk(frStatus.includes('disconnect'), 'FR was never disconnected');
  await frNc.close();
});

t.test('broker: a config refused by nats-server -t or by the reload itself leaves the old one in force', async (t) => {
  const before = await readFile(sup.configPath, 'utf8');
  // Point the CA bundle at a file that does not exist: valid syntax, refused when loaded.
  const saved = tls.caFile;
  tls.caFile = join(state, 'missing-root.crt');
  try {
    await t.rejects(sup.reload(), { code: BROKER_RELOAD_FAILED, message: /missing-root\.crt/ });
  } finally {
    tls.caFile = saved;
  }
  t.equal(await readFile(sup.configPath, 'utf8'), before, 'old config kept');
  // Valid for -t but not reloadable (2.9.10 reload.go: HTTPPort): refused by the running server.
  main.settings.monitorPort = Number(new URL(sup.monitorUrl).port);
  try {
    await t.rejects(sup.reload(), { code: BROKER_RELOAD_FAILED, message: /config reload not supported for HTTPPort/ });
  } finally {
    main.settings.monitorPort = 0;
  }
  t.equal(await readFile(sup.configPath, 'utf8'), before, 'old config put back');
  await sup.reload();
  t.pass('a good config reloads again');
});

t.test('broker: SIGKILLed nats-server is restarted and DELIVER keeps its messages', async (t) => {
  await hubJs.publish(subjects.deliver('FR'), 'survives a crash', { msgID: 'm2.FR' });
  const frNc = await connectAs(sup, fr, 'FR', true);
  const oldPid = sup.pid;
  const restarts = sup.restarts;
  const restarted = new Promise<BrokerRestartInfo>((resolve) => sup.once('restart', resolve));
  const killedAt = Date.now();
  process.kill(oldPid ?? -1, 'SIGKILL');
  const info = await restarted;
  t.comment(`restarted ${Date.now() - killedAt} ms after SIGKILL (back-off ${info.delayMs} ms)`);
  t.not(sup.pid, oldPid);
  t.equal(sup.restarts, restarts + 1);
  t.match(logs.join(''), /nats-server exited unexpectedly[\s\S]*nats-server restarted/, 'logged');
  await waitFor('FR reconnected', async () => {
    try {
      await frNc.flush();
      return true;
    } catch {
      return false;
    }
  });
  const consumer = await jetstream(frNc).consumers.get(DELIVER_STREAM, deliverConsumer('FR'));
  const msg = await consumer.next({ expires: 2_000 });
  t.equal(msg?.string(), 'survives a crash', 'stored before the kill, delivered after');
  await msg?.ackAck();
  await frNc.close();
});

t.test('broker: stop() leaves no nats-server process and no restart happens', async (t) => {
  const pid = sup.pid ?? -1;
  t.ok(await isAlive(pid));
  await sup.stop();
  t.notOk(await isAlive(pid), 'process gone');
  t.throws(() => process.kill(pid, 0), { code: 'ESRCH' });
  t.equal(sup.pid, undefined);
  t.notOk(sup.isRunning);
  await t.rejects(sup.reload(), { code: BROKER_STOPPED });
  await t.rejects(sup.start(), { code: BROKER_STOPPED });
});

t.test('broker: a new supervisor kills the nats-server a crashed hub left on the same dir', async (t) => {
  // The first supervisor stands for a hub that died: it never stops its child, and its restart
  // back-off is far beyond this test so it stays out of the way.
  const crashed = supervisor('orphan', { backoffMs: 600_000 });
  await crashed.sup.start();
  const orphanPid = crashed.sup.pid ?? -1;
  const next = supervisor('orphan');
  await next.sup.start();
  t.notOk(await isAlive(orphanPid), 'orphan killed');
  t.not(next.sup.pid, orphanPid);
  t.match(logs.join(''), /killed nats-server left by a previous hub/);
  const nc = await connectAs(next.sup, hub);
  await nc.flush();
  t.pass('the new server serves');
  await nc.close();
  // A pid file naming an unrelated process is never acted on.
  await writeFile(join(state, 'unrelated.pid'), `${process.pid}\n`);
  t.equal(await killOrphan(join(state, 'unrelated.pid'), next.sup.configPath, 1_000), undefined);
});

t.test('broker: pinned_certs (2.9.10) refuses an unpinned key at the handshake and takes pins on reload', async (t) => {
  const pinned = supervisor('pinned');
  pinned.settings.pinnedCerts = [hub.pin, fr.pin];
  await pinned.sup.start();
  const frNc = await connectAs(pinned.sup, fr, 'FR');
  await frNc.flush();
  const refused = await rejection(connectAs(pinned.sup, de, 'DE'));
  t.comment(`DE unpinned: ${describe(refused)}`);
  t.match(pinned.sup.output(), /certificate not pinned/i, 'server says why');
  pinned.settings.pinnedCerts = [hub.pin, fr.pin, de.pin];
  await pinned.sup.reload();
  const deNc = await connectAs(pinned.sup, de, 'DE');
  await deNc.flush();
  t.pass('DE connects once pinned');
  // 2.9.10 rechecks live NATS clients against the *old* pin set on reload (reload.go
  // recheckPinnedCerts uses curOpts.TLSPinnedCerts), so unpinning alone does not drop DE's live
  // connection; removing DE's user does. Revocation therefore does both (ARCHITECTURE, Broker).
  pinned.settings.pinnedCerts = [hub.pin, fr.pin];
  await pinned.sup.reload();
  await deNc.flush();
  t.notOk(deNc.isClosed(), 'unpinned but still a user: the live connection stays (2.9.10 behaviour)');
  await t.rejects(connectAs(pinned.sup, de, 'DE'), 'but a new handshake is refused');
  pinned.settings.countries = ['FR'];
  await pinned.sup.reload();
  await waitFor('DE dropped once its user is gone', () => deNc.isClosed(), 1_000);
  t.pass('user removed: dropped');
  await frNc.close();
});
