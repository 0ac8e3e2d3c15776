/**
 * Shared pieces of the relay benchmark (`bench/relay.ts`): settings from the environment, a
 * teardown owner for the daemon helpers, RSS sampling from /proc, and small statistics.
 */
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DaemonOwner } from '../../test/helpers/daemon-process.js';
import { quantile } from './report.js';

export const log = (text: string): void => void process.stderr.write(`${text}\n`);

/** A positive integer from the environment, or `fallback`. */
export function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) throw new Error(`${name}: a non-negative integer (got ${JSON.stringify(raw)})`);
  return value;
}

/** Which parts run (`RELAY_PARTS=latency,throughput,memory,tunnel`; default all). */
export type Part = 'latency' | 'throughput' | 'memory' | 'tunnel';

export interface Settings {
  quick: boolean;
  parts: ReadonlySet<Part>;
  /** Rounds per figure, ours and baseline alternating. */
  rounds: number;
  warmup: number;
  /** Latency samples per round. */
  latencyN: number;
  /** After each latency sample, wait until the sender holds the recipient's `read` receipt (quiet system). */
  latencySettle: boolean;
  /** Messages per throughput round. */
  throughputM: number;
  /** Concurrent HTTP clients (ours) / publishers (baseline). */
  concurrency: number;
  bodyBytes: number;
  idleMs: number;
  tunnelN: number;
  /** Directory for the daemons' `--cpu-prof` output; undefined = no profiling. */
  cpuProfDir: string | undefined;
  /** `dist`: daemons compiled and run with plain node (as deployed); `tsx`: from source (test helper). */
  runtime: 'dist' | 'tsx';
  /** Daemons at debug level and a latency timeline from their logs. */
  stages: boolean;
  /** Extra node flags for the hub and agent processes (`RELAY_NODE_FLAGS`, dist runtime only). */
  nodeFlags: string[];
}

function runtime(): 'dist' | 'tsx' {
  const raw = process.env['RELAY_RUNTIME'] ?? 'dist';
  if (raw !== 'dist' && raw !== 'tsx') throw new Error(`RELAY_RUNTIME: dist or tsx (got ${JSON.stringify(raw)})`);
  return raw;
}

export function settings(): Settings {
  const quick = process.env['BENCH_QUICK'] === '1';
  const partsRaw = process.env['RELAY_PARTS'];
  const all: Part[] = ['latency', 'throughput', 'memory', 'tunnel'];
  const parts = new Set<Part>();
  for (const p of (partsRaw ?? all.join(',')).split(',').map((s) => s.trim()).filter(Boolean)) {
    if (!all.includes(p as Part)) throw new Error(`RELAY_PARTS: one of ${all.join(', ')} (got ${JSON.stringify(p)})`);
    parts.add(p as Part);
  }
  const cpuProf = process.env['RELAY_CPU_PROF'];
  return {
    quick,
    parts,
    rounds: Math.max(1, envInt('RELAY_ROUNDS', quick ? 1 : 3)),
    warmup: envInt('RELAY_WARMUP', quick ? 20 : 50),
    latencyN: Math.max(1, envInt('RELAY_N', quick ? 100 : 500)),
    latencySettle: process.env['RELAY_LATENCY_SETTLE'] !== '0',
    throughputM: Math.max(1, envInt('RELAY_M', quick ? 300 : 2000)),
    concurrency: Math.max(1, envInt('RELAY_K', 32)),
    bodyBytes: Math.max(1, envInt('RELAY_BODY_BYTES', 1024)),
    idleMs: envInt('RELAY_IDLE_MS', quick ? 5_000 : 10_000),
    tunnelN: Math.max(1, envInt('RELAY_TUNNEL_N', quick ? 200 : 1000)),
    cpuProfDir: cpuProf === undefined || cpuProf === '' ? undefined : cpuProf,
    runtime: runtime(),
    stages: process.env['RELAY_STAGES'] === '1',
    nodeFlags: (process.env['RELAY_NODE_FLAGS'] ?? '').split(/\s+/).filter((f) => f !== ''),
  };
}

