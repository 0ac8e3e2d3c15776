/**
 * What a SIGHUP changes in a running agent (agent.json read again, checked in full first: a bad
 * file changes nothing). Only `b2b.databases` applies live (the B2B databases served and their
 * sharing policies, see `b2b/owner.ts`); every other setting is wired into a running part (the
 * local API's listener, the tunnel, the firewall's interface, timers) and keeps its value until the
 * next restart, which the reload says by name.
 */
import { isDeepStrictEqual } from 'node:util';
import type { AgentConfig } from './config.js';

/** Settings a reload applies to the running agent. */
export const LIVE_SETTINGS: readonly string[] = ['b2b.databases'];

/** The settings (`section.key`, or `key` for a scalar) whose value differs between two configurations. */
export function changedSettings(before: AgentConfig, after: AgentConfig): string[] {
  const changed: string[] = [];
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  for (const key of [...keys].sort()) {
    const a: unknown = (before as unknown as Record<string, unknown>)[key];
    const b: unknown = (after as unknown as Record<string, unknown>)[key];
    if (isPlainObject(a) && isPlainObject(b)) {
      for (const sub of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) if (!isDeepStrictEqual(a[sub], b[sub])) changed.push(`${key}.${sub}`);
    } else if (!isDeepStrictEqual(a, b)) {
      changed.push(key);
    }
  }
  return changed;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
