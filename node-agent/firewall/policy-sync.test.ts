// The policy sync's decisions, with the hub answer and the firewall as plain functions (the real
// firewall applying a policy is tested in test/integration and test/e2e/agent.test.ts): apply and
// persist a changed policy, nothing for the same one, and never weaker on a bad answer or a
// firewall refusal.
import { pino } from 'pino';
import t from 'tap';
import { policyDigest, type Policy } from '../../protocol/bundle.js';
import { PolicySync, type PolicyCheckResult } from './policy-sync.js';

const base: Policy = { version: 1, hubAddress: '10.77.0.1', natsPort: 4222, apiPort: 8443, allowFromHubTcp: [] };

function harness(answer: () => Promise<unknown>, opts: { refuse?: boolean } = {}) {
  let current = base;
  const applied: Policy[] = [];
  const persisted: Policy[] = [];
  const results: PolicyCheckResult[] = [];
  const lines: Record<string, unknown>[] = [];
  const sync = new PolicySync({
    fetch: answer,
    current: () => current,
    apply: async (p) => {
      if (opts.refuse) throw new Error('nft: syntax error');
      applied.push(p);
    },
    persist: async (p) => {
      persisted.push(p);
      current = p;
    },
    intervalMs: 0,
    log: pino({ level: 'debug' }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) }),
    onResult: (r) => void results.push(r),
  });
  return { sync, applied, persisted, results, lines, current: () => current };
}

t.test('policy sync: a changed policy is applied, then persisted, once; the same one changes nothing', async (t) => {
  const next: Policy = { ...base, allowFromHubTcp: [9465] };
  const h = harness(async () => next);
  t.equal(await h.sync.check(), 'applied');
  t.same(h.applied, [next]);
  t.same(h.persisted, [next], 'written into the bundle so the next start begins with it');
  t.equal(await h.sync.check(), 'unchanged');
  t.equal(h.applied.length, 1, 'not applied twice');
  t.match(h.lines.find((l) => l['msg'] === 'firewall policy updated'), { from: policyDigest(base), to: policyDigest(next), allowFromHubTcp: [9465], before: [] });
  t.same(h.results, ['applied', 'unchanged']);
});

t.test('policy sync: a bad answer, a failed fetch or a refused policy leave the rules and the bundle as they were', async (t) => {
  const invalid = harness(async () => ({ ...base, allowFromHubTcp: [0, 70000] }));
  t.equal(await invalid.sync.check(), 'invalid');
  t.same([invalid.applied, invalid.persisted], [[], []]);
  t.match(invalid.lines.at(-1), { level: 50, msg: /invalid firewall policy/, problems: [/allowFromHubTcp\/?\.?\[?0/, /allowFromHubTcp/] });

  const unreachable = harness(() => Promise.reject(new Error('connect ETIMEDOUT')));
  t.equal(await unreachable.sync.check(), 'fetch-failed');
  t.same(unreachable.persisted, []);

  const refused = harness(async () => ({ ...base, allowFromHubTcp: [22] }), { refuse: true });
  t.equal(await refused.sync.check(), 'refused');
  t.same(refused.persisted, [], 'a policy the firewall did not take is not written');
  t.equal(refused.current(), base);
  t.same([...invalid.results, ...unreachable.results, ...refused.results], ['invalid', 'fetch-failed', 'refused']);
});

t.test('policy sync: checks asked for while one runs join it (one fetch)', async (t) => {
  let fetches = 0;
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const h = harness(async () => {
    fetches++;
    await gate;
    return { ...base, allowFromHubTcp: [9100] };
  });
  const all = Promise.all([h.sync.check(), h.sync.check(), h.sync.check()]);
  release();
  t.same(await all, ['applied', 'applied', 'applied']);
  t.equal(fetches, 1);
  t.equal(await h.sync.check(), 'unchanged', 'a later check is a new one');
  t.equal(fetches, 2);
});
