/**
 * What waits for each country in DELIVER: `num_pending` (not yet handed out) plus
 * `num_ack_pending` (handed out, not yet acked) of its durable consumer `deliver-<CC>`. One paged
 * consumer list for the whole stream (the JetStream API answers up to 256 consumers a page), not
 * one `consumers.info` per country: with 195 countries that is one request instead of 195.
 */
import type { ConsumerInfo, JetStreamManager } from '@nats-io/jetstream';
import { isCountryCode } from '../../protocol/country.js';
import { DELIVER_STREAM } from '../../protocol/subjects.js';

const DELIVER_CONSUMER = /^deliver-([A-Z]{2})$/;

/** Messages waiting per country code, from consumer infos. Pure. */
export function backlogOf(infos: Iterable<Pick<ConsumerInfo, 'name' | 'num_pending' | 'num_ack_pending'>>): Map<string, number> {
  const out = new Map<string, number>();
  for (const ci of infos) {
    const cc = DELIVER_CONSUMER.exec(ci.name)?.[1];
    if (cc !== undefined && isCountryCode(cc)) out.set(cc, ci.num_pending + ci.num_ack_pending);
  }
  return out;
}

/** Lists DELIVER's consumers and returns each country's backlog (countries without a consumer are absent). */
export async function deliveryBacklog(jsm: JetStreamManager): Promise<Map<string, number>> {
  const infos: ConsumerInfo[] = [];
  for await (const ci of jsm.consumers.list(DELIVER_STREAM)) infos.push(ci);
  return backlogOf(infos);
}
