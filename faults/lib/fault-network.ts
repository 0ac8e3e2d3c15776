/**
 * The target of fault injection: a whole network in namespaces ({@link startNetnsNetwork}: hub
 * daemon with WireGuard, nftables and nats-server; FR, DE, IT and ES each running the real
 * `ncbnet-agent`, enrolled the documented way), plus the levers a fault needs: kill -9 and restart
 * (as systemd would: the same command on the same state), links down and up, a full disk (ES's
 * state is a small tmpfs), and the operator's admin API (reached from the root namespace over the
 * hub's link; its certificate names that address).
 *
 * Every daemon restarted here belongs to the suite's owner, so it is stopped at its teardown
 * whichever scenario started it.
 */
import { X509Certificate } from 'node:crypto';
import { mkdir, open, readFile, readdir, rm, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Endpoints } from '../../hub/runtime.js';
import { identityPaths } from '../../hub/state-init.js';
import type { AgentEndpoints } from '../../node-agent/runtime.js';
import { normalizeSerial } from '../../pki/serial.js';
import { startHubProcess, type DaemonOwner, type DaemonProcess } from '../../test/helpers/daemon-process.js';
import { httpsCall, type HttpsAnswer } from '../../test/helpers/https.js';
import { enrollCountry, type TlsIdentity } from '../../test/helpers/identities.js';
import { startNetnsNetwork, type NetnsNetwork } from '../../test/helpers/netns-network.js';
import { waitFor } from '../../test/helpers/wait.js';

/** The countries that send and receive; ES's state directory is a tmpfs (disk-full scenario). */
export const FAULT_COUNTRIES = ['FR', 'DE', 'IT', 'ES'] as const;
export type FaultCountry = (typeof FAULT_COUNTRIES)[number];
/** The country whose disk the storage scenario fills. */
export const SMALL_DISK_COUNTRY: FaultCountry = 'ES';
const SMALL_DISK_MIB = 48;

export interface FaultNetwork {
  net: NetnsNetwork;
  /** Local API base URL of `cc`'s agent (stable across restarts: same link address and port). */
  apiUrl(cc: string): string;
  /** `cc`'s local API bearer token. */
  token(cc: string): string;
  /** `/v1/admin…` as the operator `hub init` made, over the hub's link. */
  admin(method: string, path: string, body?: unknown): Promise<HttpsAnswer>;
  /** SIGKILL to `cc`'s agent; resolves once it is gone. */
  killAgent(cc: string): Promise<void>;
  /**
   * Starts `cc`'s agent again on its state (as systemd would) and waits until it is ready (only
   * until it wrote its endpoints with `waitReady: false`).
   */
  startAgent(cc: string, opts?: { waitReady?: boolean }): Promise<DaemonProcess<AgentEndpoints>>;
  /** SIGKILL to the hub daemon (its nats-server and wireguard-go stay behind, as after a crash). */
  killHub(): Promise<void>;
  /** Starts the hub daemon again on its state and waits until it wrote its endpoints. */
  startHub(): Promise<DaemonProcess<Endpoints>>;
  /** The pid of the nats-server the hub supervises (from its pid file). */
  natsServerPid(): Promise<number | undefined>;
  /** Sets `cc`'s underlay link down or up (its tunnel to the hub goes with it). */
  setCountryLink(cc: string, up: boolean): Promise<void>;
  /** Sets the hub's bridge down or up: the hub unreachable for every country. */
  setHubLink(up: boolean): Promise<void>;
  /** Fills the small tmpfs of {@link SMALL_DISK_COUNTRY} to the last byte; returns the bytes written. */
  fillDisk(): Promise<number>;
  /** Removes the filler: space is back. */
  freeDisk(): Promise<void>;
  /** `cc`'s relay state directory (outbox/, inbox.jsonl, status.jsonl). */
  relayDir(cc: string): string;
  /** Everything `cc`'s current agent process logged. */
  agentLog(cc: string): string;
  /** Everything every agent process of `cc` logged since the network started (killed ones too). */
  agentLogs(cc: string): string;
  /** Writes every daemon's log (killed processes too) under `dir`; returns the file names. */
  dumpLogs(dir: string): Promise<string[]>;
}

const FILLER = 'filler.fault';

