// The fault suite's own machinery, without any component under attack: verdicts, the exit status,
// the table and Markdown, scenario selection, the HTTP oracle, and the shared arbitraries' promise
// that what they call valid is valid.
import t from 'tap';
import fc from 'fast-check';
import { envelopeProblems } from '../protocol/envelope.js';
import { KNOWN_FINDINGS, missingKey } from './findings.js';
import { envelopeArb, percentEncode, ulidArb, timeArb } from './fuzz/arbitraries.js';
import { judgeAnswer, exportedCodes, Tally, type CodeBook } from './fuzz/tally.js';
import { crashedRow, exitCodeOf, finishRow, formatMarkdown, formatNotes, formatRows, summaryOf, verdictOf, type RowInput } from './lib/report.js';
import { SCENARIOS, selectScenarios } from './scenarios.js';

const base: RowInput = { scenario: 'x: y', kind: 'attack', attempts: 3, refused: 3, leaked: 0, ms: 1 };

t.test('faults report: verdicts and the exit status', async (t) => {
  t.equal(verdictOf(base), 'pass');
  t.equal(verdictOf({ ...base, refused: 2, leaked: 1 }), 'FAIL', 'a leak fails');
  t.equal(verdictOf({ ...base, duplicated: 1 }), 'FAIL', 'a duplicate fails');
  t.equal(verdictOf({ ...base, refused: 2 }), 'FAIL', 'an attempt without an explained outcome fails');
  t.equal(verdictOf({ ...base, crashed: 'Error: boom' }), 'FAIL', 'a crash fails');
  t.equal(verdictOf({ ...base, kind: 'fuzz', refused: 1, accepted: 2 }), 'pass', 'fuzz: accepted inputs are explained outcomes');
  t.equal(verdictOf({ ...base, missing: 'rate limit: missing — none' }), 'MISSING');
  t.equal(exitCodeOf([finishRow(base), finishRow({ ...base, missing: 'm' })]), 0, 'a missing protection alone does not fail the run');
  t.equal(exitCodeOf([finishRow(base), finishRow({ ...base, leaked: 1, refused: 2 })]), 1);
  const crashed = crashedRow('z: w', 'fuzz', new Error('first line\nsecond'), 5);
  t.match(crashed, { verdict: 'FAIL', crashed: 'Error: first line', attempts: 0 });
});

t.test('faults report: table, notes, Markdown and summary', async (t) => {
  const rows = [finishRow({ ...base, notes: ['a note'] }), finishRow({ scenario: 'f | z', kind: 'fuzz', attempts: 10, refused: 6, accepted: 3, leaked: 1, failures: { 'status 500': 1 }, ms: 2500 })];
  const table = formatRows(rows);
  t.match(table, /^scenario\s+kind\s+attempts\s+refused\/delivered\s+leaked\/lost\s+duplicated\s+verdict\s+time$/m);
  t.match(table, /6 \(\+3 accepted\)\s+1\s+0\s+FAIL\s+2\.5 s/);
  t.same(formatNotes(rows), ['x: y: a note']);
  const md = formatMarkdown(rows, '### title');
  t.match(md, /\| f \\\| z \| fuzz \| 10 \| 6 \(\+3 accepted\) \| 1 \| 0 \| \*\*FAIL\*\* \| 2\.5 s \|/, 'pipes escaped, failures in bold');
  t.match(summaryOf(rows), '2 rows, 13 attempts/cases: 1 pass, 1 FAIL, 0 missing protection; 1 leaked/lost');
});

t.test('faults scenarios: selection by id, and every known finding names a scenario', async (t) => {
  t.equal(selectScenarios(undefined).length, SCENARIOS.length);
  t.same(selectScenarios('admin, fuzz-envelope').map((s) => s.id), ['admin', 'fuzz-envelope']);
  t.throws(() => selectScenarios('admin,nope'), /unknown scenario nope/);
  t.same(new Set(SCENARIOS.map((s) => s.id)).size, SCENARIOS.length, 'ids are unique');
  for (const id of Object.keys(KNOWN_FINDINGS)) t.ok(SCENARIOS.some((s) => s.id === id), `${id} is a scenario`);
  t.equal(missingKey('rate limit: missing — 200 in 1 s'), 'rate limit: missing');
});

