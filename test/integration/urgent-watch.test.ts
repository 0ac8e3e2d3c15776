// Urgent messages not confirmed in time, seen by the real router on a real nats-server 2.9: the
// urgent message and the recipients' receipts both travel through SUBMIT and the router, which
// tells the watch. The watch runs on a fake clock (checked by hand), so nothing here sleeps.
import t from 'tap';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { pino } from 'pino';
import { ensureStreams } from '../../hub/broker/streams.js';
import { Router, type RecipientDirectory } from '../../hub/router/router.js';
import { KvUrgentStore } from '../../hub/router/urgent-store.js';
import { UrgentWatch } from '../../hub/router/urgent-watch.js';
import { encodeEnvelope, newUlid, type Envelope } from '../../protocol/envelope.js';
import { SUBMIT_STREAM, subjects } from '../../protocol/subjects.js';
import { startNatsServerForTest } from '../helpers/nats-server.js';
import { waitFor } from '../helpers/wait.js';

type Line = Record<string, unknown>;

function message(over: Partial<Envelope> = {}): Envelope {
  return { v: 1, id: newUlid(), kind: 'message', from: 'FR', to: ['DE'], priority: 'urgent', created: new Date().toISOString(), body: 'arrest warrant', ...over };
}

function receipt(of: Envelope, from: string, status: 'delivered' | 'read'): Envelope {
  return { v: 1, id: newUlid(), kind: 'receipt', from, to: [of.from], priority: 'routine', created: new Date().toISOString(), receipt: { of: of.id, status } };
}

t.test('urgent watch: an urgent FR→DE with no receipt by the deadline is reported once; DE\'s late receipt clears it; routine never', async (t) => {
  const server = await startNatsServerForTest(t);
  const nc = await connect({ servers: server.url });
  t.teardown(() => nc.close());
  const jsm = await jetstreamManager(nc);
  await ensureStreams(jsm);
  const js = jetstream(nc);

  const clock = { ms: Date.parse('2025-06-01T10:00:00Z') };
  const lines: Line[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Line) });
  const overdueCalls: [string, string][] = [];
  const watch = new UrgentWatch({ deadlineMs: 200, log, now: () => clock.ms, stats: { onUrgentOverdue: (from, to) => void overdueCalls.push([from, to]) } });
  const active = new Set(['FR', 'DE', 'IT']);
  const directory: RecipientDirectory = { isActive: (cc) => active.has(cc), activeCountries: () => [...active] };
  let routed = 0;
  const stats = { onRouted: () => void routed++, onRejected: () => undefined };
  const router = new Router({ nc, directory, log, stats, urgent: watch, retryDelayMs: 100 });
  t.teardown(() => router.stop());
  await router.start();
  const submit = async (env: Envelope, count: number): Promise<void> => {
    await js.publish(subjects.submit(env.from), encodeEnvelope(env));
    await waitFor(`${env.kind} ${env.id} routed`, async () => routed === count && (await jsm.streams.info(SUBMIT_STREAM)).state.messages === 0);
  };
  const warns = (): Line[] => lines.filter((l) => l['msg'] === 'urgent message not delivered within deadline');

  const urgent = message();
  const routine = message({ priority: 'routine', to: ['DE', 'IT'] });
  await submit(urgent, 1);
  await submit(routine, 2);
  t.equal(watch.tracked(), 1, 'the urgent message is watched, the routine one is not');
  clock.ms += 199;
  watch.check();
  t.same(warns(), [], 'nothing before the deadline');

  clock.ms += 1;
  watch.check();
  clock.ms += 1_000;
  watch.check();
  t.match(warns(), [{ level: 40, component: 'urgent-watch', id: urgent.id, from: 'FR', to: 'DE', ageMs: 200 }], 'one warning line for DE, however often it is checked');
  t.same(overdueCalls, [['FR', 'DE']], 'one stats call');
  t.equal(watch.overdue(), 1);

  await submit(receipt(urgent, 'DE', 'delivered'), 3);
  t.equal(watch.overdue(), 0, "DE's delivered receipt, routed through the hub, clears it");
  t.match(lines.filter((l) => l['msg'] === 'urgent message delivered after deadline'), [{ level: 30, id: urgent.id, from: 'FR', to: 'DE', status: 'delivered', ageMs: 1_200 }]);
  clock.ms += 60 * 60_000;
  watch.check();
  t.equal(warns().length, 1, 'the routine message never triggers it');
  t.equal(watch.tracked(), 0);
});

t.test('urgent watch: kept in KV across a restart: what was overdue stays overdue without a second report, confirmations still clear it', async (t) => {
  const server = await startNatsServerForTest(t);
  const nc = await connect({ servers: server.url });
  t.teardown(() => nc.close());
  const clock = { ms: Date.parse('2025-06-01T10:00:00Z') };
  const lines: Line[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Line) });
  const overdueCalls: [string, string][] = [];
  const stats = { onUrgentOverdue: (from: string, to: string) => void overdueCalls.push([from, to]) };
  const open = () => KvUrgentStore.open({ nc, log, maxAgeMs: 3600_000, flushEveryMs: 60_000 });

  const store = await open();
  const watch = new UrgentWatch({ deadlineMs: 1_000, log, now: () => clock.ms, stats, store });
  const [a, b, done] = [message({ to: ['DE', 'IT'] }), message({ to: ['DE'] }), message({ to: ['IT'] })];
  for (const m of [a, b, done]) watch.routed(m, m.to as string[]);
  watch.routed(receipt(done, 'IT', 'delivered'), ['FR']);
  watch.routed(receipt(a, 'IT', 'read'), ['FR']);
  clock.ms += 1_000;
  watch.check();
  t.same(overdueCalls.sort(), [['FR', 'DE'], ['FR', 'DE']], "a's and b's DE are overdue");
  await store.close();
  t.same([...(await store.load()).keys()].sort(), [`FR/${a.id}`, `FR/${b.id}`].sort(), 'the confirmed message is gone from the bucket, the others are there');

  // The "restarted hub": a new store and watch on the same bucket.
  const again = await open();
  t.teardown(() => again.close());
  const restarted = new UrgentWatch({ deadlineMs: 1_000, log, now: () => clock.ms, stats, store: again });
  t.equal(await restarted.restore(), 2, 'two messages restored');
  t.equal(restarted.tracked(), 2);
  t.equal(restarted.overdue(), 2, 'both DE copies still overdue');
  clock.ms += 5_000;
  restarted.check();
  t.equal(overdueCalls.length, 2, 'and not reported a second time');
  restarted.routed(receipt(a, 'DE', 'delivered'), ['FR']);
  t.equal(restarted.overdue(), 1, "DE's late receipt for a clears it");
  t.match(lines.at(-1), { msg: 'urgent message delivered after deadline', id: a.id, to: 'DE' });
  await again.flush();
  t.same([...(await again.load()).keys()], [`FR/${b.id}`], 'a, confirmed by all, is gone from the bucket');
});
