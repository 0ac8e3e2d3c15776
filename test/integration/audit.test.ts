// The audit hash chain on a real nats-server 2.9 with JetStream (one server per test: the stream
// name is fixed), its admin API over mutual TLS, and `ncbnet audit verify|show` against that API.
import t from 'tap';
import type { AddressInfo } from 'node:net';
import { DiscardPolicy, RetentionPolicy, StorageType, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Command } from 'commander';
import { pino } from 'pino';
import { AuditLog } from '../../hub/audit/audit-log.js';
import { ensureAuditStream } from '../../hub/audit/audit-stream.js';
import { registerAuditCommands } from '../../hub/cli/audit.js';
import { parseHubConfig } from '../../hub/config.js';
import { openHubServices } from '../../hub/services.js';
import { initHubState, identityPaths } from '../../hub/state-init.js';
import { AUDIT_STREAM, AUDIT_SUBJECT, GENESIS_PREV, canonicalJson, type AuditFields, type AuditRecord } from '../../protocol/audit.js';
import { newUlid } from '../../protocol/envelope.js';
import { httpsCall } from '../helpers/https.js';
import { startNatsServerForTest, type TestLike } from '../helpers/nats-server.js';
import { tempDir } from '../helpers/tmpdir.js';
import { readFile } from 'node:fs/promises';

const silent = pino({ level: 'silent' });

async function broker(t: TestLike): Promise<NatsConnection> {
  const server = await startNatsServerForTest(t);
  const nc = await connect({ servers: server.url });
  t.teardown(() => nc.close());
  return nc;
}

function routed(id = newUlid()): AuditFields {
  return { event: 'routed', messageId: id, from: 'FR', to: ['DE', 'IT'], actor: 'hub-1', envelopeSha256: 'a'.repeat(64) };
}

/** Writes bytes straight onto `ncb.audit`, as someone with the hub's broker rights but not its code could. */
async function forge(nc: NatsConnection, value: unknown): Promise<number> {
  const data = typeof value === 'string' ? value : canonicalJson(value);
  return (await jetstream(nc).publish(AUDIT_SUBJECT, data)).seq;
}

t.test('audit: the AUDIT stream is ensured idempotently, records cannot be deleted or purged', async (t) => {
  const nc = await broker(t);
  const jsm = await jetstreamManager(nc);
  t.same(await ensureAuditStream(jsm), { action: 'created', changed: [] });
  t.same(await ensureAuditStream(jsm), { action: 'unchanged', changed: [] });
  t.same(await ensureAuditStream(jsm, { replicas: 1, maxAgeMs: 3_600_000 }), { action: 'updated', changed: ['max_age'] });
  const info = await jsm.streams.info(AUDIT_STREAM);
  t.match(info.config, { subjects: [AUDIT_SUBJECT], retention: RetentionPolicy.Limits, storage: StorageType.File, discard: DiscardPolicy.New, deny_delete: true, deny_purge: true });
  t.notOk(info.config.allow_rollup_hdrs, 'no roll-up headers (a roll-up purges)');

  const audit = await AuditLog.open({ nc, log: silent });
  for (let i = 0; i < 3; i++) await audit.append(routed());
  await t.rejects(jsm.streams.deleteMessage(AUDIT_STREAM, 2), { message: /message delete not permitted/ }, 'deny_delete refuses STREAM.MSG.DELETE');
  await t.rejects(jsm.streams.deleteMessage(AUDIT_STREAM, 2, false), { message: /message delete not permitted/ }, 'without erase too');
  await t.rejects(jsm.streams.purge(AUDIT_STREAM), { message: /purge not permitted/ }, 'deny_purge refuses STREAM.PURGE');
  await t.rejects(jsm.streams.update(AUDIT_STREAM, { deny_delete: false }), { message: /can not cancel deny message deletes/ }, 'and the flag cannot be turned off');
  t.same(await audit.verify(), { ok: true, count: 3 }, 'every record still there');
});

t.test('audit: a stream made by hand is brought to the wanted settings, or reported when it cannot be', async (t) => {
  const nc = await broker(t);
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: AUDIT_STREAM, subjects: [AUDIT_SUBJECT], storage: StorageType.File });
  const outcome = await ensureAuditStream(jsm);
  t.equal(outcome.action, 'updated');
  t.match(outcome.changed, ['discard', 'max_msg_size', 'deny_delete', 'deny_purge']);
  t.ok((await jsm.streams.info(AUDIT_STREAM)).config.deny_delete);

  const nc2 = await broker(t);
  const jsm2 = await jetstreamManager(nc2);
  await jsm2.streams.add({ name: AUDIT_STREAM, subjects: [AUDIT_SUBJECT], storage: StorageType.Memory });
  await t.rejects(AuditLog.open({ nc: nc2, log: silent }), { code: 'AUDIT_STREAM_CONFLICT', message: /storage is "memory", want "file"/ });
});

