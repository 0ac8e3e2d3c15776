// The broker streams and the router against a real nats-server 2.9 with JetStream (one server per
// test, since the stream names are fixed). Waits poll with deadlines; nothing sleeps.
import t from 'tap';
import { setTimeout as delay } from 'node:timers/promises';
import { AckPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { pino } from 'pino';
import { encodeEnvelope, newUlid, type Envelope } from '../../protocol/envelope.js';
import { DELIVER_STREAM, SUBMIT_STREAM, subjects } from '../../protocol/subjects.js';
import { ROUTER_CONSUMER, ensureCountryConsumer, ensureRouterConsumer, ensureStreams, removeCountryConsumer } from '../../hub/broker/streams.js';
import { AuditLog } from '../../hub/audit/audit-log.js';
import { Router, decideRoute, type RecipientDirectory, type RejectionEvent, type RouterOptions } from '../../hub/router/router.js';
import type { AuditFields, AuditRecord } from '../../protocol/audit.js';
import { startNatsServerForTest, type TestLike } from '../helpers/nats-server.js';
import { readDelivered } from '../helpers/deliver.js';

async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(20);
  }
}

function envelope(over: Partial<Envelope> = {}): Envelope {
  return { v: 1, id: newUlid(), kind: 'message', from: 'FR', to: ['DE'], priority: 'routine', created: new Date().toISOString(), body: 'hello', ...over };
}

function directoryOf(countries: string[]): RecipientDirectory & { active: Set<string> } {
  const active = new Set(countries);
  return { active, isActive: (cc) => active.has(cc), activeCountries: () => [...active] };
}

interface Hub {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  directory: ReturnType<typeof directoryOf>;
  routed: { from: string; to: readonly string[] }[];
  rejected: { from: string | undefined; code: string }[];
  throttled: string[];
  events: RejectionEvent[];
  newRouter(): Router;
  deliverCounts(): Promise<Record<string, number>>;
  submitEmpty(): Promise<boolean>;
}

interface HubOptions {
  startRouter?: boolean;
  directory?: ReturnType<typeof directoryOf>;
  logLines?: Record<string, unknown>[];
  /** More router options (audit, rates, concurrency). */
  router?: Partial<RouterOptions>;
}

async function hub(t: TestLike, opts: HubOptions = {}): Promise<Hub & { router: Router }> {
  const server = await startNatsServerForTest(t);
  const nc = await connect({ servers: server.url });
  t.teardown(() => nc.close());
  const jsm = await jetstreamManager(nc);
  await ensureStreams(jsm);
  const routed: Hub['routed'] = [];
  const rejected: Hub['rejected'] = [];
  const events: RejectionEvent[] = [];
  const sub = nc.subscribe(subjects.event('FR'), { callback: (_err, msg) => {
      events.push(msg.json<RejectionEvent>());
    },
  });
  t.teardown(() => sub.unsubscribe());
  const directory = opts.directory ?? directoryOf(['FR', 'DE', 'IT', 'ES']);
  const lines = opts.logLines;
  const log = lines === undefined ? pino({ level: 'silent' }) : pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const throttled: string[] = [];
  const stats = {
    onRouted: (from: string, to: readonly string[]) => routed.push({ from, to }),
    onRejected: (from: string | undefined, code: string) => rejected.push({ from, code }),
    onThrottled: (cc: string) => throttled.push(cc),
  };
  const newRouter = (): Router => {
    const router = new Router({ nc, directory, log, stats, retryDelayMs: 100, ...opts.router });
    t.teardown(() => router.stop());
    return router;
  };
  const router = newRouter();
  if (opts.startRouter !== false) await router.start();
  return {
    nc,
    js: jetstream(nc),
    jsm,
    directory,
    routed,
    rejected,
    throttled,
    events,
    router,
    newRouter,
    deliverCounts: async () => (await jsm.streams.info(DELIVER_STREAM, { subjects_filter: subjects.deliverAll })).state.subjects ?? {},
    submitEmpty: async () => (await jsm.streams.info(SUBMIT_STREAM)).state.messages === 0,
  };
}


