/**
 * Baseline of the fan-out figure: raw JetStream on the same nats-server build, nothing of ncbnet.
 * A plain nats-server (test/helpers/nats-server.ts: loopback, no TLS, file storage), one stream,
 * `consumers` durable pull consumers each on its own connection (consume(), batch 64, as the
 * relay's inbox consumer); each run publishes one 1 KiB message and times until the last consumer
 * received it.
 */
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, StorageType } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { setTimeout as delay } from 'node:timers/promises';
import { startNatsServer } from '../../test/helpers/nats-server.js';
import { pool } from './scale-fleet.js';

export interface BaselineResult {
  /** Per run: ms from publish to the last consumer's receipt. */
  lastMs: number[];
  /** Runs in which some consumer did not get the message within the deadline. */
  incomplete: number;
}

export async function rawFanout(consumers: number, runs: number, progress: (text: string) => void): Promise<BaselineResult> {
  const server = await startNatsServer({ jetstream: true });
  const conns: NatsConnection[] = [];
  try {
    const admin = await connect({ servers: server.url });
    conns.push(admin);
    const jsm = await jetstreamManager(admin);
    await jsm.streams.add({ name: 'FANOUT', subjects: ['fanout.>'], storage: StorageType.File });
    let current: { seq: number; got: Set<number>; last: number; resolve: () => void } | undefined;
    await pool(
      Array.from({ length: consumers }, (_, i) => i),
      20,
      async (i) => {
        const nc = await connect({ servers: server.url, name: `baseline-${i}` });
        conns.push(nc);
        await jsm.consumers.add('FANOUT', { durable_name: `c${i}`, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All });
        const consumer = await jetstream(nc).consumers.get('FANOUT', `c${i}`);
        const messages = await consumer.consume({ max_messages: 64 });
        void (async () => {
          for await (const m of messages) {
            const at = performance.now();
            m.ack();
            const run = current;
            if (run !== undefined && m.seq === run.seq && !run.got.has(i)) {
              run.got.add(i);
              run.last = Math.max(run.last, at);
              if (run.got.size === consumers) run.resolve();
            }
          }
        })().catch(() => undefined);
      },
    );
    const js = jetstream(admin);
    const payload = new Uint8Array(1024).fill(65);
    const lastMs: number[] = [];
    let incomplete = 0;
    // Run 0 warms up (consumers' first pulls, file store); it is not counted.
    for (let r = 0; r <= runs; r++) {
      const run = { seq: -1, got: new Set<number>(), last: 0, resolve: (): void => undefined };
      const done = new Promise<void>((res) => (run.resolve = res));
      const info = await jsm.streams.info('FANOUT');
      run.seq = info.state.last_seq + 1;
      current = run;
      const t0 = performance.now();
      await js.publish('fanout.notice', payload);
      const complete = await Promise.race([done.then(() => true), delay(10_000).then(() => false)]);
      if (r > 0) {
        if (complete) lastMs.push(run.last - t0);
        else incomplete++;
      }
      current = undefined;
      await delay(100);
    }
    progress(`  raw JetStream fan-out to ${consumers} consumers: ${runs} runs done${incomplete > 0 ? `, ${incomplete} incomplete` : ''}`);
    return { lastMs, incomplete };
  } finally {
    await Promise.all(conns.map((c) => c.close().catch(() => undefined)));
    await server.stop();
  }
}
