import { statSync } from 'node:fs';
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import type { Logger } from 'pino';
import { LOCAL_AUTH_BAD_TOKEN, LOCAL_AUTH_REQUIRED, LocalApiError } from './errors.js';
import { TOKENS_FILE_ROLE, type Role } from './roles.js';
import { bearerToken, hashToken, hasBearer, loadTokens, matchHash, type LocalTokens } from './tokens.js';
import { readUsers } from './users.js';

/** Who made a request: the tokens-file entry or user name, and its role. */
export interface Caller {
  readonly name: string;
  readonly role: Role;
}

/** What checks a bearer header: the tokens file alone (`LocalTokens`) or with the users file ({@link LocalAccess}). */
export interface BearerVerifier {
  /** The caller for a valid `Authorization: Bearer …` header, else undefined. */
  authenticate(header: string | undefined): Caller | undefined;
  /**
   * Picks up changes to the credentials, called before each authentication: undefined when
   * nothing changed (the request goes on synchronously), else a promise of the re-read.
   */
  refresh?(): Promise<void> | undefined;
}

/** Routes anyone on the machine may call: probes (systemd, monitoring) and the API description. */
export const PUBLIC_ROUTES: ReadonlySet<string> = new Set(['/healthz', '/readyz', '/openapi.json']);

/** Options of {@link LocalAccess.load}. */
export interface LocalAccessOptions {
  tokensFile: string;
  usersFile: string;
  log: Logger;
}

/**
 * Every credential of the local API: the tokens file (each entry ncb-admin, read once at start)
 * and the users file (each user with its role), both held as SHA-256 hashes only. The users
 * file is re-read when it changes (its inode, size or mtime; one `stat` per request), so
 * `ncbnet-agent user add|remove` takes effect on the next request without a restart. A users
 * file that became invalid is logged and the last good one stays in force (a hand edit with a
 * typo must not lock every border post out, nor let a removed user back in); a missing one is
 * no users.
 */
export class LocalAccess implements BearerVerifier {
  readonly #tokens: LocalTokens;
  readonly #usersFile: string;
  readonly #log: Logger;
  #users: { name: string; role: Role; hash: Buffer }[] = [];
  #stamp = '';

  private constructor(tokens: LocalTokens, opts: LocalAccessOptions) {
    this.#tokens = tokens;
    this.#usersFile = opts.usersFile;
    this.#log = opts.log;
  }

  /** Loads both files; a bad one at start is an error (`LOCAL_TOKENS_*`, `LOCAL_USERS_MALFORMED`). */
  static async load(opts: LocalAccessOptions): Promise<LocalAccess> {
    const access = new LocalAccess(await loadTokens(opts.tokensFile), opts);
    await access.#reload(true);
    return access;
  }

  /**
   * The users file's identity now: changes whenever `user add|remove` renames a new file over it.
   * Synchronous, at every request: one stat of a local file costs microseconds this way, where the
   * promise API (and its ENOENT error while there is no users file) cost ~70 µs a request in the
   * relay benchmark's profile.
   */
  #currentStamp(): string {
    const st = statSync(this.#usersFile, { throwIfNoEntry: false });
    return st === undefined ? 'absent' : `${st.ino}:${st.size}:${st.mtimeMs}`;
  }

  /** Reads the users file again when its stamp changed; undefined (no promise, no tick) when it did not. */
  #reload(strict: boolean): Promise<void> | undefined {
    const stamp = this.#currentStamp();
    if (stamp === this.#stamp) return undefined;
    return this.#read(stamp, strict);
  }

  async #read(stamp: string, strict: boolean): Promise<void> {
    try {
      const users = await readUsers(this.#usersFile);
      this.#users = users.map((u) => ({ name: u.name, role: u.role, hash: Buffer.from(u.tokenSha256, 'hex') }));
      this.#stamp = stamp;
      if (!strict) this.#log.info({ usersFile: this.#usersFile, users: users.length }, 'local API users file reloaded');
    } catch (err) {
      if (strict) throw err;
      // Remember the bad stamp so the error is logged once per change, not once per request.
      this.#stamp = stamp;
      this.#log.error({ err, usersFile: this.#usersFile }, 'local API users file invalid; the previous users stay in force');
    }
  }

  /** Re-reads the users file when it changed since the last look. */
  refresh(): Promise<void> | undefined {
    return this.#reload(false);
  }

  /**
   * The caller for an `Authorization` header: the presented token is hashed once and compared
   * with every tokens-file entry and every user (no early exit), so timing tells nothing of
   * which file or entry matched. A tokens-file entry wins a (hand-made) name clash.
   */
  authenticate(header: string | undefined): Caller | undefined {
    const token = bearerToken(header);
    if (token === undefined) return undefined;
    const presented = hashToken(token);
    const admin = this.#tokens.match(presented);
    const user = matchHash(this.#users, presented);
    if (admin !== undefined) return { name: admin, role: TOKENS_FILE_ROLE };
    if (user === undefined) return undefined;
    const found = this.#users.find((u) => u.name === user);
    return found === undefined ? undefined : { name: found.name, role: found.role };
  }
}

/**
 * Builds the `onRequest` hook that authenticates every non-public request. It runs before the
 * body is read or validated, so a caller without a token learns nothing about the API's input
 * rules, and no body of an unauthenticated caller is ever parsed. Unknown routes need a token
 * too (a 401 rather than a 404 tells an unauthenticated prober nothing).
 *
 * `callers` records who made each request and with which role, for the routes' checks and logs.
 */
export function makeAuthHook(tokens: BearerVerifier, callers: WeakMap<FastifyRequest, Caller>) {
  return (req: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction): void => {
    const route = req.routeOptions.url;
    if (route !== undefined && PUBLIC_ROUTES.has(route)) return done();
    const header = req.headers.authorization;
    if (!hasBearer(header)) return done(new LocalApiError(LOCAL_AUTH_REQUIRED, 'this endpoint needs Authorization: Bearer <token> (a token from the agent tokens file)'));
    const check = (): void => {
      const caller = tokens.authenticate(header);
      if (caller === undefined) return done(new LocalApiError(LOCAL_AUTH_BAD_TOKEN, 'the bearer token matches no entry of the agent tokens file nor any local API user'));
      callers.set(req, caller);
      done();
    };
    const reading = tokens.refresh?.();
    if (reading === undefined) return check();
    reading.then(check, (err: unknown) => done(err as Error));
  };
}

/**
 * The caller of a request that passed the auth hook. Throws when there is none: a route reached
 * without authentication is a bug, and it must fail closed rather than act with no role.
 */
export function callerOf(callers: WeakMap<FastifyRequest, Caller>, req: FastifyRequest): Caller {
  const caller = callers.get(req);
  if (caller === undefined) throw new Error(`no authenticated caller for ${req.method} ${req.routeOptions.url ?? ''}`);
  return caller;
}