t.test('streams: ensureStreams is idempotent, updates in place and never loses messages', async (t) => {
  const server = await startNatsServerForTest(t);
  const nc = await connect({ servers: server.url });
  t.teardown(() => nc.close());
  const jsm = await jetstreamManager(nc);
  t.same(await ensureStreams(jsm), { submit: { action: 'created', changed: [] }, deliver: { action: 'created', changed: [] } });
  const js = jetstream(nc);
  await js.publish(subjects.submit('FR'), 'a');
  await js.publish(subjects.deliver('DE'), 'b');
  t.same(await ensureStreams(jsm), { submit: { action: 'unchanged', changed: [] }, deliver: { action: 'unchanged', changed: [] } });
  const updated = await ensureStreams(jsm, { deliverMaxAgeMs: 7 * 24 * 3600_000, maxMsgBytes: 64 * 1024 });
  t.same(updated.deliver, { action: 'updated', changed: ['max_age', 'max_msg_size'] });
  t.same(updated.submit, { action: 'updated', changed: ['max_msg_size'] });
  const deliver = await jsm.streams.info(DELIVER_STREAM);
  t.equal(deliver.config.max_age, 7 * 24 * 3600_000 * 1_000_000);
  t.equal(deliver.config.duplicate_window, 120_000 * 1_000_000);
  t.equal(deliver.state.messages, 1, 'DELIVER kept its message');
  const submit = await jsm.streams.info(SUBMIT_STREAM);
  t.equal(submit.config.retention, RetentionPolicy.Workqueue);
  t.equal(submit.state.messages, 1, 'SUBMIT kept its message');

  // A stream whose retention cannot change in place is reported, not recreated.
  await jsm.streams.delete(DELIVER_STREAM);
  await jsm.streams.add({ name: DELIVER_STREAM, subjects: [subjects.deliverAll], retention: RetentionPolicy.Workqueue, storage: StorageType.File });
  await js.publish(subjects.deliver('DE'), 'keep me');
  await t.rejects(ensureStreams(jsm), { code: 'STREAM_CONFIG_CONFLICT', message: /retention is "workqueue", want "limits"/ });
  t.equal((await jsm.streams.info(DELIVER_STREAM)).state.messages, 1, 'the conflicting stream and its message are untouched');
  await nc.close();
  await t.rejects(ensureStreams(jsm), { code: 'STREAM_ENSURE_FAILED' }, 'a dead connection is a coded error');
});

t.test('streams: country consumers are idempotent; revoke deletes the consumer and purges its subject', async (t) => {
  const h = await hub(t, { startRouter: false });
  t.same(await ensureCountryConsumer(h.jsm, 'DE'), { action: 'created', changed: [] });
  t.same(await ensureCountryConsumer(h.jsm, 'DE'), { action: 'unchanged', changed: [] });
  t.same(await ensureCountryConsumer(h.jsm, 'DE', { ackWaitMs: 60_000 }), { action: 'updated', changed: ['ack_wait'] });
  const info = await h.jsm.consumers.info(DELIVER_STREAM, 'deliver-DE');
  t.match(info.config, { durable_name: 'deliver-DE', filter_subject: 'ncb.deliver.DE', ack_policy: 'explicit', max_deliver: -1, ack_wait: 60_000_000_000 });
  await t.rejects(ensureCountryConsumer(h.jsm, 'de'), { code: 'SUBJECT_BAD_COUNTRY' });
  await h.jsm.consumers.add(DELIVER_STREAM, { durable_name: 'deliver-IT', filter_subject: subjects.deliver('IT'), ack_policy: AckPolicy.All });
  await t.rejects(ensureCountryConsumer(h.jsm, 'IT'), { code: 'STREAM_CONFIG_CONFLICT' });

  for (const body of ['one', 'two']) await h.js.publish(subjects.deliver('DE'), body);
  await h.js.publish(subjects.deliver('ES'), 'not for DE');
  const [first] = await (async () => {
    const c = await h.js.consumers.get(DELIVER_STREAM, 'deliver-DE');
    const m = await c.next({ expires: 5_000 });
    m?.ack();
    return [m];
  })();
  t.equal(first?.string(), 'one');
  await waitFor('the ack to count', async () => (await h.jsm.consumers.info(DELIVER_STREAM, 'deliver-DE')).num_ack_pending === 0);
  t.same(await removeCountryConsumer(h.jsm, 'DE'), { consumerDeleted: true, undelivered: 1, purged: 2 });
  await t.rejects(h.jsm.consumers.info(DELIVER_STREAM, 'deliver-DE'), /consumer not found/);
  t.same(await h.deliverCounts(), { 'ncb.deliver.ES': 1 }, "other countries' messages stay");
  t.same(await removeCountryConsumer(h.jsm, 'DE'), { consumerDeleted: false, undelivered: 0, purged: 0 }, 'idempotent');
});

