import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Bundle } from '../../hub/enrollment/bundle.js';
import { isAlive } from '../../hub/broker/nats-server.js';
import { identityPaths, initHubState } from '../../hub/state-init.js';
import { encodeEnvelope, newUlid, type Envelope } from '../../protocol/envelope.js';
import { signEnvelope } from '../../protocol/signature.js';
import { importP256PrivateKey } from '../../pki/keys.js';
import { X509Certificate } from 'node:crypto';
import { DELIVER_STREAM, deliverConsumer, subjects } from '../../protocol/subjects.js';
import { runCli } from '../helpers/cli.js';
import { countryKeys } from '../helpers/country-identity.js';
import { describeError, rejection } from '../helpers/errors.js';
import { startHubProcess } from '../helpers/daemon-process.js';
import { httpsCall } from '../helpers/https.js';
import { openssl } from '../helpers/openssl.js';
import { tempDir } from '../helpers/tmpdir.js';
import { waitFor } from '../helpers/wait.js';

// One hub daemon, started as `ncbnet hub run` in its own process, driven only from outside: the
// operator CLI, the enrollment API and NATS clients holding country certificates.
const state = await tempDir(t, 'ncbnet-hub-');
await initHubState({ state, hubName: 'hub-1', sans: ['127.0.0.1', 'localhost'], operator: 'admin' });
const hub = await startHubProcess(t, state, { api: { host: '127.0.0.1', port: 0 }, broker: { host: '127.0.0.1', port: 0, monitorPort: 0 }, log: { level: 'debug' } });
const root = await readFile(join(state, 'pki', 'root.crt'), 'utf8');
const connections: NatsConnection[] = [];
t.teardown(async () => {
  for (const nc of connections) if (!nc.isClosed()) await nc.close();
});

const cli = async (...args: string[]) => {
  const r = await runCli('ncbnet', [...args, '--state', state, '--json']);
  return { ...r, json: r.code === 0 ? (JSON.parse(r.stdout) as unknown) : undefined };
};

/** Adds, tokens and enrolls a country through the CLI and the API; returns its TLS identity. */
async function onboard(cc: string, name: string) {
  const add = await cli('country', 'add', cc, '--name', name);
  if (add.code !== 0) throw new Error(`country add ${cc}: ${add.stderr}`);
  const tok = await cli('token', 'create', cc, '--ttl', '10m');
  const token = (tok.json as { token: string }).token;
  const keys = await countryKeys(cc);
  const res = await httpsCall(`${hub.endpoints.apiUrl}/v1/enroll`, { ca: root, body: { token, csr: keys.csr, wgPublicKey: keys.wgPublicKey } });
  if (res.status !== 200) throw new Error(`enroll ${cc}: ${res.text}`);
  const bundle = res.json as Bundle;
  identities.set(cc, { key: await importP256PrivateKey(keys.keyPem, cc), certDer: new Uint8Array(new X509Certificate(bundle.certificate).raw) });
  return { cc, bundle, cert: bundle.certificate + bundle.chain, key: keys.keyPem };
}

async function connectAs(id: { cc: string; cert: string; key: string }, reconnect = false): Promise<NatsConnection> {
  const nc = await connect({
    servers: hub.endpoints.natsUrl,
    tls: { cert: id.cert, key: id.key, ca: root },
    inboxPrefix: subjects.inboxPrefix(id.cc),
    timeout: 3000,
    reconnect,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 100,
  });
  connections.push(nc);
  return nc;
}

const identities = new Map<string, { key: CryptoKey; certDer: Uint8Array }>();

/** An envelope signed by `from`'s country key, as its agent would sign it. */
async function message(from: string, to: string[], subject: string, opts: { signAs?: string } = {}): Promise<Uint8Array> {
  const id = identities.get(opts.signAs ?? from);
  if (!id) throw new Error(`no identity for ${opts.signAs ?? from}`);
  const unsigned: Envelope = { v: 1, id: newUlid(), kind: 'message', from, to, priority: 'routine', created: new Date().toISOString(), subject, body: `${subject} body` };
  return encodeEnvelope(await signEnvelope(unsigned, id.key, id.certDer));
}

