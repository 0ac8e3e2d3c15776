/**
 * A whole ncbnet network in network namespaces this test creates: a hub namespace (hub daemon,
 * WireGuard, nftables, nats-server) with a bridge as the "internet", and one namespace per country
 * running `ncbnet-agent`, each enrolled the documented way (operator CLI on the hub, agent CLI at the
 * NCB). The test process reaches each daemon over a veth link from the root namespace (only the two
 * link addresses are on it), never through anything else. Shared by the e2e tests that need real
 * tunnels (test/e2e/agent.test.ts, test/e2e/prometheus.test.ts) and the fault suite
 * (faults/lib/fault-network.ts: links down and up by `underlay`/`bridge`, a tmpfs state disk).
 */
import { mkdtemp, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../system/exec.js';
import type { Endpoints } from '../../hub/runtime.js';
import { initHubState } from '../../hub/state-init.js';
import { readToken } from '../../node-agent/local-api/tokens.js';
import type { AgentEndpoints } from '../../node-agent/runtime.js';
import { runCliIn, type CliResult } from './cli.js';
import { startAgentProcess, startHubProcess, type DaemonOwner, type DaemonProcess } from './daemon-process.js';
import { createNetnsLab, type NetnsLab } from './netns.js';
import { tempDir } from './tmpdir.js';
import { waitFor } from './wait.js';

/** The hub's address on the underlay bridge, as agents dial it. */
export const HUB_UNDERLAY = '10.200.0.1';

export interface NetnsNetworkOptions {
  countries: readonly string[];
  /** Extra keys merged into the hub's config (e.g. `metrics`). */
  hubConfig?: Record<string, unknown>;
  /** Extra keys merged into each agent's config. */
  agentConfig?: (cc: string, linkAddress: string) => Record<string, unknown>;
  /** Also link the hub namespace to the root namespace (the test then reaches the hub at `hubLinkAddress`). */
  linkHub?: boolean;
  /** Reports each enrollment step as an assertion (the agent e2e does; others only need the network). */
  check?: (ok: boolean, message: string) => void;
  /**
   * Countries whose state directory is a tmpfs of this many MiB (mounted in the root namespace
   * before enrolling, so the agent inside its namespace sees it), for filling its disk on purpose.
   */
  tmpfsStateMiB?: Record<string, number>;
}

export interface NetnsNetwork {
  lab: NetnsLab;
  hubNs: string;
  hubState: string;
  hubConfig: Record<string, unknown>;
  /** The hub daemon; replace it after a restart. */
  hub: DaemonProcess<Endpoints>;
  /** Where the test reaches the hub namespace from the root one (with `linkHub`). */
  hubLinkAddress: string | undefined;
  nsOf: Record<string, string>;
  /** Where the test reaches each country's namespace from the root one. */
  linkAddress: Record<string, string>;
  /** Each country's end of its underlay link to the hub's bridge (in its namespace): down = that country cut off. */
  underlay: Record<string, string>;
  /** The hub's bridge (in the hub namespace): down = the hub unreachable for every country. */
  bridge: string;
  states: Record<string, string>;
  agents: Record<string, DaemonProcess<AgentEndpoints>>;
  tokens: Record<string, string>;
  agentConfig: (cc: string) => Record<string, unknown>;
  hubCli: (...args: string[]) => Promise<CliResult>;
  /** Starts (or restarts) `cc`'s agent, owned by `owner` (stopped at its teardown). */
  startAgent: (owner: DaemonOwner, cc: string) => Promise<DaemonProcess<AgentEndpoints>>;
}

/** See the module comment. Everything is removed at `t`'s teardown. */
export async function startNetnsNetwork(t: DaemonOwner, opts: NetnsNetworkOptions): Promise<NetnsNetwork> {
  const lab = createNetnsLab(t);
  const hubNs = await lab.ns('hub');
  const octet = parseInt(lab.id.slice(0, 2), 16);
  const bridge = lab.ifname('br');
  await lab.exec(hubNs, ['ip', 'link', 'add', bridge, 'type', 'bridge']);
  await lab.exec(hubNs, ['ip', 'address', 'add', `${HUB_UNDERLAY}/24`, 'dev', bridge]);
  await lab.exec(hubNs, ['ip', 'link', 'set', bridge, 'up']);
  const nsOf: Record<string, string> = {};
  const linkAddress: Record<string, string> = {};
  const underlay: Record<string, string> = {};
  for (const [i, cc] of opts.countries.entries()) {
    const cns = await lab.ns(cc.toLowerCase());
    nsOf[cc] = cns;
    const { a, b } = await lab.veth({ ns: hubNs, address: `10.200.9.${i * 4 + 1}/30` }, { ns: cns, address: `10.200.0.${10 + i}/24` });
    underlay[cc] = b;
    await lab.exec(hubNs, ['ip', 'address', 'flush', 'dev', a]);
    await lab.exec(hubNs, ['ip', 'link', 'set', a, 'master', bridge]);
    linkAddress[cc] = `10.202.${octet}.${i * 4 + 2}`;
    await lab.rootLink(cns, `10.202.${octet}.${i * 4 + 1}/30`, `${linkAddress[cc]}/30`);
  }
  let hubLinkAddress: string | undefined;
  if (opts.linkHub) {
    hubLinkAddress = `10.203.${octet}.2`;
    await lab.rootLink(hubNs, `10.203.${octet}.1/30`, `${hubLinkAddress}/30`);
  }

  const hubState = await tempDir(t, 'ncbnet-netns-hub-');
  // With `linkHub` the test calls the hub's API at the link address: its certificate names it too.
  const sans = [HUB_UNDERLAY, '10.77.0.1', '127.0.0.1', 'localhost', ...(hubLinkAddress === undefined ? [] : [hubLinkAddress])];
  await initHubState({ state: hubState, hubName: 'hub-1', sans, operator: 'admin' });
  const hubConfig = {
    api: { host: '0.0.0.0', port: 8443 },
    broker: { port: 4222, monitorPort: 8222 },
    wireguard: { enabled: true, interface: lab.ifname('hub'), listenPort: 51820, endpoint: `${HUB_UNDERLAY}:51820` },
    ...opts.hubConfig,
  };
  const hub = await startHubProcess(t, hubState, hubConfig, { netns: hubNs });
  const hubCli = (...args: string[]): Promise<CliResult> => runCliIn(hubNs, 'ncbnet', [...args, '--state', hubState, '--json']);

  const states: Record<string, string> = {};
  for (const cc of opts.countries) {
    const added = await hubCli('country', 'add', cc, '--name', cc);
    opts.check?.(added.code === 0, `country add ${cc}`);
    if (added.code !== 0) throw new Error(`country add ${cc} failed (${added.code}): ${added.stderr}`);
    const tok = await hubCli('token', 'create', cc, '--ttl', '10m');
    if (tok.code !== 0) throw new Error(`token create ${cc} failed (${tok.code}): ${tok.stderr}`);
    const token = (JSON.parse(tok.stdout) as { token: string }).token;
    const tmpfsMiB = opts.tmpfsStateMiB?.[cc];
    const state = tmpfsMiB === undefined ? await tempDir(t, `ncbnet-netns-${cc.toLowerCase()}-`) : await tmpfsDir(t, `ncbnet-netns-${cc.toLowerCase()}-tmpfs-`, tmpfsMiB);
    states[cc] = state;
    const r = await runCliIn(nsOf[cc], 'ncbnet-agent', ['enroll', '--hub', `https://${HUB_UNDERLAY}:8443`, '--token', token, '--state', state, '--country', cc, '--json']);
    opts.check?.(r.code === 0, `${cc} enrolled by CLI`);
    if (r.code !== 0) throw new Error(`${cc} enroll failed (${r.code}): ${r.stderr}`);
  }

  const agentConfig = (cc: string): Record<string, unknown> => ({
    tunnel: { interface: lab.ifname(`w${cc.toLowerCase()}`) },
    localApi: { host: linkAddress[cc], port: 8787 },
    heartbeatIntervalMs: 1000,
    ...opts.agentConfig?.(cc, linkAddress[cc] as string),
  });
  const network: NetnsNetwork = {
    lab,
    hubNs,
    hubState,
    hubConfig,
    hub,
    hubLinkAddress,
    nsOf,
    linkAddress,
    underlay,
    bridge,
    states,
    agents: {},
    tokens: {},
    agentConfig,
    hubCli,
    startAgent: async (owner, cc) => {
      const agent = await startAgentProcess(owner, states[cc] as string, agentConfig(cc), { netns: nsOf[cc] });
      network.agents[cc] = agent;
      return agent;
    },
  };
  for (const cc of opts.countries) {
    await network.startAgent(t, cc);
    network.tokens[cc] = await readToken(join(states[cc] as string, 'local-api.tokens'));
  }
  for (const cc of opts.countries) {
    const url = network.agents[cc]?.endpoints.localApiUrl as string;
    await waitFor(`${cc} ready`, async () => (await fetch(`${url}/readyz`).catch(() => undefined))?.status === 200, 60_000, 250);
  }
  return network;
}

/**
 * A fresh directory with a tmpfs of `mib` MiB mounted on it (mode 0700), unmounted (lazily, should
 * a process still hold it) and removed when `t` ends. Not under {@link tempDir}: its recursive
 * removal would fail on the mount point.
 */
async function tmpfsDir(t: DaemonOwner, prefix: string, mib: number): Promise<string> {
  if (!Number.isInteger(mib) || mib < 1) throw new Error(`tmpfsStateMiB: a whole number of MiB (got ${mib})`);
  const dir = await mkdtemp(join(tmpdir(), prefix));
  await run('mount', ['-t', 'tmpfs', '-o', `size=${mib}m,mode=0700`, 'tmpfs', dir]);
  t.teardown(async () => {
    await run('umount', ['-l', dir]).catch(() => undefined);
    await rmdir(dir).catch(() => undefined);
  });
  return dir;
}