t.test("streams: a router consumer made before the fair router gets its larger max_ack_pending in place", async (t) => {
  const h = await hub(t, { startRouter: false });
  t.same(await ensureRouterConsumer(h.jsm), { action: 'created', changed: [] }, 'as an earlier hub made it (server default)');
  await h.js.publish(subjects.submit('FR'), encodeEnvelope(envelope()));
  t.same(await ensureRouterConsumer(h.jsm, { maxAckPending: 50_000 }), { action: 'updated', changed: ['max_ack_pending'] });
  t.equal((await h.jsm.consumers.info(SUBMIT_STREAM, ROUTER_CONSUMER)).config.max_ack_pending, 50_000);
  await h.router.start();
  await waitFor('the waiting submission routed', async () => h.routed.length === 1 && (await h.submitEmpty()));
});

t.test('router: FR→DE is delivered once with Nats-Msg-Id, also to a consumer read (or created) later', async (t) => {
  const h = await hub(t);
  await ensureCountryConsumer(h.jsm, 'IT');
  const env = envelope({ to: ['DE', 'IT'] });
  const ack = await h.js.publish(subjects.submit('FR'), encodeEnvelope(env), { msgID: env.id });
  t.equal(ack.stream, SUBMIT_STREAM);
  await waitFor('routing', async () => h.routed.length === 1 && (await h.submitEmpty()));
  t.same(h.routed, [{ from: 'FR', to: ['DE', 'IT'] }]);
  t.same(await h.deliverCounts(), { 'ncb.deliver.DE': 1, 'ncb.deliver.IT': 1 });
  await ensureCountryConsumer(h.jsm, 'DE'); // created after the copy was stored
  for (const cc of ['DE', 'IT']) {
    const got = await readDelivered(h.js, cc);
    t.equal(got.length, 1, `${cc} gets one copy`);
    t.equal(got[0]?.headers?.get('Nats-Msg-Id'), `${env.id}.${cc}`);
    t.same(got[0]?.json(), env, 'the envelope bytes are unchanged');
  }
  t.same(h.rejected, []);
});

t.test("router: to '*' fans out to every active country except the sender", async (t) => {
  const h = await hub(t);
  h.directory.active.add('JP');
  await h.js.publish(subjects.submit('FR'), encodeEnvelope(envelope({ to: '*', kind: 'diffusion' })));
  await waitFor('routing', () => h.routed.length === 1);
  t.same(await h.deliverCounts(), { 'ncb.deliver.DE': 1, 'ncb.deliver.IT': 1, 'ncb.deliver.ES': 1, 'ncb.deliver.JP': 1 });
});

t.test('router: a wrong sender, an unknown recipient and malformed JSON are rejected to the sender; the next message still goes', async (t) => {
  const h = await hub(t);
  const spoofed = envelope({ from: 'DE', to: ['IT'] });
  const unknown = envelope({ to: ['DE', 'US'] });
  await h.js.publish(subjects.submit('FR'), encodeEnvelope(spoofed));
  await h.js.publish(subjects.submit('FR'), encodeEnvelope(unknown));
  await h.js.publish(subjects.submit('FR'), '{"v":1, nope');
  await h.js.publish(subjects.submit('FR'), JSON.stringify({ ...envelope(), to: 'all' }));
  await h.js.publish(subjects.submit('FR'), encodeEnvelope(envelope({ body: 'after the bad ones' })));
  await waitFor('all five handled', async () => h.events.length === 4 && h.routed.length === 1 && (await h.submitEmpty()));
  t.match(h.events, [
    { type: 'rejected', id: spoofed.id, code: 'ROUTER_SENDER_MISMATCH', problems: ['from: must be the submitting country FR (got "DE")'] },
    { type: 'rejected', id: unknown.id, code: 'ROUTER_UNKNOWN_RECIPIENT', problems: ['to[1]: not an active member country (got "US")'] },
    { type: 'rejected', id: null, code: 'ENVELOPE_MALFORMED_JSON', problems: [/not JSON/] },
    { type: 'rejected', code: 'ENVELOPE_INVALID', problems: ['to: must be "*" or a list of country codes (got "all")'] },
  ]);
  t.same(
    h.rejected.map((r) => r.code),
    ['ROUTER_SENDER_MISMATCH', 'ROUTER_UNKNOWN_RECIPIENT', 'ENVELOPE_MALFORMED_JSON', 'ENVELOPE_INVALID'],
  );
  t.same(await h.deliverCounts(), { 'ncb.deliver.DE': 1 }, 'only the good message was delivered, nothing for the rejected ones');
  t.equal((await h.jsm.consumers.info(SUBMIT_STREAM, ROUTER_CONSUMER)).num_ack_pending, 0, 'terminated, not left to redeliver');
});

