/**
 * Attack 1: FR's own, valid certificate used with a plain NATS client (not the agent) against the
 * real hub broker, trying every subject and JetStream API a country must not use: other
 * countries' consumers (fetch, info, create, re-point, delete), stream, KV and audit management,
 * other countries' submit, probe, heartbeat, event and inbox subjects, the audit subject, the
 * system account, and wildcard subscriptions. Each must be refused by the broker itself
 * (permission violation) and move nothing the hub's own `>` subscription can see
 * (`lib/broker-probe.ts`). Then connections with identities the broker must not admit at all.
 *
 * The allow lists under attack are `countryPermissions` in hub/broker/config-render.ts;
 * test/integration/broker-permissions.test.ts proves the allowed half (own submit, own consumer).
 */
import { DELIVER_STREAM, SUBMIT_STREAM, deliverConsumer } from '../../protocol/subjects.js';
import { AUDIT_STREAM, AUDIT_SUBJECT } from '../../protocol/audit.js';
import { REGISTRY_BUCKET } from '../../hub/registry/registry.js';
import type { FaultContext } from '../lib/context.js';
import { BrokerProbe, type ProbeOutcome } from '../lib/broker-probe.js';
import { hubObserverConnection } from '../lib/network.js';
import type { RowInput } from '../lib/report.js';

const KV_STREAM = `KV_${REGISTRY_BUCKET}`;
const KV = `$KV.${REGISTRY_BUCKET}`;
const json = (v: unknown) => () => JSON.stringify(v);

/** Requests FR must not be able to make (JetStream API, KV writes, system account), each with the body the API expects. */
export function forbiddenRequests(): [string, ((marker: string) => string)?][] {
  const next = json({ batch: 1, expires: 1_000_000_000 });
  const spy = (name: string | undefined, filter: string) => (marker: string) =>
    JSON.stringify({ stream_name: DELIVER_STREAM, config: { ...(name ? { durable_name: name } : {}), filter_subject: filter, ack_policy: 'explicit', description: marker } });
  const de = deliverConsumer('DE');
  const fr = deliverConsumer('FR');
  return [
    [`$JS.API.CONSUMER.MSG.NEXT.${DELIVER_STREAM}.${de}`, next],
    [`$JS.API.CONSUMER.MSG.NEXT.${DELIVER_STREAM}.${deliverConsumer('IT')}`, next],
    [`$JS.API.CONSUMER.INFO.${DELIVER_STREAM}.${de}`],
    [`$JS.API.CONSUMER.DELETE.${DELIVER_STREAM}.${de}`],
    [`$JS.API.CONSUMER.DELETE.${DELIVER_STREAM}.${fr}`],
    // Re-pointing its own durable at DE's subject would read DE's traffic.
    [`$JS.API.CONSUMER.DURABLE.CREATE.${DELIVER_STREAM}.${fr}`, spy(fr, 'ncb.deliver.DE')],
    [`$JS.API.CONSUMER.DURABLE.CREATE.${DELIVER_STREAM}.spy-fr`, spy('spy-fr', 'ncb.deliver.DE')],
    [`$JS.API.CONSUMER.CREATE.${DELIVER_STREAM}`, spy(undefined, 'ncb.deliver.DE')],
    [`$JS.API.CONSUMER.CREATE.${DELIVER_STREAM}.spy-fr.ncb.deliver.DE`, spy('spy-fr', 'ncb.deliver.DE')],
    [`$JS.API.CONSUMER.LIST.${DELIVER_STREAM}`, json({ offset: 0 })],
    [`$JS.API.CONSUMER.NAMES.${DELIVER_STREAM}`, json({ offset: 0 })],
    [`$JS.API.CONSUMER.INFO.${SUBMIT_STREAM}.router`],
    [`$JS.API.CONSUMER.MSG.NEXT.${SUBMIT_STREAM}.router`, next],
    [`$JS.API.STREAM.CREATE.SPY`, json({ name: 'SPY', subjects: ['ncb.event.*'], storage: 'memory' })],
    [`$JS.API.STREAM.UPDATE.${DELIVER_STREAM}`, json({ name: DELIVER_STREAM, subjects: ['ncb.deliver.*'], max_age: 1 })],
    [`$JS.API.STREAM.DELETE.${DELIVER_STREAM}`],
    [`$JS.API.STREAM.PURGE.${DELIVER_STREAM}`, json({ filter: 'ncb.deliver.DE' })],
    [`$JS.API.STREAM.PURGE.${SUBMIT_STREAM}`],
    [`$JS.API.STREAM.DELETE.${AUDIT_STREAM}`],
    [`$JS.API.STREAM.PURGE.${AUDIT_STREAM}`],
    [`$JS.API.STREAM.INFO.${DELIVER_STREAM}`],
    [`$JS.API.STREAM.LIST`, json({ offset: 0 })],
    [`$JS.API.STREAM.NAMES`, json({ offset: 0 })],
    [`$JS.API.STREAM.MSG.GET.${DELIVER_STREAM}`, json({ seq: 1 })],
    [`$JS.API.STREAM.MSG.DELETE.${DELIVER_STREAM}`, json({ seq: 1, no_erase: true })],
    [`$JS.API.STREAM.MSG.GET.${AUDIT_STREAM}`, json({ seq: 1 })],
    [`$JS.API.STREAM.SNAPSHOT.${DELIVER_STREAM}`, json({ deliver_subject: '_INBOX_FR.snap', chunk_size: 1024 })],
    [`$JS.API.STREAM.INFO.${KV_STREAM}`],
    [`$JS.API.STREAM.MSG.GET.${KV_STREAM}`, json({ last_by_subj: `${KV}.DE` })],
    [`$JS.API.DIRECT.GET.${KV_STREAM}.${KV}.DE`],
    [`$JS.API.STREAM.DELETE.${KV_STREAM}`],
    [`$JS.API.STREAM.PURGE.${KV_STREAM}`],
    [`$JS.API.INFO`],
    // KV writes are JetStream publishes: the reply would be the store's ack.
    [`${KV}.FR`, json({ code: 'FR', status: 'active' })],
    [`${KV}.DE`, json({ code: 'DE', status: 'revoked' })],
    // Straight into the streams, around the router: another country's submission, a forged delivery, an audit record.
    ['ncb.submit.DE'],
    ['ncb.deliver.DE'],
    ['ncb.deliver.FR'],
    [AUDIT_SUBJECT],
    ['$SYS.REQ.SERVER.PING'],
    ['$SYS.REQ.SERVER.PING.CONNZ', json({ auth: true })],
    ['$SYS.REQ.ACCOUNT.PING.CONNZ', json({})],
  ];
}

