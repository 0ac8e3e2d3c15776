import t from 'tap';
import { assertOwnTableOnly, atomicReplaceScript, ruleCounters, rulesetHash } from './nft.js';

const own = 'table inet ncbnet {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t\tcounter drop comment "has table word"\n\t}\n}\n';

t.test('nft: only a single inet ncbnet table is ever applied', async (t) => {
  t.doesNotThrow(() => assertOwnTableOnly(own), 'a word inside a comment string does not count');
  t.equal(atomicReplaceScript(own), `table inet ncbnet\ndelete table inet ncbnet\n${own.trimEnd()}\n`, 'declare, delete, define: one transaction');
  for (const [bad, why] of [
    ['table inet filter {\n}\n', /begin with "table inet ncbnet \{"/],
    [`${own}table ip nat {\n}\n`, /exactly one table/],
    [`${own}flush ruleset\n`, /whole ruleset/],
    ['table inet ncbnet {\n\tchain input {\n', /not closed/],
    [`${own}delete chain inet x y\n`, /end with the table block/],
  ] as const) {
    t.throws(() => assertOwnTableOnly(bad), { code: 'NFT_FOREIGN_TABLE', message: why });
  }
  t.equal(rulesetHash('x'), '2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881');
});

t.test('nft: ruleCounters reads named counters from libnftables JSON', async (t) => {
  const items = [
    { table: { family: 'inet', name: 'ncbnet' } },
    { rule: { chain: 'forward', comment: 'forward-between-countries', expr: [{ match: {} }, { counter: { packets: 3, bytes: 252 } }, { drop: null }] } },
    { rule: { chain: 'input', expr: [{ counter: { packets: 1, bytes: 1 } }] } },
    { rule: { chain: 'input', comment: 'no-counter', expr: [{ accept: null }] } },
    { rule: 'garbage' },
  ];
  t.same([...ruleCounters(items)], [['forward-between-countries', { packets: 3, bytes: 252 }]]);
});