t.test('router: messages submitted while it was stopped are routed when it starts again', async (t) => {
  const h = await hub(t);
  await h.js.publish(subjects.submit('FR'), encodeEnvelope(envelope()));
  await waitFor('first routed', () => h.routed.length === 1);
  await h.router.stop();
  await h.router.stop(); // idempotent
  const later = [envelope({ to: ['IT'] }), envelope({ to: ['ES'] }), envelope({ to: ['DE'] })];
  for (const env of later) await h.js.publish(subjects.submit('FR'), encodeEnvelope(env));
  t.equal((await h.jsm.streams.info(SUBMIT_STREAM)).state.messages, 3, 'they wait in SUBMIT');
  const next = h.newRouter();
  await next.start();
  await next.start(); // idempotent
  await waitFor('the backlog routed', async () => h.routed.length === 4 && (await h.submitEmpty()));
  t.same(await h.deliverCounts(), { 'ncb.deliver.DE': 2, 'ncb.deliver.IT': 1, 'ncb.deliver.ES': 1 });
});

t.test('router: a resubmission and a crash between copies create no second copy within the dedup window', async (t) => {
  const h = await hub(t);
  const env = envelope({ to: ['DE', 'IT'] });
  const bytes = encodeEnvelope(env);
  // A crash after the DE copy was stored but before the SUBMIT ack: the copy is already there.
  await h.js.publish(subjects.deliver('DE'), bytes, { msgID: `${env.id}.DE` });
  await h.js.publish(subjects.submit('FR'), bytes);
  await waitFor('routed', () => h.routed.length === 1);
  // The agent resends (no msgID, so SUBMIT takes it): a replay, acked without a second copy and
  // not counted as routed again (every copy was already stored).
  await h.js.publish(subjects.submit('FR'), bytes);
  await waitFor('the replay handled', async () => (await h.submitEmpty()) && (await h.jsm.consumers.info(SUBMIT_STREAM, ROUTER_CONSUMER)).num_ack_pending === 0);
  t.equal(h.routed.length, 1, 'a replay is not routed twice');
  t.same(await h.deliverCounts(), { 'ncb.deliver.DE': 1, 'ncb.deliver.IT': 1 }, 'one copy each');
  // With the envelope id as Nats-Msg-Id (what the agent's outbox sends), SUBMIT drops it already.
  const first = await h.js.publish(subjects.submit('FR'), bytes, { msgID: env.id });
  const again = await h.js.publish(subjects.submit('FR'), bytes, { msgID: env.id });
  t.notOk(first.duplicate);
  t.ok(again.duplicate, 'SUBMIT dedups by envelope id');
});

t.test('router: when DELIVER cannot store a copy the submission is retried, not lost', async (t) => {
  const h = await hub(t);
  await h.jsm.streams.delete(DELIVER_STREAM);
  await h.js.publish(subjects.submit('FR'), encodeEnvelope(envelope()));
  await waitFor('a retry', async () => (await h.jsm.consumers.info(SUBMIT_STREAM, ROUTER_CONSUMER)).delivered.consumer_seq >= 2);
  t.equal(h.routed.length, 0);
  t.equal((await h.jsm.streams.info(SUBMIT_STREAM)).state.messages, 1, 'still in SUBMIT');
  await ensureStreams(h.jsm);
  await waitFor('routed after DELIVER is back', async () => h.routed.length === 1 && (await h.submitEmpty()));
  t.same(await h.deliverCounts(), { 'ncb.deliver.DE': 1 });
  t.same(h.events, [], 'a transient failure is not a rejection');
});

t.test('router: decideRoute refuses inactive senders, expired envelopes and empty fan-outs', async (t) => {
  const dir = directoryOf(['FR', 'DE']);
  const bytes = (over: Partial<Envelope>): Uint8Array => encodeEnvelope(envelope(over));
  t.match(decideRoute('FR', bytes({}), dir), { ok: true, recipients: ['DE'] });
  t.match(decideRoute('FR', bytes({ to: ['FR'] }), dir), { ok: true, recipients: ['FR'] }, 'to oneself is allowed');
  t.match(decideRoute('IT', bytes({ from: 'IT' }), dir), { ok: false, code: 'ROUTER_SENDER_INACTIVE' });
  t.match(decideRoute('FR', bytes({ created: '2020-01-01T00:00:00Z', expires: '2020-01-02T00:00:00Z' }), dir), { ok: false, code: 'ROUTER_EXPIRED' });
  t.match(decideRoute('FR', bytes({ to: '*' }), directoryOf(['FR'])), { ok: false, code: 'ROUTER_NO_RECIPIENTS' });
  t.match(decideRoute('FR', bytes({ to: '*' }), { isActive: () => true, activeCountries: () => ['DE', 'DE', 'xx', 'FR'] }), { ok: true, recipients: ['DE'] });
  t.match(decideRoute('FR', new Uint8Array(10), dir, { maxEnvelopeBytes: 5 }), { ok: false, id: null, code: 'ENVELOPE_TOO_LARGE' });
});

