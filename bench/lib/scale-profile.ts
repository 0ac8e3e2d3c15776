/**
 * CPU profiles for the benchmark: the hub process runs with `--cpu-prof`, and its samples are cut
 * into the bench's phases (V8's profile clock and `process.hrtime` are both CLOCK_MONOTONIC on
 * Linux); the bench process itself (the relays) is profiled in process with the inspector.
 * Summaries are the top frames by self time, and by source file.
 */
import { readFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}
export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

/** Now on the profile clock (µs, CLOCK_MONOTONIC). */
export function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

export interface Window {
  fromUs: number;
  toUs: number;
}

export async function readProfile(path: string): Promise<CpuProfile> {
  return JSON.parse(await readFile(path, 'utf8')) as CpuProfile;
}

function where(frame: CallFrame): string {
  const url = frame.url.replace(/^file:\/\//, '').replace(ROOT, '');
  if (url === '') return '';
  const short = url.includes('node_modules/') ? url.slice(url.lastIndexOf('node_modules/') + 'node_modules/'.length) : url;
  return `${short}:${frame.lineNumber + 1}`;
}

function fileOf(frame: CallFrame): string {
  const w = where(frame);
  if (w === '') return frame.functionName; // (program), (garbage collector), (idle)
  const file = w.slice(0, w.lastIndexOf(':'));
  const pkg = /^(@[^/]+\/[^/]+|[^/]+)\//.exec(file);
  return file.startsWith('node:') || !pkg || file.startsWith('hub/') || file.startsWith('node-agent/') || file.startsWith('protocol/') || file.startsWith('pki/') || file.startsWith('bench/') ? file : `${pkg[1]} (package)`;
}

/**
 * Top frames by self time within `windows` (all samples when none), as markdown-ready lines:
 * busy time (non-idle), then the top `n` functions and the top `n` files/packages.
 */
export function summarize(profile: CpuProfile, windows: readonly Window[] | undefined, n = 12): { busyMs: number; idleMs: number; lines: string[] } {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  const selfFn = new Map<string, number>();
  const selfFile = new Map<string, number>();
  let t = profile.startTime;
  let busy = 0;
  let idle = 0;
  for (let i = 0; i < samples.length; i++) {
    t += deltas[i] ?? 0;
    const dt = deltas[i + 1] ?? 0; // the time until the next sample is this sample's weight
    if (windows && !windows.some((w) => t >= w.fromUs && t <= w.toUs)) continue;
    const node = byId.get(samples[i] as number);
    if (!node) continue;
    const frame = node.callFrame;
    if (frame.functionName === '(idle)') {
      idle += dt;
      continue;
    }
    busy += dt;
    const key = `${frame.functionName || '(anonymous)'} ${where(frame)}`.trim();
    selfFn.set(key, (selfFn.get(key) ?? 0) + dt);
    const file = fileOf(frame);
    selfFile.set(file, (selfFile.get(file) ?? 0) + dt);
  }
  const top = (m: Map<string, number>) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, us]) => `${(us / 1000).toFixed(0).padStart(6)} ms ${((100 * us) / Math.max(busy, 1)).toFixed(1).padStart(5)} %  ${k}`);
  return {
    busyMs: busy / 1000,
    idleMs: idle / 1000,
    lines: ['self time by function:', ...top(selfFn), 'self time by file or package:', ...top(selfFile)],
  };
}

/** Runs `fn` under the inspector's CPU profiler (this process) and returns its result and the profile. */
export async function profileInProcess<T>(fn: () => Promise<T>): Promise<{ result: T; profile: CpuProfile }> {
  const session = new Session();
  session.connect();
  try {
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
    const outcome = await fn().then(
      (value) => ({ ok: true as const, value }),
      (err: unknown) => ({ ok: false as const, err }),
    );
    // Stopped in every case, or the profiler keeps sampling.
    const stopped = await session.post('Profiler.stop');
    if (!outcome.ok) throw outcome.err;
    return { result: outcome.value, profile: stopped.profile as unknown as CpuProfile };
  } finally {
    session.disconnect();
  }
}
