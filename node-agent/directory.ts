/**
 * The agent's copy of the member directory (`protocol/directory.ts`): which countries are active
 * and the certificate each one's agent holds the key of, for encrypting restricted and
 * confidential bodies to them (ARCHITECTURE, "Messages": end-to-end encryption).
 *
 * Fetched from the hub (`GET /v1/directory` over mTLS), kept in memory and in a cache file, so an
 * NCB can still encrypt to known recipients while the hub is away: the agent's promise is to
 * accept messages whatever the hub's state. Each certificate is checked here before it is kept —
 * chain to the network's root, validity, the country it names — because the directory only says
 * which certificate to use; the root is what proves it. A certificate that fails is left out (and
 * logged), so a hub cannot make an agent encrypt to a key the CA never certified.
 *
 * Refresh policy: at most every `maxAgeMs` when asked (default 5 min), and at once (but no more
 * than every `minRefreshMs`) when a recipient is missing, since a country may just have enrolled.
 * A failed refresh falls back to the cache; only a recipient with no valid certificate at all
 * makes {@link MemberDirectory.certificatesFor} fail.
 */
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { Value } from 'typebox/value';
import { writeFileDurable } from '../pki/files.js';
import { DirectorySchema, type DirectoryEntry } from '../protocol/directory.js';
import { ALL_COUNTRIES } from '../protocol/envelope.js';
import { checkCountryCertificate } from '../protocol/signature.js';
import { schemaProblems } from '../protocol/validate.js';
import { RELAY_DIRECTORY_UNAVAILABLE, RELAY_RECIPIENT_KEY_UNKNOWN, RelayError } from './relay/errors.js';

/** Options of {@link MemberDirectory.open}. */
export interface MemberDirectoryOptions {
  /** This agent's country: never a recipient of its own broadcast. */
  country: string;
  /** The cache file (JSON of `GET /v1/directory`), written 0600. */
  cachePath: string;
  /** Fetches `GET /v1/directory` from the hub; any rejection counts as "hub unreachable". */
  fetch: () => Promise<unknown>;
  /** The network's root and the hub intermediate(s), PEM. */
  trust: { trustedRoots: string[]; intermediates: string[] };
  log: Logger;
  /** Age after which a lookup refreshes first (default 5 min). */
  maxAgeMs?: number;
  /** Least time between two refreshes, so a missing recipient cannot hammer the hub (default 10 s). */
  minRefreshMs?: number;
  now?: () => number;
}

/** A recipient's certificate, checked. */
export interface RecipientCertificate {
  code: string;
  pem: string;
  serial: string;
}

/** See the module comment. */
export class MemberDirectory {
  readonly #opts: MemberDirectoryOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  #entries = new Map<string, DirectoryEntry>();
  #fetchedAtMs = Number.NEGATIVE_INFINITY;
  #lastAttemptMs = Number.NEGATIVE_INFINITY;
  #refreshing: Promise<boolean> | undefined;

  private constructor(opts: MemberDirectoryOptions) {
    this.#opts = opts;
    this.#log = opts.log.child({ component: 'directory' });
    this.#now = opts.now ?? Date.now;
  }

