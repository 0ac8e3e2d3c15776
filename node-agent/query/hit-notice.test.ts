import t from 'tap';
import type { HitNotice, QueryHit, StoredRecord } from '../../protocol/query.js';
import { MessageDraftSchema } from '../relay/types.js';
import { schemaProblems } from '../../protocol/validate.js';
import { hitNoticeDrafts } from './hit-notice.js';

const at = new Date('2026-11-25T10:00:00Z');
const stored = (owner: string, number: string): StoredRecord => ({
  v: 1, service: 'sltd', owner, createdAt: at.toISOString(), updatedAt: at.toISOString(),
  record: { number, country: owner, type: 'passport', status: 'stolen', reportedOn: '2026-11-01' },
});

t.test('hit notices: one restricted message per record another country owns, only when the hub asks', async (t) => {
  const answer: QueryHit = { v: 1, ok: true, service: 'sltd', op: 'get', hit: true, result: stored('DE', 'C01X00T47'), notifyOwner: true };
  const drafts = hitNoticeDrafts('FR', answer, at);
  t.equal(drafts.length, 1);
  const [draft] = drafts;
  t.match(draft, { kind: 'message', to: ['DE'], handling: 'restricted', priority: 'routine' });
  t.notOk(draft && 'subject' in draft, 'no subject: the hub reads subjects, and the body is encrypted');
  t.same(schemaProblems(MessageDraftSchema, draft), [], 'a draft the relay accepts');
  t.same(JSON.parse(draft?.body ?? '{}') as HitNotice, { type: 'ncbnet-db-hit', service: 'sltd', key: { number: 'C01X00T47', country: 'DE' }, by: 'FR', at: at.toISOString() });

  t.same(hitNoticeDrafts('FR', { ...answer, notifyOwner: undefined }), [], 'not without the hub saying so');
  t.same(hitNoticeDrafts('DE', answer), [], 'not for a record of our own');
  const search: QueryHit = { v: 1, ok: true, service: 'sltd', op: 'search', hit: true, results: [stored('DE', 'A1'), stored('FR', 'B2'), stored('IT', 'C3')], notifyOwner: true };
  t.same(hitNoticeDrafts('FR', search, at).map((d) => d.to), [['DE'], ['IT']], 'a search: every record of another country');
});
