import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import Type, { type Static } from 'typebox';
import { schemaProblems } from '../protocol/validate.js';
import { writeFileDurable } from '../pki/files.js';
import { AGENT_ENDPOINTS_INVALID, LocalApiValidationError } from './local-api/errors.js';

/** Where `ncbnet-agent` keeps its state unless `--state` or `NCBNET_AGENT_STATE` says otherwise. */
export const DEFAULT_AGENT_STATE = '/var/lib/ncbnet-agent';

/**
 * What a running agent writes to `DIR/run/endpoints.json` once its local API listens: its pid
 * and the URL actually bound (the config may say port 0), so the CLI finds the API from the state
 * directory alone and tests find an agent started on a free port; likewise the metrics URL. Further
 * keys are allowed (the daemon may add more endpoints later) and ignored here.
 */
export const AgentEndpointsSchema = Type.Object({
  pid: Type.Integer(),
  localApiUrl: Type.String(),
  startedAt: Type.String(),
  /** The metrics listener (`…/metrics`); absent when metrics are off or the listener could not bind. */
  metricsUrl: Type.Optional(Type.String()),
});
export type AgentEndpoints = Static<typeof AgentEndpointsSchema>;

/** `DIR/run/endpoints.json`. */
export function agentEndpointsPath(stateDir: string): string {
  return join(stateDir, 'run', 'endpoints.json');
}

/** `DIR/local-api.tokens`: the default tokens file of the local API (the config may name another). */
export function localApiTokensPath(stateDir: string): string {
  return join(stateDir, 'local-api.tokens');
}

/**
 * The endpoints of the agent running on `stateDir`; undefined when none is written (the agent
 * does not run there). A file that is there but wrong is an error (`AGENT_ENDPOINTS_INVALID`),
 * not "not running": it is written atomically, so it means another program's file or a bug.
 */
export async function readAgentEndpoints(stateDir: string): Promise<AgentEndpoints | undefined> {
  const path = agentEndpointsPath(stateDir);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new LocalApiValidationError(AGENT_ENDPOINTS_INVALID, path, ['(root): not JSON'], { cause: err });
  }
  const problems = schemaProblems(AgentEndpointsSchema, value);
  if (problems.length > 0) throw new LocalApiValidationError(AGENT_ENDPOINTS_INVALID, path, problems);
  return value as AgentEndpoints;
}

/** Writes `DIR/run/endpoints.json` atomically (the daemon, once its local API listens). */
export async function writeAgentEndpoints(stateDir: string, endpoints: AgentEndpoints & Record<string, unknown>): Promise<void> {
  await writeFileDurable(agentEndpointsPath(stateDir), `${JSON.stringify(endpoints, null, 2)}\n`, { mode: 0o644 });
}
