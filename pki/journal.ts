import { constants } from 'node:fs';
import { access, open, readFile, truncate, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Static, TSchema } from 'typebox';
import { schemaProblems } from '../protocol/validate.js';
import { JournalError, PKI_LEDGER_CORRUPT } from './errors.js';

/** What loading a journal found. `repaired` is set when a torn last record was cut off. */
export interface JournalLoad<T> {
  records: T[];
  repaired?: string;
}

/**
 * An append-only file of JSON records, one per line, each fsynced before `append` resolves.
 * The shape is the one a JetStream stream will hold when the hub becomes a cluster: records are
 * only ever added, and state is what replaying them gives.
 *
 * A crash mid-append leaves a last line without its newline; `load` cuts it off (the append never
 * resolved, so nobody was told it happened) and says so. A bad record anywhere else is damage,
 * not a crash artefact: `load` refuses with the line number rather than guess.
 */
export class Journal<S extends TSchema> {
  readonly #path: string;
  readonly #schema: S;
  #tail: Promise<void> = Promise.resolve();

  constructor(path: string, schema: S) {
    this.#path = path;
    this.#schema = schema;
  }

  get path(): string {
    return this.#path;
  }

  async load(): Promise<JournalLoad<Static<S>>> {
    let text: string;
    try {
      text = await readFile(this.#path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { records: [] };
      throw err;
    }
    const result: JournalLoad<Static<S>> = { records: [] };
    const lastNewline = text.lastIndexOf('\n');
    if (lastNewline !== text.length - 1) {
      const keep = Buffer.byteLength(text.slice(0, lastNewline + 1));
      await truncate(this.#path, keep);
      result.repaired = `${this.#path}: cut off a torn last record (${Buffer.byteLength(text) - keep} bytes)`;
      text = text.slice(0, lastNewline + 1);
    }
    const lines = text.split('\n');
    lines.pop();
    lines.forEach((line, i) => {
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch (err) {
        throw new JournalError(PKI_LEDGER_CORRUPT, `${this.#path}:${i + 1}: not JSON`, { cause: err });
      }
      const problems = schemaProblems(this.#schema, value, 'record');
      if (problems.length) throw new JournalError(PKI_LEDGER_CORRUPT, `${this.#path}:${i + 1}: ${problems.join('; ')}`);
      result.records.push(value as Static<S>);
    });
    return result;
  }

  /** Appends one record durably; appends from one process are written in call order. */
  append(record: Static<S>): Promise<void> {
    const line = `${JSON.stringify(record)}\n`;
    const run = this.#tail.then(async () => {
      await mkdir(dirname(this.#path), { recursive: true, mode: 0o700 });
      const created = await access(this.#path).then(() => false, () => true);
      const fd = await open(this.#path, 'a', 0o600);
      try {
        await fd.write(line);
        await fd.datasync();
      } finally {
        await fd.close();
      }
      if (created) {
        // A new file's directory entry must be durable too, or a crash can lose the whole file.
        const dirFd = await open(dirname(this.#path), constants.O_RDONLY);
        await dirFd.sync().finally(() => dirFd.close());
      }
    });
    this.#tail = run.catch(() => undefined);
    return run;
  }
}