/** Plain publishes FR must not be able to make. */
export function forbiddenPublishes(): string[] {
  return [
    'ncb.submit.DE',
    'ncb.submit.IT',
    'ncb.deliver.DE',
    'ncb.probe.DE',
    'ncb.heartbeat.DE',
    'ncb.event.DE',
    'ncb.event.FR',
    AUDIT_SUBJECT,
    `${KV}.FR`,
    `$JS.ACK.${DELIVER_STREAM}.${deliverConsumer('DE')}.1.1.1.1700000000000000000.0`,
    '_INBOX_DE.faults',
    '_INBOX.faults',
    '$SYS.REQ.SERVER.PING',
    '$SYS.ACCOUNT.faults.CONNECT',
  ];
}

/**
 * Subscriptions FR must not be able to make, each with a subject the hub publishes a marker on
 * to prove nothing arrives; none where the only matching subjects belong to a stream (a marker
 * there would be stored and routed) — the permission error is the proof there.
 */
export function forbiddenSubscriptions(): [string, string | undefined, string?][] {
  return [
    ['>', 'ncb.faults.trigger'],
    ['ncb.>', 'ncb.faults.trigger'],
    ['*.faults.*', 'ncb.faults.trigger'],
    ['ncb.deliver.DE', undefined],
    ['ncb.deliver.*', undefined],
    ['ncb.submit.DE', undefined],
    ['ncb.submit.*', undefined],
    ['ncb.submit.DE', undefined, 'router'],
    ['ncb.event.DE', 'ncb.event.DE'],
    ['ncb.event.*', 'ncb.event.IT'],
    ['ncb.heartbeat.*', undefined],
    ['ncb.probe.*', undefined],
    [AUDIT_SUBJECT, undefined],
    ['ncb.query.>', 'ncb.query.faults'],
    ['$JS.API.>', undefined],
    [`$JS.ACK.${DELIVER_STREAM}.${deliverConsumer('DE')}.>`, undefined],
    [`${KV}.>`, undefined],
    ['$SYS.>', '$SYS.faults'],
    ['_INBOX_DE.>', '_INBOX_DE.faults'],
    ['_INBOX.>', '_INBOX.faults'],
    ['$JS.EVENT.>', undefined],
  ];
}

