/**
 * The users of the agent's local API that have a role other than the tokens file's ncb-admin
 * (issue 8: border police, customs, officers): `DIR/local-api.users.json`, mode 0600, written by
 * `ncbnet-agent user add|remove`. Each user has a name, a role, the SHA-256 of its token (the clear
 * token is printed once by `user add` and stored nowhere), and when it was created.
 *
 * The file is JSON checked against a schema that rejects unknown keys, so a typo in a hand edit
 * (`"rol": "border"`) is refused with its path rather than silently giving a user no role.
 * Writes go through a temporary file and a rename, so the running agent, which re-reads the file
 * when it changes, never sees half a file.
 */
import { join } from 'node:path';
import Type, { type Static } from 'typebox';
import { Value } from 'typebox/value';
import { hasCode } from '../../protocol/errors.js';
import { schemaProblems } from '../../protocol/validate.js';
import { PKI_KEY_PERMISSIONS } from '../../pki/errors.js';
import { FILE_LOCKED, withFileLock } from '../../pki/file-lock.js';
import { readSecretFile, writeSecretFile } from '../../pki/files.js';
import {
  LOCAL_TOKENS_PERMISSIONS,
  LOCAL_USER_BAD_NAME,
  LOCAL_USER_BAD_ROLE,
  LOCAL_USER_EXISTS,
  LOCAL_USER_UNKNOWN,
  LOCAL_USERS_LOCKED,
  LOCAL_USERS_MALFORMED,
  LocalApiError,
  LocalApiValidationError,
} from './errors.js';
import { ROLES, isRole, type Role } from './roles.js';
import { CALLER_NAME, generateToken, hashToken } from './tokens.js';

/** The users file's name in the agent state directory. */
export const USERS_FILE_NAME = 'local-api.users.json';

/** Where the users file of the agent on `stateDir` is. */
export function localApiUsersPath(stateDir: string): string {
  return join(stateDir, USERS_FILE_NAME);
}

const UserSchema = Type.Object(
  {
    name: Type.String({ pattern: CALLER_NAME.source }),
    role: Type.Union(ROLES.map((r) => Type.Literal(r))),
    tokenSha256: Type.String({ pattern: '^[0-9a-f]{64}$', description: 'hex SHA-256 of the bearer token; the token itself is stored nowhere' }),
    created: Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}T' }),
  },
  { additionalProperties: false },
);

/** The users file: a version and the users. */
export const UsersFileSchema = Type.Object({ v: Type.Literal(1), users: Type.Array(UserSchema) }, { additionalProperties: false });

/** One user as stored. */
export interface LocalUser {
  name: string;
  role: Role;
  tokenSha256: string;
  created: string;
}

/** Parses the users file's text; `LOCAL_USERS_MALFORMED` with every problem (never a hash). */
export function parseUsersFile(text: string, path: string): LocalUser[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new LocalApiValidationError(LOCAL_USERS_MALFORMED, `users file ${path}`, [`(root): not JSON (${(err as Error).message})`], { cause: err });
  }
  if (!Value.Check(UsersFileSchema, value)) throw new LocalApiValidationError(LOCAL_USERS_MALFORMED, `users file ${path}`, schemaProblems(UsersFileSchema, value));
  const file: Static<typeof UsersFileSchema> = value;
  const seen = new Set<string>();
  const problems: string[] = [];
  file.users.forEach((u, i) => {
    if (seen.has(u.name)) problems.push(`users[${i}].name: ${u.name} appears twice`);
    seen.add(u.name);
  });
  if (problems.length > 0) throw new LocalApiValidationError(LOCAL_USERS_MALFORMED, `users file ${path}`, problems);
  return file.users.map((u) => ({ ...u }));
}

/**
 * Reads the users file; no file is no users (installs from before roles have none). Refuses a
 * file group or others can access (`LOCAL_TOKENS_PERMISSIONS`), as for the tokens file.
 */