t.test('router: a subject naming no country is dropped and counted; a failing directory means a retry, not a rejection', async (t) => {
  let failures = 1;
  const base = directoryOf(['FR', 'DE']);
  const directory = {
    ...base,
    isActive: (cc: string): boolean => {
      if (failures-- > 0) throw new Error('registry unavailable');
      return base.isActive(cc);
    },
  };
  const logLines: Record<string, unknown>[] = [];
  const h = await hub(t, { directory, logLines });
  // Hand-written on purpose: the builders refuse to make this subject, but the stream accepts it.
  await h.js.publish('ncb.submit.zz', encodeEnvelope(envelope()));
  await waitFor('the bad subject handled', () => h.rejected.length === 1);
  t.same(h.rejected, [{ from: undefined, code: 'ROUTER_BAD_SUBJECT' }]);
  await h.js.publish(subjects.submit('FR'), encodeEnvelope(envelope()));
  await waitFor('routed after the retry', async () => h.routed.length === 1 && (await h.submitEmpty()));
  t.same(h.events, []);
  t.match(logLines, [
    { component: 'router', msg: 'router started' },
    { component: 'router', code: 'ROUTER_BAD_SUBJECT', subject: 'ncb.submit.zz' },
    { component: 'router', country: 'FR', msg: 'routing decision failed', err: { message: 'registry unavailable' } },
    { component: 'router', country: 'FR', msg: 'routed' },
  ]);
});

t.test('router: without a history (no audit log) a deletion is routed like a message, unchecked, and nothing is erased', async (t) => {
  const h = await hub(t);
  const original = envelope({ to: ['DE', 'IT'] });
  await h.js.publish(subjects.submit('FR'), encodeEnvelope(original));
  await waitFor('the original routed', () => h.routed.length === 1);
  const deletion = envelope({ kind: 'deletion', to: ['DE'], deletes: original.id, reason: 'DATA_INCORRECT' });
  await h.js.publish(subjects.submit('FR'), encodeEnvelope(deletion));
  await waitFor('the deletion routed', async () => h.routed.length === 2 && (await h.submitEmpty()));
  t.same(h.routed[1], { from: 'FR', to: ['DE'] }, 'to the countries it names');
  t.same(await h.deliverCounts(), { 'ncb.deliver.DE': 2, 'ncb.deliver.IT': 1 }, 'the stored copies of the original stay');
  t.same(h.events, []);
});

t.test('router: 200 submissions from four countries are routed concurrently, each with its own audit record; the chain verifies', async (t) => {
  // Opened on the hub's connection below, before the router starts.
  const opened: { log?: AuditLog } = {};
  let active = 0;
  let maxActive = 0;
  const records: AuditRecord[] = [];
  const audit = {
    append: async (fields: AuditFields): Promise<AuditRecord> => {
      maxActive = Math.max(maxActive, ++active);
      try {
        if (opened.log === undefined) throw new Error('audit log not open');
        const record = await opened.log.append(fields);
        records.push(record);
        return record;
      } finally {
        active--;
      }
    },
  };
  const h = await hub(t, { startRouter: false, router: { audit } });
  const log = await AuditLog.open({ nc: h.nc, log: pino({ level: 'silent' }) });
  opened.log = log;
  await h.router.start();
  const senders = ['FR', 'DE', 'IT', 'ES'];
  const sent: Envelope[] = [];
  for (let i = 0; i < 200; i++) {
    const from = senders[i % 4] as string;
    const env = envelope({ from, to: [senders[(i + 1) % 4] as string] });
    sent.push(env);
    // Not awaited one by one: they arrive together, as a Red Notice's receipts do.
    void h.js.publish(subjects.submit(from), encodeEnvelope(env));
  }
  await waitFor('all 200 routed and acked', async () => h.routed.length === 200 && (await h.submitEmpty()) && (await h.jsm.consumers.info(SUBMIT_STREAM, ROUTER_CONSUMER)).num_ack_pending === 0, 30_000);
  t.ok(maxActive > 1, `several submissions were in flight at once (at most ${maxActive} audit appends overlapped)`);
  t.equal(records.length, 200, 'one record per submission');
  t.same(new Set(records.map((r) => r.messageId)), new Set(sent.map((e) => e.id)), 'each submission has its routed record');
  t.ok(records.every((r) => r.event === 'routed' && r.seqs?.length === 1));
  t.same(await log.verify(), { ok: true, count: 200 }, 'the chain verifies');
  const counts = await h.deliverCounts();
  t.same(counts, { 'ncb.deliver.FR': 50, 'ncb.deliver.DE': 50, 'ncb.deliver.IT': 50, 'ncb.deliver.ES': 50 });
  t.same(h.rejected, []);
});

