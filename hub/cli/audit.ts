import { InvalidArgumentError, Option, type Command } from 'commander';
import { AUDIT_CHAIN_BROKEN, type AuditRecord, type ChainVerdict } from '../../protocol/audit.js';
import { isCountryCode } from '../../protocol/country.js';
import { isUlid } from '../../protocol/envelope.js';
import { EXIT } from '../../protocol/exit-codes.js';
import { formatTable } from '../../protocol/text-table.js';
import { adminRequest, resolveConnection, type ConnectionFlags } from './admin-client.js';
import { action, print, printJson } from './action.js';
import { withConnection } from './country.js';

interface Flags extends ConnectionFlags {
  json?: boolean;
}

/** Checks a message id while parsing, so a typo is a usage error (64) before anything goes over the wire. */
function messageIdArg(id: string): string {
  if (!isUlid(id)) throw new InvalidArgumentError(`not a ULID (26 Crockford base32 characters) (got ${JSON.stringify(id)})`);
  return id;
}

/** Checks a country code while parsing, like {@link messageIdArg}. */
function countryArg(code: string): string {
  const upper = code.trim().toUpperCase();
  if (!isCountryCode(upper)) throw new InvalidArgumentError(`not an ISO 3166-1 alpha-2 country code (got ${JSON.stringify(code)})`);
  return upper;
}

const COLUMNS = ['seq', 'at', 'event', 'from', 'to', 'code', 'actor'];
function row(r: AuditRecord): (string | number)[] {
  return [r.seq, r.at, r.event, r.from ?? r.country ?? '', (r.to ?? []).join(','), r.code ?? '', r.actor ?? ''];
}

/**
 * `ncbnet audit verify|show`: the hub's hash-chained audit log through the admin API. `verify`
 * exits 0 when the chain holds and 65 (data error) when it does not, so a cron job or a monitoring
 * check can act on the exit code alone.
 */
export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description("the hub's hash-chained audit log");
  withConnection(audit.command('verify').description('check every link of the audit chain (exit 65 when broken)')).action(
    action(async (flags: Flags) => {
      const verdict = await adminRequest<ChainVerdict>(await resolveConnection(flags), 'GET', '/v1/admin/audit/verify');
      if (flags.json) printJson(verdict);
      if (verdict.ok) {
        if (!flags.json) print(`audit chain intact: ${verdict.count} record${verdict.count === 1 ? '' : 's'}`);
        return;
      }
      // Not thrown: the request worked, the answer is the finding; report it like any coded error.
      process.stderr.write(`ncbnet: ${AUDIT_CHAIN_BROKEN}: record ${verdict.seq}: ${verdict.reason}\n`);
      process.exitCode = EXIT.dataErr;
    }),
  );
  withConnection(
    audit
      .command('show')
      .addOption(new Option('--message <id>', 'message id (ULID): how the hub routed it').argParser(messageIdArg).conflicts('country'))
      .addOption(new Option('--country <code>', 'country code: its membership events (added, enrolled, suspended, revoked…)').argParser(countryArg))
      .description('the audit records of one message, or the membership events of one country'),
  ).action(
    action(async (flags: Flags & { message?: string; country?: string }) => {
      if (flags.message === undefined && flags.country === undefined) throw new InvalidArgumentError('pass --message ID or --country CODE');
      const path = flags.message !== undefined ? `/v1/admin/audit/messages/${flags.message}` : `/v1/admin/audit/countries/${flags.country ?? ''}`;
      const records = await adminRequest<AuditRecord[]>(await resolveConnection(flags), 'GET', path);
      if (flags.json) return printJson(records);
      const what = flags.message !== undefined ? `message ${flags.message}` : `country ${flags.country ?? ''}`;
      print(records.length ? formatTable(COLUMNS, records.map(row)) : `no audit records for ${what}`);
    }),
  );
}
