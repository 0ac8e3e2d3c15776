import type { Command } from 'commander';
import { CodedError, hasCode } from '../../protocol/errors.js';
import { formatTable } from '../../protocol/text-table.js';
import type { CountryHealthJson, HubStatus } from '../metrics/status.js';
import { METRICS_STATUS_UNAVAILABLE } from '../metrics/errors.js';
import { adminRequest, CLI_HUB_UNREACHABLE, resolveConnection, type ConnectionFlags } from './admin-client.js';
import { action, print, printJson } from './action.js';
import { withConnection } from './country.js';

interface Flags extends ConnectionFlags {
  json?: boolean;
}

/** `42s`, `5m`, `3h`, `2d`: how long ago (or, negative, how far ahead) `iso` is from `nowMs`. */
export function age(iso: string | null, nowMs: number): string {
  if (iso === null) return '-';
  const s = Math.round((nowMs - Date.parse(iso)) / 1000);
  const abs = Math.abs(s);
  const text = abs < 120 ? `${abs}s` : abs < 7200 ? `${Math.round(abs / 60)}m` : abs < 172_800 ? `${Math.round(abs / 3600)}h` : `${Math.round(abs / 86_400)}d`;
  return s >= 0 ? `${text} ago` : `in ${text}`;
}

const yesNo = (v: boolean | null): string => (v === null ? '-' : v ? 'yes' : 'no');

const COLUMNS = ['code', 'status', 'connected', 'last seen', 'handshake', 'backlog', 'cert expires', 'policy in sync'];

function row(c: CountryHealthJson, nowMs: number): (string | number)[] {
  return [
    c.code,
    c.status,
    yesNo(c.connected),
    age(c.lastSeen, nowMs),
    age(c.lastHandshake, nowMs),
    c.deliveryPending ?? '-',
    c.certNotAfter === null ? '-' : `${c.certNotAfter.slice(0, 10)} (${age(c.certNotAfter, nowMs)})`,
    yesNo(c.policyInSync),
  ];
}

/** `ncbnet status`: one line per country from `GET /v1/admin/status`; `-` where a value is unknown. */
export function registerStatusCommand(program: Command): void {
  withConnection(program.command('status').description('every country: connected, last seen, tunnel handshake, backlog, certificate expiry, policy in sync')).action(
    action(async (flags: Flags) => {
      const status = await adminRequest<HubStatus>(await resolveConnection(flags), 'GET', '/v1/admin/status').catch((err: unknown) => {
        // A hub still starting answers, but cannot say yet: unavailable (69) like an absent one.
        if (hasCode(err, METRICS_STATUS_UNAVAILABLE)) throw new CodedError(CLI_HUB_UNREACHABLE, err.message, { cause: err });
        throw err;
      });
      if (flags.json) return printJson(status);
      const nowMs = Date.parse(status.generatedAt);
      print(status.countries.length ? formatTable(COLUMNS, status.countries.map((c) => row(c, nowMs))) : 'no countries registered yet; add one with `ncbnet country add CC --name NAME`');
      const failed = Object.entries(status.sources).flatMap(([name, state]) => (state === 'failed' ? [name] : []));
      const notes = [`broker ${status.hub.brokerUp ? 'up' : 'DOWN'}`, `urgent overdue ${status.hub.urgentOverdue}`];
      if (failed.length) notes.push(`unknown from ${failed.join(', ')} (did not answer)`);
      print(`\n${notes.join('; ')}`);
    }),
  );
}