/** Finds `name` under `dir` (depth-first, bounded depth); undefined when absent. */
async function findFile(dir: string, name: string, depth = 4): Promise<string | undefined> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) if (e.isFile() && e.name === name) return join(dir, e.name);
  if (depth === 0) return undefined;
  for (const e of entries) {
    if (!e.isDirectory()) continue;
    const found = await findFile(join(dir, e.name), name, depth - 1);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** Starts the network (about half a minute) and an idle enrolled country `PT` without an agent (for suspend/resume). */
export async function startFaultNetwork(owner: DaemonOwner, progress: (text: string) => void = () => undefined): Promise<FaultNetwork> {
  const t0 = Date.now();
  const net = await startNetnsNetwork(owner, {
    countries: FAULT_COUNTRIES,
    linkHub: true,
    tmpfsStateMiB: { [SMALL_DISK_COUNTRY]: SMALL_DISK_MIB },
    // Debug lines say when a delivery was a redelivery the inbox dropped (the kill scenarios count them).
    agentConfig: () => ({ log: { level: 'debug' } }),
    hubConfig: { log: { level: 'info' } },
  });
  progress(`fault network up in ${Date.now() - t0} ms: hub and ${FAULT_COUNTRIES.join(', ')} in namespaces (lab ${net.lab.id})`);
  const paths = identityPaths(net.hubState);
  const [cert, key, rootPem] = await Promise.all([readFile(paths.operatorCert, 'utf8'), readFile(paths.operatorKey, 'utf8'), readFile(paths.operatorCa, 'utf8')]);
  const operator: TlsIdentity = { cert, key, serial: normalizeSerial(new X509Certificate(cert).serialNumber) };
  const apiUrl = `https://${net.hubLinkAddress as string}:8443`;
  const admin = (method: string, path: string, body?: unknown): Promise<HttpsAnswer> =>
    httpsCall(`${apiUrl}/v1/admin${path}`, { method, ca: rootPem, cert: operator.cert, key: operator.key, ...(body === undefined ? {} : { body }) });

  const fillerPath = join(net.states[SMALL_DISK_COUNTRY] as string, FILLER);
  // Every daemon process ever started, for the logs of killed ones.
  const processes: { label: string; proc: DaemonProcess<unknown> }[] = [{ label: 'hub-0', proc: net.hub }];
  for (const cc of FAULT_COUNTRIES) processes.push({ label: `${cc}-0`, proc: net.agents[cc] as DaemonProcess<unknown> });
  const remember = (name: string, proc: DaemonProcess<unknown>): void => {
    processes.push({ label: `${name}-${processes.filter((p) => p.label.startsWith(`${name}-`)).length}`, proc });
  };
  const fault: FaultNetwork = {
    net,
    apiUrl: (cc) => `http://${net.linkAddress[cc] as string}:8787`,
    token: (cc) => net.tokens[cc] as string,
    admin,
    killAgent: async (cc) => {
      const agent = net.agents[cc];
      if (agent === undefined) throw new Error(`no agent ${cc}`);
      agent.child.kill('SIGKILL');
      await agent.exited;
    },
    startAgent: async (cc, opts = {}) => {
      const agent = await net.startAgent(owner, cc);
      remember(cc, agent);
      if (opts.waitReady === false) return agent;
      const url = fault.apiUrl(cc);
      await waitFor(`${cc} ready after its restart`, async () => (await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2_000) }).catch(() => undefined))?.status === 200, 60_000, 100);
      return agent;
    },
    killHub: async () => {
      net.hub.child.kill('SIGKILL');
      await net.hub.exited;
    },
    startHub: async () => {
      net.hub = await startHubProcess(owner, net.hubState, net.hubConfig, { netns: net.hubNs, timeoutMs: 60_000 });
      remember('hub', net.hub);
      return net.hub;
    },
    natsServerPid: async () => {
      const file = await findFile(net.hubState, 'nats-server.pid');
      if (file === undefined) return undefined;
      const pid = Number((await readFile(file, 'utf8').catch(() => '')).trim());
      return Number.isInteger(pid) && pid > 1 ? pid : undefined;
    },
    setCountryLink: async (cc, up) => {
      await net.lab.exec(net.nsOf[cc] as string, ['ip', 'link', 'set', net.underlay[cc] as string, up ? 'up' : 'down']);
    },
    setHubLink: async (up) => {
      await net.lab.exec(net.hubNs, ['ip', 'link', 'set', net.bridge, up ? 'up' : 'down']);
    },
    fillDisk: async () => {
      // Big chunks first, then small ones, until the file system says it is full (bounded by its size).
      let written = 0;
      const fh = await open(fillerPath, 'a');
      try {
        for (const size of [1 << 20, 1 << 12, 1 << 9]) {
          const chunk = Buffer.alloc(size);
          for (let i = 0; i < ((SMALL_DISK_MIB << 20) / size) + 1; i++) {
            try {
              await fh.write(chunk);
              written += size;
            } catch (err) {
              if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break;
              throw err;
            }
          }
        }
      } finally {
        await fh.close().catch(() => undefined);
      }
      return written;
    },
    freeDisk: async () => {
      await unlink(fillerPath).catch(() => undefined);
    },
    relayDir: (cc) => join(net.states[cc] as string, 'relay'),
    agentLog: (cc) => net.agents[cc]?.output() ?? '',
    agentLogs: (cc) => processes.filter((p) => p.label.startsWith(`${cc}-`)).map((p) => p.proc.output()).join(''),
    dumpLogs: async (dir) => {
      await mkdir(dir, { recursive: true });
      const names: string[] = [];
      for (const p of processes) {
        const name = `${p.label}.log`;
        await writeFile(join(dir, name), p.proc.output());
        names.push(name);
      }
      return names;
    },
  };
  owner.teardown(() => rm(fillerPath, { force: true }));

  // An idle country: enrolled, on the broker's user list, no agent (the reload storm suspends and resumes it).
  await enrollCountry({ apiUrl, rootPem, admin }, IDLE_COUNTRY);
  return fault;
}

/** Enrolled, never sending: the reload storm suspends and resumes it. */
export const IDLE_COUNTRY = 'PT';
