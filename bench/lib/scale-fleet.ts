/**
 * The simulated countries of the 195-country benchmark. Each is enrolled through the hub's real
 * enrollment API (`enroll()`: keys, CSR, hub pinning, bundle, as `ncbnet-agent enroll`) into a
 * state directory of its own, and runs the agent's real relay (`Relay.open` + `attach(nc)`, signing
 * and verifying as `node-agent/daemon.ts` wires them) over a real TLS connection to the hub's
 * nats-server with its own certificate, plus the agent's heartbeat timer. No tunnel, firewall,
 * local API, member directory (public notices need no encryption) or renewal timer.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { brokerConnectionOptions } from '../../node-agent/broker-connection.js';
import { enroll } from '../../node-agent/enroll/enroll.js';
import { HeartbeatTimer } from '../../node-agent/heartbeat.js';
import { Relay } from '../../node-agent/relay/relay.js';
import type { InboxItem } from '../../node-agent/relay/types.js';
import { EnvelopeSigner, makeEnvelopeVerifier } from '../../node-agent/signing.js';
import { agentPaths, readBundle } from '../../node-agent/state.js';
import { subjects } from '../../protocol/subjects.js';
import { VERSION } from '../../protocol/version.js';
import type { HubProcess } from './scale-hub.js';
import { quantile } from './scale-report.js';

/** Runs `fn` over `items`, at most `limit` at a time; resolves with the results in order. */
export async function pool<T, R>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < items.length; i = next++) out[i] = await fn(items[i] as T, i);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

export interface EnrollResult {
  /** Seconds from the first enroll call to the last answer. */
  totalS: number;
  /** Each enrollment's time, ms. */
  latencies: number[];
  /** Seconds the operator side (country add + token) took before, not part of the figure. */
  setupS: number;
}

/**
 * The operator adds every country and creates a token for each (not timed), then every NCB
 * enrolls with `enroll()`, `concurrency` at a time (timed: the figure).
 */
export async function enrollFleet(hub: HubProcess, codes: readonly string[], baseDir: string, concurrency: number, progress: (text: string) => void): Promise<EnrollResult> {
  const t0 = performance.now();
  const tokens = await pool(codes, concurrency, async (cc, i) => {
    await hub.admin('POST', '/countries', { code: cc, name: `Country ${cc}` }, 201);
    const token = ((await hub.admin('POST', '/tokens', { country: cc }, 201)).json as { token: string }).token;
    if ((i + 1) % 50 === 0) progress(`  operator: ${i + 1}/${codes.length} countries added, tokens made`);
    return token;
  });
  const setupS = (performance.now() - t0) / 1000;
  progress(`  operator side done in ${setupS.toFixed(1)} s; enrolling ${codes.length} countries, ${concurrency} at a time…`);
  const latencies: number[] = [];
  const start = performance.now();
  let done = 0;
  await pool(codes, concurrency, async (cc, i) => {
    const dir = join(baseDir, cc);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const t = performance.now();
    await enroll({ hubUrl: hub.endpoints.apiUrl, token: tokens[i] as string, stateDir: dir, country: cc });
    latencies.push(performance.now() - t);
    if (++done % 50 === 0) progress(`  enrolled ${done}/${codes.length} (${((performance.now() - start) / 1000).toFixed(1)} s)`);
  });
  const totalS = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  progress(`  enrolled ${codes.length} in ${totalS.toFixed(1)} s (each: p50 ${quantile(latencies, 0.5).toFixed(0)} ms, p99 ${quantile(latencies, 0.99).toFixed(0)} ms)`);
  return { totalS, latencies, setupS };
}

export interface Agent {
  cc: string;
  stateDir: string;
  relay: Relay;
  nc: NatsConnection;
  heartbeat: HeartbeatTimer;
  /** Told of every status event of the connection (`disconnect`, `reconnect`, `close`, …) with performance.now(). */
  onStatus: ((type: string, at: number) => void) | undefined;
}

export interface Fleet {
  agents: Map<string, Agent>;
  /** Told of every inbox arrival in any agent, with performance.now() at the arrival. */
  onArrival: ((cc: string, item: InboxItem, at: number) => void) | undefined;
  stop(): Promise<void>;
}

/** Opens every agent's relay and connects it, `concurrency` handshakes at a time. */
export async function connectFleet(hub: HubProcess, codes: readonly string[], baseDir: string, log: Logger, concurrency: number, heartbeatMs: number): Promise<Fleet> {
  const fleet: Fleet = { agents: new Map(), onArrival: undefined, stop: () => stopFleet(fleet) };
  try {
    await pool(codes, concurrency, async (cc) => {
      const stateDir = join(baseDir, cc);
      const paths = agentPaths(stateDir);
      const bundle = await readBundle(stateDir);
      const signer = new EnvelopeSigner(paths);
      await signer.reload();
      const relay = await Relay.open({ country: cc, stateDir, log, sign: (e) => signer.sign(e), verify: makeEnvelopeVerifier(bundle.caCertificate, bundle.chain) });
      // As the agent daemon connects, but to the hub's loopback URL (no tunnel here).
      const nc = await connect(await brokerConnectionOptions(stateDir, bundle, hub.endpoints.natsUrl));
      await relay.attach(nc);
      const heartbeat = new HeartbeatTimer({
        intervalMs: heartbeatMs,
        collect: () =>
          Promise.resolve({
            v: 1 as const,
            country: cc,
            version: VERSION,
            at: new Date().toISOString(),
            tunnel: { up: false, lastHandshake: null, rxBytes: 0, txBytes: 0 },
            certSerial: bundle.serial,
            certNotAfter: bundle.notAfter,
            policyHash: null,
            outboxDepth: relay.outboxDepth(),
          }),
        publish: (beat) => {
          if (nc.isClosed() || !relay.isConnected()) throw new Error('not connected to the broker');
          nc.publish(subjects.heartbeat(cc), JSON.stringify(beat));
        },
        log,
      });
      const agent: Agent = { cc, stateDir, relay, nc, heartbeat, onStatus: undefined };
      fleet.agents.set(cc, agent);
      relay.onInbox((item) => fleet.onArrival?.(cc, item, performance.now()));
      void (async () => {
        for await (const s of nc.status()) agent.onStatus?.(s.type, performance.now());
      })().catch(() => undefined);
      heartbeat.start();
    });
  } catch (err) {
    await stopFleet(fleet);
    throw err;
  }
  return fleet;
}

async function stopFleet(fleet: Fleet): Promise<void> {
  const bounded = <T>(p: Promise<T>, ms: number) => Promise.race([p.catch(() => undefined), delay(ms, undefined, { ref: false })]);
  await Promise.all(
    [...fleet.agents.values()].map(async (a) => {
      a.heartbeat.stop();
      await bounded(a.relay.stop(), 5_000);
      await bounded(a.nc.close(), 3_000);
    }),
  );
  fleet.agents.clear();
}
