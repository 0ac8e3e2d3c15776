import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { isCountryCode } from '../../protocol/country.js';
import { CodedError } from '../../protocol/errors.js';
import { QUERY_SERVICES, type QueryService } from '../../protocol/query.js';
import { formatTable } from '../../protocol/text-table.js';
import { seedRecords, type SeedProgress } from '../db/seed.js';
import { DbStore, bucketName } from '../db/store.js';
import { readEndpoints } from '../runtime.js';
import { identityPaths } from '../state-init.js';
import { CLI_HUB_UNREACHABLE, CLI_NO_CREDENTIALS } from './admin-client.js';
import { action, print, printJson } from './action.js';

interface SeedFlags {
  state: string;
  service: QueryService;
  count: number;
  owner: string;
  seed: number;
  from: number;
  window: number;
  json?: boolean;
}

function positiveInt(what: string, max: number): (text: string) => number {
  return (text) => {
    const n = Number(text);
    if (!Number.isSafeInteger(n) || n < 0 || n > max) throw new InvalidArgumentError(`${what}: a whole number from 0 to ${max} (got ${JSON.stringify(text)})`);
    return n;
  };
}

function countryArg(code: string): string {
  const upper = code.trim().toUpperCase();
  if (!isCountryCode(upper)) throw new InvalidArgumentError(`not an ISO 3166-1 alpha-2 country code (got ${JSON.stringify(code)})`);
  return upper;
}

/**
 * The hub's own broker connection, as the daemon makes it: the hub identity of the state
 * directory (only the hub user may write the database buckets), the URL the running hub wrote.
 */
async function hubConnection(stateDir: string): Promise<NatsConnection> {
  const endpoints = await readEndpoints(stateDir);
  if (!endpoints) throw new CodedError(CLI_HUB_UNREACHABLE, `no hub runs on ${stateDir} (no run/endpoints.json); start it with \`ncbnet hub run --state ${stateDir}\``);
  const ids = identityPaths(stateDir);
  const read = (path: string): Promise<string> =>
    readFile(path, 'utf8').catch((err: unknown) => {
      throw new CodedError(CLI_NO_CREDENTIALS, `cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'}); seeding runs on the hub with its --state DIR`, { cause: err });
    });
  const [cert, key, ca] = await Promise.all([read(ids.hubCert), read(ids.hubKey), read(join(stateDir, 'pki', 'root.crt'))]);
  try {
    return await connect({ servers: endpoints.natsUrl, name: 'ncbnet-db-seed', tls: { cert, key, ca }, noAsyncTraces: true });
  } catch (err) {
    throw new CodedError(CLI_HUB_UNREACHABLE, `cannot connect to the hub's broker at ${endpoints.natsUrl}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

/**
 * `ncbnet db seed`: fills a database bucket with synthetic records (deterministic from `--seed`,
 * no real personal data) for benchmarks and demonstrations, straight into JetStream KV with
 * `--window` writes in flight. Progress goes to stderr once a second; the summary to stdout.
 */
export function registerDbCommands(program: Command): void {
  const db = program.command('db').description("the hub's shared databases (sltd, smv, woa, firearms, nominal)");
  db.command('seed')
    .description('write synthetic records (deterministic, no real personal data) into a database, for benchmarks')
    .requiredOption('--state <dir>', 'state directory of the running hub (its broker URL and hub identity)', process.env.NCBNET_STATE)
    .addOption(new Option('--service <name>', 'database to fill').choices([...QUERY_SERVICES]).makeOptionMandatory())
    .addOption(new Option('--count <n>', 'how many records').argParser(positiveInt('--count', 100_000_000)).makeOptionMandatory())
    .addOption(new Option('--owner <CC>', 'country recorded as owner of every record').argParser(countryArg).default('FR'))
    .addOption(new Option('--seed <n>', 'generator seed: the same seed writes the same records').argParser(positiveInt('--seed', 2 ** 32 - 1)).default(1))
    .addOption(new Option('--from <n>', 'first record index (fill a bucket in several runs)').argParser(positiveInt('--from', 900_000_000)).default(0))
    .addOption(new Option('--window <n>', 'writes in flight at once').argParser(positiveInt('--window', 100_000)).default(1000))
    .option('--json', 'print the summary as JSON')
    .action(
      action(async (flags: SeedFlags) => {
        const nc = await hubConnection(flags.state);
        try {
          const store = await DbStore.open({ nc });
          const progress = (p: SeedProgress): void => {
            const rate = Math.round(p.written / (p.elapsedMs / 1000));
            process.stderr.write(`seeding ${flags.service}: ${p.written}/${p.count} (${Math.floor((100 * p.written) / p.count)}%), ${rate} records/s\n`);
          };
          const summary = await seedRecords({ store, service: flags.service, count: flags.count, owner: flags.owner, seed: flags.seed, from: flags.from, window: flags.window, onProgress: progress });
          const total = await store.count(flags.service);
          if (flags.json) return printJson({ ...summary, from: flags.from, bucket: bucketName(flags.service), bucketRecords: total });
          print(
            formatTable(
              ['service', 'records', 'seed', 'owner', 'seconds', 'records/s', 'bucket', 'in bucket'],
              [[summary.service, summary.count, summary.seed, summary.owner, Number((summary.elapsedMs / 1000).toFixed(1)), summary.recordsPerSecond, bucketName(flags.service), total]],
            ),
          );
        } finally {
          await nc.close();
        }
      }),
    );
}
