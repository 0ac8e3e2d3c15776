import t from 'tap';
import { contractSeriesNames, promqlMetricNames, ruleFileExprs, ruleFileRecords } from './metric-contract.js';

t.test('metric contract: histograms are selectable only by their _bucket, _sum and _count series', async (t) => {
  const names = contractSeriesNames();
  t.ok(names.has('ncbnet_delivery_seconds_bucket'));
  t.ok(names.has('ncbnet_probe_rtt_seconds_count'));
  t.notOk(names.has('ncbnet_delivery_seconds'));
  t.ok(names.has('ncbnet_agent_outbox_depth'));
  t.ok(names.has('up'));
});

t.test('metric contract: promqlMetricNames finds selectors, not functions, labels, keywords or variables', async (t) => {
  t.same(
    promqlMetricNames('histogram_quantile(0.99, sum by (le, country) (rate(ncbnet_delivery_seconds_bucket{country=~"$country", le!="+Inf"}[$__rate_interval])))'),
    ['ncbnet_delivery_seconds_bucket'],
  );
  t.same(
    promqlMetricNames('ncbnet_country_connected == 0 and on (country) ncbnet_country_info{status="active"} == bool 1 unless ignoring(job) up offset 5m'),
    ['ncbnet_country_connected', 'ncbnet_country_info', 'up'],
  );
  t.same(promqlMetricNames('time() - max without (instance) (ncbnet_wireguard_last_handshake_timestamp_seconds) > 3e2'), ['ncbnet_wireguard_last_handshake_timestamp_seconds']);
  t.same(promqlMetricNames('sum(ncbnet_typo_total) or vector(0)'), ['ncbnet_typo_total']);
  t.same(promqlMetricNames("label_replace(up, 'x', '$1', 'instance', '(.*)') * ${factor}"), ['up']);
  t.same(promqlMetricNames('count(x) by (country) > Inf'), ['x']);
});

t.test('metric contract: ruleFileExprs reads one-line and block expressions; ruleFileRecords the record names', async (t) => {
  const yaml = [
    'groups:',
    '  - name: g',
    '    rules:',
    '      - record: a:b:rate5m',
    "        expr: 'sum(rate(x_total[5m]))'",
    '      - alert: A',
    '        expr: |',
    '          x == 0',
    '',
    '          and on (country) y',
    '        for: 5m',
    '      - alert: B',
    '        expr: >-',
    '          z > 1',
  ].join('\n');
  t.same(ruleFileExprs(yaml), ['sum(rate(x_total[5m]))', 'x == 0\n\nand on (country) y', 'z > 1']);
  t.same(ruleFileRecords(yaml), ['a:b:rate5m']);
});
