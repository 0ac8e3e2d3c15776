/**
 * The daemons of `bench/relay.ts` as they are deployed: the sources compiled with
 * `tsconfig.build.json` (what `make build` puts in dist/, here into a temp dir so the run measures
 * the current sources) and run with plain node, like the `ncbnet` / `ncbnet-agent` bins. Running
 * them through tsx instead (test/helpers/daemon-process.ts) adds the loader's own memory, about
 * 60 MiB of RSS per process, which is not the agent's. The processes are started by that helper
 * with {@link compiledRun}, with the node flags of their systemd units ({@link unitNodeFlags}), so
 * the memory measured is the memory deployed and the two cannot drift apart.
 */
import { execFile } from 'node:child_process';
import { access, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
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

/** The systemd units whose `ExecStart` node flags the benchmark's daemons run with. */
export const UNITS = { hub: join(ROOT, 'deploy/systemd/ncbnet-hub.service'), agent: join(ROOT, 'deploy/systemd/ncbnet-agent.service') } as const;

/**
 * The node flags in a systemd unit's `ExecStart` (`/usr/bin/node --flag … script.js …`): the words
 * starting with `-` between the node binary and the script. Throws when there is no `ExecStart`
 * or it does not run node, so a changed unit cannot silently leave the benchmark behind.
 */
export async function unitNodeFlags(unitPath: string): Promise<string[]> {
  const lines = (await readFile(unitPath, 'utf8')).split('\n').filter((l) => l.startsWith('ExecStart='));
  if (lines.length !== 1) throw new Error(`${unitPath}: expected one ExecStart= line, found ${lines.length}`);
  // systemd's prefixes (-, @, +, !) only change how it runs the command.
  const words = (lines[0] as string).slice('ExecStart='.length).replace(/^[-@+!:]+/, '').trim().split(/\s+/);
  if (!/(^|\/)node$/.test(words[0] ?? '')) throw new Error(`${unitPath}: ExecStart does not run node (${words[0] ?? ''})`);
  const flags: string[] = [];
  for (const word of words.slice(1)) {
    if (!word.startsWith('-')) break;
    flags.push(word);
  }
  return flags;
}

/** How `bench/relay.ts` runs a daemon from the compiled tree `outDir` with node flags `execArgv` (test/helpers/daemon-process.ts). */
export function compiledRun(outDir: string, execArgv: readonly string[]): DaemonRunOptions {
  return { compiled: { outDir, execArgv }, timeoutMs: 60_000 };
}
