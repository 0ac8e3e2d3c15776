/**
 * The daemons of `bench/relay.ts` as they are deployed: the sources compiled with
 * `tsconfig.build.json` (what `make build` puts in dist/, here into a temp dir so the run measures
 * the current sources) and run with plain node, like the `ncbnet` / `ncbnet-agent` bins. Running
 * them through tsx instead (test/helpers/daemon-process.ts) adds the loader's own memory, about
 * 60 MiB of RSS per process, which is not the agent's. Same contract as that helper: started as
 * processes, ready once they wrote their endpoints for their own pid, stopped at the owner's teardown.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { access, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readEndpoints, type Endpoints } from '../../hub/runtime.js';
import { readAgentEndpoints, type AgentEndpoints } from '../../node-agent/runtime.js';
import type { DaemonOwner, DaemonProcess } from '../../test/helpers/daemon-process.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Compiles the daemons' sources into a fresh temp dir (removed at teardown) and returns it. */
export async function compileDaemons(owner: DaemonOwner): Promise<string> {
  const out = await mkdtemp(join(tmpdir(), 'ncbnet-bench-build-'));
  owner.teardown(() => rm(out, { recursive: true, force: true }));
  const result = await new Promise<{ code: number; text: string }>((resolve) => {
    execFile(join(ROOT, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.build.json', '--outDir', out], { cwd: ROOT, timeout: 600_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, text: `${stdout}${stderr}` });
    });
  });
  // tsc emits even with type errors elsewhere (work in progress); what matters is that the entries exist.
  for (const entry of ['hub/cli/main.js', 'node-agent/cli/main.js']) {
    await access(join(out, entry)).catch(() => {
      throw new Error(`tsc -p tsconfig.build.json did not emit ${entry} (exit ${result.code}):\n${result.text.slice(-4000)}`);
    });
  }
  if (result.code !== 0) owner.comment(`note: tsc reported problems (exit ${result.code}), the daemons were emitted anyway:\n${result.text.slice(-2000)}`);
  await writeFile(join(out, 'package.json'), '{"type":"module"}\n');
  await symlink(join(ROOT, 'node_modules'), join(out, 'node_modules'), 'dir');
  return out;
}

/** Node flags for every daemon started here (e.g. `--cpu-prof`, which NODE_OPTIONS does not accept). */
export const daemonExecArgv: string[] = [];

async function startCompiled<E>(owner: DaemonOwner, label: string, entry: string, args: string[], ready: () => Promise<(E & { pid: number }) | undefined>, timeoutMs = 60_000): Promise<DaemonProcess<E>> {
  const child: ChildProcess = spawn(process.execPath, [...daemonExecArgv, entry, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
  let output = '';
  child.stdout?.on('data', (c: Buffer) => (output += c.toString('utf8')));
  child.stderr?.on('data', (c: Buffer) => (output += c.toString('utf8')));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  let hasExited = false;
  void exited.then(() => (hasExited = true));
  owner.teardown(async () => {
    if (!owner.passing()) owner.comment(`${label} output:\n${output.slice(-20_000)}`);
    if (!hasExited) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    }
  });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const endpoints = await ready();
    if (endpoints && endpoints.pid === child.pid) {
      return {
        child,
        endpoints,
        output: () => output,
        exited,
        stop: async () => {
          if (!hasExited) child.kill('SIGTERM');
          return (await exited).code;
        },
      };
    }
    if (hasExited) throw new Error(`${label} exited before it was ready:\n${output.slice(-5000)}`);
    if (Date.now() > deadline) throw new Error(`${label} not ready after ${timeoutMs} ms:\n${output.slice(-5000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** `ncbnet hub run` from the compiled tree `outDir`, config written to STATE/hub.json. */
export async function startCompiledHub(owner: DaemonOwner, outDir: string, stateDir: string, config: unknown): Promise<DaemonProcess<Endpoints>> {
  const configPath = join(stateDir, 'hub.json');
  await writeFile(configPath, JSON.stringify(config));
  return startCompiled(owner, 'hub', join(outDir, 'hub/cli/main.js'), ['hub', 'run', '--state', stateDir, '--config', configPath], () => readEndpoints(stateDir));
}

/** `ncbnet-agent run` from the compiled tree `outDir`, config written to STATE/agent.json. */
export async function startCompiledAgent(owner: DaemonOwner, outDir: string, stateDir: string, config: unknown): Promise<DaemonProcess<AgentEndpoints>> {
  const configPath = join(stateDir, 'agent.json');
  await writeFile(configPath, JSON.stringify(config));
  return startCompiled(owner, `agent ${stateDir}`, join(outDir, 'node-agent/cli/main.js'), ['run', '--state', stateDir, '--config', configPath], () => readAgentEndpoints(stateDir).catch(() => undefined));
}