t.test('faults oracle: an HTTP answer is accepted, a coded refusal, or a failure of a named kind', async (t) => {
  const book: CodeBook = { isKnown: (c) => c === 'A_B' || c === 'FREE_CODE', statusOf: (c) => (c === 'A_B' ? 400 : undefined) };
  const answer = (statusCode: number, body: string) => ({ statusCode, body, headers: {} });
  t.same(judgeAnswer(answer(202, '{}'), 'POST', book), { ok: 'accepted' });
  t.same(judgeAnswer(answer(400, '{"code":"A_B","message":"m"}'), 'POST', book), { ok: 'refused', code: 'A_B' });
  t.same(judgeAnswer(answer(418, '{"code":"FREE_CODE","message":"m"}'), 'GET', book), { ok: 'refused', code: 'FREE_CODE' }, 'any status for a code without one');
  t.match(judgeAnswer(answer(500, '{"code":"A_B","message":"m"}'), 'GET', book), { ok: false, kind: 'status 500' });
  t.match(judgeAnswer(answer(400, 'oops'), 'GET', book), { ok: false, kind: 'refusal without a JSON body' });
  t.match(judgeAnswer(answer(400, '{"message":"m"}'), 'GET', book), { ok: false, kind: 'refusal without {code, message}' });
  t.match(judgeAnswer(answer(400, '{"code":"X_Y","message":"m"}'), 'GET', book), { ok: false, kind: 'unknown code X_Y' });
  t.match(judgeAnswer(answer(401, '{"code":"A_B","message":"m"}'), 'GET', book), { ok: false, kind: 'wrong status for A_B' });
  t.same(judgeAnswer(answer(404, ''), 'HEAD', book), { ok: 'refused', code: 'HEAD 404' }, 'HEAD has no body to judge');
  t.same([...exportedCodes({ A: 'LOCAL_AUTH_REQUIRED', b: 'not a code', c: 3, D: 'X' })], ['LOCAL_AUTH_REQUIRED']);
  const tally = new Tally();
  tally.refuse('A_B');
  tally.accept();
  tally.fail('status 500', 'boom', { a: 'x'.repeat(1000) });
  tally.fail('status 500', 'again', { authorization: 'Bearer abcdefghijklmnopqrstuvwxyz0123456789', token: `ncbnet1.0123456789abcdef.${'A'.repeat(43)}.${'0'.repeat(64)}` });
  const row = tally.row('fuzz: z', 1000, 7);
  t.match(row.notes?.join('\n'), /Bearer <token>.*ncbnet1\.0123456789abcdef\.<secret>\./, 'tokens are redacted in the examples');
  t.notMatch(row.notes?.join('\n'), /abcdefghijklmnopqrstuvwxyz|A{43}/);
  t.match(row, { attempts: 4, refused: 1, accepted: 1, leaked: 2, failures: { 'status 500': 2 } });
  t.match(row.notes?.join('\n'), /4 cases\/s, seed 7; codes: A_B 1[\s\S]*failures by kind: status 500 ×2[\s\S]*FAILED: boom — input .*… \(\d+ chars\)/);
});

t.test('faults arbitraries: what they call valid is valid, and ids and times are well-formed', async (t) => {
  fc.assert(fc.property(envelopeArb, (e) => envelopeProblems(e).length === 0), { numRuns: 500 });
  fc.assert(fc.property(ulidArb, timeArb, (id, time) => /^[0-7][0-9A-HJKMNP-TV-Z]{25}$/.test(id) && !Number.isNaN(Date.parse(time))), { numRuns: 200 });
  t.pass('500 envelopes of every kind from envelopeArb have no problems');
  t.equal(percentEncode('a/\ud800é'), 'a%2F%EF%BF%BD%C3%A9', 'a lone surrogate is encoded as U+FFFD, not thrown on');
});
