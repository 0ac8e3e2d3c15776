// Applies the hub's nftables table and remembers the hash of what is in force.
import type { Logger } from 'pino';
import { applyTable, deleteTable, listTable, ruleCounters, type NftCounter } from '../../system/nft.js';
import { renderHubRuleset, type HubRulesetInput } from './ruleset.js';

/** Options of {@link HubFirewall}: the ruleset inputs and where to apply them. */
export interface HubFirewallOptions extends HubRulesetInput {
  /** Network namespace holding the hub's interfaces (tests; default: the process's own). */
  netns?: string | undefined;
}

/**
 * The hub's `table inet ncbnet`. `apply()` renders and replaces it atomically; `stop()` deletes it.
 * No other table is ever touched.
 */
export class HubFirewall {
  #opts: HubFirewallOptions;
  readonly #log: Logger;
  #hash: string | undefined;

  constructor(opts: HubFirewallOptions, log: Logger) {
    this.#opts = opts;
    this.#log = log.child({ component: 'firewall' });
  }

  /** SHA-256 (hex) of the ruleset in force, or undefined before apply() and after stop(). */
  get hash(): string | undefined {
    return this.#hash;
  }

  /**
   * Renders and applies the table, replacing any earlier version in one transaction; `changes`
   * (e.g. new `allowedTcpPorts` from a policy update) are kept for later applies. Throws
   * `FW_BAD_INPUT` (bad options) or `NFT_APPLY_FAILED`; on failure the previous table stays.
   */
  async apply(changes: Partial<HubRulesetInput> = {}): Promise<string> {
    const next = { ...this.#opts, ...changes };
    const text = renderHubRuleset(next);
    const { hash } = await applyTable(text, { netns: next.netns });
    this.#opts = next;
    this.#hash = hash;
    this.#log.info({ hash, allowedTcpPorts: next.allowedTcpPorts }, 'firewall applied');
    return hash;
  }

  /** Same as {@link apply} with the constructor's options; the service start hook. */
  async start(): Promise<void> {
    await this.apply();
  }

  /** Counters of the named rules (see HUB_COUNTERS), read from the kernel; empty when not applied. */
  async counters(): Promise<Map<string, NftCounter>> {
    const items = await listTable({ netns: this.#opts.netns });
    return items ? ruleCounters(items) : new Map();
  }

  /** Deletes the table (other tables stay). Safe to call twice. */
  async stop(): Promise<void> {
    const removed = await deleteTable({ netns: this.#opts.netns });
    this.#hash = undefined;
    if (removed) this.#log.info('firewall removed');
  }
}