const fr = await onboard('FR', 'France');
const de = await onboard('DE', 'Germany');

t.test('hub daemon: countries enrolled through the CLI and API are NATS users with only their own subjects', async (t) => {
  const list = await cli('country', 'list');
  t.same((list.json as { code: string; status: string }[]).map((c) => [c.code, c.status]), [['DE', 'active'], ['FR', 'active']]);
  const nc = await connectAs(fr);
  const js = jetstream(nc, { timeout: 3000 });
  const ack = await js.publish(subjects.submit('FR'), await message('FR', ['DE'], 'permissions check'));
  t.equal(ack.stream, 'SUBMIT', 'FR may submit as FR');
  t.match(describeError(await rejection(js.publish(subjects.submit('DE'), await message('DE', ['FR'], 'forged')))), /Permissions Violation for Publish to "ncb\.submit\.DE"/);
  t.match(describeError(await rejection(js.consumers.get(DELIVER_STREAM, deliverConsumer('DE')))), /Permissions Violation/, "FR cannot read DE's consumer");
  const strangers = await tempDir(t);
  await initHubState({ state: strangers, hubName: 'hub-x', sans: ['127.0.0.1'], operator: 'x' });
  const ids = identityPaths(strangers);
  const foreign = await rejection(connect({ servers: hub.endpoints.natsUrl, tls: { cert: await readFile(ids.operatorCert, 'utf8'), key: await readFile(ids.operatorKey, 'utf8'), ca: root }, timeout: 3000, reconnect: false }));
  t.ok(foreign, `a certificate from another CA cannot connect: ${describeError(foreign)}`);
  await nc.close();
});

t.test('hub daemon: FR→DE goes through the router and waits in DELIVER until DE connects', async (t) => {
  const nc = await connectAs(fr);
  await jetstream(nc).publish(subjects.submit('FR'), await message('FR', ['DE'], 'for DE, later'));
  await nc.close();
  const deNc = await connectAs(de);
  const consumer = await jetstream(deNc).consumers.get(DELIVER_STREAM, deliverConsumer('DE'));
  const seen: string[] = [];
  await waitFor('the message for DE', async () => {
    const batch = await consumer.fetch({ max_messages: 10, expires: 1000 });
    for await (const m of batch) {
      seen.push(m.json<{ subject: string }>().subject);
      t.match(m.headers?.get('Nats-Msg-Id') ?? '', /^[0-9A-HJKMNP-TV-Z]{26}\.DE$/, 'dedup id <id>.<TO>');
      m.ack();
    }
    return seen.includes('for DE, later');
  });
  t.ok(seen.includes('for DE, later'));
  await deNc.close();
});

