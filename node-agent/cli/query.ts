import { readFile } from 'node:fs/promises';
import { Argument, Option, type Command } from 'commander';
import { CodedError } from '../../protocol/errors.js';
import { EXIT, exitCodeFor } from '../../protocol/exit-codes.js';
import { MAX_RESULTS, QUERY_SERVICES, type QueryHit, type QueryService, type StoredRecord } from '../../protocol/query.js';
import { formatTable } from '../../protocol/text-table.js';
import { localB2bQuery, localQuery, type LocalQuery } from '../query/local-client.js';
import type { B2bHit } from '../../protocol/b2b.js';
import { AGENT_CLI_BAD_FLAG } from '../local-api/errors.js';
import { agentPrint, agentPrintJson, agentReportError } from './output.js';
import { localApiOf, withConnection, type ConnectionFlags } from './connection.js';

interface QueryFlags extends ConnectionFlags {
  number?: string;
  country?: string;
  vin?: string;
  objectId?: string;
  serial?: string;
  make?: string;
  id?: string;
  name?: string;
  limit?: number;
  put?: string;
  delete?: boolean;
  json?: boolean;
  db?: string;
  key?: string;
}

/** `query b2b`: another country's national database, not one of the hub's. */
const B2B = 'b2b';

/** Exit status when the query worked and nothing matched: not 1, which is an unexpected error. */
export const EXIT_NO_HIT = 2;

export const QUERY_EXIT_HELP = `
Exit codes:
  0   hit (or put/delete done)   2   no hit: nothing matched (not an error)
  65  key or record refused       69  agent or hub unreachable, or no hub serves the database
  75  no answer in time, retry    77  not the record's owner, this country's certificate refused,
                                     or (b2b) the owner's policy does not let this country query
  64  bad flags                   1   unexpected error`;

/**
 * Exit codes only queries give (QUERY_* and B2B_* are in protocol/exit-codes.ts): a hub or an
 * owner refusing the certificate this agent signed with is a matter of permission here.
 */
const EXIT_BY_CODE: Readonly<Record<string, number>> = {
  ENVELOPE_CERT_REVOKED: EXIT.noPerm,
  ENVELOPE_BAD_CERTIFICATE: EXIT.noPerm,
};

/** A B2B answer: the shared fields of the record, one per line. */
function showB2b(answer: B2bHit): void {
  if (!answer.hit) return agentPrint('no hit');
  const record = answer.record ?? {};
  agentPrint(formatTable(['field', 'value'], Object.entries(record).map(([k, v]) => [k, cell(v)])));
}

/** The key flags each service takes, as `key` field → value. */
function keyOf(service: QueryService, f: QueryFlags): Record<string, string | undefined> {
  switch (service) {
    case 'sltd':
      return { number: f.number, country: f.country };
    case 'smv':
      return { vin: f.vin };
    case 'woa':
      return { objectId: f.objectId };
    case 'firearms':
      return { serial: f.serial, make: f.make };
    case 'nominal':
      return { id: f.id };
  }
}

const KEY_FLAGS: Readonly<Record<string, string>> = { number: '--number', country: '--country', vin: '--vin', objectId: '--object-id', serial: '--serial', make: '--make', id: '--id' };

async function bodyOf(service: QueryService, flags: QueryFlags): Promise<LocalQuery> {
  if (flags.put !== undefined) {
    const text = flags.put === '-' ? await readStdin() : await readFile(flags.put, 'utf8');
    let record: unknown;
    try {
      record = JSON.parse(text);
    } catch (err) {
      throw new CodedError(AGENT_CLI_BAD_FLAG, `--put ${flags.put}: not JSON`, { cause: err });
    }
    return { op: 'put', record: record as Record<string, unknown> };
  }
  if (flags.name !== undefined) {
    if (service !== 'nominal') throw new CodedError(AGENT_CLI_BAD_FLAG, `--name searches nominal only (got ${service}); pass its key flags`);
    return { op: 'search', name: flags.name, ...(flags.limit === undefined ? {} : { limit: flags.limit }) };
  }
  const fields = keyOf(service, flags);
  const missing = Object.entries(fields).filter(([, v]) => v === undefined).map(([k]) => KEY_FLAGS[k] ?? k);
  if (missing.length) throw new CodedError(AGENT_CLI_BAD_FLAG, `${service} needs ${missing.join(' and ')}${service === 'nominal' ? ' (or --name to search)' : ''}`);
  const key = Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, v ?? '']));
  return { op: flags.delete ? 'delete' : 'get', key };
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function cell(v: unknown): string {
  if (v === undefined || v === null) return '-';
  if (Array.isArray(v)) return v.map(cell).join(',') || '-';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return `${v}`;
  return JSON.stringify(v);
}

