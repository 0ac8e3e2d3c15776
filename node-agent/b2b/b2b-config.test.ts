import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { parseAgentConfig } from '../config.js';
import { envelopeProblems, newUlid } from '../../protocol/envelope.js';
import { EnquiryJournal, enquiryEnvelope } from './enquiry-journal.js';
import { B2B_SOURCE_INVALID, JsonLinesDatabase } from './national-db.js';
import { B2bOwner } from './owner.js';

const dir = await mkdtemp(join(tmpdir(), 'ncbnet-b2b-unit-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));
const log = pino({ level: 'silent' });
const policy = { db: 'vehicles', allow: ['DE'], fields: { default: ['vin'] }, notifyEnquiries: true };

t.test('b2b config: agent.json b2b.databases is checked with the rest, unknown keys refused', async (t) => {
  t.same(parseAgentConfig({}).b2b, { databases: [], requestTimeoutMs: 5000 });
  const c = parseAgentConfig({ b2b: { databases: [{ policy, source: { jsonl: '/x.jsonl', keyField: 'vin' } }] } });
  t.same(c.b2b.databases[0]?.policy, policy);
  t.throws(() => parseAgentConfig({ b2b: { databases: [{ policy: { ...policy, allow: 'everyone' }, source: { jsonl: '/x', keyField: 'vin', extra: 1 } }] } }), {
    code: 'AGENT_CONFIG_INVALID',
    problems: [/^agent\.b2b\.databases\[0\]\.policy\.allow: /, /^agent\.b2b\.databases\[0\]\.policy\.allow: /, /^agent\.b2b\.databases\[0\]\.policy\.allow: /, 'agent.b2b.databases[0].source.extra: unknown key'],
  });
});

t.test('b2b config: a JSON-lines source is indexed by the normalized key; a bad file is refused whole', async (t) => {
  const good = join(dir, 'good.jsonl');
  await writeFile(good, '{"vin":"vf1-ab 1","x":1}\n\n{"vin":"VF1AB2","x":2}\n{"vin":"VF1AB1","x":3}\n');
  const db = await JsonLinesDatabase.open(good, 'vin');
  t.equal(db.size, 2);
  t.same(await db.lookup('VF1AB1'), { vin: 'VF1AB1', x: 3 }, 'a later line replaces an earlier one');
  t.equal(await db.lookup('NOPE'), undefined);
  const bad = join(dir, 'bad.jsonl');
  await writeFile(bad, '{"vin":"A1"}\nnot json\n[1]\n{"vin":"#"}\n{"plate":"x"}\n');
  await t.rejects(JsonLinesDatabase.open(bad, 'vin'), { code: B2B_SOURCE_INVALID, problems: [/^line 2: not JSON/, /^line 3: not an object/, /^line 4: vin/, /^line 5: vin/] });
  await t.rejects(JsonLinesDatabase.open(join(dir, 'missing.jsonl'), 'vin'), { code: B2B_SOURCE_INVALID });
});

t.test('b2b config: the owner refuses a policy that allows itself before loading anything', async (t) => {
  await t.rejects(
    B2bOwner.open({ country: 'DE', stateDir: dir, databases: [{ policy, source: { jsonl: join(dir, 'missing.jsonl'), keyField: 'vin' } }], verify: async () => undefined, sign: async (e) => e, hub: () => Promise.reject(new Error('unused')), log }),
    { code: 'B2B_POLICY_INVALID', problems: [/allow\[0\]: the owner/] },
  );
});

t.test('b2b config: the enquiry journal keeps notices across a restart, newest last', async (t) => {
  const path = join(dir, 'enquiries.jsonl');
  const j = await EnquiryJournal.open({ path, log, maxKept: 3 });
  for (let i = 0; i < 8; i++) await j.add({ v: 1, id: `01J00000000000000000000${String(i).padStart(3, '0')}`, at: new Date().toISOString(), db: 'vehicles', from: i % 2 ? 'DE' : 'NL', key: `K${i}`, hit: i % 3 === 0 });
  t.same(j.list().map((n) => n.key), ['K5', 'K6', 'K7']);
  t.same(j.list({ from: 'DE', limit: 1 }).map((n) => n.key), ['K7']);
  const again = await EnquiryJournal.open({ path, log, maxKept: 3 });
  t.same(again.list().map((n) => n.key), ['K5', 'K6', 'K7'], 'reloaded from the file (compacted on the way)');
});

t.test('b2b config: a notice becomes a valid inbox message to the owner itself', async (t) => {
  const notice = { v: 1 as const, id: '01J0000000000000000000000A', at: '2026-11-25T22:00:00.000Z', db: 'vehicles', from: 'DE', key: 'VF1AB1', hit: true };
  const envelope = enquiryEnvelope('FR', notice, newUlid());
  t.same(envelopeProblems(envelope), [], 'a valid envelope');
  t.same([envelope.from, envelope.to, envelope.kind], ['FR', ['FR'], 'message']);
  t.same(JSON.parse(envelope.body ?? ''), notice);
  t.match(envelope.subject, /DE asked vehicles for VF1AB1 \(hit\)/);
});