t.test('hub daemon: killing nats-server: the hub restarts it and stored messages survive', async (t) => {
  const nc = await connectAs(fr);
  const it = await onboard('IT', 'Italy');
  await jetstream(nc).publish(subjects.submit('FR'), await message('FR', ['IT'], 'survives a broker crash'));
  await nc.close();
  const pidFile = join(state, 'broker', 'nats-server.pid');
  const oldPid = Number(await readFile(pidFile, 'utf8'));
  const hubConn = await connect({ servers: hub.endpoints.natsUrl, tls: { cert: await readFile(identityPaths(state).hubCert, 'utf8'), key: await readFile(identityPaths(state).hubKey, 'utf8'), ca: root } });
  connections.push(hubConn);
  const jsm = await jetstreamManager(hubConn);
  await waitFor('the router to deliver to IT', async () => (await jsm.consumers.info(DELIVER_STREAM, deliverConsumer('IT'))).num_pending === 1);
  await hubConn.close();
  process.kill(oldPid, 'SIGKILL');
  await waitFor('a new nats-server', async () => {
    const pid = Number(await readFile(pidFile, 'utf8').catch(() => '0'));
    return pid !== oldPid && pid > 0 && (await isAlive(pid));
  }, 20_000);
  t.match(hub.output(), /restart/i, 'the hub logged the restart');
  let itNc: NatsConnection | undefined;
  await waitFor('IT to connect to the restarted broker', async () => {
    itNc = await connectAs(it).catch(() => undefined);
    return itNc !== undefined;
  }, 20_000, 200);
  if (!itNc) throw new Error('unreachable');
  const consumer = await jetstream(itNc).consumers.get(DELIVER_STREAM, deliverConsumer('IT'));
  const msgs = await consumer.fetch({ max_messages: 1, expires: 3000 });
  const got: string[] = [];
  for await (const m of msgs) {
    got.push(m.json<{ subject: string }>().subject);
    m.ack();
  }
  t.same(got, ['survives a broker crash'], 'the stored message is still there after the crash');
  let ready = '';
  await waitFor('the hub to report ready again', async () => {
    const r = await httpsCall(`${hub.endpoints.apiUrl}/readyz`, { ca: root });
    ready = r.text;
    return r.status === 200;
  }, 20_000, 200);
  t.match(ready, /"ready":true/, 'ready again once the broker and its connection are back');
});

t.test('hub daemon: revoking DE drops its live connection within 1 s and it cannot come back', async (t) => {
  const deNc = await connectAs(de, true);
  const frNc = await connectAs(fr);
  let closedAt = 0;
  const statusLoop = (async () => {
    for await (const s of deNc.status()) if (s.type === 'disconnect' && !closedAt) closedAt = Date.now();
  })();
  // Timed from the admin API call, as the CLI's own start-up (seconds under tap) is not the hub's.
  const ids = identityPaths(state);
  const start = Date.now();
  const r = await httpsCall(`${hub.endpoints.apiUrl}/v1/admin/countries/DE/revoke`, {
    ca: root,
    cert: await readFile(ids.operatorCert, 'utf8'),
    key: await readFile(ids.operatorKey, 'utf8'),
    body: { reason: 'keyCompromise' },
  });
  t.equal(r.status, 200, r.text);
  await waitFor('DE to be disconnected', () => closedAt > 0, 5000);
  t.ok(closedAt - start < 1000, `DE's connection dropped ${closedAt - start} ms after the revoke request`);
  await deNc.close();
  await statusLoop;
  const again = await rejection(connectAs(de));
  t.ok(again, `DE cannot reconnect: ${describeError(again)}`);
  await waitFor('the broker to log why', () => /certificate not pinned|Authorization Violation/.test(hub.output()));
  t.match(hub.output(), /certificate not pinned/, 'refused at the TLS handshake: its key is no longer pinned');
  t.notOk(frNc.isClosed(), 'FR is not disturbed');
  const crl = await httpsCall(`${hub.endpoints.apiUrl}/pki/crl?format=pem`, { ca: root });
  const dir = await tempDir(t);
  await writeFile(join(dir, 'crl.pem'), crl.text);
  const text = await openssl(['crl', '-in', join(dir, 'crl.pem'), '-noout', '-text']);
  t.match(text.stdout.toUpperCase(), de.bundle.serial.toUpperCase(), "DE's serial is in the CRL the hub serves");
  const show = await cli('country', 'show', 'DE');
  t.equal((show.json as { country: { status: string } }).country.status, 'revoked');
  await frNc.close();
});

