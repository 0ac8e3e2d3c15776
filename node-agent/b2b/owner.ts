/**
 * Everything the owner of B2B national databases runs (issue 8), for the daemon in one piece:
 * the databases (JSON-lines files for now), the enquiry journal, the responder, and the policy
 * sync with the hub. On each broker connection: first the policies go to the hub (which grants
 * the subscriptions in the broker before it answers), then the responder subscribes — the other
 * order would be refused by the broker.
 */
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { parseB2bPolicySet, type B2bPolicy } from '../../protocol/b2b.js';
import type { Envelope } from '../../protocol/envelope.js';
import { CodedError } from '../../protocol/errors.js';
import { EnquiryJournal, ENQUIRY_FILE } from './enquiry-journal.js';
import { JsonLinesDatabase } from './national-db.js';
import { putB2bPolicies, type PolicySyncTls } from './policy-sync.js';
import { B2bResponder } from './responder.js';

/** One database of agent.json `b2b.databases`. */
export interface B2bDatabaseConfig {
  policy: B2bPolicy;
  source: { jsonl: string; keyField: string };
}

/** What {@link B2bOwner.open} needs. */
export interface B2bOwnerOptions {
  country: string;
  stateDir: string;
  databases: readonly B2bDatabaseConfig[];
  verify: (envelope: Envelope) => Promise<void>;
  sign: (envelope: Envelope) => Promise<Envelope>;
  /** The hub's API URL and this country's TLS identity now (it changes with renewals). */
  hub: () => Promise<{ apiUrl: string; tls: PolicySyncTls }>;
  log: Logger;
  /** First retry delay of the policy sync (doubles up to 30 s). */
  retryMs?: number;
}

const MAX_RETRY_MS = 30_000;

/** See the module comment. */
export class B2bOwner {
  readonly #o: B2bOwnerOptions;
  readonly #log: Logger;
  readonly journal: EnquiryJournal;
  readonly #responder: B2bResponder;
  #generation = 0;
  #stopped = false;

  private constructor(o: B2bOwnerOptions, journal: EnquiryJournal, responder: B2bResponder, log: Logger) {
    this.#o = o;
    this.journal = journal;
    this.#responder = responder;
    this.#log = log;
  }

  /** Checks the policies for this country, loads each database and the journal. */
  static async open(o: B2bOwnerOptions): Promise<B2bOwner> {
    const log = o.log.child({ component: 'b2b' });
    parseB2bPolicySet({ databases: o.databases.map((d) => d.policy) }, o.country);
    const journal = await EnquiryJournal.open({ path: join(o.stateDir, ENQUIRY_FILE), log });
    const databases = [];
    for (const d of o.databases) {
      const source = await JsonLinesDatabase.open(d.source.jsonl, d.source.keyField);
      log.info({ db: d.policy.db, records: source.size, allow: d.policy.allow }, 'B2B database loaded');
      databases.push({ policy: d.policy, source });
    }
    const responder = new B2bResponder({ country: o.country, databases, verify: o.verify, sign: o.sign, notify: (n) => journal.add(n), log });
    return new B2bOwner(o, journal, responder, log);
  }

  /**
   * A new broker connection: sends the policies (retrying while the hub is away), then serves.
   * Not awaited by the daemon; a later connection supersedes this one's attempts.
   */
  async attach(nc: NatsConnection): Promise<void> {
    const generation = ++this.#generation;
    let waitMs = this.#o.retryMs ?? 1000;
    for (;;) {
      if (this.#stopped || generation !== this.#generation || nc.isClosed()) return;
      try {
        const { apiUrl, tls } = await this.#o.hub();
        await putB2bPolicies(apiUrl, tls, this.#o.databases.map((d) => d.policy));
        break;
      } catch (err) {
        // A hub without the route (older version) will not grow one by retrying.
        if (err instanceof CodedError && (err.code === 'API_NOT_FOUND' || err.code === 'B2B_POLICY_INVALID')) {
          this.#log.error({ err }, 'the hub refused the B2B policies; databases not published');
          return;
        }
        this.#log.warn({ err, retryInMs: waitMs }, 'B2B policies not sent to the hub; retrying');
        await new Promise((r) => setTimeout(r, waitMs).unref());
        waitMs = Math.min(MAX_RETRY_MS, waitMs * 2);
      }
    }
    if (this.#stopped || generation !== this.#generation || nc.isClosed()) return;
    this.#log.info({ databases: this.#o.databases.map((d) => d.policy.db) }, 'B2B policies published at the hub');
    if (this.#o.databases.length > 0) this.#responder.attach(nc);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#responder.stop();
  }
}