t.test('audit: 100 records from two concurrent writers are gapless and the chain verifies', async (t) => {
  const nc = await broker(t);
  // Two logs on two connections: two writers the server must keep from forking the chain.
  const server2 = await connect({ servers: nc.getServer() });
  t.teardown(() => server2.close());
  const a = await AuditLog.open({ nc, log: silent });
  const b = await AuditLog.open({ nc: server2, log: silent, maxAttempts: 200 });
  const writes: Promise<AuditRecord>[] = [];
  for (let i = 0; i < 50; i++) writes.push(a.append(routed()), b.append({ event: 'rejected', from: 'DE', code: 'ROUTER_EXPIRED', messageId: newUlid() }));
  const records = await Promise.all(writes);
  const seqs = records.map((r) => r.seq).sort((x, y) => x - y);
  t.same(seqs, Array.from({ length: 100 }, (_, i) => i + 1), 'every seq from 1 to 100, once each');
  const bySeq = new Map(records.map((r) => [r.seq, r]));
  for (let s = 2; s <= 100; s++) if (bySeq.get(s)?.prev !== bySeq.get(s - 1)?.hash) t.fail(`record ${s} does not chain on ${s - 1}`);
  t.equal(bySeq.get(1)?.prev, GENESIS_PREV);
  const jsm = await jetstreamManager(nc);
  t.equal((await jsm.streams.info(AUDIT_STREAM)).state.last_seq, 100, 'no record stored twice or lost');
  t.same(await a.verify(), { ok: true, count: 100 });
  t.same(await b.verify(), { ok: true, count: 100 });
});

t.test('audit: appends made together are chained in call order and each resolves with its own record', async (t) => {
  const nc = await broker(t);
  const audit = await AuditLog.open({ nc, log: silent, maxBatch: 16 });
  const ids = Array.from({ length: 100 }, () => newUlid());
  // All at once: they go out in batches of 16, each batch back to back on one chained tail.
  const records = await Promise.all(ids.map((id) => audit.append(routed(id))));
  t.same(records.map((r) => r.seq), ids.map((_, i) => i + 1), 'seq follows call order');
  t.same(records.map((r) => r.messageId), ids, 'each caller got its own record');
  for (let i = 1; i < records.length; i++) if (records[i]?.prev !== records[i - 1]?.hash) t.fail(`record ${i + 1} does not chain on ${i}`);
  t.same(audit.tail, { seq: 100, hash: records[99]?.hash });
  t.same(await audit.verify(), { ok: true, count: 100 });
});

t.test('audit: reopening continues the chain where it ended', async (t) => {
  const nc = await broker(t);
  const first = await AuditLog.open({ nc, log: silent });
  const r3 = (await Promise.all([first.append(routed()), first.append(routed()), first.append({ event: 'revoked', country: 'DE', code: 'keyCompromise', actor: 'admin' })]))[2];
  await first.close();
  await t.rejects(first.append(routed()), { code: 'AUDIT_CLOSED' });
  const again = await AuditLog.open({ nc, log: silent });
  t.same(again.tail, { seq: 3, hash: r3?.hash });
  const r4 = await again.append(routed());
  t.match(r4, { seq: 4, prev: r3?.hash });
  t.same(await again.verify(), { ok: true, count: 4 });
});

t.test('audit: bad fields are refused before anything is stored; a lost broker is AUDIT_UNAVAILABLE', async (t) => {
  const nc = await broker(t);
  const audit = await AuditLog.open({ nc, log: silent });
  await t.rejects(audit.append({ event: 'routed', from: 'UK' }), { code: 'AUDIT_RECORD_INVALID', message: /fields\.from/ });
  await audit.append(routed());
  t.same(await audit.verify(), { ok: true, count: 1 });
  await nc.close();
  await t.rejects(audit.append(routed()), { code: 'AUDIT_UNAVAILABLE' }, 'a lost broker is a coded error, not a hang');
  await t.rejects(audit.verify(), { code: 'AUDIT_UNAVAILABLE' });
  await t.rejects(AuditLog.open({ nc, log: silent }), { code: 'AUDIT_UNAVAILABLE' });
});