t.test('hub daemon: operator CLI answers with tables, JSON and exit codes that mean something', async (t) => {
  const human = await runCli('ncbnet', ['country', 'list', '--state', state]);
  t.equal(human.code, 0, human.stderr);
  t.match(human.stdout, /code\s+name\s+status/, 'a table for people');
  t.match(human.stdout, /FR\s+France\s+active/);
  const suspended = await cli('country', 'suspend', 'FR', '--reason', 'audit');
  t.equal((suspended.json as { status: string }).status, 'suspended');
  const again = await runCli('ncbnet', ['country', 'suspend', 'FR', '--state', state]);
  t.equal(again.code, 65, 'a bad transition is refused input');
  t.match(again.stderr, /REGISTRY_BAD_TRANSITION/);
  const resumed = await cli('country', 'resume', 'FR');
  t.equal((resumed.json as { status: string }).status, 'active');
  const dup = await runCli('ncbnet', ['country', 'add', 'FR', '--name', 'France', '--state', state]);
  t.equal(dup.code, 73, 'already exists');
  const unknown = await runCli('ncbnet', ['country', 'show', 'PT', '--state', state]);
  t.equal(unknown.code, 66, 'unknown country');
  t.match(unknown.stderr, /REGISTRY_UNKNOWN_COUNTRY/);
  const bad = await runCli('ncbnet', ['token', 'create', 'fr', '--state', state]);
  t.equal(bad.code, 64, 'a lower-case code is a usage error, caught before the network');
  const ttl = await runCli('ncbnet', ['token', 'create', 'FR', '--ttl', 'soon', '--state', state]);
  t.equal(ttl.code, 64);
  t.match(ttl.stderr, /--ttl: not a duration/);
  const reason = await runCli('ncbnet', ['country', 'revoke', 'FR', '--reason', 'because', '--state', state]);
  t.equal(reason.code, 64, 'unknown revocation reason');
  const offline = await runCli('ncbnet', ['pki', 'revoke', '--state', state, '--serial', fr.bundle.serial, '--reason', 'superseded']);
  t.equal(offline.code, 75, 'offline CA commands refuse while the hub runs on the same state');
  t.match(offline.stderr, /CLI_HUB_RUNNING/);
  t.equal(hub.child.exitCode, null, 'the hub is still running');
});

t.test('hub daemon: every routing decision is in the hash-chained audit, and the chain verifies', async (t) => {
  const nc = await connectAs(fr);
  const bytes = await message('FR', ['IT'], 'audited');
  const id = (JSON.parse(new TextDecoder().decode(bytes)) as { id: string }).id;
  await jetstream(nc).publish(subjects.submit('FR'), bytes);
  await jetstream(nc).publish(subjects.submit('FR'), await message('FR', ['PT'], 'to a country that is not a member'));
  // FR's connection, FR's subject, but an envelope that claims to come from IT and is signed by FR.
  const forged = await message('IT', ['DE'], 'impersonation', { signAs: 'FR' });
  await jetstream(nc).publish(subjects.submit('FR'), forged);
  const forgedId = (JSON.parse(new TextDecoder().decode(forged)) as { id: string }).id;
  // A signed envelope with one byte of its body changed on the way.
  const good = JSON.parse(new TextDecoder().decode(await message('FR', ['IT'], 'tampered'))) as Envelope & { body: string };
  const tampered = { ...good, body: `X${good.body.slice(1)}` };
  await jetstream(nc).publish(subjects.submit('FR'), JSON.stringify(tampered));
  await nc.close();
  let records: { event: string; messageId?: string; to?: string[] }[] = [];
  // Each look is a CLI run (seconds on a loaded machine): the deadline allows several.
  await waitFor('the routed record', async () => {
    const r = await cli('audit', 'show', '--message', id);
    records = r.code === 0 ? (r.json as typeof records) : [];
    return records.length > 0;
  }, 60_000, 500);
  t.same(records.map((r) => [r.event, r.to]), [['routed', ['IT']]], 'the decision and its recipients, not the content');
  let forgedRecords: { event: string; code?: string }[] = [];
  await waitFor('the impersonation to be audited', async () => {
    const r = await cli('audit', 'show', '--message', forgedId);
    forgedRecords = r.code === 0 ? (r.json as typeof forgedRecords) : [];
    return forgedRecords.length > 0;
  }, 60_000, 500);
  t.equal(forgedRecords[0]?.event, 'rejected', 'impersonation is rejected and audited');
  let tamperedRecords: { event: string; code?: string }[] = [];
  await waitFor('the tampered envelope to be audited', async () => {
    const r = await cli('audit', 'show', '--message', tampered.id);
    tamperedRecords = r.code === 0 ? (r.json as typeof tamperedRecords) : [];
    return tamperedRecords.length > 0;
  }, 60_000, 500);
  t.same(tamperedRecords.map((r) => [r.event, r.code]), [['rejected', 'ENVELOPE_BAD_SIGNATURE']], 'one changed byte: bad signature, not delivered');
  const verified = await cli('audit', 'verify');
  t.equal(verified.code, 0, verified.stderr);
  t.match(verified.json, { ok: true }, 'the chain verifies');
  t.ok((verified.json as { count: number }).count >= 3, 'routed and rejected decisions are all recorded');
});

