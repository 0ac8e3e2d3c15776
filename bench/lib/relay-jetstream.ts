/**
 * The relay benchmark's baseline: raw JetStream doing the same two hops as ncbnet's relay, on a
 * plain nats-server of the same build (file storage, a temp dir). Stream A (`a.>`, work queue,
 * like SUBMIT) and stream B (`b.>`, limits, like DELIVER); a router process reads A, publishes to B
 * awaiting the PubAck and acks A (`relay-jetstream-router.ts`); the recipient here reads B through
 * a durable pull consumer and acks. The sender publishes to A awaiting the PubAck.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { AckPolicy, DeliverPolicy, RetentionPolicy, StorageType, jetstream, jetstreamManager, type ConsumerMessages, type JetStreamClient } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { startNatsServer, type NatsServer } from '../../test/helpers/nats-server.js';
import type { Owner } from './relay-common.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const ID_BYTES = 32;

/** The payload: `bytes` long, the id (padded) first. */
function payload(id: string, bytes: number): Uint8Array {
  const out = Buffer.alloc(Math.max(bytes, ID_BYTES), 0x78);
  out.write(id.padEnd(ID_BYTES, ' '), 0, 'ascii');
  return out;
}

function idOf(data: Uint8Array): string {
  return Buffer.from(data.subarray(0, ID_BYTES)).toString('ascii').trimEnd();
}

export class JetStreamBaseline {
  readonly server: NatsServer;
  readonly #recipient: NatsConnection;
  readonly #js: JetStreamClient;
  readonly #router: ChildProcess;
  readonly #messages: ConsumerMessages;
  readonly #arrived = new Map<string, number>();
  readonly #waiters = new Map<string, (t: number) => void>();
  #onItem: ((id: string) => void) | undefined;

  private constructor(server: NatsServer, sender: NatsConnection, recipient: NatsConnection, router: ChildProcess, messages: ConsumerMessages) {
    this.server = server;
    this.#recipient = recipient;
    this.#js = jetstream(sender);
    this.#router = router;
    this.#messages = messages;
    void this.#consume();
  }

  /** Starts nats-server, the streams and consumers, the router process and the recipient. */
  static async start(owner: Owner): Promise<JetStreamBaseline> {
    const server = await startNatsServer({ jetstream: true, monitoring: false });
    owner.teardown(() => server.stop());
    const sender = await connect({ servers: server.url });
    owner.teardown(() => sender.close());
    const jsm = await jetstreamManager(sender);
    await jsm.streams.add({ name: 'A', subjects: ['a.>'], storage: StorageType.File, retention: RetentionPolicy.Workqueue });
    await jsm.streams.add({ name: 'B', subjects: ['b.>'], storage: StorageType.File, retention: RetentionPolicy.Limits });
    await jsm.consumers.add('A', { durable_name: 'router', ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, ack_wait: 30_000_000_000 });
    await jsm.consumers.add('B', { durable_name: 'recipient', ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, ack_wait: 30_000_000_000 });

    const router = spawn(process.execPath, ['--import', 'tsx', 'bench/lib/relay-jetstream-router.ts', server.url], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    router.stdout.on('data', (c: Buffer) => (output += c.toString('utf8')));
    router.stderr.on('data', (c: Buffer) => (output += c.toString('utf8')));
    const exited = new Promise<void>((resolve) => router.once('exit', () => resolve()));
    owner.teardown(async () => {
      if (router.exitCode === null && router.signalCode === null) {
        router.kill('SIGTERM');
        const timer = setTimeout(() => router.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
    });
    for (const deadline = Date.now() + 30_000; !output.includes('ready\n'); ) {
      if (router.exitCode !== null || router.signalCode !== null) throw new Error(`baseline router exited: ${output}`);
      if (Date.now() > deadline) throw new Error(`baseline router not ready: ${output}`);
      await new Promise((r) => setTimeout(r, 50));
    }

    const recipient = await connect({ servers: server.url });
    owner.teardown(() => recipient.close());
    const consumer = await jetstream(recipient).consumers.get('B', 'recipient');
    const messages = await consumer.consume({ max_messages: 64 });
    owner.teardown(() => messages.close());
    return new JetStreamBaseline(server, sender, recipient, router, messages);
  }

  get routerPid(): number | undefined {
    return this.#router.pid;
  }

  async #consume(): Promise<void> {
    try {
      for await (const m of this.#messages) {
        const at = performance.now();
        const id = idOf(m.data);
        this.#arrived.set(id, at);
        this.#waiters.get(id)?.(at);
        this.#waiters.delete(id);
        this.#onItem?.(id);
        m.ack();
      }
    } catch {
      // closed at teardown
    }
  }

  #arrival(id: string, timeoutMs: number): Promise<number> {
    const at = this.#arrived.get(id);
    if (at !== undefined) return Promise.resolve(at);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(id);
        reject(new Error(`baseline: ${id} not received within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiters.set(id, (t) => {
        clearTimeout(timer);
        resolve(t);
      });
    });
  }

  /** One message at a time: publish to A (PubAck awaited) → the recipient has it from B; ms each. */
  async latency(prefix: string, n: number, bytes: number): Promise<number[]> {
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const id = `${prefix}-${i}`;
      const t0 = performance.now();
      const arrived = this.#arrival(id, 30_000);
      await this.#js.publish('a.fr', payload(id, bytes));
      out.push((await arrived) - t0);
      this.#arrived.delete(id);
    }
    return out;
  }

  /**
   * `m` messages published by `k` concurrent publishers (each awaiting its PubAck before the next);
   * resolves with the ms from the first publish to the last message received from B.
   */
  async throughput(prefix: string, m: number, k: number, bytes: number): Promise<number> {
    let received = 0;
    let done: () => void = () => undefined;
    const all = new Promise<void>((resolve) => (done = resolve));
    this.#onItem = (id) => {
      if (!id.startsWith(`${prefix}-`)) return;
      this.#arrived.delete(id);
      if (++received === m) done();
    };
    let next = 0;
    const t0 = performance.now();
    const workers = Array.from({ length: Math.min(k, m) }, async () => {
      for (let i = next++; i < m; i = next++) await this.#js.publish('a.fr', payload(`${prefix}-${i}`, bytes));
    });
    await Promise.all(workers);
    const timeout = setTimeout(() => done(), 120_000);
    await all;
    clearTimeout(timeout);
    const ms = performance.now() - t0;
    this.#onItem = undefined;
    if (received < m) throw new Error(`baseline throughput: ${received} of ${m} received within 120 s`);
    return ms;
  }

  /** True once nothing is left in A (the router acked everything). */
  async isQuiet(): Promise<boolean> {
    const jsm = await jetstreamManager(this.#recipient);
    const info = await jsm.consumers.info('B', 'recipient');
    const a = await jsm.streams.info('A');
    return info.num_pending === 0 && info.num_ack_pending === 0 && a.state.messages === 0;
  }
}
