/**
 * The baseline's "router", a process of its own as the hub's router is: reads stream A through
 * the durable pull consumer `router`, publishes each message to B (`b.<rest of the subject>`)
 * awaiting JetStream's PubAck, then acks A. One message at a time, like ncbnet's router; nothing
 * else (no parsing, signatures, audit or dedup ids): raw JetStream.
 *
 * Run by bench/relay.ts: `node --import tsx bench/lib/relay-jetstream-router.ts NATS_URL`; prints
 * `ready` once bound, stops on SIGTERM.
 */
import { jetstream } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';

const url = process.argv[2];
if (url === undefined) throw new Error('usage: relay-jetstream-router.ts NATS_URL');
const nc = await connect({ servers: url });
const js = jetstream(nc);
const consumer = await js.consumers.get('A', 'router');
const messages = await consumer.consume({ max_messages: 64 });
let isStopping = false;
const stop = (): void => {
  isStopping = true;
  void messages.close();
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
process.stdout.write('ready\n');
for await (const m of messages) {
  if (isStopping) {
    m.nak();
    continue;
  }
  await js.publish(`b.${m.subject.slice(2)}`, m.data);
  m.ack();
}
await nc.drain();