t.test('audit: a forged record written straight to ncb.audit fails verification at its seq', async (t) => {
  const nc = await broker(t);
  const audit = await AuditLog.open({ nc, log: silent });
  const real: AuditRecord[] = [];
  for (let i = 0; i < 5; i++) real.push(await audit.append(routed()));
  const r5 = real[4] as AuditRecord;
  // A record that claims DE sent it, chained at the right place, with a hash the forger could not match.
  const forged = { ...r5, seq: 6, prev: r5.hash, from: 'DE' };
  t.equal(await forge(nc, forged), 6);
  // The log notices nothing at append time (it chains on what is stored) but keeps going.
  const r7 = await audit.append(routed());
  t.equal(r7.seq, 7);
  t.match(await audit.verify(), { ok: false, seq: 6, reason: /^bad hash/ });

  const nc2 = await broker(t);
  const audit2 = await AuditLog.open({ nc: nc2, log: silent });
  for (let i = 0; i < 3; i++) await audit2.append(routed());
  t.equal(await forge(nc2, 'not json at all'), 4);
  const next = await AuditLog.open({ nc: nc2, log: silent });
  t.same(next.tail?.seq, 4, 'a reopened log chains on the damaged entry rather than stopping the hub');
  await next.append(routed());
  t.match(await next.verify(), { ok: false, seq: 4, reason: /^not a valid audit record/ });

  // A replay of a genuine record at the end: its hash is right, its place is not.
  const nc3 = await broker(t);
  const audit3 = await AuditLog.open({ nc: nc3, log: silent });
  const copies = [await audit3.append(routed()), await audit3.append(routed())];
  await forge(nc3, copies[0]);
  t.match(await audit3.verify(), { ok: false, seq: 3, reason: /^seq gap: record says 1, expected 3/ });
});

t.test('audit: forMessage returns the records of one message, in order', async (t) => {
  const nc = await broker(t);
  const audit = await AuditLog.open({ nc, log: silent });
  const id = newUlid();
  const other = newUlid();
  await audit.append({ event: 'rejected', messageId: id, from: 'FR', code: 'ROUTER_UNKNOWN_RECIPIENT', problems: ['to[0]: not an active member country (got "ES")'] });
  await audit.append(routed(other));
  await audit.append({ event: 'suspended', country: 'IT', actor: 'admin' });
  await audit.append(routed(id));
  await audit.append({ event: 'deleted', messageId: id, from: 'FR', to: ['DE'] });
  const records = await audit.forMessage(id);
  t.same(records.map((r) => [r.seq, r.event]), [[1, 'rejected'], [4, 'routed'], [5, 'deleted']]);
  t.same(records[0]?.problems, ['to[0]: not an active member country'], 'quoted values are not kept');
  t.same(await audit.forMessage(newUlid()), []);
  await t.rejects(audit.forMessage('../../etc'), { code: 'AUDIT_BAD_MESSAGE_ID' });
});

