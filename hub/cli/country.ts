import { Option, type Command } from 'commander';
import { parseReason, REVOCATION_REASONS } from '../../pki/ledger.js';
import { isCountryCode } from '../../protocol/country.js';
import { parseDuration } from '../../protocol/duration.js';
import { ValidationError } from '../../protocol/errors.js';
import { formatTable } from '../../protocol/text-table.js';
import type { CountryRecord } from '../registry/record.js';
import { adminRequest, resolveConnection, type ConnectionFlags } from './admin-client.js';
import { action, print, printJson } from './action.js';
import type { B2bPolicy } from '../../protocol/b2b.js';

interface Flags extends ConnectionFlags {
  json?: boolean;
}

interface TokenInfo {
  id: string;
  country: string;
  createdAt: string;
  expiresAt: string;
  usedAt?: string;
}

/** Checks a country argument before anything goes over the wire. */
function countryArg(code: string): string {
  if (!isCountryCode(code)) {
    throw new ValidationError('CLI_BAD_COUNTRY', 'country', [`CC: not an ISO 3166-1 alpha-2 code in upper case (got ${JSON.stringify(code)})`]);
  }
  return code;
}

const COLUMNS = ['code', 'name', 'status', 'overlay', 'cert serial', 'cert expires', 'last seen'];
function row(c: CountryRecord): string[] {
  return [c.code, c.name, c.status, c.overlayAddress ?? '', c.certSerial ?? '', c.certNotAfter ?? '', c.lastSeen ?? ''];
}

function show(record: CountryRecord, flags: Flags, extra?: unknown): void {
  if (flags.json) return printJson(extra ?? record);
  print(formatTable(COLUMNS, [row(record)]));
}

/** Adds the flags that say how to reach the hub to a command (country, token and audit commands). */
export function withConnection(cmd: Command): Command {
  return cmd
    .option('--state <dir>', 'hub state directory (operator credentials and the running hub URL)', process.env.NCBNET_STATE)
    .option('--hub <url>', 'hub API URL, e.g. https://hub.example.org:8443 (default: from the state directory)', process.env.NCBNET_HUB_URL)
    .option('--operator-dir <dir>', 'directory with operator.crt, operator.key and ca.crt (default: DIR/operator)', process.env.NCBNET_OPERATOR_DIR)
    .option('--json', 'print JSON for scripts');
}

export function registerCountryCommands(program: Command): void {
  const country = program.command('country').description("manage member countries through the running hub's admin API");
  withConnection(country.command('add').argument('<CC>', 'ISO 3166-1 alpha-2 code').requiredOption('--name <name>', 'country name').description('register a country (pending until it enrolls)')).action(
    action(async (code: string, flags: Flags & { name: string }) => {
      const cc = countryArg(code);
      const conn = await resolveConnection(flags);
      const record = await adminRequest<CountryRecord>(conn, 'POST', '/v1/admin/countries', { code: cc, name: flags.name });
      show(record, flags);
      if (!flags.json) print(`next: ncbnet token create ${cc}`);
    }),
  );
  withConnection(country.command('list').description('list every country with its status')).action(
    action(async (flags: Flags) => {
      const list = await adminRequest<CountryRecord[]>(await resolveConnection(flags), 'GET', '/v1/admin/countries');
      if (flags.json) return printJson(list);
      print(list.length ? formatTable(COLUMNS, list.map(row)) : 'no countries registered yet; add one with `ncbnet country add CC --name NAME`');
    }),
  );
  withConnection(country.command('show').argument('<CC>', 'country code').description('one country, with its enrollment tokens')).action(
    action(async (code: string, flags: Flags) => {
      const answer = await adminRequest<{ country: CountryRecord; tokens: TokenInfo[] }>(await resolveConnection(flags), 'GET', `/v1/admin/countries/${countryArg(code)}`);
      if (flags.json) return printJson(answer);
      const c = answer.country;
      print(
        formatTable(
          ['field', 'value'],
          Object.entries(c).map(([k, v]) => [k, showField(k, v)]),
        ),
      );
      if (answer.tokens.length) {
        print('\ntokens:');
        print(formatTable(['id', 'created', 'expires', 'used'], answer.tokens.map((t) => [t.id, t.createdAt, t.expiresAt, t.usedAt ?? ''])));
      }
    }),
  );
  withConnection(country.command('suspend').argument('<CC>', 'country code').option('--reason <text>', 'why (kept in the registry)').description('take a country off the broker and tunnel; its certificate stays valid')).action(
    action(async (code: string, flags: Flags & { reason?: string }) => {
      show(await adminRequest<CountryRecord>(await resolveConnection(flags), 'POST', `/v1/admin/countries/${countryArg(code)}/suspend`, flags.reason ? { reason: flags.reason } : {}), flags);
    }),
  );
  withConnection(country.command('resume').argument('<CC>', 'country code').description('put a suspended country back on the network')).action(
    action(async (code: string, flags: Flags) => {
      show(await adminRequest<CountryRecord>(await resolveConnection(flags), 'POST', `/v1/admin/countries/${countryArg(code)}/resume`), flags);
    }),
  );
  withConnection(
    country
      .command('revoke')
      .argument('<CC>', 'country code')
      .addOption(new Option('--reason <reason>', 'RFC 5280 reason').choices(Object.keys(REVOCATION_REASONS)).makeOptionMandatory())
      .option('--note <text>', 'free text kept in the registry')
      .description('revoke a country: connection dropped, tunnel peer removed, certificates into the CRL'),
  ).action(
    action(async (code: string, flags: Flags & { reason: string; note?: string }) => {
      const body = { reason: parseReason(flags.reason), ...(flags.note ? { note: flags.note } : {}) };
      show(await adminRequest<CountryRecord>(await resolveConnection(flags), 'POST', `/v1/admin/countries/${countryArg(code)}/revoke`, body), flags);
    }),
  );
}

export function registerTokenCommands(program: Command): void {
  const token = program.command('token').description('enrollment tokens');
  withConnection(token.command('create').argument('<CC>', 'country code').option('--ttl <duration>', 'validity, e.g. 30m, 1h, 2d (default 1h, at most 7d)').description('create a single-use enrollment token; it is shown once')).action(
    action(async (code: string, flags: Flags & { ttl?: string }) => {
      const cc = countryArg(code);
      const ttlMs = flags.ttl === undefined ? undefined : parseDuration(flags.ttl, '--ttl');
      const answer = await adminRequest<{ token: string; info: TokenInfo }>(await resolveConnection(flags), 'POST', '/v1/admin/tokens', { country: cc, ...(ttlMs === undefined ? {} : { ttlMs }) });
      if (flags.json) return printJson(answer);
      print(formatTable(['country', 'token id', 'expires'], [[answer.info.country, answer.info.id, answer.info.expiresAt]]));
      print(`\nGive this token to ${cc}'s NCB over a trusted channel; it is not stored and cannot be shown again:\n\n${answer.token}\n`);
      print(`At the NCB: ncbnet-agent enroll --hub <hub API URL> --token <token> --state /var/lib/ncbnet-agent`);
    }),
  );
}

/** One registry field for the `country show` table: B2B policies as `db → who may ask`, other objects as JSON. */
function showField(key: string, value: unknown): string {
  if (key === 'b2b' && Array.isArray(value)) {
    return (value as B2bPolicy[]).map((p) => `${p.db} → ${p.allow === '*' ? 'every member' : p.allow.join(',')}${p.notifyEnquiries ? ' (enquiries notified)' : ''}`).join('; ');
  }
  return typeof value === 'object' && value !== null ? JSON.stringify(value) : String(value);
}