export async function readUsers(path: string): Promise<LocalUser[]> {
  let text: string;
  try {
    text = await readSecretFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    if (hasCode(err, PKI_KEY_PERMISSIONS)) {
      throw new LocalApiError(LOCAL_TOKENS_PERMISSIONS, `${path}: users file is accessible to group or others; run chmod 600 ${path}`, { cause: err });
    }
    throw err;
  }
  return parseUsersFile(text, path);
}

async function writeUsers(path: string, users: readonly LocalUser[]): Promise<void> {
  await writeSecretFile(path, `${JSON.stringify({ v: 1, users }, null, 2)}\n`, { exclusive: false });
}

/** Options of {@link addUser}. */
export interface AddUserOptions {
  name: string;
  role: string;
  /** Names that are taken elsewhere (the tokens file's entries). */
  reserved?: readonly string[];
  now?: Date;
  /** How long to wait for another process changing the users file (default 10 s). */
  lockWaitMs?: number;
}

/**
 * Adds a user with a new random token and resolves with the clear token, which the caller shows
 * once: only its SHA-256 is written. Refuses a bad name (`LOCAL_USER_BAD_NAME`), an unknown role
 * (`LOCAL_USER_BAD_ROLE`), and a name already used here or in `reserved` (`LOCAL_USER_EXISTS`).
 */
export function addUser(path: string, opts: AddUserOptions): Promise<{ user: LocalUser; token: string }> {
  return locked(path, () => addUnlocked(path, opts), opts.lockWaitMs);
}

async function addUnlocked(path: string, opts: AddUserOptions): Promise<{ user: LocalUser; token: string }> {
  if (!CALLER_NAME.test(opts.name)) {
    throw new LocalApiError(LOCAL_USER_BAD_NAME, `user name must be lower-case letters, digits, '.', '_' or '-', starting with a letter or digit, at most 64 (got ${JSON.stringify(opts.name.slice(0, 64))})`);
  }
  if (!isRole(opts.role)) throw new LocalApiError(LOCAL_USER_BAD_ROLE, `no role ${JSON.stringify(opts.role.slice(0, 64))}; roles: ${ROLES.join(', ')}`);
  const users = await readUsers(path);
  if (users.some((u) => u.name === opts.name)) throw new LocalApiError(LOCAL_USER_EXISTS, `a user named ${opts.name} already exists in ${path}`);
  if (opts.reserved?.includes(opts.name)) throw new LocalApiError(LOCAL_USER_EXISTS, `${opts.name} is already an entry of the tokens file`);
  const token = generateToken();
  const user: LocalUser = { name: opts.name, role: opts.role, tokenSha256: hashToken(token).toString('hex'), created: (opts.now ?? new Date()).toISOString() };
  await writeUsers(path, [...users, user]);
  return { user, token };
}

/** Removes the user `name`; `LOCAL_USER_UNKNOWN` when there is none. Resolves with the removed user. */
export function removeUser(path: string, name: string): Promise<LocalUser> {
  return locked(path, () => removeUnlocked(path, name));
}

async function removeUnlocked(path: string, name: string): Promise<LocalUser> {
  const users = await readUsers(path);
  const user = users.find((u) => u.name === name);
  if (user === undefined) throw new LocalApiError(LOCAL_USER_UNKNOWN, `no user named ${JSON.stringify(name.slice(0, 64))} in ${path}`);
  await writeUsers(
    path,
    users.filter((u) => u !== user),
  );
  return user;
}

/**
 * Read-modify-write under `<path>.lock` (`pki/file-lock.ts`): two `user add` runs at once would
 * otherwise each write the file they read, and one user would be lost with its token already shown.
 */
async function locked<T>(path: string, fn: () => Promise<T>, waitMs?: number): Promise<T> {
  try {
    return await withFileLock(path, fn, waitMs === undefined ? {} : { waitMs });
  } catch (err) {
    if (hasCode(err, FILE_LOCKED)) throw new LocalApiError(LOCAL_USERS_LOCKED, `users file busy: ${(err as Error).message}`, { cause: err });
    throw err;
  }
}
