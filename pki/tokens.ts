import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import Type, { type Static } from 'typebox';
import { isCountryCode } from '../protocol/country.js';
import {
  ENROLL_TOKEN_BAD_TTL,
  ENROLL_TOKEN_EXPIRED,
  ENROLL_TOKEN_MALFORMED,
  ENROLL_TOKEN_UNKNOWN,
  ENROLL_TOKEN_USED,
  ENROLL_TOKEN_WRONG_CA,
  PKI_BAD_COUNTRY,
  IssueError,
  TokenError,
} from './errors.js';
import { Journal } from './journal.js';

/** Default time to live of an enrollment token. */
export const DEFAULT_TOKEN_TTL_MS = 60 * 60 * 1000;
/** Longest TTL accepted: a token is a bearer secret, it should not outlive a working week. */
export const MAX_TOKEN_TTL_MS = 7 * 24 * 60 * 60 * 1000;

/** `ncbnet1.<id: 16 hex>.<secret: 43 base64url>.<root CA SHA-256: 64 hex>` */
const TOKEN_PATTERN = /^ncbnet1\.([0-9a-f]{16})\.([A-Za-z0-9_-]{43})\.([0-9a-f]{64})$/;

const Timestamp = Type.String({ format: 'date-time' });
const TokenRecord = Type.Union([
  Type.Object(
    {
      type: Type.Literal('created'),
      id: Type.String({ pattern: '^[0-9a-f]{16}$' }),
      country: Type.String({ pattern: '^[A-Z]{2}$' }),
      secretSha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
      createdAt: Timestamp,
      expiresAt: Timestamp,
    },
    { additionalProperties: false },
  ),
  Type.Object({ type: Type.Literal('used'), id: Type.String({ pattern: '^[0-9a-f]{16}$' }), at: Timestamp }, { additionalProperties: false }),
]);

/** What is known of a token; never its secret. */
export interface TokenInfo {
  id: string;
  country: string;
  createdAt: string;
  expiresAt: string;
  usedAt?: string;
}

interface StoredToken extends TokenInfo {
  secretSha256: Buffer;
}

/** The parts of a token's text. */
export interface ParsedToken {
  id: string;
  secret: string;
  caFingerprint: string;
}

