/**
 * The owner's record of enquiries to its B2B databases (issue 8): one notice per answered
 * enquiry (who, when, which key, hit or no hit) for the databases whose policy asks for it.
 *
 * The owner's agent answers every enquiry itself, so it needs no hub round trip to know of them.
 * The issue wants the notice "delivered as a message to its inbox"; the relay has no way yet to
 * store an item made locally (see the helper report), so notices are kept here, in a JSON-lines
 * file of the state directory, and served at `GET /v1/b2b/enquiries`. Appends are serialized; the
 * newest `maxKept` stay in memory (and the file is rewritten down to them when it doubles).
 */
import { appendFile, readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { Value } from 'typebox/value';
import { writeFileDurable } from '../../pki/files.js';
import { EnquiryNoticeSchema, type EnquiryNotice } from '../../protocol/b2b.js';
import type { Envelope } from '../../protocol/envelope.js';

/** The journal's file name in the state directory. */
export const ENQUIRY_FILE = 'b2b-enquiries.jsonl';

/** Options of {@link EnquiryJournal.open}. */
export interface EnquiryJournalOptions {
  path: string;
  log: Logger;
  /** Notices kept in memory and served (default 10 000). */
  maxKept?: number;
}

/** See the module comment. */
export class EnquiryJournal {
  readonly #o: EnquiryJournalOptions;
  readonly #max: number;
  #notices: EnquiryNotice[] = [];
  #lines = 0;
  #queue: Promise<unknown> = Promise.resolve();
  readonly #listeners = new Set<(n: EnquiryNotice) => void>();

  private constructor(o: EnquiryJournalOptions) {
    this.#o = o;
    this.#max = o.maxKept ?? 10_000;
  }

  /** Loads the file when there is one; a line that is not a notice is logged and skipped. */
  static async open(o: EnquiryJournalOptions): Promise<EnquiryJournal> {
    const j = new EnquiryJournal(o);
    let text = '';
    try {
      text = await readFile(o.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    let skipped = 0;
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      j.#lines++;
      try {
        const value: unknown = JSON.parse(line);
        if (Value.Check(EnquiryNoticeSchema, value)) j.#notices.push(value);
        else skipped++;
      } catch {
        skipped++;
      }
    }
    if (skipped) o.log.warn({ path: o.path, skipped }, 'enquiry journal: lines that are not notices were skipped');
    j.#notices = j.#notices.slice(-j.#max);
    return j;
  }

  /** Appends a notice (durably ordered with the others); listeners hear of it once written. */
  add(notice: EnquiryNotice): Promise<void> {
    const run = this.#queue.then(async () => {
      await appendFile(this.#o.path, `${JSON.stringify(notice)}\n`, { mode: 0o600 });
      this.#lines++;
      this.#notices.push(notice);
      if (this.#notices.length > this.#max) this.#notices.splice(0, this.#notices.length - this.#max);
      if (this.#lines > 2 * this.#max) await this.#compact();
      for (const l of this.#listeners) l(notice);
    });
    this.#queue = run.catch((err: unknown) => this.#o.log.error({ err, path: this.#o.path }, 'enquiry notice not written'));
    return run;
  }

  /** The newest notices, oldest first; `db` and `from` filter. */
  list(opts: { limit?: number; db?: string; from?: string } = {}): EnquiryNotice[] {
    const wanted = this.#notices.filter((n) => (opts.db === undefined || n.db === opts.db) && (opts.from === undefined || n.from === opts.from));
    return wanted.slice(-(opts.limit ?? 100));
  }

  /** Called after each notice is written; returns the unsubscribe. */
  onNotice(listener: (n: EnquiryNotice) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async #compact(): Promise<void> {
    await writeFileDurable(this.#o.path, this.#notices.map((n) => `${JSON.stringify(n)}\n`).join(''), { mode: 0o600 });
    this.#lines = this.#notices.length;
  }
}

/**
 * The notice as an inbox message from this country to itself, ready to sign, for the day the
 * relay can store a message made locally (see the module comment): kind `message`, routine,
 * public (the asker, key and outcome are the owner's own data), the notice as JSON body.
 */
export function enquiryEnvelope(country: string, notice: EnquiryNotice, id: string): Envelope {
  return {
    v: 1,
    id,
    kind: 'message',
    from: country,
    to: [country],
    priority: 'routine',
    created: notice.at,
    subject: `B2B enquiry: ${notice.from} asked ${notice.db} for ${notice.key} (${notice.hit ? 'hit' : 'no hit'})`,
    body: JSON.stringify(notice),
  };
}