function rowOf(scenario: string, outcomes: ProbeOutcome[], ms: number, extraNotes: string[] = []): RowInput {
  const leaked = outcomes.filter((o) => o.result === 'leaked');
  const unexplained = outcomes.filter((o) => o.result === 'unexplained');
  const ops = ['request', 'publish', 'subscribe'].map((op) => `${outcomes.filter((o) => o.op === op).length} ${op}s`).join(', ');
  return {
    scenario,
    kind: 'attack',
    attempts: outcomes.length,
    refused: outcomes.filter((o) => o.result === 'refused').length,
    leaked: leaked.length,
    notes: [
      ops,
      ...extraNotes,
      ...leaked.map((o) => `LEAK: ${o.op} ${o.subject}: ${o.detail}`),
      ...unexplained.map((o) => `UNEXPLAINED: ${o.op} ${o.subject}: ${o.detail}`),
    ],
    ms,
  };
}

/** FR's certificate on every subject and API it must not use. */
export async function attackBrokerSubjects(ctx: FaultContext): Promise<RowInput[]> {
  const net = await ctx.network();
  const started = performance.now();
  const attacker = await net.connect(net.countries.FR, 'FR');
  const observer = await hubObserverConnection(net);
  const probe = new BrokerProbe(attacker, observer);
  await probe.start();
  // Controls: three things FR may do must show as getting through, or the oracle proves nothing.
  const controls = [
    await probe.request(`$JS.API.CONSUMER.INFO.${DELIVER_STREAM}.${deliverConsumer('FR')}`),
    await probe.publish('ncb.query.faults-control'),
    await probe.subscribe('_INBOX_FR.faults-control', '_INBOX_FR.faults-control'),
  ];
  const blind = controls.filter((c) => c.result !== 'leaked');
  if (blind.length > 0) throw new Error(`the probe's controls were not seen getting through: ${blind.map((c) => `${c.op} ${c.subject}: ${c.result} (${c.detail})`).join('; ')}`);
  const outcomes: ProbeOutcome[] = [];
  for (const [subject, body] of forbiddenRequests()) outcomes.push(await probe.request(subject, body));
  ctx.progress(`  broker: ${outcomes.length} requests made`);
  for (const subject of forbiddenPublishes()) outcomes.push(await probe.publish(subject));
  for (const [subject, trigger, queue] of forbiddenSubscriptions()) outcomes.push(await probe.subscribe(subject, trigger, queue));
  const stillConnected = !attacker.isClosed();
  await attacker.close();
  await observer.close();
  return [rowOf("broker: FR's certificate on other countries' subjects, JetStream, KV, $SYS", outcomes, performance.now() - started, ['controls (allowed: own consumer info, ncb.query publish, own inbox subscribe) all seen getting through', stillConnected ? 'connection kept through every violation (2.9.10: permission errors do not disconnect)' : 'the broker closed the connection'])];
}

/** Identities the broker must not admit at all. */
export async function attackBrokerConnections(ctx: FaultContext): Promise<RowInput[]> {
  const net = await ctx.network();
  const started = performance.now();
  const tries: [string, () => Promise<unknown>][] = [
    ['no client certificate', () => net.connect(undefined, 'FR')],
    ['FR certificate from another root CA', () => net.connect(net.foreignCountry, 'FR')],
    ["the operator's certificate (valid, not a broker user)", () => net.connect(net.operator)],
    ['a revoked operator certificate', () => net.connect(net.revokedOperator)],
  ];
  const notes: string[] = [];
  let refused = 0;
  let leaked = 0;
  for (const [what, attempt] of tries) {
    try {
      const nc = (await attempt()) as { close(): Promise<void> };
      leaked += 1;
      notes.push(`LEAK: ${what}: connected`);
      await nc.close();
    } catch (err) {
      refused += 1;
      const text = err instanceof Error ? (err.message.split('\n')[0] ?? err.message) : String(err);
      const alert = /alert ([a-z ]+?):.*SSL alert number (\d+)/.exec(text);
      notes.push(`${what}: ${alert ? `TLS alert ${alert[2]} (${alert[1]})` : text}`);
    }
  }
  return [{ scenario: 'broker: connections with identities it must not admit', kind: 'attack', attempts: tries.length, refused, leaked, notes, ms: performance.now() - started }];
}
