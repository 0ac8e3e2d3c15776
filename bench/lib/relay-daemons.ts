/**
 * The daemons of `bench/relay.ts` as they are deployed: the sources compiled with
 * `tsconfig.build.json` (what `make build` puts in dist/, here into a temp dir so the run measures
 * the current sources) and run with plain node, like the `ncbnet` / `ncbnet-agent` bins. Running
 * them through tsx instead (test/helpers/daemon-process.ts) adds the loader's own memory, about
 * 60 MiB of RSS per process, which is not the agent's. The processes are started by that helper
 * with {@link compiledRun}.
 */
import { execFile } from 'node:child_process';
import { access, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DaemonOwner, DaemonRunOptions } from '../../test/helpers/daemon-process.js';

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

/** How `bench/relay.ts` runs a daemon from the compiled tree `outDir` (test/helpers/daemon-process.ts). */
export function compiledRun(outDir: string): DaemonRunOptions {
  return { compiled: { outDir, execArgv: daemonExecArgv }, timeoutMs: 60_000 };
}
