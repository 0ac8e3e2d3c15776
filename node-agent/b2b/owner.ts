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
  #o: B2bOwnerOptions;
  readonly #log: Logger;
  readonly journal: EnquiryJournal;
  #responder: B2bResponder;
  /** The connection of the last {@link attach}: a reconfiguration publishes and serves on it. */
  #nc: NatsConnection | undefined;
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
    const journal = await EnquiryJournal.open({ path: join(o.stateDir, ENQUIRY_FILE), log });
    return new B2bOwner(o, journal, await B2bOwner.#responderFor(o, o.databases, journal, log), log);
  }

  /** Checks `databases`' policies and loads their sources: everything that can fail, before anything changes. */
  static async #responderFor(o: B2bOwnerOptions, databases: readonly B2bDatabaseConfig[], journal: EnquiryJournal, log: Logger): Promise<B2bResponder> {
    parseB2bPolicySet({ databases: databases.map((d) => d.policy) }, o.country);
    const loaded = [];
    for (const d of databases) {
      const source = await JsonLinesDatabase.open(d.source.jsonl, d.source.keyField);
      log.info({ db: d.policy.db, records: source.size, allow: d.policy.allow }, 'B2B database loaded');
      loaded.push({ policy: d.policy, source });
    }
    return new B2bResponder({ country: o.country, databases: loaded, verify: o.verify, sign: o.sign, notify: (n) => journal.add(n), log });
  }

  /**
   * New databases or policies (agent.json reloaded on SIGHUP): checked and loaded first — a bad
   * policy or an unreadable source throws and leaves the ones in force serving — then the old
   * responder stops, and the new policies go to the hub before the new responder subscribes, as
   * on a connection. The enquiry journal stays.
   */
  async reconfigure(databases: readonly B2bDatabaseConfig[]): Promise<void> {
    const responder = await B2bOwner.#responderFor(this.#o, databases, this.journal, this.#log);
    await this.#responder.stop();
    this.#responder = responder;
    this.#o = { ...this.#o, databases };
    this.#log.info({ databases: databases.map((d) => d.policy.db) }, 'B2B databases reconfigured');
    if (this.#nc !== undefined && !this.#stopped) void this.attach(this.#nc);
  }

  /**
   * A new broker connection: sends the policies (retrying while the hub is away), then serves.
   * Not awaited by the daemon; a later connection supersedes this one's attempts.
   */
  async attach(nc: NatsConnection): Promise<void> {
    this.#nc = nc;
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
