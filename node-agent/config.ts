import { readFile } from 'node:fs/promises';
import Type, { type Static } from 'typebox';
import { Value } from 'typebox/value';
import { B2bPolicySchema, MAX_B2B_DATABASES } from '../protocol/b2b.js';
import { ValidationError } from '../protocol/errors.js';
import { schemaProblems } from '../protocol/validate.js';
import { AGENT_CONFIG_INVALID, AGENT_CONFIG_UNREADABLE, AgentError } from './errors.js';

/** agent.json: every key optional, unknown keys refused, every problem reported at once. */
export const AgentConfigSchema = Type.Object(
  {
    localApi: Type.Optional(
      Type.Object(
        {
          host: Type.Optional(Type.String({ minLength: 1, description: 'bind address; keep 127.0.0.1 unless the NCB apps run elsewhere' })),
          port: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
          bodyLimitBytes: Type.Optional(Type.Integer({ minimum: 1024, maximum: 8 * 1048576 })),
          tokensFile: Type.Optional(Type.String({ minLength: 1, description: 'name:token lines, 0600 (default DIR/local-api.tokens)' })),
        },
        { additionalProperties: false },
      ),
    ),
    tunnel: Type.Optional(
      Type.Object(
        {
          interface: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]{1,15}$' })),
          implementation: Type.Optional(Type.Union([Type.Literal('auto'), Type.Literal('kernel'), Type.Literal('userspace')])),
        },
        { additionalProperties: false },
      ),
    ),
    firewall: Type.Optional(
      Type.Object(
        {
          enabled: Type.Optional(Type.Boolean()),
          policyRefreshMs: Type.Optional(
            Type.Integer({ minimum: 0, maximum: 86_400_000, description: "how often to fetch the hub's firewall policy besides each broker reconnection (default 300000; 0: only on reconnection)" }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
    /** The Prometheus listener (`/metrics`, `/healthz`, `/readyz`), plain HTTP, apart from the local API. */
    metrics: Type.Optional(
      Type.Object(
        {
          enabled: Type.Optional(Type.Boolean()),
          host: Type.Optional(Type.String({ minLength: 1, description: 'bind address; the overlay address lets the hub scrape over the tunnel' })),
          port: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, description: '0 picks a free port (written to run/endpoints.json)' })),
        },
        { additionalProperties: false },
      ),
    ),
    heartbeatIntervalMs: Type.Optional(Type.Integer({ minimum: 1000, maximum: 3_600_000 })),
    /** Renew when this fraction of the certificate's lifetime has passed (ARCHITECTURE: 2/3). */
    renewAtFraction: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 0.95 })),
    /**
     * B2B national databases this country publishes (issue 8): each with its sharing policy and,
     * for now, a JSON-lines file of records looked up by `keyField`.
     */
    b2b: Type.Optional(
      Type.Object(
        {
          databases: Type.Optional(
            Type.Array(
              Type.Object(
                {
                  policy: B2bPolicySchema,
                  source: Type.Object(
                    {
                      jsonl: Type.String({ minLength: 1, description: 'path of a JSON-lines file, one record (object) a line' }),
                      keyField: Type.String({ pattern: '^[A-Za-z][A-Za-z0-9_]{0,63}$', description: 'the field requests look up (normalized like the key)' }),
                    },
                    { additionalProperties: false },
                  ),
                },
                { additionalProperties: false },
              ),
              { maxItems: MAX_B2B_DATABASES },
            ),
          ),
          requestTimeoutMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 60_000, description: 'wait for an owner\'s answer (default 5000)' })),
        },
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
export type AgentConfigInput = Static<typeof AgentConfigSchema>;

export interface AgentConfig {
  readonly localApi: { readonly host: string; readonly port: number; readonly bodyLimitBytes: number; readonly tokensFile: string | undefined };
  readonly tunnel: { readonly interface: string; readonly implementation: 'auto' | 'kernel' | 'userspace' };
  readonly firewall: { readonly enabled: boolean; readonly policyRefreshMs: number };
  readonly metrics: { readonly enabled: boolean; readonly host: string; readonly port: number };
  readonly heartbeatIntervalMs: number;
  readonly renewAtFraction: number;
  readonly log: { readonly level: 'trace' | 'debug' | 'info' | 'warn' | 'error' };
  readonly b2b: { readonly databases: readonly B2bDatabaseConfig[]; readonly requestTimeoutMs: number };
}

/** One database of `b2b.databases` (see `node-agent/b2b/owner.ts`). */
export type B2bDatabaseConfig = NonNullable<NonNullable<AgentConfigInput['b2b']>['databases']>[number];

/** Validates a parsed agent.json and fills in defaults; AGENT_CONFIG_INVALID lists every problem. */
export function parseAgentConfig(value: unknown, source = 'agent configuration'): AgentConfig {
  if (!Value.Check(AgentConfigSchema, value)) throw new ValidationError(AGENT_CONFIG_INVALID, source, schemaProblems(AgentConfigSchema, value, 'agent'));
  const c = value;
  return Object.freeze({
    localApi: Object.freeze({ host: c.localApi?.host ?? '127.0.0.1', port: c.localApi?.port ?? 8787, bodyLimitBytes: c.localApi?.bodyLimitBytes ?? 1_200_000, tokensFile: c.localApi?.tokensFile }),
    tunnel: Object.freeze({ interface: c.tunnel?.interface ?? 'ncbnet0', implementation: c.tunnel?.implementation ?? 'auto' }),
    firewall: Object.freeze({ enabled: c.firewall?.enabled ?? true, policyRefreshMs: c.firewall?.policyRefreshMs ?? 300_000 }),
    metrics: Object.freeze({ enabled: c.metrics?.enabled ?? true, host: c.metrics?.host ?? '127.0.0.1', port: c.metrics?.port ?? 9465 }),
    heartbeatIntervalMs: c.heartbeatIntervalMs ?? 10_000,
    renewAtFraction: c.renewAtFraction ?? 2 / 3,
    log: Object.freeze({ level: c.log?.level ?? 'info' }),
    b2b: Object.freeze({ databases: Object.freeze(c.b2b?.databases ?? []), requestTimeoutMs: c.b2b?.requestTimeoutMs ?? 5_000 }),
  });
}

/** Reads and validates agent.json; no file means all defaults. */
export async function loadAgentConfig(path: string | undefined): Promise<AgentConfig> {
  if (path === undefined) return parseAgentConfig({});
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new AgentError(AGENT_CONFIG_UNREADABLE, `${path}: cannot read the agent configuration (${(err as Error).message})`, { cause: err });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ValidationError(AGENT_CONFIG_INVALID, path, [`agent: not JSON (${(err as Error).message})`]);
  }
  return parseAgentConfig(value, path);
}
