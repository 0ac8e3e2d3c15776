import { readFile } from 'node:fs/promises';
import { writeFileDurable } from '../pki/files.js';
import { join } from 'node:path';
import { Value } from 'typebox/value';
import { BundleSchema, type Bundle } from '../protocol/bundle.js';
import { schemaProblems } from '../protocol/validate.js';
import { AGENT_NOT_ENROLLED, AGENT_STATE_CORRUPT, AgentError } from './errors.js';

/** Files of an agent state directory (`--state DIR`); private keys 0600, directories 0700. */
export function agentPaths(stateDir: string) {
  return {
    dir: stateDir,
    countryKey: join(stateDir, 'identity', 'country.key'),
    countryCert: join(stateDir, 'identity', 'country.crt'),
    chain: join(stateDir, 'identity', 'chain.pem'),
    root: join(stateDir, 'identity', 'root.crt'),
    wgKey: join(stateDir, 'wireguard', 'private.key'),
    /** The enrollment answer: the last-known-good bundle the agent starts from. */
    bundle: join(stateDir, 'bundle.json'),
    tokens: join(stateDir, 'local-api.tokens'),
    run: join(stateDir, 'run'),
  };
}
export type AgentPaths = ReturnType<typeof agentPaths>;

/** Reads the last-known-good bundle; `AGENT_NOT_ENROLLED` when there is none. */
export async function readBundle(stateDir: string): Promise<Bundle> {
  const path = agentPaths(stateDir).bundle;
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new AgentError(AGENT_NOT_ENROLLED, `${stateDir}: not enrolled; run \`ncbnet-agent enroll --hub URL --token TOKEN --state ${stateDir}\` first`, { cause: err });
    }
    throw err;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new AgentError(AGENT_STATE_CORRUPT, `${path}: not JSON`, { cause: err });
  }
  if (!Value.Check(BundleSchema, value)) throw new AgentError(AGENT_STATE_CORRUPT, `${path}: ${schemaProblems(BundleSchema, value, 'bundle').slice(0, 5).join('; ')}`);
  return value;
}

/** Writes the last-known-good bundle durably (0600): at enrollment, renewal and a policy change. */
export async function writeBundle(stateDir: string, bundle: Bundle): Promise<void> {
  await writeFileDurable(agentPaths(stateDir).bundle, `${JSON.stringify(bundle, null, 2)}\n`, { mode: 0o600 });
}
