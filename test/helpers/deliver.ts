import type { JetStreamClient, JsMsg } from '@nats-io/jetstream';
import { DELIVER_STREAM, deliverConsumer } from '../../protocol/subjects.js';

/** Reads (and acks) everything pending on `deliver-<CC>`, without waiting for a timeout. */
export async function readDelivered(js: JetStreamClient, country: string): Promise<JsMsg[]> {
  const consumer = await js.consumers.get(DELIVER_STREAM, deliverConsumer(country));
  const pending = (await consumer.info()).num_pending;
  if (pending === 0) return [];
  const out: JsMsg[] = [];
  for await (const m of await consumer.fetch({ max_messages: pending, expires: 5_000 })) {
    out.push(m);
    m.ack();
    if (out.length === pending) break;
  }
  return out;
}
