import { access, readFile } from 'node:fs/promises';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import t from 'tap';
import {
  NatsServerError,
  printOutputOnFailure,
  renderNatsServerConfig,
  startNatsServer,
  startNatsServerForTest,
  type NatsServer,
  type TestLike,
} from './nats-server.js';

/** Connects to `server` and closes the connection in teardown (which runs before the server's). */
async function connectTo(tt: TestLike, server: NatsServer): Promise<NatsConnection> {
  const nc = await connect({ servers: server.url, reconnect: false });
  tt.teardown(() => nc.close());
  return nc;
}

function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

t.test('nats-server helper: starts and a client does a pub/sub round trip', async (t) => {
  const server = await startNatsServerForTest(t);
  t.match(server.url, /^nats:\/\/127\.0\.0\.1:\d+$/);
  t.equal(server.url, `nats://127.0.0.1:${server.port}`);
  t.ok(server.port > 0);
  t.ok(server.isRunning);
  t.match(server.dir, /ncbnet-nats-/);
  t.match(await readFile(server.configPath, 'utf8'), 'port: -1');
  t.match(server.output(), 'Server is ready');

  const nc = await connectTo(t, server);
  const sub = nc.subscribe('helper.echo', { max: 1 });
  nc.publish('helper.echo', 'hello');
  for await (const m of sub) t.equal(m.string(), 'hello');
  t.equal(sub.getProcessed(), 1);
});

t.test('nats-server helper: monitoring endpoint answers with the server name', async (t) => {
  const server = await startNatsServerForTest(t);
  t.ok(server.monitorUrl);
  const res = await fetch(`${server.monitorUrl}/varz`);
  t.equal(res.status, 200);
  const varz = (await res.json()) as { server_name?: unknown; port?: unknown };
  t.equal(varz.server_name, server.serverName);
  t.equal(varz.port, server.port);
});

t.test('nats-server helper: monitoring off leaves monitorUrl undefined', async (t) => {
  const server = await startNatsServerForTest(t, { monitoring: false });
  t.equal(server.monitorUrl, undefined);
  t.notMatch(await readFile(server.configPath, 'utf8'), /^http/m);
});

t.test('nats-server helper: JetStream is enabled by default', async (t) => {
  const server = await startNatsServerForTest(t);
  const nc = await connectTo(t, server);
  const jsm = await jetstreamManager(nc);
  const info = await jsm.getAccountInfo();
  t.equal(info.streams, 0);
});

t.test('nats-server helper: JetStream is disabled when asked', async (t) => {
  const server = await startNatsServerForTest(t, { jetstream: false });
  t.equal(server.storeDir, undefined);
  const nc = await connectTo(t, server);
  await t.rejects(
    jetstreamManager(nc).then((jsm) => jsm.getAccountInfo()),
    /jetstream is not enabled/,
  );
});

t.test('nats-server helper: two servers at once get different ports', async (t) => {
  const [a, b] = await Promise.all([startNatsServerForTest(t), startNatsServerForTest(t)]);
  t.not(a.port, b.port);
  t.not(a.dir, b.dir);
  t.not(a.serverName, b.serverName);
  const [na, nb] = await Promise.all([connectTo(t, a), connectTo(t, b)]);
  t.equal(na.info?.server_name, a.serverName);
  t.equal(nb.info?.server_name, b.serverName);
});

t.test('nats-server helper: extraConfig is applied', async (t) => {
  const server = await startNatsServerForTest(t, { extraConfig: 'max_payload: 2048' });
  const nc = await connectTo(t, server);
  t.equal(nc.info?.max_payload, 2048);
});

t.test('nats-server helper: a bad config rejects with nats-server\'s complaint and cleans up', async (t) => {
  const err = await startNatsServer({ extraConfig: 'bogus_key_for_test: 1' }).then(
    (s) => s.stop().then(() => undefined),
    (e: unknown) => e,
  );
  t.type(err, NatsServerError);
  if (!(err instanceof NatsServerError)) return;
  t.equal(err.code, 'NATS_SERVER_EXITED');
  t.match(err.message, 'unknown field "bogus_key_for_test"');
  t.match(err.output, 'unknown field "bogus_key_for_test"');
  // nats-server names the config file in its complaint; its temp dir must be gone.
  const dir = /(\S*ncbnet-nats-[^/\s]+)\//.exec(err.message)?.[1];
  t.ok(dir, 'complaint names the config path');
  if (dir !== undefined) t.notOk(await exists(dir), `${dir} removed`);
});

t.test('nats-server helper: a missing binary rejects with NATS_SERVER_SPAWN_FAILED', async (t) => {
  await t.rejects(startNatsServer({ binary: '/nonexistent/nats-server' }), { code: 'NATS_SERVER_SPAWN_FAILED' });
});

t.test('nats-server helper: stop() kills the process, removes the temp dir, and is idempotent', async (t) => {
  const server = await startNatsServer();
  t.teardown(() => server.stop());
  const { pid, dir } = server;
  if (pid === undefined) throw new Error('no pid');
  t.ok(isProcessAlive(pid), 'running before stop');
  t.ok(await exists(dir), 'temp dir exists before stop');

  await server.stop();
  t.notOk(server.isRunning);
  t.throws(() => process.kill(pid, 0), { code: 'ESRCH' });
  t.notOk(await exists(dir), 'temp dir removed');

  await server.stop();
  await t.resolves(Promise.all([server.stop(), server.stop()]), 'stop() again is fine');
  await t.rejects(server.restart(), { code: 'NATS_SERVER_STOPPED' });
  await t.rejects(server.kill('SIGKILL'), { code: 'NATS_SERVER_STOPPED' });
});