t.test("router: a country's backlog of 1000 does not hold up another country's urgent message", async (t) => {
  const h = await hub(t, { startRouter: false, router: { ratePerCountry: { perSecond: 200, burst: 50 } } });
  const backlog = Array.from({ length: 1000 }, () => envelope({ to: ['IT'] }));
  for (let i = 0; i < backlog.length; i += 100) {
    await Promise.all(backlog.slice(i, i + 100).map((env) => h.js.publish(subjects.submit('FR'), encodeEnvelope(env))));
  }
  await h.router.start();
  // Held-back submissions stay pending on the server: the consumer allows far more than its default 1000.
  t.equal((await h.jsm.consumers.info(SUBMIT_STREAM, ROUTER_CONSUMER)).config.max_ack_pending, 50_000);
  await waitFor('the backlog being worked on', () => h.routed.length >= 20);
  const urgent = envelope({ from: 'DE', to: ['ES'], priority: 'urgent' });
  const t0 = performance.now();
  await h.js.publish(subjects.submit('DE'), encodeEnvelope(urgent));
  await waitFor("DE's urgent message routed", () => h.routed.some((r) => r.from === 'DE'));
  const waitedMs = performance.now() - t0;
  const frAtThatTime = h.routed.filter((r) => r.from === 'FR').length;
  t.ok(waitedMs < 1_000, `DE's message waited ${waitedMs.toFixed(0)} ms, not behind FR's backlog`);
  t.ok(frAtThatTime < 900, `FR's backlog was still there (${frAtThatTime} of 1000 routed)`);
  await waitFor("all of FR's backlog routed", async () => h.routed.length === 1001 && (await h.submitEmpty()), 30_000);
  t.same(await h.deliverCounts(), { 'ncb.deliver.IT': 1000, 'ncb.deliver.ES': 1 }, 'nothing lost, nothing twice');
  t.ok(h.throttled.length > 0 && h.throttled.every((cc) => cc === 'FR'), 'FR was held back by its rate, DE never');
});

t.test('router: a country over its rate is held back and counted, never refused; everything arrives', async (t) => {
  const h = await hub(t, { router: { ratePerCountry: { perSecond: 20, burst: 5 } } });
  const t0 = performance.now();
  const flood = Array.from({ length: 45 }, () => envelope({ to: ['DE'] }));
  await Promise.all(flood.map((env) => h.js.publish(subjects.submit('FR'), encodeEnvelope(env))));
  await waitFor('the burst routed', () => h.routed.length >= 5);
  const other = envelope({ from: 'IT', to: ['ES'] });
  const t1 = performance.now();
  await h.js.publish(subjects.submit('IT'), encodeEnvelope(other));
  await waitFor("IT's message routed", () => h.routed.some((r) => r.from === 'IT'));
  t.ok(performance.now() - t1 < 1_000, "IT is not slowed by FR's rate");
  await waitFor('all routed', async () => h.routed.length === 46 && (await h.submitEmpty()), 15_000);
  const tookMs = performance.now() - t0;
  // 5 at once, then 40 at 20 a second: 2 s at least.
  t.ok(tookMs >= 1_800, `FR was held to its rate (${tookMs.toFixed(0)} ms for 45)`);
  t.ok(h.throttled.filter((cc) => cc === 'FR').length >= 30, `held back and counted (${h.throttled.length} times)`);
  t.notOk(h.throttled.includes('IT'));
  t.same(h.events, [], 'no rejection: held back, not refused');
  t.same(await h.deliverCounts(), { 'ncb.deliver.DE': 45, 'ncb.deliver.ES': 1 });
});
