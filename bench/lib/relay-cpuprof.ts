/**
 * Summarises V8 CPU profiles (`--cpu-prof`, e.g. from `RELAY_CPU_PROF=DIR tsx bench/relay.ts`):
 * for each `*.cpuprofile` in DIR, the busy share of the process, and the top functions by self
 * time and by total time (each function counted once per sample it is on the stack of), plus self
 * time by package or source directory.
 *
 * Run: `node_modules/.bin/tsx bench/lib/relay-cpuprof.ts DIR [TOP]`.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatTable } from '../../protocol/text-table.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const IDLE = new Set(['(idle)', '(program)', '(garbage collector)']);

function where(url: string): string {
  if (url === '') return '(native)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1] as string;
  if (url.startsWith('node:')) return url;
  const src = /\/(hub|node-agent|pki|protocol|system|bench|test)\/(.+)$/.exec(url);
  return src ? `${src[1]}/${src[2]}` : url;
}

function label(n: ProfileNode): string {
  const name = n.callFrame.functionName || '(anonymous)';
  return `${name} ${where(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;
}

export function summarise(p: Profile, top: number): string {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  const byPlace = new Map<string, number>();
  let busy = 0;
  let all = 0;
  let gc = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = (p.timeDeltas[i + 1] ?? p.timeDeltas[i] ?? 0) / 1000; // µs → ms, the sample's own span
    const node = byId.get(p.samples[i] as number);
    if (node === undefined) continue;
    all += dt;
    const name = node.callFrame.functionName;
    if (name === '(garbage collector)') gc += dt;
    if (IDLE.has(name) && name !== '(garbage collector)') continue;
    busy += dt;
    const l = label(node);
    self.set(l, (self.get(l) ?? 0) + dt);
    const place = where(node.callFrame.url);
    byPlace.set(place, (byPlace.get(place) ?? 0) + dt);
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const n = byId.get(id);
      if (n === undefined || n.callFrame.functionName === '(root)') break;
      const k = label(n);
      if (seen.has(k)) continue;
      seen.add(k);
      total.set(k, (total.get(k) ?? 0) + dt);
    }
  }
  const rows = (m: Map<string, number>) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, v]) => [k, v.toFixed(0), `${((v * 100) / busy).toFixed(1)} %`]);
  return [
    `profiled ${(all / 1000).toFixed(1)} s, busy (not idle) ${(busy / 1000).toFixed(1)} s (${((busy * 100) / all).toFixed(0)} %), GC ${(gc / 1000).toFixed(1)} s`,
    '',
    'self time by package / source file:',
    formatTable(['where', 'ms', 'of busy'], rows(byPlace)),
    '',
    'self time by function:',
    formatTable(['function', 'ms', 'of busy'], rows(self)),
    '',
    'total time by function (on the stack):',
    formatTable(['function', 'ms', 'of busy'], rows(total)),
  ].join('\n');
}

const dir = process.argv[2];
if (dir === undefined) throw new Error('usage: relay-cpuprof.ts DIR [TOP]');
const top = Number(process.argv[3] ?? 25);
for (const file of (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile')).sort()) {
  const profile = JSON.parse(await readFile(join(dir, file), 'utf8')) as Profile;
  const entry = profile.nodes.find((n) => /\/(hub|node-agent)\/cli\/main\.[jt]s$/.test(n.callFrame.url))?.callFrame.url ?? '?';
  console.log(`\n===== ${file} (${where(entry)}) =====\n${summarise(profile, top)}`);
}
