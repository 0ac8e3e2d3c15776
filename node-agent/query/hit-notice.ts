/**
 * Hit notices (issue 8): when a lookup finds a record another country owns, and the hub says the
 * service notifies owners (`notifyOwner` in its answer, from hub.json `databases.notifyOwnerOnHit`),
 * this agent tells the owner with an ordinary message through its relay: signed by this country,
 * stored in the outbox before anything else happens, routed and audited by the hub, encrypted to
 * the owner (`restricted`: who looked up which passport is police information). One message per
 * record found; the body is a {@link HitNotice} as JSON.
 *
 * The asking agent sends it because it is the one party that can sign for the enquiry: the hub
 * has no country key, and an envelope the hub made up would be one the owner's agent could not
 * check. An agent altered not to send it would escape notification; the hub still counts every
 * hit (`ncbnet_db_queries_total{result="hit"}`).
 */
import { keyOfRecord, type HitNotice, type QueryHit } from '../../protocol/query.js';
import type { MessageDraft } from '../relay/types.js';

/** The messages to send for `answer`, a hit this country (`country`) got; none when not asked to. */
export function hitNoticeDrafts(country: string, answer: QueryHit, now = new Date()): MessageDraft[] {
  if (answer.notifyOwner !== true) return [];
  const found = answer.result ? [answer.result] : (answer.results ?? []);
  return found
    .filter((r) => r.owner !== country)
    .map((r) => {
      const notice: HitNotice = { type: 'ncbnet-db-hit', service: r.service, key: keyOfRecord(r.service, r.record), by: country, at: now.toISOString() };
      return { kind: 'message', to: [r.owner], priority: 'routine', handling: 'restricted', body: JSON.stringify(notice) } satisfies MessageDraft;
    });
}
