// Applies the agent's nftables table, remembers what is in force (the ruleset's hash, and the
// digest of the bundle policy it came from, which heartbeats report) and follows policy updates
// from new bundles.
import type { Logger } from 'pino';
import { Value } from 'typebox/value';
import { PolicySchema, policyDigest, type Policy } from '../../protocol/bundle.js';
import { applyTable, deleteTable, listTable, ruleCounters, rulesetHash, type NftCounter } from '../../system/nft.js';
import { renderAgentRuleset, type AgentRulesetInput } from './ruleset.js';

/** Options of {@link AgentFirewall}: the ruleset inputs and where to apply them. */
export interface AgentFirewallOptions extends AgentRulesetInput {
  /** Network namespace holding the agent's interfaces (tests; default: the process's own). */
  netns?: string | undefined;
  /**
   * The whole bundle policy `hubAddress` and `allowFromHubTcp` come from. Its `policyDigest` is
   * what the hub compares with its own (heartbeat `policyHash`); without it there is none.
   */
  policy?: Policy | undefined;
}

/** The part of a bundle's policy the ruleset is made from. */
export type AgentFirewallPolicy = Pick<Policy, 'hubAddress' | 'allowFromHubTcp'>;

/**
 * The agent's `table inet ncbnet`. `start()` renders and replaces it atomically, `update()` follows
 * a new policy, `stop()` deletes it. No other table is ever touched.
 */
export class AgentFirewall {
  #opts: AgentFirewallOptions;
  readonly #log: Logger;
  #hash: string | undefined;
  #policyDigest: string | undefined;

  /** Nothing is checked nor applied until {@link start}. */
  constructor(opts: AgentFirewallOptions, log: Logger) {
    this.#opts = opts;
    this.#log = log.child({ component: 'firewall' });
  }

  /** SHA-256 (hex) of the ruleset in force, or undefined before start() and after stop(). */
  get hash(): string | undefined {
    return this.#hash;
  }

  /**
   * `policyDigest` (protocol/bundle.ts) of the bundle policy in force: undefined before start(),
   * after stop(), and when no `policy` was given.
   */
  get policyDigest(): string | undefined {
    return this.#policyDigest;
  }

  async #apply(next: AgentFirewallOptions, force: boolean): Promise<string> {
    const text = renderAgentRuleset(next);
    // Replacing the table resets its counters, so an unchanged policy (every bundle refresh
    // repeats it) is not re-applied: the drop counters in metrics keep counting.
    // The policy may still differ (its version, the hub's ports): that one is in force now.
    const digest = next.policy === undefined ? undefined : policyDigest(next.policy);
    if (!force && this.#hash !== undefined && rulesetHash(text) === this.#hash) {
      this.#opts = next;
      this.#policyDigest = digest;
      return this.#hash;
    }
    const { hash } = await applyTable(text, { netns: next.netns });
    this.#opts = next;
    this.#hash = hash;
    this.#policyDigest = digest;
    this.#log.info({ hash, policyDigest: digest, policyVersion: next.policy?.version, hubAddress: next.hubAddress, allowFromHubTcp: next.allowFromHubTcp }, 'firewall applied');
    return hash;
  }

  /**
   * Renders and applies the table, replacing whatever `inet ncbnet` holds (a table left by a
   * crashed agent included) in one transaction. Throws `FW_BAD_INPUT` (bad options) or
   * `NFT_APPLY_FAILED`; on failure the previous table stays in force.
   */
  async start(): Promise<void> {
    await this.#apply(this.#opts, true);
  }

  /**
   * Follows a new bundle policy (hub address, ports the hub may open; its digest is reported)
   * and resolves with the ruleset hash in force. Validated in full before anything changes; an unchanged policy is a no-op. Before
   * start() or after stop() the policy is only kept for the next start() (a late bundle during
   * shutdown must not bring the table back) and the result is undefined. Throws like
   * {@link start}; a refused policy leaves the previous table and options in force.
   */
  async update(policy: Policy | AgentFirewallPolicy): Promise<string | undefined> {
    // Only a whole bundle policy has a digest the hub can compare; a bare pick leaves none.
    const whole = Value.Check(PolicySchema, policy) ? policy : undefined;
    const next = { ...this.#opts, hubAddress: policy.hubAddress, allowFromHubTcp: [...policy.allowFromHubTcp], policy: whole };
    if (this.#hash === undefined) {
      renderAgentRuleset(next);
      this.#opts = next;
      return undefined;
    }
    return this.#apply(next, false);
  }

  /** Counters of the named rules (see AGENT_COUNTERS), read from the kernel; empty when not applied. */
  async counters(): Promise<Map<string, NftCounter>> {
    const items = await listTable({ netns: this.#opts.netns });
    return items ? ruleCounters(items) : new Map<string, NftCounter>();
  }

  /** Deletes the table (other tables stay). Safe to call twice or before start(). */
  async stop(): Promise<void> {
    const removed = await deleteTable({ netns: this.#opts.netns });
    this.#hash = undefined;
    this.#policyDigest = undefined;
    if (removed) this.#log.info('firewall removed');
  }
}
