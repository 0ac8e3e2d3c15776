// The metric names the hub and the agent promise to serve on /metrics, and a check that a PromQL
// expression (an alert rule, a dashboard panel) uses no other. A typo in a metric name is not an
// error to Prometheus or Grafana: the query is just empty forever and the alert never fires, so
// the tests beside this file hold every expression we ship to this list.

/** Gauges and counters served by the hub's /metrics (label `country` unless hub-wide). */
export const HUB_METRICS = [
  'ncbnet_country_connected',
  'ncbnet_country_last_seen_timestamp_seconds',
  'ncbnet_country_info',
  'ncbnet_wireguard_last_handshake_timestamp_seconds',
  'ncbnet_wireguard_receive_bytes_total',
  'ncbnet_wireguard_transmit_bytes_total',
  'ncbnet_certificate_expiry_timestamp_seconds',
  'ncbnet_policy_in_sync',
  'ncbnet_delivery_pending',
  'ncbnet_messages_total',
  'ncbnet_probes_missed_total',
  'ncbnet_urgent_overdue_total',
  'ncbnet_urgent_overdue',
  'ncbnet_enrollments_total',
  'ncbnet_renewals_total',
  'ncbnet_revocations_total',
  'ncbnet_router_rejections_total',
  'ncbnet_router_throttled_total',
  'ncbnet_broker_restarts_total',
  'ncbnet_broker_up',
  'ncbnet_registry_countries',
  'ncbnet_db_queries_total',
] as const;

/** Histograms served by the hub: queried only through their `_bucket`, `_sum` and `_count` series. */
export const HUB_HISTOGRAMS = ['ncbnet_delivery_seconds', 'ncbnet_probe_rtt_seconds', 'ncbnet_db_query_duration_seconds'] as const;

/** Served by each node agent's /metrics; every series has label `country`. */
export const AGENT_METRICS = [
  'ncbnet_agent_up',
  'ncbnet_agent_tunnel_up',
  'ncbnet_agent_wireguard_last_handshake_timestamp_seconds',
  'ncbnet_agent_wireguard_receive_bytes_total',
  'ncbnet_agent_wireguard_transmit_bytes_total',
  'ncbnet_agent_broker_connected',
  'ncbnet_agent_outbox_depth',
  'ncbnet_agent_inbox_unacked',
  'ncbnet_agent_firewall_dropped_packets_total',
  'ncbnet_agent_certificate_expiry_timestamp_seconds',
  'ncbnet_agent_renewals_total',
  'ncbnet_agent_messages_total',
  'ncbnet_agent_probes_answered_total',
  'ncbnet_agent_store_damaged_records_total',
  'ncbnet_agent_store_full_total',
] as const;

/** Series Prometheus itself makes for every scrape target. */
export const SCRAPE_METRICS = ['up'] as const;

/** Every series name an expression may select: the lists above, histograms by their series. */
export function contractSeriesNames(): Set<string> {
  const names = new Set<string>([...HUB_METRICS, ...AGENT_METRICS, ...SCRAPE_METRICS]);
  for (const h of HUB_HISTOGRAMS) for (const suffix of ['_bucket', '_sum', '_count']) names.add(h + suffix);
  return names;
}

// Words PromQL uses between operands; not metric names even when not followed by "(".
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'inf', 'nan']);

/**
 * The metric names `expr` selects. Not a full PromQL parser, but enough for the expressions we
 * write: strings, Grafana variables (`$__rate_interval`, `${country}`), label matchers, ranges and
 * grouping label lists are removed first, then every identifier not followed by `(` (a function or
 * aggregation) and not a keyword or a number with a unit (`5m`) is a metric name.
 */
export function promqlMetricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ')
    .replace(/\$\{[^}]*\}|\$\w+/g, ' ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/[A-Za-z_:][\w:]*|\d[\w.]*/g)) {
    const word = m[0];
    if (/^\d/.test(word) || KEYWORDS.has(word.toLowerCase())) continue;
    if (/^\s*\(/.test(stripped.slice(m.index + word.length))) continue;
    names.add(word);
  }
  return [...names];
}

function indentOf(line: string): number {
  return line.length - line.trimStart().length;
}

/**
 * The `expr` values of a Prometheus rules file (ours: `expr: one line` or a `|`/`>` block). A
 * small reader for the shape we write, so the check needs no YAML library.
 */
export function ruleFileExprs(yamlText: string): string[] {
  const lines = yamlText.split('\n');
  const exprs: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^(\s*)(?:- )?expr:\s*(.*)$/.exec(lines[i] ?? '');
    if (!m) continue;
    const indent = (m[1] ?? '').length;
    const rest = (m[2] ?? '').trim();
    if (!/^[|>][-+]?$/.test(rest)) {
      exprs.push(rest.replace(/^(['"])(.*)\1$/, '$2'));
      continue;
    }
    const block: string[] = [];
    for (let next = lines[i + 1]; next !== undefined && (next.trim() === '' || indentOf(next) > indent); next = lines[i + 1]) {
      block.push(next.trim());
      i++;
    }
    exprs.push(block.join('\n').trim());
  }
  return exprs;
}

/** The `record:` names a rules file defines (recording rules a dashboard may use too). */
export function ruleFileRecords(yamlText: string): string[] {
  return [...yamlText.matchAll(/^\s*(?:- )?record:\s*(\S+)\s*$/gm)].map((m) => m[1] ?? '');
}