  /** Loads the cache file when there is a readable one (a damaged cache is logged and ignored: the hub has the truth). */
  static async open(opts: MemberDirectoryOptions): Promise<MemberDirectory> {
    const dir = new MemberDirectory(opts);
    let text: string | undefined;
    try {
      text = await readFile(opts.cachePath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') dir.#log.warn({ err, path: opts.cachePath }, 'directory cache unreadable, ignored');
    }
    if (text !== undefined) {
      try {
        dir.#accept(JSON.parse(text), 'cache');
        // The cache's age is unknown to be fresh: the first lookup refreshes when it can.
        dir.#fetchedAtMs = Number.NEGATIVE_INFINITY;
      } catch (err) {
        dir.#log.warn({ err, path: opts.cachePath }, 'directory cache damaged, ignored');
      }
    }
    return dir;
  }

  /** Countries with a usable certificate now, sorted. */
  countries(): string[] {
    return [...this.#entries.keys()].sort();
  }

  /**
   * Fetches the directory now. Resolves true when the hub answered with a valid directory (then
   * cached), false otherwise (logged; the previous copy stays). Concurrent calls share one fetch.
   */
  refresh(): Promise<boolean> {
    this.#refreshing ??= this.#refreshNow().finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  /**
   * The certificates to encrypt to for `to` (a list, or `'*'`: every active country but this one).
   * Throws `RELAY_RECIPIENT_KEY_UNKNOWN` (422) naming each listed country without a valid
   * certificate, or `RELAY_DIRECTORY_UNAVAILABLE` (503) when there is no directory at all.
   */
  async certificatesFor(to: readonly string[] | typeof ALL_COUNTRIES): Promise<RecipientCertificate[]> {
    const now = this.#now();
    const maxAgeMs = this.#opts.maxAgeMs ?? 5 * 60_000;
    const isMissing = (): boolean => to === ALL_COUNTRIES || to.some((cc) => !this.#usable(cc));
    // minRefreshMs bounds both reasons (a failed fetch leaves the copy stale, and a hub that is away
    // must not be asked, and waited for, on every lookup); a refresh already under way is joined.
    const wantsFresh = now - this.#fetchedAtMs > maxAgeMs || isMissing();
    if (wantsFresh && (this.#refreshing !== undefined || now - this.#lastAttemptMs > (this.#opts.minRefreshMs ?? 10_000))) await this.refresh();
    if (to === ALL_COUNTRIES) {
      const codes = this.countries().filter((cc) => cc !== this.#opts.country && this.#usable(cc));
      if (codes.length === 0) {
        throw new RelayError(RELAY_DIRECTORY_UNAVAILABLE, 'to: the member directory holds no other country with a valid certificate to encrypt a broadcast to; nothing was accepted');
      }
      return codes.map((cc) => this.#certificate(cc));
    }
    const problems = to.flatMap((cc, i) => (this.#usable(cc) ? [] : [`to[${i}]: no valid certificate for this country in the member directory (got ${JSON.stringify(cc)})`]));
    if (problems.length > 0) {
      const code = this.#entries.size === 0 ? RELAY_DIRECTORY_UNAVAILABLE : RELAY_RECIPIENT_KEY_UNKNOWN;
      throw new RelayError(code, `cannot encrypt to every recipient; nothing was accepted:\n  ${problems.join('\n  ')}`, { problems });
    }
    return to.map((cc) => this.#certificate(cc));
  }

  async #refreshNow(): Promise<boolean> {
    this.#lastAttemptMs = this.#now();
    let value: unknown;
    try {
      value = await this.#opts.fetch();
    } catch (err) {
      this.#log.warn({ err, cached: this.#entries.size }, 'member directory not fetched, using the cached copy');
      return false;
    }
    try {
      this.#accept(value, 'hub');
    } catch (err) {
      this.#log.error({ err }, 'member directory from the hub refused');
      return false;
    }
    this.#fetchedAtMs = this.#now();
    try {
      await writeFileDurable(this.#opts.cachePath, `${JSON.stringify(value)}\n`, { mode: 0o600 });
    } catch (err) {
      this.#log.warn({ err, path: this.#opts.cachePath }, 'directory cache not written');
    }
    return true;
  }

  /** Replaces the entries with the valid ones of `value`; throws when `value` is not a directory. */
  #accept(value: unknown, source: 'hub' | 'cache'): void {
    if (!Value.Check(DirectorySchema, value)) throw new Error(`not a member directory: ${schemaProblems(DirectorySchema, value, 'directory').slice(0, 5).join('; ')}`);
    const entries = new Map<string, DirectoryEntry>();
    for (const entry of value.countries) {
      const checked = this.#check(entry);
      // The certificate's own end of validity, not the hub's word for it.
      if (typeof checked === 'number') entries.set(entry.code, { ...entry, notAfter: new Date(checked).toISOString() });
      else this.#log.warn({ country: entry.code, source, problem: checked.problem }, 'directory certificate refused');
    }
    this.#entries = entries;
    this.#log.info({ source, countries: entries.size }, 'member directory loaded');
  }

  /** The certificate's notAfter in ms when it is fit to encrypt to, else why not. */
  #check(entry: DirectoryEntry): number | { problem: string } {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(entry.certificate);
    } catch {
      return { problem: 'not a PEM certificate' };
    }
    const checked = checkCountryCertificate(cert, { ...this.#opts.trust, now: new Date(this.#now()) });
    if (!checked.ok) return { problem: checked.problem };
    if (checked.country !== entry.code) return { problem: `certificate names ${checked.country}, not ${entry.code}` };
    if (checked.serial !== entry.certSerial) return { problem: `certificate serial is ${checked.serial}, not ${entry.certSerial}` };
    return Date.parse(cert.validTo);
  }

  /** True when `cc` has a certificate that is still valid now (a long-lived cache may hold expired ones). */
  #usable(cc: string): boolean {
    const entry = this.#entries.get(cc);
    return entry !== undefined && Date.parse(entry.notAfter) > this.#now();
  }

  #certificate(cc: string): RecipientCertificate {
    const entry = this.#entries.get(cc) as DirectoryEntry;
    return { code: cc, pem: entry.certificate, serial: entry.certSerial };
  }
}
