import type { Command } from 'commander';
import { formatTable } from '../../protocol/text-table.js';
import { LOCAL_USER_IN_TOKENS_FILE, LOCAL_USER_UNKNOWN, LocalApiError } from '../local-api/errors.js';
import { ROLES, TOKENS_FILE_ROLE } from '../local-api/roles.js';
import { loadTokens } from '../local-api/tokens.js';
import { addUser, localApiUsersPath, readUsers, removeUser } from '../local-api/users.js';
import { DEFAULT_AGENT_STATE, localApiTokensPath } from '../runtime.js';
import { hasCode } from '../../protocol/errors.js';
import { agentAction, agentPrint, agentPrintJson } from './output.js';

interface UserFlags {
  state: string;
  tokenFile?: string;
  json?: boolean;
}

interface AddFlags extends UserFlags {
  role: string;
}

/** The names of the tokens file's entries (each ncb-admin); none when there is no tokens file yet. */
async function tokensFileNames(flags: UserFlags): Promise<string[]> {
  try {
    return (await loadTokens(flags.tokenFile ?? localApiTokensPath(flags.state))).names();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

function withState(cmd: Command): Command {
  return cmd
    .option('--state <dir>', 'agent state directory (holds local-api.users.json and the tokens file)', process.env.NCBNET_AGENT_STATE ?? DEFAULT_AGENT_STATE)
    .option('--token-file <path>', 'the agent tokens file, whose names are taken (default: DIR/local-api.tokens)');
}

/**
 * `ncbnet-agent user add|list|remove`: the local API's users with roles (issue 8), in
 * `DIR/local-api.users.json`. Works on the files, not through the API, so it needs no running
 * agent; a running agent picks a change up on its next request. Run it as the agent's user
 * (`sudo -u ncbnet …`): the file is 0600 and the agent must be able to read it. Changes hold
 * `local-api.users.json.lock` (`pki/file-lock.ts`), so concurrent runs lose no user.
 */
export function registerUserCommand(program: Command): void {
  const user = program.command('user').description(`local API users and their roles (${ROLES.join(', ')})`);
  withState(
    user
      .command('add')
      .argument('<name>', "the user's name: lower-case letters, digits, '.', '_' or '-'")
      .requiredOption('--role <role>', `one of ${ROLES.join(', ')}`)
      .description('add a user with a new token, printed once (only its SHA-256 is stored)'),
  )
    .option('--json', 'print JSON for scripts (holds the token)')
    .action(
      agentAction(async (name: string, flags: AddFlags) => {
        const path = localApiUsersPath(flags.state);
        const { user: added, token } = await addUser(path, { name, role: flags.role, reserved: await tokensFileNames(flags) });
        if (flags.json) return agentPrintJson({ name: added.name, role: added.role, created: added.created, token });
        agentPrint(`user ${added.name} added with role ${added.role} in ${path}`);
        agentPrint('its bearer token, shown only now (store it in the application; it cannot be shown again):');
        agentPrint(token);
      }),
    );
  withState(user.command('list').description('list the users: name, role, created (never tokens)'))
    .option('--json', 'print JSON for scripts')
    .action(
      agentAction(async (flags: UserFlags) => {
        const users = await readUsers(localApiUsersPath(flags.state));
        const rows = [
          ...(await tokensFileNames(flags)).map((name) => ({ name, role: TOKENS_FILE_ROLE, created: '', source: 'tokens-file' })),
          ...users.map((u) => ({ name: u.name, role: u.role, created: u.created, source: 'users-file' })),
        ];
        if (flags.json) return agentPrintJson(rows);
        agentPrint(formatTable(['name', 'role', 'created', 'source'], rows.map((r) => [r.name, r.role, r.created, r.source])));
      }),
    );
  withState(user.command('remove').argument('<name>', 'the user to remove').description('remove a user: its token stops working at the next request'))
    .action(
      agentAction(async (name: string, flags: UserFlags) => {
        const path = localApiUsersPath(flags.state);
        try {
          const removed = await removeUser(path, name);
          agentPrint(`user ${removed.name} (role ${removed.role}) removed from ${path}`);
        } catch (err) {
          if (hasCode(err, LOCAL_USER_UNKNOWN) && (await tokensFileNames(flags)).includes(name)) {
            throw new LocalApiError(LOCAL_USER_IN_TOKENS_FILE, `${name} is an entry of the tokens file, not a user: remove its line there and restart the agent`, { cause: err });
          }
          throw err;
        }
      }),
    );
}
