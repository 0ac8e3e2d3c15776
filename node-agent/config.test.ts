import { fileURLToPath } from 'node:url';
import t from 'tap';
import { loadAgentConfig, parseAgentConfig } from './config.js';

t.test('agent config: the shipped example is valid and names the metrics listener', async (t) => {
  const c = await loadAgentConfig(fileURLToPath(new URL('../deploy/agent.example.json', import.meta.url)));
  t.same(c.metrics, { enabled: true, host: '127.0.0.1', port: 9465 });
  t.equal(c.firewall.enabled, true);
  t.equal(c.firewall.policyRefreshMs, 300_000, "the hub's firewall policy is fetched every 5 min besides each reconnection");
  t.throws(() => parseAgentConfig({ firewall: { policyRefreshMs: -1 } }), { code: 'AGENT_CONFIG_INVALID', problems: ['agent.firewall.policyRefreshMs: must be >= 0 (got -1)'] });
});

t.test('agent config: metrics default to 127.0.0.1:9465, on; port 0 means any free port', async (t) => {
  t.same(parseAgentConfig({}).metrics, { enabled: true, host: '127.0.0.1', port: 9465 });
  t.same(parseAgentConfig({ metrics: { port: 0 } }).metrics, { enabled: true, host: '127.0.0.1', port: 0 });
  t.same(parseAgentConfig({ metrics: { enabled: false } }).metrics, { enabled: false, host: '127.0.0.1', port: 9465 });
  t.ok(Object.isFrozen(parseAgentConfig({}).metrics), 'frozen like the rest');
});

t.test('agent config: bad metrics keys are refused, every problem at once', async (t) => {
  t.throws(() => parseAgentConfig({ metrics: { port: 70000, host: '', path: '/m' } }), {
    code: 'AGENT_CONFIG_INVALID',
    problems: ['agent.metrics.path: unknown key', /^agent\.metrics\.host: /, 'agent.metrics.port: must be <= 65535 (got 70000)'],
  });
  t.throws(() => parseAgentConfig({ metrics: { enabled: 'yes' } }), { code: 'AGENT_CONFIG_INVALID', problems: [/^agent\.metrics\.enabled/] });
});
