import t from 'tap';
import { parseAgentConfig } from './config.js';
import { LIVE_SETTINGS, changedSettings } from './config-reload.js';

t.test('config reload: changed settings are named section.key; equal configurations change nothing', async (t) => {
  const before = parseAgentConfig({ localApi: { port: 8787 }, b2b: { databases: [] } });
  t.same(changedSettings(before, parseAgentConfig({ localApi: { port: 8787 } })), [], 'defaults equal to explicit values');
  const policy = { db: 'vehicles', allow: ['DE'], fields: { default: ['vin'] }, notifyEnquiries: false };
  const after = parseAgentConfig({
    localApi: { port: 8788 },
    heartbeatIntervalMs: 5_000,
    b2b: { databases: [{ policy, source: { jsonl: '/x.jsonl', keyField: 'vin' } }] },
  });
  t.same(changedSettings(before, after), ['b2b.databases', 'heartbeatIntervalMs', 'localApi.port']);
  t.same(
    changedSettings(before, after).filter((k) => LIVE_SETTINGS.includes(k)),
    ['b2b.databases'],
    'only the B2B databases apply live',
  );
});