t.test('audit: admin API and `ncbnet audit verify|show` over operator mTLS', async (t) => {
  const dir = await tempDir(t);
  await initHubState({ state: dir, hubName: 'hub-1', sans: ['127.0.0.1', 'localhost'], operator: 'admin' });
  const nc = await broker(t);
  const services = await openHubServices({
    stateDir: dir,
    config: parseHubConfig({}),
    nc,
    log: silent,
    network: () => {
      throw new Error('not used');
    },
    readiness: () => ({ broker: true }),
  });
  // The hub's own audit log, whose routes buildApiServer registered.
  const audit = services.audit;
  await services.api.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(() => services.api.close());
  const url = `https://127.0.0.1:${(services.api.server.address() as AddressInfo).port}`;
  const paths = identityPaths(dir);
  const operator = { ca: await readFile(paths.operatorCa, 'utf8'), cert: await readFile(paths.operatorCert, 'utf8'), key: await readFile(paths.operatorKey, 'utf8') };

  const id = newUlid();
  await audit.append(routed(id));
  await audit.append({ event: 'deleted', messageId: id, from: 'FR', to: ['DE'] });

  const anonymous = await httpsCall(`${url}/v1/admin/audit/verify`, { ca: operator.ca });
  t.equal(anonymous.status, 401);
  t.match(anonymous.json, { code: 'AUTH_CLIENT_CERT_REQUIRED' });
  const verified = await httpsCall(`${url}/v1/admin/audit/verify`, operator);
  t.equal(verified.status, 200, verified.text);
  t.same(verified.json, { ok: true, count: 2 });
  const shown = await httpsCall(`${url}/v1/admin/audit/messages/${id}`, operator);
  t.equal(shown.status, 200, shown.text);
  t.same((shown.json as AuditRecord[]).map((r) => r.event), ['routed', 'deleted']);
  const bad = await httpsCall(`${url}/v1/admin/audit/messages/not-a-ulid`, operator);
  t.equal(bad.status, 400);

  const cli = async (...args: string[]): Promise<{ code: number; out: string; err: string }> => {
    const program = new Command('ncbnet').exitOverride().configureOutput({ writeErr: () => undefined });
    registerAuditCommands(program);
    let out = '';
    let err = '';
    const writeOut = process.stdout.write.bind(process.stdout);
    const writeErr = process.stderr.write.bind(process.stderr);
    const saved = process.exitCode;
    process.exitCode = 0;
    const capture = (sink: (s: string) => void) => ((s: string) => (sink(s), true)) as typeof process.stdout.write;
    process.stdout.write = capture((s) => (out += s));
    process.stderr.write = capture((s) => (err += s));
    let code: number;
    try {
      await program.parseAsync(['node', 'ncbnet', 'audit', ...args, '--state', dir, '--hub', url]);
      code = Number(process.exitCode ?? 0);
    } catch (e) {
      code = (e as { exitCode?: number }).exitCode === undefined ? 1 : 64;
    } finally {
      process.stdout.write = writeOut;
      process.stderr.write = writeErr;
      process.exitCode = saved;
    }
    return { code, out, err };
  };
  const ok = await cli('verify');
  t.same([ok.code, ok.out.trim()], [0, 'audit chain intact: 2 records']);
  const json = await cli('verify', '--json');
  t.same(JSON.parse(json.out), { ok: true, count: 2 });
  const table = await cli('show', '--message', id);
  t.equal(table.code, 0, table.err);
  t.match(table.out, /^seq\s+at\s+event\s+from\s+to\s+code\s+actor\n\s*1\s+\S+\s+routed\s+FR\s+DE,IT\s+hub-1\s*\n\s*2\s+\S+\s+deleted\s+FR\s+DE/);
  t.equal((await cli('show', '--message', 'nope')).code, 64, 'a bad id is a usage error');
  t.equal((await cli('show')).code, 64, 'neither --message nor --country is a usage error');
  t.equal((await cli('show', '--country', 'XX')).code, 64, 'an unassigned code is a usage error');

  const stored = await audit.forMessage(id);
  await forge(nc, { ...stored[1], seq: 3, prev: stored[1]?.hash, event: 'routed' });
  const broken = await cli('verify');
  t.equal(broken.code, 65);
  t.match(broken.err, /^ncbnet: AUDIT_CHAIN_BROKEN: record 3: bad hash/);
  const brokenJson = await cli('verify', '--json');
  t.equal(brokenJson.code, 65);
  t.match(JSON.parse(brokenJson.out), { ok: false, seq: 3 });

  // Membership events: each operator action is recorded with the operator who made it.
  t.equal((await httpsCall(`${url}/v1/admin/countries`, { ...operator, body: { code: 'PT', name: 'Portugal' } })).status, 201);
  const token = await httpsCall(`${url}/v1/admin/tokens`, { ...operator, body: { country: 'PT' } });
  t.equal(token.status, 201);
  const tokenId = (token.json as { info: { id: string } }).info.id;
  t.equal((await httpsCall(`${url}/v1/admin/countries/PT/revoke`, { ...operator, body: { reason: 'affiliationChanged', note: 'left' } })).status, 200);
  const events = await httpsCall(`${url}/v1/admin/audit/countries/PT`, operator);
  t.equal(events.status, 200, events.text);
  t.match(events.json, [
    { event: 'country-added', country: 'PT', actor: 'operator:admin' },
    { event: 'token-created', country: 'PT', actor: 'operator:admin', code: `token-${tokenId}` },
    { event: 'revoked', country: 'PT', actor: 'operator:admin', code: 'affiliationChanged', problems: ['note: left'] },
  ]);
  t.notOk(events.text.includes((token.json as { token: string }).token), 'the token secret is never recorded');
  const byCountry = await cli('show', '--country', 'pt');
  t.equal(byCountry.code, 0, byCountry.err);
  t.match(byCountry.out, /country-added\s+PT\s+operator:admin/);
  t.same((await httpsCall(`${url}/v1/admin/audit/countries/ES`, operator)).json, [], 'nothing about a country never touched');
});
