/**
 * Bearer tokens of the applications that may use the agent's local API.
 *
 * The tokens file holds one `name:token` per line (blank lines and `#` comments allowed), mode
 * 0600: an NCB's operators add a line per application and restart (or reload) the agent. Tokens
 * are compared as SHA-256 hashes in constant time, so neither the comparison nor the process
 * memory after loading gives a guesser anything; no token is ever logged or put in an error.
 * Changes to this file need an agent restart (the users file is re-read on change).
 *
 * Every entry of this file has the role `ncb-admin` (roles.ts): the file predates roles, and an
 * install upgraded with it keeps every application working as before. Users with other roles
 * live in the users file (users.ts, `ncbnet-agent user add`), whose tokens are stored hashed.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { hasCode } from '../../protocol/errors.js';
import { PKI_KEY_PERMISSIONS } from '../../pki/errors.js';
import { readSecretFile, writeSecretFile } from '../../pki/files.js';
import type { Caller } from './auth.js';
import { LOCAL_TOKEN_MISSING, LOCAL_TOKENS_MALFORMED, LOCAL_TOKENS_PERMISSIONS, LocalApiError, LocalApiValidationError } from './errors.js';
import { TOKENS_FILE_ROLE } from './roles.js';

/** The name of the token `createTokensFile` makes, used by the `ncbnet-agent` CLI. */
export const OPERATOR_TOKEN_NAME = 'operator';

/** A caller name (tokens file entry or user): lower-case letters, digits, '.', '_' or '-', at most 64. */
export const CALLER_NAME = /^[a-z0-9][a-z0-9_.-]{0,63}$/;
const NAME = CALLER_NAME;
// 43 base64url characters carry 256 bits; shorter tokens are refused so that a hand-written
// `app:secret` line cannot weaken the whole API.
const TOKEN = /^[A-Za-z0-9_-]{43,512}$/;
const BEARER = /^Bearer +([^\s]+) *$/i;

/** One parsed line: a name and its token in clear (only between reading and hashing). */
interface Entry {
  name: string;
  token: string;
}

/** A new random token: 256 bits from the system CSPRNG, base64url without padding (43 characters). */
export function generateToken(): string {
  return randomBytes(32).toString('base64url');
}

/** SHA-256 of a token: what is kept in memory, and what the users file stores. */
export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}
const sha256 = hashToken;

/** The token an `Authorization: Bearer …` header carries, or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  return header === undefined ? undefined : BEARER.exec(header)?.[1];
}

/**
 * The name whose hash equals `presented`, comparing every entry (no early exit) with
 * `timingSafeEqual`, so time depends neither on where a guess differs nor on which entry matched.
 */
export function matchHash(entries: readonly { name: string; hash: Buffer }[], presented: Buffer): string | undefined {
  let match: string | undefined;
  for (const { name, hash } of entries) {
    if (timingSafeEqual(presented, hash) && match === undefined) match = name;
  }
  return match;
}

/**
 * Parses the text of a tokens file. Problems name the line and the name, never the token.
 * Throws {@link LocalApiValidationError} `LOCAL_TOKENS_MALFORMED` listing every bad line.
 */
export function parseTokensFile(text: string, path: string): Entry[] {
  const entries: Entry[] = [];
  const problems: string[] = [];
  const seen = new Set<string>();
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const where = `${path}:${i + 1}`;
    const colon = line.indexOf(':');
    if (colon < 0) {
      problems.push(`${where}: not name:token`);
      return;
    }
    const name = line.slice(0, colon);
    const token = line.slice(colon + 1);
    if (!NAME.test(name)) problems.push(`${where}: name must be lower-case letters, digits, '.', '_' or '-', at most 64 (got ${JSON.stringify(name.slice(0, 64))})`);
    else if (seen.has(name)) problems.push(`${where}: name ${name} appears twice`);
    else if (!TOKEN.test(token)) problems.push(`${where}: token of ${name} must be at least 43 base64url characters (256 bits)`);
    else {
      seen.add(name);
      entries.push({ name, token });
    }
  });
  if (problems.length > 0) throw new LocalApiValidationError(LOCAL_TOKENS_MALFORMED, `tokens file ${path}`, problems);
  return entries;
}

