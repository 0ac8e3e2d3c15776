/**
 * Where a B2B national database's records come from (issue 8). An NCB plugs its real database
 * behind {@link NationalDatabase}; this increment ships a JSON-lines file, loaded once into memory
 * and indexed by the normalized key, which is enough for an export refreshed by a cron job (restart
 * the agent, or call `reload`).
 */
import { readFile } from 'node:fs/promises';
import { B2bError, normalizeB2bKey } from '../../protocol/b2b.js';
import { describeValue } from '../../protocol/validate.js';

/** A database that may be shared. `key` is already normalized (`normalizeB2bKey`). */
export interface NationalDatabase {
  lookup(key: string): Promise<Readonly<Record<string, unknown>> | undefined>;
}

/** The file cannot be read or has lines that are not records with a key. */
export const B2B_SOURCE_INVALID = 'B2B_SOURCE_INVALID';

/** Most problems listed when a file is refused (a bad export can have millions). */
const MAX_LISTED = 10;

/**
 * Records from a JSON-lines file, one object per line; `keyField` is the field looked up (for a
 * vehicle database, the VIN), normalized as requests are. A later line with the same key replaces
 * an earlier one. A file with any bad line is refused as a whole: serving half an export would
 * answer "no hit" for records the NCB holds.
 */
export class JsonLinesDatabase implements NationalDatabase {
  readonly #path: string;
  readonly #keyField: string;
  #records = new Map<string, Readonly<Record<string, unknown>>>();

  private constructor(path: string, keyField: string) {
    this.#path = path;
    this.#keyField = keyField;
  }

  /** Reads the file; throws {@link B2bError} `B2B_SOURCE_INVALID` listing the first bad lines. */
  static async open(path: string, keyField: string): Promise<JsonLinesDatabase> {
    const db = new JsonLinesDatabase(path, keyField);
    await db.reload();
    return db;
  }

  get size(): number {
    return this.#records.size;
  }

  /** Re-reads the file; on failure the records already loaded stay in use. */
  async reload(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.#path, 'utf8');
    } catch (err) {
      throw new B2bError(B2B_SOURCE_INVALID, `${this.#path}: cannot read the database file (${(err as Error).message})`, { cause: err });
    }
    const records = new Map<string, Readonly<Record<string, unknown>>>();
    const problems: string[] = [];
    let bad = 0;
    text.split('\n').forEach((line, i) => {
      if (line.trim() === '') return;
      const problem = (p: string): void => {
        bad++;
        if (problems.length < MAX_LISTED) problems.push(`line ${i + 1}: ${p}`);
      };
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        problem('not JSON');
        return;
      }
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return problem(`not an object (got ${describeValue(value)})`);
      const raw = (value as Record<string, unknown>)[this.#keyField];
      const key = typeof raw === 'string' || typeof raw === 'number' ? normalizeB2bKey(String(raw)) : '';
      if (!/^[A-Z0-9]{1,64}$/.test(key)) return problem(`${this.#keyField}: not a usable key (got ${describeValue(raw)})`);
      records.set(key, Object.freeze({ ...(value as Record<string, unknown>) }));
    });
    if (bad > 0) {
      if (bad > problems.length) problems.push(`… and ${bad - problems.length} more`);
      throw new B2bError(B2B_SOURCE_INVALID, `${this.#path}: ${bad} bad line(s)`, { problems });
    }
    this.#records = records;
  }

  lookup(key: string): Promise<Readonly<Record<string, unknown>> | undefined> {
    return Promise.resolve(this.#records.get(key));
  }
}
