// Typed wrapper over nft(8) for the one table ncbnet owns, `inet ncbnet`. Other tables (the
// host's own firewall, docker's, an operator's) are never read, flushed nor replaced.
import { createHash } from 'node:crypto';
import { execFailure, run, tryRun } from './exec.js';
import { NFT_APPLY_FAILED, NFT_FOREIGN_TABLE, NFT_PARSE_FAILED, SystemError } from './errors.js';

/** The family and name of the only table ncbnet manages. */
export const NCBNET_TABLE = 'inet ncbnet';

/** Options shared by every `nft` call. */
export interface NftOptions {
  /** Network namespace to act in (default: the caller's). */
  netns?: string | undefined;
}

/** A rule's counter, read back from the kernel. */
export interface NftCounter {
  packets: number;
  bytes: number;
}

/** SHA-256 (hex) of a ruleset's text, as reported in heartbeats and metrics. */
export function rulesetHash(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

// Quoted strings (comments, interface names) may hold any word; blank them before looking at keywords.
function withoutStringsAndComments(text: string): string {
  return text.replace(/"[^"\n]*"/g, '""').replace(/#[^\n]*/g, '');
}

/**
 * Throws `NFT_FOREIGN_TABLE` unless `ruleset` is exactly one `table inet ncbnet { … }` block: no
 * other table, no `ruleset` command, nothing after the block. This is what keeps
 * {@link applyTable} from touching anything but ncbnet's own table.
 */
export function assertOwnTableOnly(ruleset: string): void {
  const text = withoutStringsAndComments(ruleset).trim();
  const problems: string[] = [];
  if (!/^table\s+inet\s+ncbnet\s*\{/.test(text)) problems.push('must begin with "table inet ncbnet {"');
  if ((text.match(/\btable\b/g) ?? []).length !== 1) problems.push('must declare exactly one table');
  if (/\bruleset\b/.test(text)) problems.push('must not act on the whole ruleset');
  let depth = 0;
  let closedAt = -1;
  for (let i = 0; i < text.length && closedAt < 0; i++) {
    if (text[i] === '{') depth++;
    else if (text[i] === '}' && --depth === 0) closedAt = i;
  }
  if (closedAt < 0) problems.push('the table block is not closed');
  else if (text.slice(closedAt + 1).trim() !== '') problems.push('must end with the table block');
  if (problems.length) throw new SystemError(NFT_FOREIGN_TABLE, `ruleset refused:\n  ${problems.join('\n  ')}`);
}

/**
 * The `nft -f` script that replaces the table in one transaction: declaring the table first
 * makes the delete valid when it does not exist yet, and the kernel commits the batch as a
 * whole, so packets see the old rules or the new, never none (nftables wiki, "Atomic rule
 * replacement"; nft 1.0.6 has no `destroy table`).
 */
export function atomicReplaceScript(ruleset: string): string {
  assertOwnTableOnly(ruleset);
  return `table ${NCBNET_TABLE}\ndelete table ${NCBNET_TABLE}\n${ruleset.trimEnd()}\n`;
}

/**
 * Replaces table `inet ncbnet` with `ruleset` atomically (`nft -f -`) and resolves with the
 * SHA-256 of `ruleset`. Throws `NFT_FOREIGN_TABLE` for a ruleset that reaches outside the table,
 * `NFT_APPLY_FAILED` (with nft's stderr) when nft refuses it; the old table then stays in force.
 */
export async function applyTable(ruleset: string, opts: NftOptions = {}): Promise<{ hash: string }> {
  await run('nft', ['-f', '-'], { input: atomicReplaceScript(ruleset), netns: opts.netns, errorCode: NFT_APPLY_FAILED });
  return { hash: rulesetHash(ruleset) };
}

/** Checks `ruleset` with the kernel without committing it (`nft -c -f -`); throws like {@link applyTable}. */
export async function checkTable(ruleset: string, opts: NftOptions = {}): Promise<void> {
  await run('nft', ['-c', '-f', '-'], { input: atomicReplaceScript(ruleset), netns: opts.netns, errorCode: NFT_APPLY_FAILED });
}

const NO_TABLE = /No such file or directory/;

/** Deletes table `inet ncbnet`; resolves false when it was not there. */
export async function deleteTable(opts: NftOptions = {}): Promise<boolean> {
  const args = ['delete', 'table', 'inet', 'ncbnet'];
  const r = await tryRun('nft', args, { netns: opts.netns });
  if (r.exitCode === 0) return true;
  if (NO_TABLE.test(r.stderr)) return false;
  throw execFailure('nft', args, r, { netns: opts.netns, errorCode: NFT_APPLY_FAILED });
}

/** One entry of libnftables' JSON output (`{ table: … }`, `{ chain: … }`, `{ rule: … }`, …). */
export type NftJsonItem = Record<string, unknown>;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Table `inet ncbnet` as libnftables JSON (`nft -j list table inet ncbnet`, see
 * libnftables-json(5)): the `nftables` array without its metainfo entry. Undefined when the
 * table does not exist.
 */
export async function listTable(opts: NftOptions = {}): Promise<NftJsonItem[] | undefined> {
  const args = ['-j', 'list', 'table', 'inet', 'ncbnet'];
  const r = await tryRun('nft', args, { netns: opts.netns });
  if (r.exitCode !== 0) {
    if (NO_TABLE.test(r.stderr)) return undefined;
    throw execFailure('nft', args, r, { netns: opts.netns, errorCode: NFT_APPLY_FAILED });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(r.stdout);
  } catch (cause) {
    throw new SystemError(NFT_PARSE_FAILED, 'nft -j list table printed invalid JSON', { cause });
  }
  if (!isRecord(parsed) || !Array.isArray(parsed.nftables)) {
    throw new SystemError(NFT_PARSE_FAILED, 'nft -j list table: no "nftables" array');
  }
  return parsed.nftables.filter((item): item is NftJsonItem => isRecord(item) && !('metainfo' in item));
}

/**
 * The counters of rules that carry a `comment`, keyed by it (the hub names its drop rules so
 * metrics and tests can find them). Pure; takes {@link listTable}'s result.
 */
export function ruleCounters(items: readonly NftJsonItem[]): Map<string, NftCounter> {
  const counters = new Map<string, NftCounter>();
  for (const item of items) {
    const rule = item.rule;
    if (!isRecord(rule) || typeof rule.comment !== 'string' || !Array.isArray(rule.expr)) continue;
    for (const expr of rule.expr as unknown[]) {
      const counter = isRecord(expr) ? expr.counter : undefined;
      if (isRecord(counter) && typeof counter.packets === 'number' && typeof counter.bytes === 'number') {
        counters.set(rule.comment, { packets: counter.packets, bytes: counter.bytes });
      }
    }
  }
  return counters;
}
