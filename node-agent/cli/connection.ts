import type { Command } from 'commander';
import { LocalApiClient } from '../local-api/client.js';
import { AGENT_NOT_RUNNING } from '../local-api/errors.js';
import { OPERATOR_TOKEN_NAME, readToken } from '../local-api/tokens.js';
import { DEFAULT_AGENT_STATE, localApiTokensPath, readAgentEndpoints } from '../runtime.js';
import { CodedError } from '../../protocol/errors.js';

/** The flags every command that talks to the running agent takes. */
export interface ConnectionFlags {
  state: string;
  api?: string;
  tokenFile?: string;
}

/** Adds the flags that say how to reach the agent's local API. */
export function withConnection(cmd: Command): Command {
  return cmd
    .option('--state <dir>', 'agent state directory (the running agent URL and the tokens file)', process.env.NCBNET_AGENT_STATE ?? DEFAULT_AGENT_STATE)
    .option('--api <url>', 'local API URL, e.g. http://127.0.0.1:8787 (default: from DIR/run/endpoints.json)')
    .option('--token-file <path>', `tokens file holding the ${OPERATOR_TOKEN_NAME} token (default: DIR/local-api.tokens)`);
}

/**
 * A client of the agent's local API: the URL from `--api`, else the one the running agent wrote
 * into `DIR/run/endpoints.json`; the `operator` token from `--token-file`, else `DIR/local-api.tokens`.
 */
export async function connect(flags: ConnectionFlags, timeoutMs?: number): Promise<LocalApiClient> {
  const { url, token } = await localApiOf(flags);
  return new LocalApiClient({ baseUrl: url, token, ...(timeoutMs === undefined ? {} : { timeoutMs }) });
}

/** The local API's URL and the operator token, resolved as {@link connect} describes. */
export async function localApiOf(flags: ConnectionFlags): Promise<{ url: string; token: string }> {
  let url = flags.api;
  if (url === undefined) {
    const endpoints = await readAgentEndpoints(flags.state);
    if (!endpoints) throw new CodedError(AGENT_NOT_RUNNING, `no agent runs on ${flags.state} (no run/endpoints.json); start it, or pass --api URL`);
    url = endpoints.localApiUrl;
  }
  const token = await readToken(flags.tokenFile ?? localApiTokensPath(flags.state), OPERATOR_TOKEN_NAME);
  return { url, token };
}