/**
 * The {@link DaemonOwner} the daemon helpers want, outside tap: teardowns run in reverse order at
 * {@link Owner.close} (also on SIGINT/SIGTERM), a failure prints the daemons' logs.
 */
export class Owner implements DaemonOwner {
  readonly #fns: (() => unknown)[] = [];
  #isPassing = true;
  #closing: Promise<void> | undefined;

  teardown(fn: () => unknown): void {
    this.#fns.push(fn);
  }

  comment(...args: unknown[]): void {
    log(args.map(String).join(' '));
  }

  passing(): boolean {
    return this.#isPassing;
  }

  fail(): void {
    this.#isPassing = false;
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      for (const fn of this.#fns.splice(0).reverse()) {
        try {
          await fn();
        } catch (err) {
          log(`cleanup: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
    })();
    return this.#closing;
  }
}

/** VmRSS of `pid` in MiB, or undefined when the process is gone. */
export async function rssMiB(pid: number | undefined): Promise<number | undefined> {
  if (pid === undefined) return undefined;
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const kb = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1];
    return kb === undefined ? undefined : Number(kb) / 1024;
  } catch {
    return undefined;
  }
}

/**
 * CPU time (user + system) a process has used so far, in ms, from /proc/<pid>/stat; undefined when
 * it cannot be read. CPU per message is steadier than wall time on a shared machine: other
 * processes slow the clock, not the work.
 */
export async function cpuMs(pid: number | undefined): Promise<number | undefined> {
  if (pid === undefined) return undefined;
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces, hence the last ')'): utime and stime
    // are fields 14 and 15 of the whole line, in clock ticks (USER_HZ, 100 on Linux).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? ticks * 10 : undefined;
  } catch {
    return undefined;
  }
}

/** Samples the RSS of each named pid every `everyMs` until stopped; keeps the peak of each. */
export class RssSampler {
  readonly #pids: Record<string, number | undefined>;
  readonly peak: Record<string, number> = {};
  #timer: NodeJS.Timeout | undefined;
  #inFlight: Promise<void> = Promise.resolve();

  constructor(pids: Record<string, number | undefined>, everyMs = 200) {
    this.#pids = pids;
    this.#timer = setInterval(() => {
      this.#inFlight = this.#sample();
    }, everyMs);
    this.#inFlight = this.#sample();
  }

  async #sample(): Promise<void> {
    for (const [name, pid] of Object.entries(this.#pids)) {
      const mib = await rssMiB(pid);
      if (mib !== undefined) this.peak[name] = Math.max(this.peak[name] ?? 0, mib);
    }
  }

  /** Stops sampling after one last sample; resolves with the peaks. */
  async stop(): Promise<Record<string, number>> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#inFlight;
    await this.#sample();
    return this.peak;
  }
}

export function median(values: readonly number[]): number {
  return quantile([...values].sort((a, b) => a - b), 0.5);
}

export function percentile(values: readonly number[], q: number): number {
  return quantile([...values].sort((a, b) => a - b), q);
}

/** CPU model (/proc/cpuinfo `model name`) and core count. */
export async function machineInfo(): Promise<{ cpu: string; cores: number }> {
  const text = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  const model = /^model name\s*:\s*(.+)$/m.exec(text)?.[1]?.trim();
  return { cpu: model ?? cpus()[0]?.model ?? 'unknown', cores: cpus().length };
}

/** Rounds to `digits` decimals (for JSON). */
export function round(n: number, digits = 3): number {
  if (!Number.isFinite(n)) return n;
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/**
 * The machine's durability floor, for reading the latency figure: `n` appends of `bytes` to a file
 * in the temp filesystem (where the agents' state dirs are here), each followed by fsync; ms each.
 */
export async function fsyncLatencies(n: number, bytes: number): Promise<number[]> {
  const dir = await mkdtemp(join(tmpdir(), 'ncbnet-bench-fsync-'));
  const fh = await open(join(dir, 'journal'), 'a');
  const line = `${'x'.repeat(bytes)}\n`;
  const out: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await fh.write(line);
      await fh.sync();
      out.push(performance.now() - t0);
    }
  } finally {
    await fh.close();
    await rm(dir, { recursive: true, force: true });
  }
  return out;
}
