import t from 'tap';
import { countryOfSubject, deliverConsumer, subjects } from './subjects.js';

t.test('subjects: builders give the designed names and refuse what would widen a subject', async (t) => {
  t.equal(subjects.submit('FR'), 'ncb.submit.FR');
  t.equal(subjects.deliver('DE'), 'ncb.deliver.DE');
  t.equal(subjects.inboxPrefix('IT'), '_INBOX_IT');
  t.equal(deliverConsumer('ES'), 'deliver-ES');
  t.equal(subjects.query('sltd'), 'ncb.query.sltd');
  for (const bad of ['fr', '*', '>', 'FR.x', 'ZZ', '']) {
    t.throws(() => subjects.submit(bad), { code: 'SUBJECT_BAD_COUNTRY' }, `country ${JSON.stringify(bad)}`);
  }
  for (const bad of ['a.b', '*', '>', 'SLTD', '']) t.throws(() => subjects.query(bad), { code: 'SUBJECT_BAD_SERVICE' });
  t.equal(countryOfSubject('ncb.submit.FR', 'submit'), 'FR');
  t.equal(countryOfSubject('ncb.submit.ZZ', 'submit'), undefined);
  t.equal(countryOfSubject('ncb.deliver.FR', 'submit'), undefined);
  t.equal(countryOfSubject('ncb.submit.FR.x', 'submit'), undefined);
});