t.test('nats-server helper: restart() after kill -9 keeps the port and stored JetStream messages', async (t) => {
  const server = await startNatsServerForTest(t);
  const { port } = server;
  const firstPid = server.pid;
  if (firstPid === undefined) throw new Error('no pid');

  const nc1 = await connect({ servers: server.url, reconnect: false });
  const jsm1 = await jetstreamManager(nc1);
  await jsm1.streams.add({ name: 'HELPER_DURABLE', subjects: ['helper.durable.>'], storage: 'file' });
  const ack = await jetstream(nc1).publish('helper.durable.one', 'kept across kill -9');
  t.equal(ack.seq, 1);
  await nc1.close();

  const exit = await server.kill('SIGKILL');
  t.equal(exit.signal, 'SIGKILL');
  t.notOk(server.isRunning);
  t.throws(() => process.kill(firstPid, 0), { code: 'ESRCH' });
  await t.rejects(server.kill(), { code: 'NATS_SERVER_NOT_RUNNING' });

  await server.restart();
  t.match(await readFile(server.configPath, 'utf8'), `port: ${port}\n`, 'port written into the config');
  t.equal(server.port, port, 'same port');
  t.not(server.pid, firstPid, 'new process');
  const nc2 = await connectTo(t, server);
  const jsm2 = await jetstreamManager(nc2);
  const msg = await jsm2.streams.getMessage('HELPER_DURABLE', { seq: 1 });
  t.equal(msg?.string(), 'kept across kill -9');
  t.equal(msg?.subject, 'helper.durable.one');
});

t.test('nats-server helper: restart() of a running server stops it first and keeps both ports', async (t) => {
  const server = await startNatsServerForTest(t, { jetstream: false });
  const { port, pid } = server;
  if (pid === undefined) throw new Error('no pid');
  await server.restart();
  t.equal(server.port, port);
  t.not(server.pid, pid);
  t.notOk(isProcessAlive(pid), 'old process gone');
  const nc = await connectTo(t, server);
  t.equal(nc.info?.port, port);
  const varz = (await (await fetch(`${server.monitorUrl}/varz`)).json()) as { port?: unknown };
  t.equal(varz.port, port, 'monitoring back on the same port');
  await server.reload('max_payload: 4096');
  const nc2 = await connectTo(t, server);
  t.equal(nc2.info?.max_payload, 4096, 'reload works on the restarted (port-pinned) process');
});

t.test('nats-server helper: reload() applies new extraConfig and keeps the old one on a bad reload', async (t) => {
  const server = await startNatsServerForTest(t, { jetstream: false });
  await server.reload('max_payload: 4096');
  const nc1 = await connectTo(t, server);
  t.equal(nc1.info?.max_payload, 4096);

  const err = await server.reload('bogus_reload_key: 1').then(() => undefined, (e: unknown) => e);
  t.type(err, NatsServerError);
  t.match(err, { code: 'NATS_SERVER_RELOAD_FAILED', message: /unknown field "bogus_reload_key"/ });
  t.ok(server.isRunning, 'server keeps running');
  t.notMatch(await readFile(server.configPath, 'utf8'), 'bogus_reload_key', 'old config restored');
  const nc2 = await connectTo(t, server);
  t.equal(nc2.info?.max_payload, 4096);
});

t.test('nats-server helper: printOutputOnFailure prints the output only when the test failed', async (t) => {
  const server = await startNatsServerForTest(t, { jetstream: false });
  for (const isPassing of [true, false]) {
    const teardowns: Array<() => unknown> = [];
    const comments: unknown[][] = [];
    const fake: TestLike = {
      teardown: (fn) => teardowns.push(fn),
      passing: () => isPassing,
      comment: (...args) => comments.push(args),
    };
    printOutputOnFailure(fake, server);
    t.equal(teardowns.length, 1);
    for (const fn of teardowns) await fn();
    if (isPassing) t.same(comments, [], 'nothing printed when passing');
    else t.match(String(comments[0]?.[0]), /Server is ready/, 'output printed when failing');
  }
});

t.test('nats-server helper: renderNatsServerConfig renders only what is asked', async (t) => {
  const minimal = renderNatsServerConfig({ serverName: 's1', portsFileDir: '/tmp/x', port: -1 });
  t.match(minimal, 'server_name: "s1"');
  t.match(minimal, 'host: "127.0.0.1"');
  t.match(minimal, 'ports_file_dir: "/tmp/x"');
  t.notMatch(minimal, 'jetstream');
  t.notMatch(minimal, 'http');
  const full = renderNatsServerConfig({ serverName: 's1', portsFileDir: '/tmp/x', port: 4333, httpPort: 8333, storeDir: '/tmp/x/js', extraConfig: 'max_payload: 1' });
  t.match(full, 'port: 4333');
  t.match(full, 'http: "127.0.0.1:8333"');
  t.match(full, 'jetstream: { store_dir: "/tmp/x/js" }');
  t.match(full, /\nmax_payload: 1\n$/);
});
