/**
 * A whole ncbnet network on loopback, nothing mocked: the real hub daemon (`ncbnet hub run` as its
 * own process, with its nats-server, per-country permissions, router and database services) and
 * one real `ncbnet-agent` daemon per country, each enrolled with a token from the admin API the
 * way an operator and an NCB do it. No WireGuard (see netns-network.ts for that). Shared by the
 * e2e tests that drive agents through their local APIs: messages, query, b2b, roles.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { initHubState } from '../../hub/state-init.js';
import type { Endpoints } from '../../hub/runtime.js';
import { enroll } from '../../node-agent/enroll/enroll.js';
import { readToken } from '../../node-agent/local-api/tokens.js';
import type { AgentEndpoints } from '../../node-agent/runtime.js';
import { startAgentProcess, startHubProcess, type DaemonOwner, type DaemonProcess } from './daemon-process.js';
import { httpsCall } from './https.js';
import { closedPort } from './ports.js';
import { tempDir } from './tmpdir.js';
import { waitFor } from './wait.js';

export interface LoopbackNetworkOptions<C extends string> {
  /** Names the temp directories (`ncbnet-<prefix>-hub-…`, `ncbnet-<prefix>-fr-…`). */
  prefix: string;
  countries: readonly C[];
  /**
   * Keys merged into a country's agent.json after the defaults (local API on a free loopback port,
   * metrics off). Called after enrollment, so it may write files into the agent's state dir.
   */
  agentConfig?: (cc: C, stateDir: string) => Record<string, unknown> | Promise<Record<string, unknown>>;
  /** Wait until every agent's `/readyz` answers 200 (broker connected). Default true. */
  waitReady?: boolean;
}

export interface LoopbackNetwork<C extends string> {
  hubState: string;
  hub: DaemonProcess<Endpoints>;
  apiUrl: string;
  rootPem: string;
  /** The operator identity `hub init` made (TLS options for `httpsCall`). */
  operator: { ca: string; cert: string; key: string };
  /** Each country's agent state directory. */
  states: Record<C, string>;
  agents: Record<C, DaemonProcess<AgentEndpoints>>;
  /** Each agent's operator token (ncb-admin) for its local API. */
  tokens: Record<C, string>;
  /** One admin API call as the operator: `/v1/admin<path>`. */
  admin: (method: 'GET' | 'POST', path: string, body?: unknown) => Promise<{ status: number; json: unknown; text: string }>;
}

/** Starts the network; everything is stopped and removed at `t`'s teardown. */
export async function startLoopbackNetwork<C extends string>(t: DaemonOwner, opts: LoopbackNetworkOptions<C>): Promise<LoopbackNetwork<C>> {
  const hubState = await tempDir(t, `ncbnet-${opts.prefix}-hub-`);
  await initHubState({ state: hubState, hubName: 'hub-1', sans: ['127.0.0.1', 'localhost'], operator: 'admin' });
  const [apiPort, natsPort] = [await closedPort(), await closedPort()];
  const hub = await startHubProcess(t, hubState, {
    api: { host: '127.0.0.1', port: apiPort, publicUrl: `https://127.0.0.1:${apiPort}` },
    broker: { host: '127.0.0.1', port: natsPort, monitorPort: 0, natsUrlForAgents: `tls://127.0.0.1:${natsPort}` },
    metrics: { port: 0 },
  });
  const apiUrl = hub.endpoints.apiUrl;
  const rootPem = await readFile(join(hubState, 'pki', 'root.crt'), 'utf8');
  const operator = { ca: rootPem, cert: await readFile(join(hubState, 'operator', 'operator.crt'), 'utf8'), key: await readFile(join(hubState, 'operator', 'operator.key'), 'utf8') };
  const admin = async (method: 'GET' | 'POST', path: string, body?: unknown) => {
    const answer = await httpsCall(`${apiUrl}/v1/admin${path}`, { ...operator, method, ...(body === undefined ? {} : { body }) });
    return { status: answer.status, json: answer.json, text: answer.text };
  };

  const states = {} as Record<C, string>;
  for (const cc of opts.countries) {
    // Thrown, not asserted: an assertion at a test file's top level ends tap's root test early.
    const added = await admin('POST', '/countries', { code: cc, name: `Country ${cc}` });
    if (added.status !== 201) throw new Error(`country add ${cc}: ${added.status} ${added.text}`);
    const token = ((await admin('POST', '/tokens', { country: cc })).json as { token: string }).token;
    states[cc] = await tempDir(t, `ncbnet-${opts.prefix}-${cc.toLowerCase()}-`);
    await enroll({ hubUrl: apiUrl, token, stateDir: states[cc], country: cc });
  }
  const agents = {} as Record<C, DaemonProcess<AgentEndpoints>>;
  const tokens = {} as Record<C, string>;
  await Promise.all(
    opts.countries.map(async (cc) => {
      const extra = (await opts.agentConfig?.(cc, states[cc])) ?? {};
      agents[cc] = await startAgentProcess(t, states[cc], { localApi: { host: '127.0.0.1', port: 0 }, metrics: { enabled: false }, ...extra });
      tokens[cc] = await readToken(join(states[cc], 'local-api.tokens'));
    }),
  );
  if (opts.waitReady ?? true) {
    for (const cc of opts.countries) {
      await waitFor(`${cc} connected`, async () => (await fetch(`${agents[cc].endpoints.localApiUrl}/readyz`)).status === 200, 60_000, 200);
    }
  }
  return { hubState, hub, apiUrl, rootPem, operator, states, agents, tokens, admin };
}
