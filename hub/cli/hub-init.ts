import { hostname } from 'node:os';
import type { Command } from 'commander';
import { formatTable } from '../../protocol/text-table.js';
import { initHubState } from '../state-init.js';
import { action, print, printJson } from './action.js';
import { registerHubRun } from './hub-run.js';

interface InitOptions {
  state: string;
  force?: boolean;
  hubName: string;
  san: string[];
  operator: string;
  json?: boolean;
}

async function init(opts: InitOptions): Promise<void> {
  const summary = await initHubState({ state: opts.state, force: opts.force ?? false, hubName: opts.hubName, sans: opts.san, operator: opts.operator });
  if (opts.json) return printJson(summary);
  print(`hub CA created in ${opts.state}`);
  print(
    formatTable(
      ['item', 'value'],
      [
        ['root fingerprint (SHA-256)', summary.rootFingerprint],
        ['root certificate', summary.rootCertificate],
        ['root key (move offline)', summary.rootKey],
        ['hub CA certificate', summary.hubCaCertificate],
        ['hub certificate', `${summary.hubCertificate.path} (${summary.hubCertificate.subject}; ${opts.san.join(', ')})`],
        ['operator certificate', `${summary.operatorCertificate.path} (${summary.operatorCertificate.subject})`],
        ...(summary.replaced ? [['previous CA kept in', summary.replaced]] : []),
      ],
    ),
  );
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function registerHubCommands(program: Command): void {
  const hub = program.command('hub').description('the hub: create its CA and identities, run the daemon');
  hub
    .command('init')
    .description('create the root CA (10 y), the hub intermediate CA (2 y), the hub TLS certificate and the first operator certificate')
    .requiredOption('--state <dir>', 'hub state directory')
    .option('--force', 'replace an existing CA (the old one is moved aside, not deleted)')
    .option('--hub-name <name>', 'hub identity name (CN of its certificate)', 'hub-1')
    .option('--san <name>', 'DNS name or IP of the hub in its certificate (repeatable)', collect, [])
    .option('--operator <name>', 'name of the first operator identity', 'admin')
    .option('--json', 'print the result as JSON')
    .action(
      action(async (opts: InitOptions) => {
        // The overlay address is in by default: agents reach the broker and API over the tunnel.
        const san = opts.san.length ? opts.san : ['localhost', '127.0.0.1', '10.77.0.1', hostname().toLowerCase()];
        await init({ ...opts, san });
      }),
    );
  registerHubRun(hub);
}
