// The drain's window against a real nats-server with JetStream and the hub's SUBMIT stream: what
// leaves together, what stays when one publish of a window fails, and that a deletion never
// reaches SUBMIT ahead of its original. A publish that fails for one message only is made real by
// SUBMIT's max_msg_size: an envelope larger than it is refused, the small ones pass, until the
// limit is raised (as an operator would).
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { pino } from 'pino';
import t from 'tap';
import { ensureStreams } from '../../hub/broker/streams.js';
import { parseEnvelope } from '../../protocol/envelope.js';
import { SUBMIT_STREAM } from '../../protocol/subjects.js';
import { startNatsServerForTest, type TestLike } from '../../test/helpers/nats-server.js';
import { tempDir } from '../../test/helpers/tmpdir.js';
import { waitFor } from '../../test/helpers/wait.js';
import { Relay } from './relay.js';
import type { MessageDraft } from './types.js';

const SMALL_LIMIT_BYTES = 1_000;
const BIG_BODY = 'b'.repeat(8_000);

function draft(over: Record<string, unknown> = {}): MessageDraft {
  return { kind: 'message', to: ['DE'], body: 'hello', ...over } as unknown as MessageDraft;
}

/** The envelope ids in SUBMIT, in stream order (nothing consumes it here). */
async function submitted(jsm: JetStreamManager): Promise<string[]> {
  const info = await jsm.streams.info(SUBMIT_STREAM);
  const ids: string[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const m = await jsm.streams.getMessage(SUBMIT_STREAM, { seq });
    if (m !== null) ids.push(parseEnvelope(m.data).id);
  }
  return ids;
}

/** A relay for FR attached to a fresh server whose SUBMIT refuses envelopes over {@link SMALL_LIMIT_BYTES} (+ header room). */
async function setup(t: TestLike, window?: number) {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const server = await startNatsServerForTest(t);
  const nc = await connect({ servers: server.url });
  t.teardown(() => nc.close());
  const jsm = await jetstreamManager(nc);
  await ensureStreams(jsm, { maxMsgBytes: SMALL_LIMIT_BYTES });
  const relay = await Relay.open({ country: 'FR', stateDir: await tempDir(t), log, publishTimeoutMs: 2_000, retry: { initialMs: 20, maxMs: 100 }, ...(window === undefined ? {} : { drainWindow: window }) });
  t.teardown(() => relay.stop());
  return { relay, nc, jsm, lines };
}

t.test('drain: a window of submissions lands in SUBMIT once each, in submission order', async (t) => {
  const { relay, nc, jsm } = await setup(t);
  const ids: string[] = [];
  for (let i = 0; i < 100; i++) ids.push((await relay.submit(draft({ body: `m${i}` }))).id);
  await relay.attach(nc);
  await waitFor('outbox drained', () => relay.outboxDepth() === 0);
  t.same(await submitted(jsm), ids, 'each once, in order');
  t.same(new Set(ids.map((id) => relay.status(id)?.state)), new Set(['submitted']));
});

t.test('drain: a publish that fails keeps its message; the rest of its window goes on', async (t) => {
  const { relay, nc, jsm, lines } = await setup(t);
  const small1 = (await relay.submit(draft({ body: 'first' }))).id;
  const big = (await relay.submit(draft({ body: BIG_BODY }))).id;
  const small2 = (await relay.submit(draft({ body: 'third' }))).id;
  await relay.attach(nc);
  await waitFor('the small ones submitted', () => relay.status(small1)?.state === 'submitted' && relay.status(small2)?.state === 'submitted');
  await waitFor('a few retries of the big one', () => lines.filter((l) => l['msg'] === 'submit failed, will retry').length >= 3);
  t.same(relay.outboxIds(), [big], 'only the refused one waits');
  t.equal(relay.status(big)?.state, 'queued');
  t.match(lines.find((l) => l['msg'] === 'submit failed, will retry'), { level: 40, id: big, failed: 1, failures: 1 });
  t.same(await submitted(jsm), [small1, small2]);
  // The operator raises the limit: the kept message goes at the next retry, once.
  await ensureStreams(jsm);
  await waitFor('outbox drained', () => relay.outboxDepth() === 0, 10_000);
  t.equal(relay.status(big)?.state, 'submitted');
  t.same(await submitted(jsm), [small1, small2, big], 'nothing skipped, nothing twice; the failed one is stored after the others');
});

t.test('drain: a deletion is never published before its original is in SUBMIT', async (t) => {
  const { relay, nc, jsm, lines } = await setup(t);
  const original = (await relay.submit(draft({ body: BIG_BODY }))).id;
  const deletion = (await relay.submit(draft({ kind: 'deletion', deletes: original, reason: 'CCF_ORDER', body: 'delete it' }))).id;
  const after = (await relay.submit(draft({ body: 'after' }))).id;
  await relay.attach(nc);
  await waitFor('the original refused a few times', () => lines.filter((l) => l['msg'] === 'submit failed, will retry').length >= 3);
  t.same(await submitted(jsm), [], 'the deletion (and what follows it) waits while its original is refused');
  t.same(relay.outboxIds(), [original, deletion, after]);
  await ensureStreams(jsm);
  await waitFor('outbox drained', () => relay.outboxDepth() === 0, 10_000);
  t.same(await submitted(jsm), [original, deletion, after], 'the original first');
});

t.test('drain: window 1 keeps strict order across a failure', async (t) => {
  const { relay, nc, jsm, lines } = await setup(t, 1);
  const big = (await relay.submit(draft({ body: BIG_BODY }))).id;
  const small = (await relay.submit(draft({ body: 'behind' }))).id;
  await relay.attach(nc);
  await waitFor('a few retries', () => lines.filter((l) => l['msg'] === 'submit failed, will retry').length >= 2);
  t.same(await submitted(jsm), [], 'nothing overtakes the failing head');
  await ensureStreams(jsm);
  await waitFor('outbox drained', () => relay.outboxDepth() === 0, 10_000);
  t.same(await submitted(jsm), [big, small]);
});