t.test('hub daemon: heartbeats update last seen', async (t) => {
  const nc = await connectAs(fr);
  nc.publish(subjects.heartbeat('FR'), JSON.stringify({ v: 1 }));
  await nc.flush();
  await waitFor('FR last seen', async () => {
    const shown = await cli('country', 'show', 'FR');
    return typeof (shown.json as { country: { lastSeen?: string } }).country.lastSeen === 'string';
  }, 60_000, 500);
  t.pass('lastSeen set from a heartbeat');
  await nc.close();
});

t.test('hub daemon: SIGTERM stops the hub and its nats-server, exit 0', async (t) => {
  const pid = Number(await readFile(join(state, 'broker', 'nats-server.pid'), 'utf8'));
  t.equal(await hub.stop(), 0);
  t.notOk(await isAlive(pid), 'nats-server is gone');
  const after = await cli('country', 'list');
  t.equal(after.code, 69, `the CLI says the hub is unavailable: ${after.stderr}`);
});

t.test('hub daemon: a hub killed with SIGKILL does not leave nats-server behind', async (t) => {
  const other = await tempDir(t, 'ncbnet-hub-kill-');
  await initHubState({ state: other, hubName: 'hub-2', sans: ['127.0.0.1', 'localhost'], operator: 'admin' });
  const second = await startHubProcess(t, other, { api: { host: '127.0.0.1', port: 0 }, broker: { host: '127.0.0.1', port: 0, monitorPort: 0 } });
  const pid = Number(await readFile(join(other, 'broker', 'nats-server.pid'), 'utf8'));
  t.ok(await isAlive(pid), 'its nats-server runs');
  second.child.kill('SIGKILL');
  await second.exited;
  await waitFor('nats-server to follow its parent', async () => !(await isAlive(pid)), 10_000);
  t.pass('nats-server exited with the hub (parent-death signal)');
});

t.test('hub daemon: a bad config is refused with exit 78 and every problem listed', async (t) => {
  const dir = await tempDir(t);
  const cfg = join(dir, 'hub.json');
  await writeFile(cfg, JSON.stringify({ api: { port: 'x' }, broker: { monitorPort: -1 }, wireguard: { enabled: true }, typo: true }));
  const r = await runCli('ncbnet', ['hub', 'run', '--state', dir, '--config', cfg]);
  t.equal(r.code, 78);
  for (const p of ['hub.api.port:', 'hub.broker.monitorPort:', 'hub.typo: unknown key']) t.match(r.stderr, p);
  const missing = await runCli('ncbnet', ['hub', 'run', '--state', dir]);
  t.equal(missing.code, 66, 'no CA in the state dir');
  t.match(missing.stderr, /HUB_STATE_MISSING: .*ncbnet hub init --state/, 'says what to do');
});