/**
 * Reads the tokens file, refusing one that group or others can access (as ssh does with keys:
 * a token others could read must be treated as disclosed, not silently accepted).
 */
async function readTokensText(path: string): Promise<string> {
  try {
    return await readSecretFile(path);
  } catch (err) {
    if (hasCode(err, PKI_KEY_PERMISSIONS)) {
      throw new LocalApiError(LOCAL_TOKENS_PERMISSIONS, `${path}: tokens file is accessible to group or others; run chmod 600 ${path}`, { cause: err });
    }
    throw err;
  }
}

/**
 * Creates the tokens file with one random token named `operator`, mode 0600, when no file is at
 * `path` (its directory is made 0700 if missing). An existing file is left as it is, whatever it
 * holds: it is the operators' to edit. Resolves true when it created the file.
 */
export async function createTokensFile(path: string): Promise<boolean> {
  try {
    await writeSecretFile(path, `# ncbnet-agent local API tokens: one name:token per line (mode 0600)\n${OPERATOR_TOKEN_NAME}:${generateToken()}\n`, { exclusive: true });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

/**
 * The tokens of the local API, held as SHA-256 hashes only. Built by {@link loadTokens}; the
 * clear tokens are dropped as soon as they are hashed.
 */
export class LocalTokens {
  readonly #hashes: readonly { name: string; hash: Buffer }[];

  /** @param entries names with the SHA-256 of their token */
  constructor(entries: readonly { name: string; hash: Buffer }[]) {
    this.#hashes = entries.map((e) => ({ name: e.name, hash: Buffer.from(e.hash) }));
  }

  /** The names of the applications that have a token (for logs and status; never the tokens). */
  names(): string[] {
    return this.#hashes.map((h) => h.name);
  }

  /**
   * The name of the caller whose token an `Authorization` header carries, or undefined. The
   * presented token is hashed first, then compared with every entry (see {@link matchHash}).
   */
  verifyBearer(header: string | undefined): string | undefined {
    const token = bearerToken(header);
    return token === undefined ? undefined : this.match(sha256(token));
  }

  /** The entry whose hash is `presented` (a hashed bearer token), in constant time per entry. */
  match(presented: Buffer): string | undefined {
    return matchHash(this.#hashes, presented);
  }

  /** The caller (with the tokens-file role, ncb-admin) for an `Authorization` header, or undefined. */
  authenticate(header: string | undefined): Caller | undefined {
    const name = this.verifyBearer(header);
    return name === undefined ? undefined : { name, role: TOKENS_FILE_ROLE };
  }
}

/** True when an `Authorization` header carries a bearer token at all (to tell "missing" from "wrong"). */
export function hasBearer(header: string | undefined): boolean {
  return header !== undefined && BEARER.test(header);
}

/**
 * Loads the tokens file at `path` into a {@link LocalTokens}. Throws `LOCAL_TOKENS_PERMISSIONS`
 * (mode), `LOCAL_TOKENS_MALFORMED` (every bad line), or the file system's error (ENOENT).
 */
export async function loadTokens(path: string): Promise<LocalTokens> {
  const entries = parseTokensFile(await readTokensText(path), path);
  return new LocalTokens(entries.map((e) => ({ name: e.name, hash: sha256(e.token) })));
}

/**
 * The clear token named `name` from the tokens file, for a client on this machine (the CLI).
 * Same permission check as the agent; throws `LOCAL_TOKEN_MISSING` when no line has that name.
 */
export async function readToken(path: string, name: string = OPERATOR_TOKEN_NAME): Promise<string> {
  const entry = parseTokensFile(await readTokensText(path), path).find((e) => e.name === name);
  if (!entry) throw new LocalApiError(LOCAL_TOKEN_MISSING, `${path}: no token named ${name}`);
  return entry.token;
}