/** Splits a token's text; `ENROLL_TOKEN_MALFORMED` for anything that is not exactly the format. */
export function parseToken(text: string): ParsedToken {
  const m = TOKEN_PATTERN.exec(typeof text === 'string' ? text.trim() : '');
  if (!m) {
    throw new TokenError(ENROLL_TOKEN_MALFORMED, 'token: not an ncbnet enrollment token (expected ncbnet1.<id>.<secret>.<ca-fingerprint>)');
  }
  return { id: m[1] as string, secret: m[2] as string, caFingerprint: m[3] as string };
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/**
 * Single-use enrollment tokens bound to one country. Only a SHA-256 of each secret is stored,
 * in an append-only journal (created / used records). Checks run in an order that reveals nothing
 * to a guesser: the secret is compared (in constant time) before used or expired is reported, so
 * only the holder of a real token learns its state.
 */
export class EnrollmentTokens {
  readonly #journal: Journal<typeof TokenRecord>;
  readonly #tokens = new Map<string, StoredToken>();
  readonly #caFingerprint: string;
  readonly #now: () => Date;
  readonly repaired: string | undefined;

  private constructor(journal: Journal<typeof TokenRecord>, caFingerprint: string, now: () => Date, records: Static<typeof TokenRecord>[], repaired?: string) {
    this.#journal = journal;
    this.#caFingerprint = caFingerprint;
    this.#now = now;
    this.repaired = repaired;
    for (const r of records) this.#apply(r);
  }

  /** Opens the token journal at `path`; tokens made here carry `caFingerprint` (hex SHA-256 of the root CA). */
  static async open(path: string, caFingerprint: string, now: () => Date = () => new Date()): Promise<EnrollmentTokens> {
    const journal = new Journal(path, TokenRecord);
    const { records, repaired } = await journal.load();
    return new EnrollmentTokens(journal, caFingerprint, now, records, repaired);
  }

  #apply(r: Static<typeof TokenRecord>): void {
    if (r.type === 'created') {
      const { type: _t, secretSha256, ...info } = r;
      this.#tokens.set(r.id, { ...info, secretSha256: Buffer.from(secretSha256, 'hex') });
      return;
    }
    const t = this.#tokens.get(r.id);
    if (t) t.usedAt = r.at;
  }

  /** Creates a token for `country`; its text is returned once and cannot be recovered later. */
  async create(country: string, ttlMs: number = DEFAULT_TOKEN_TTL_MS): Promise<{ token: string; info: TokenInfo }> {
    if (!isCountryCode(country)) {
      throw new IssueError(PKI_BAD_COUNTRY, `country: ${JSON.stringify(country)} is not an ISO 3166-1 alpha-2 code in upper case`);
    }
    if (!Number.isInteger(ttlMs) || ttlMs < 60_000 || ttlMs > MAX_TOKEN_TTL_MS) {
      throw new TokenError(ENROLL_TOKEN_BAD_TTL, `ttl: must be between 1 minute and 7 days (got ${ttlMs} ms)`);
    }
    const id = randomBytes(8).toString('hex');
    const secret = randomBytes(32).toString('base64url');
    const now = this.#now();
    const record = {
      type: 'created' as const,
      id,
      country,
      secretSha256: sha256(secret).toString('hex'),
      createdAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + ttlMs).toISOString(),
    };
    await this.#journal.append(record);
    this.#apply(record);
    return { token: `ncbnet1.${id}.${secret}.${this.#caFingerprint}`, info: this.#info(id) as TokenInfo };
  }

  #info(id: string): TokenInfo | undefined {
    const t = this.#tokens.get(id);
    if (!t) return undefined;
    const { secretSha256: _s, ...info } = t;
    return { ...info };
  }

  /** Every token's public facts, newest first. */
  list(): TokenInfo[] {
    return [...this.#tokens.keys()].map((id) => this.#info(id) as TokenInfo).sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  }

  /** Checks a token without using it up; returns what it allows (its country). */
  verify(text: string): TokenInfo {
    const parsed = parseToken(text);
    const fpOk = timingSafeEqual(Buffer.from(parsed.caFingerprint, 'hex'), Buffer.from(this.#caFingerprint, 'hex'));
    if (!fpOk) throw new TokenError(ENROLL_TOKEN_WRONG_CA, 'token: made for another hub CA (fingerprint differs); ask this hub\'s operators for a token');
    const stored = this.#tokens.get(parsed.id);
    // Compare against a dummy hash for unknown ids so both paths cost the same.
    const secretOk = timingSafeEqual(sha256(parsed.secret), stored?.secretSha256 ?? Buffer.alloc(32));
    if (!stored || !secretOk) throw new TokenError(ENROLL_TOKEN_UNKNOWN, 'token: unknown to this hub (never issued, or mistyped)');
    if (stored.usedAt) throw new TokenError(ENROLL_TOKEN_USED, `token: already used at ${stored.usedAt}; tokens are single use, create a new one`);
    if (this.#now().getTime() >= Date.parse(stored.expiresAt)) {
      throw new TokenError(ENROLL_TOKEN_EXPIRED, `token: expired at ${stored.expiresAt}; create a new one`);
    }
    return this.#info(parsed.id) as TokenInfo;
  }

  /**
   * Verifies and uses up a token, durably, before returning its country. Marked used in memory
   * before the first await, so two concurrent calls with one token cannot both succeed; rolled
   * back if the journal write fails, so a disk error does not burn the token.
   */
  async consume(text: string): Promise<TokenInfo> {
    const info = this.verify(text);
    const stored = this.#tokens.get(info.id) as StoredToken;
    const at = this.#now().toISOString();
    stored.usedAt = at;
    try {
      await this.#journal.append({ type: 'used', id: info.id, at });
    } catch (err) {
      delete stored.usedAt;
      throw err;
    }
    return { ...info, usedAt: at };
  }
}
