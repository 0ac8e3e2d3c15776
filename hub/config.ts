import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import Type, { type Static } from 'typebox';
import { Value } from 'typebox/value';
import { ValidationError } from '../protocol/errors.js';
import { QUERY_SERVICES, type QueryService } from '../protocol/query.js';
import { schemaProblems } from '../protocol/validate.js';
import { HUB_CONFIG_INVALID, HUB_CONFIG_UNREADABLE, HubError } from './errors.js';
import { hubAddress } from './registry/overlay.js';

const DAY_MS = 24 * 60 * 60 * 1000;
const DEFAULT_PROBE_INTERVAL_MS = 30_000;
const DEFAULT_PROBE_TIMEOUT_MS = 5_000;
const Port = (description: string) => Type.Integer({ minimum: 0, maximum: 65535, description });
const HostPort = Type.String({ pattern: '^(\\[[0-9a-fA-F:.]+\\]|[A-Za-z0-9.-]+):[0-9]{1,5}$', description: 'host:port' });

/**
 * hub.json: every key optional, unknown keys refused, every problem reported at once (STYLE,
 * Configuration). Port 0 means "any free port" (tests); the ports in use are written to
 * `DIR/run/endpoints.json` once the hub is up.
 */
export const HubConfigSchema = Type.Object(
  {
    api: Type.Optional(
      Type.Object(
        {
          host: Type.Optional(Type.String({ minLength: 1, description: 'address the enrollment and admin API binds' })),
          port: Type.Optional(Port('HTTPS port of the enrollment and admin API (default 8443)')),
          publicUrl: Type.Optional(Type.String({ pattern: '^https://', description: 'how agents reach the API; goes into CRL/OCSP URLs' })),
          bodyLimitBytes: Type.Optional(Type.Integer({ minimum: 1024, maximum: 1048576 })),
        },
        { additionalProperties: false },
      ),
    ),
    broker: Type.Optional(
      Type.Object(
        {
          binary: Type.Optional(Type.String({ minLength: 1 })),
          host: Type.Optional(Type.String({ minLength: 1, description: 'address nats-server listens on for clients' })),
          port: Type.Optional(Port('NATS client port (default 4222)')),
          monitorPort: Type.Optional(Port('monitoring port, always on 127.0.0.1 (default 8222)')),
          maxPayloadBytes: Type.Optional(Type.Integer({ minimum: 1024, maximum: 8 * 1048576 })),
          deliverMaxAgeMs: Type.Optional(Type.Integer({ minimum: 60_000, maximum: 3650 * DAY_MS })),
          natsUrlForAgents: Type.Optional(Type.String({ pattern: '^tls://', description: 'NATS URL agents use over the tunnel' })),
        },
        { additionalProperties: false },
      ),
    ),
    wireguard: Type.Optional(
      Type.Object(
        {
          enabled: Type.Optional(Type.Boolean()),
          interface: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]{1,15}$' })),
          listenPort: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
          endpoint: Type.Optional(HostPort),
          overlayCidr: Type.Optional(Type.String({ pattern: '^[0-9.]+/(1[6-9]|2[0-4])$', description: 'IPv4 overlay, /16 to /24' })),
        },
        { additionalProperties: false },
      ),
    ),
    agentFirewall: Type.Optional(
      Type.Object(
        {
          allowFromHubTcp: Type.Optional(
            Type.Array(Type.Integer({ minimum: 1, maximum: 65535 }), {
              uniqueItems: true,
              maxItems: 32,
              description:
                "TCP ports on every agent the hub may open through the tunnel (e.g. the agent's metrics port for a Prometheus beside the hub); default none. Part of the policy agents fetch from GET /v1/policy and apply without a restart",
            }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    databases: Type.Optional(
      Type.Object(
        {
          notifyOwnerOnHit: Type.Optional(
            Type.Array(Type.Enum([...QUERY_SERVICES]), {
              uniqueItems: true,
              description: "services whose hits on another country's record make the asking agent tell the record's owner (default: all)",
            }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    router: Type.Optional(
      Type.Object(
        {
          urgentDeadlineMs: Type.Optional(
            Type.Integer({
              minimum: 1_000,
              maximum: 12 * 3600_000,
              description: 'an urgent message not confirmed by every recipient this long after routing is logged and counted (default 600000 = 10 min)',
            }),
          ),
          maxInFlight: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024, description: 'submissions the router handles at once (default 32)' })),
          ratePerCountry: Type.Optional(
            Type.Object(
              {
                perSecond: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000, description: "submissions a second a country's messages (and, apart, its receipts) are held to (default 50)" })),
                burst: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'submissions a country may send at once after a quiet time (default 200)' })),
              },
              { additionalProperties: false },
            ),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    metrics: Type.Optional(
      Type.Object(
        {
          host: Type.Optional(Type.String({ minLength: 1, description: 'address the plain-HTTP /metrics, /healthz and /readyz listener binds (default 127.0.0.1); not authenticated: the bind address is the access control' })),
          port: Type.Optional(Port('port of /metrics (default 9464; 0 = any free port, written to run/endpoints.json)')),
        },
        { additionalProperties: false },
      ),
    ),
    probes: Type.Optional(
      Type.Object(
        {
          intervalMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 3600_000, description: 'how often every active country is probed (default 30000)' })),
          timeoutMs: Type.Optional(Type.Integer({ minimum: 10, maximum: 600_000, description: 'a probe not answered this long after it was sent is missed (default 5000; less than intervalMs)' })),
        },
        { additionalProperties: false },
      ),
    ),
    heartbeats: Type.Optional(
      Type.Object(
        {
          timeoutMs: Type.Optional(
            Type.Integer({ minimum: 100, maximum: 3600_000, description: 'a connected country with no heartbeat for this long is logged disconnected (default 30000, three agent heartbeats)' }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    certificates: Type.Optional(
      Type.Object(
        { countryLifetimeMs: Type.Optional(Type.Integer({ minimum: 300_000, maximum: 397 * DAY_MS })) },
        { additionalProperties: false },
      ),
    ),
    log: Type.Optional(
      Type.Object(
        { level: Type.Optional(Type.Union([Type.Literal('trace'), Type.Literal('debug'), Type.Literal('info'), Type.Literal('warn'), Type.Literal('error')])) },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type HubConfigInput = Static<typeof HubConfigSchema>;

/** The hub's configuration with every default filled in, frozen. */
export interface HubConfig {
  readonly api: { readonly host: string; readonly port: number; readonly publicUrl: string | undefined; readonly bodyLimitBytes: number };
  readonly broker: {
    readonly binary: string | undefined;
    readonly host: string;
    readonly port: number;
    readonly monitorPort: number;
    readonly maxPayloadBytes: number;
    readonly deliverMaxAgeMs: number;
    readonly natsUrlForAgents: string | undefined;
  };
  readonly wireguard: { readonly enabled: boolean; readonly interface: string; readonly listenPort: number; readonly endpoint: string | undefined; readonly overlayCidr: string };
  readonly agentFirewall: { readonly allowFromHubTcp: readonly number[] };
  readonly databases: { readonly notifyOwnerOnHit: readonly QueryService[] };
  readonly router: {
    readonly urgentDeadlineMs: number;
    readonly maxInFlight: number;
    readonly ratePerCountry: { readonly perSecond: number; readonly burst: number };
  };
  readonly metrics: { readonly host: string; readonly port: number };
  readonly probes: { readonly intervalMs: number; readonly timeoutMs: number };
  readonly heartbeats: { readonly timeoutMs: number };
  readonly certificates: { readonly countryLifetimeMs: number };
  readonly log: { readonly level: 'trace' | 'debug' | 'info' | 'warn' | 'error' };
}

function semanticProblems(c: HubConfigInput): string[] {
  const problems: string[] = [];
  const cidr = c.wireguard?.overlayCidr;
  if (cidr !== undefined) {
    const base = cidr.split('/')[0] ?? '';
    if (isIP(base) !== 4) problems.push(`hub.wireguard.overlayCidr: not an IPv4 network (got ${JSON.stringify(cidr)})`);
  }
  const probeIntervalMs = c.probes?.intervalMs ?? DEFAULT_PROBE_INTERVAL_MS;
  const probeTimeoutMs = c.probes?.timeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
  if (probeTimeoutMs >= probeIntervalMs) {
    // At most one probe per country in flight: the hub's memory stays bounded by the member count.
    problems.push(`hub.probes.timeoutMs: must be less than probes.intervalMs (${probeIntervalMs}) (got ${probeTimeoutMs})`);
  }
  if (c.wireguard?.enabled && !c.wireguard.endpoint) {
    problems.push('hub.wireguard.endpoint: required when wireguard is enabled (the host:port agents dial)');
  }
  return problems;
}

/** Validates a parsed hub.json and fills in defaults. Throws HUB_CONFIG_INVALID listing every problem. */
export function parseHubConfig(value: unknown, source = 'hub configuration'): HubConfig {
  const problems = Value.Check(HubConfigSchema, value) ? semanticProblems(value) : schemaProblems(HubConfigSchema, value, 'hub');
  if (problems.length) throw new ValidationError(HUB_CONFIG_INVALID, source, problems);
  const c = value as HubConfigInput;
  return Object.freeze({
    api: Object.freeze({ host: c.api?.host ?? '0.0.0.0', port: c.api?.port ?? 8443, publicUrl: c.api?.publicUrl, bodyLimitBytes: c.api?.bodyLimitBytes ?? 65536 }),
    broker: Object.freeze({
      binary: c.broker?.binary,
      // With WireGuard on, the broker listens on the hub's overlay address only: countries reach
      // it through their tunnel and nowhere else (ARCHITECTURE, Network).
      host: c.broker?.host ?? (c.wireguard?.enabled ? hubAddress(c.wireguard.overlayCidr ?? '10.77.0.0/16') : '0.0.0.0'),
      port: c.broker?.port ?? 4222,
      monitorPort: c.broker?.monitorPort ?? 8222,
      maxPayloadBytes: c.broker?.maxPayloadBytes ?? 1048576,
      deliverMaxAgeMs: c.broker?.deliverMaxAgeMs ?? 30 * DAY_MS,
      natsUrlForAgents: c.broker?.natsUrlForAgents,
    }),
    wireguard: Object.freeze({
      enabled: c.wireguard?.enabled ?? false,
      interface: c.wireguard?.interface ?? 'ncbhub0',
      listenPort: c.wireguard?.listenPort ?? 51820,
      endpoint: c.wireguard?.endpoint,
      overlayCidr: c.wireguard?.overlayCidr ?? '10.77.0.0/16',
    }),
    // 10 min: long enough for an agent's reconnect back-off and a tunnel blip, short enough that
    // a red notice stuck for a country is seen within the hour. At most 12 h, because the watch
    // forgets a message after 24 h (hub/router/urgent-watch.ts).
    // maxInFlight 32 and 50 a second with a burst of 200 per country: why, in hub/router/router.ts.
    // Every service by default: an NCB wants to know when a passport or a car it reported is
    // seen abroad, which is what I-24/7's hit notifications are for.
    // Nothing by default: an agent lets the hub open no port of its own unless the operator says so.
    agentFirewall: Object.freeze({ allowFromHubTcp: Object.freeze([...(c.agentFirewall?.allowFromHubTcp ?? [])].sort((a, b) => a - b)) }),
    databases: Object.freeze({ notifyOwnerOnHit: Object.freeze([...(c.databases?.notifyOwnerOnHit ?? QUERY_SERVICES)]) }),
    router: Object.freeze({
      urgentDeadlineMs: c.router?.urgentDeadlineMs ?? 10 * 60_000,
      maxInFlight: c.router?.maxInFlight ?? 32,
      ratePerCountry: Object.freeze({ perSecond: c.router?.ratePerCountry?.perSecond ?? 50, burst: c.router?.ratePerCountry?.burst ?? 200 }),
    }),
    // Loopback by default: /metrics is plain HTTP without authentication, so who can reach the
    // address is who can read it. 9464 is the port OpenTelemetry's Prometheus exporters use.
    metrics: Object.freeze({ host: c.metrics?.host ?? '127.0.0.1', port: c.metrics?.port ?? 9464 }),
    probes: Object.freeze({ intervalMs: c.probes?.intervalMs ?? DEFAULT_PROBE_INTERVAL_MS, timeoutMs: c.probes?.timeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS }),
    // Agents beat every 10 s (node-agent/heartbeat.ts): three missed beats mean the country is gone.
    heartbeats: Object.freeze({ timeoutMs: c.heartbeats?.timeoutMs ?? 30_000 }),
    certificates: Object.freeze({ countryLifetimeMs: c.certificates?.countryLifetimeMs ?? 7 * DAY_MS }),
    log: Object.freeze({ level: c.log?.level ?? 'info' }),
  });
}

/** Reads and validates hub.json; no file means all defaults. */
export async function loadHubConfig(path: string | undefined): Promise<HubConfig> {
  if (path === undefined) return parseHubConfig({});
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new HubError(HUB_CONFIG_UNREADABLE, `${path}: cannot read the hub configuration (${(err as Error).message})`, { cause: err });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ValidationError(HUB_CONFIG_INVALID, path, [`hub: not JSON (${(err as Error).message})`]);
  }
  return parseHubConfig(value, path);
}