/** One row per record: its fields (lists joined), then owner and last update. */
function table(records: readonly StoredRecord[]): string {
  const columns: string[] = [];
  for (const r of records) for (const k of Object.keys(r.record)) if (!columns.includes(k)) columns.push(k);
  const rows = records.map((r) => [...columns.map((c) => cell((r.record as unknown as Record<string, unknown>)[c])), r.owner, r.updatedAt.slice(0, 10)]);
  return formatTable([...columns, 'owner', 'updated'], rows);
}

function show(answer: QueryHit): void {
  const records = answer.results ?? (answer.result ? [answer.result] : []);
  if (answer.op === 'delete') return agentPrint(answer.hit ? 'deleted' : 'no such record');
  if (!answer.hit && answer.op !== 'put') return agentPrint('no hit');
  agentPrint(table(records));
  if (answer.truncated) agentPrint(`(more matched; at most ${MAX_RESULTS} shown, use --limit)`);
}

/**
 * `ncbnet-agent query <service>`: one lookup in the hub's databases through the running agent.
 * Exit 0 on a hit, 2 when nothing matched, the error's own code otherwise (see --help).
 */
export function registerQueryCommand(program: Command): void {
  withConnection(
    program
      .command('query')
      .description("look a key up in the hub's shared databases, or (b2b) in another country's national database, through the running agent (exit 0 hit, 2 no hit)")
      .addArgument(new Argument('<service>', `database of the hub, or ${B2B} for another country's national database`).choices([...QUERY_SERVICES, B2B]))
      .option('--number <text>', 'sltd: travel document number')
      .option('--country <CC>', 'sltd: issuing country; b2b: the country that owns the database')
      .option('--db <name>', 'b2b: the database name (e.g. vehicles)')
      .option('--key <text>', 'b2b: the key looked up')
      .option('--vin <text>', 'smv: vehicle identification number')
      .option('--object-id <text>', 'woa: object id or inventory number')
      .option('--serial <text>', 'firearms: serial number')
      .option('--make <text>', 'firearms: manufacturer')
      .option('--id <text>', 'nominal: person id')
      .option('--name <text>', 'nominal: search persons by name (accents, case and word order ignored)')
      .addOption(new Option('--limit <n>', `nominal search: most persons shown (1-${MAX_RESULTS})`).argParser((v) => Number(v)))
      .addOption(new Option('--put <file>', 'store the record in FILE (JSON, - for stdin) as this country').conflicts(['delete', 'name']))
      .option('--delete', 'delete the record with this key (only the country that stored it may)'),
  )
    .option('--json', "print the hub's answer as JSON")
    .addHelpText('after', QUERY_EXIT_HELP)
    .action(async (service: QueryService | typeof B2B, flags: QueryFlags) => {
      try {
        if (service === B2B) {
          const missing = [['--country', flags.country], ['--db', flags.db], ['--key', flags.key]].filter(([, v]) => v === undefined).map(([f]) => f);
          if (missing.length) throw new CodedError(AGENT_CLI_BAD_FLAG, `b2b needs ${missing.join(' and ')}`);
        }
        const body = service === B2B ? undefined : await bodyOf(service, flags);
        const { url, token } = await localApiOf(flags);
        if (service === B2B || body === undefined) {
          const b2b = await localB2bQuery(url, token, (flags.country ?? '').toUpperCase(), flags.db ?? '', flags.key ?? '');
          if (flags.json) agentPrintJson(b2b);
          else showB2b(b2b);
          process.exitCode = b2b.hit ? EXIT.ok : EXIT_NO_HIT;
          return;
        }
        const answer = await localQuery(url, token, service, body);
        if (flags.json) agentPrintJson(answer);
        else show(answer);
        process.exitCode = answer.hit || answer.op === 'put' ? EXIT.ok : EXIT_NO_HIT;
      } catch (err) {
        const code = agentReportError(err);
        process.exitCode = err instanceof CodedError ? (EXIT_BY_CODE[err.code] ?? exitCodeFor(err)) : code;
      }
    });
}
