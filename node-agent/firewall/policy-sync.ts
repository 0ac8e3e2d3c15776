/**
 * Keeps a running agent's firewall on the policy the hub hands out now (`GET /v1/policy`, mutual
 * TLS with the country certificate). The policy arrives with the enrollment bundle; when an
 * operator changes hub.json `agentFirewall` (say, to let a Prometheus beside the hub scrape the
 * agents' metrics through the tunnel), every agent follows on its own: after each broker
 * (re)connection — a hub restart reconnects everyone — and every `firewall.policyRefreshMs`.
 *
 * Never weaker on bad input: an answer that is not a valid policy, or one the firewall refuses to
 * render or apply, leaves the rules in force and the bundle as they were (logged, counted by the
 * caller's `onResult`). A policy that is applied is written into `bundle.json`, so the next start
 * begins with it even if the hub is away; the heartbeat's `policyHash` tells the hub it is in
 * force (`ncbnet_policy_in_sync`).
 */
import type { Logger } from 'pino';
import { Value } from 'typebox/value';
import { PolicySchema, policyDigest, type Policy } from '../../protocol/bundle.js';
import { schemaProblems } from '../../protocol/validate.js';

/** How a check ended. */
export const POLICY_CHECK_RESULTS = ['unchanged', 'applied', 'fetch-failed', 'invalid', 'refused'] as const;
export type PolicyCheckResult = (typeof POLICY_CHECK_RESULTS)[number];

/** Options of {@link PolicySync}. */
export interface PolicySyncOptions {
  /** `GET /v1/policy`: the hub's answer, not yet trusted. */
  fetch: () => Promise<unknown>;
  /** The policy in force (the bundle's). */
  current: () => Policy;
  /** Applies a policy to the firewall; throws (leaving the previous rules) when it cannot. */
  apply: (policy: Policy) => Promise<unknown>;
  /** Makes an applied policy the one the next start begins with (the bundle on disk). */
  persist: (policy: Policy) => Promise<void>;
  /** How often to ask besides reconnections (0: only on reconnection and {@link PolicySync.check}). */
  intervalMs: number;
  log: Logger;
  /** Told how each check ended (metrics). */
  onResult?: (result: PolicyCheckResult) => void;
}

/** See the module comment. */
export class PolicySync {
  readonly #o: PolicySyncOptions;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<PolicyCheckResult> | undefined;

  constructor(opts: PolicySyncOptions) {
    this.#o = opts;
  }

  start(): void {
    if (this.#timer !== undefined || this.#o.intervalMs <= 0) return;
    this.#timer = setInterval(() => void this.check(), this.#o.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Fetches the hub's policy and applies it if it differs; one check at a time (a call during one joins it). Never rejects. */
  check(): Promise<PolicyCheckResult> {
    this.#running ??= this.#check()
      .catch((err: unknown): PolicyCheckResult => {
        this.#o.log.error({ err }, 'firewall policy check failed');
        return 'refused';
      })
      .then((result) => {
        this.#running = undefined;
        this.#o.onResult?.(result);
        return result;
      });
    return this.#running;
  }

  async #check(): Promise<PolicyCheckResult> {
    const { log } = this.#o;
    let answer: unknown;
    try {
      answer = await this.#o.fetch();
    } catch (err) {
      log.warn({ err }, 'firewall policy not fetched; the rules in force stay');
      return 'fetch-failed';
    }
    if (!Value.Check(PolicySchema, answer)) {
      log.error({ problems: schemaProblems(PolicySchema, answer, 'policy').slice(0, 10) }, 'the hub answered an invalid firewall policy; the rules in force stay');
      return 'invalid';
    }
    const before = this.#o.current();
    const [from, to] = [policyDigest(before), policyDigest(answer)];
    if (from === to) return 'unchanged';
    try {
      await this.#o.apply(answer);
    } catch (err) {
      log.error({ err, policyHash: to }, 'firewall policy refused; the rules in force stay');
      return 'refused';
    }
    await this.#o.persist(answer);
    log.info({ from, to, allowFromHubTcp: answer.allowFromHubTcp, before: before.allowFromHubTcp }, 'firewall policy updated');
    return 'applied';
  }
}
