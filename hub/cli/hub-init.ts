import { mkdir, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { hostname } from 'node:os';
import type { Command } from 'commander';
import { initCa } from '../../pki/ca-init.js';
import { CertificateAuthority } from '../../pki/ca.js';
import { createCsr } from '../../pki/csr-create.js';
import { writeFileDurable } from '../../pki/files.js';
import { generateP256, writePrivateKey } from '../../pki/keys.js';
import { splitSans } from '../../pki/profiles.js';
import { formatTable } from '../../protocol/text-table.js';
import { action, print, printJson } from './action.js';

interface InitOptions {
  state: string;
  force?: boolean;
  hubName: string;
  san: string[];
  operator: string;
  json?: boolean;
}

/** Files `hub init` writes besides the CA itself. */
export function identityPaths(stateDir: string) {
  return {
    hubCert: join(stateDir, 'hub', 'hub.crt'),
    hubKey: join(stateDir, 'hub', 'hub.key'),
    operatorCert: join(stateDir, 'operator', 'operator.crt'),
    operatorKey: join(stateDir, 'operator', 'operator.key'),
    operatorCa: join(stateDir, 'operator', 'ca.crt'),
  };
}

/** Generates a key pair here, issues its certificate from `ca`, writes both (key 0600). */
async function issueLocal(ca: CertificateAuthority, kind: 'hub' | 'operator', name: string, certPath: string, keyPath: string, sans: string[] = []) {
  const keys = await generateP256();
  const issued = await ca.issue({ kind, name, csr: await createCsr(kind, name, keys), ...splitSans(sans) });
  await mkdir(join(certPath, '..'), { recursive: true, mode: 0o700 });
  await writePrivateKey(keyPath, keys.privateKey);
  await writeFileDurable(certPath, issued.pem + ca.issuer.toString('pem') + '\n', { exclusive: true });
  return issued;
}

async function init(opts: InitOptions): Promise<void> {
  const result = await initCa(opts.state, { force: opts.force ?? false });
  const ca = await CertificateAuthority.load(opts.state);
  const paths = identityPaths(opts.state);
  if (result.replaced) {
    // The old hub and operator identities belong to the CA that was moved aside; move them too.
    for (const dir of ['hub', 'operator']) {
      await rename(join(opts.state, dir), `${result.replaced}-${dir}`).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
    }
  }
  const hub = await issueLocal(ca, 'hub', opts.hubName, paths.hubCert, paths.hubKey, opts.san);
  const op = await issueLocal(ca, 'operator', opts.operator, paths.operatorCert, paths.operatorKey);
  await writeFileDurable(paths.operatorCa, ca.root.toString('pem') + '\n', { exclusive: true });
  const summary = {
    state: opts.state,
    rootFingerprint: ca.rootFingerprint,
    rootCertificate: ca.paths.rootCert,
    rootKey: ca.paths.rootKey,
    hubCaCertificate: ca.paths.caCert,
    hubCertificate: { path: paths.hubCert, serial: hub.serial, subject: hub.subject, notAfter: hub.notAfter.toISOString(), sans: opts.san },
    operatorCertificate: { path: paths.operatorCert, serial: op.serial, subject: op.subject, notAfter: op.notAfter.toISOString() },
    ...(result.replaced ? { replaced: result.replaced } : {}),
  };
  if (opts.json) return printJson(summary);
  print(`hub CA created in ${opts.state}`);
  print(
    formatTable(
      ['item', 'value'],
      [
        ['root fingerprint (SHA-256)', ca.rootFingerprint],
        ['root certificate', ca.paths.rootCert],
        ['root key (move offline)', ca.paths.rootKey],
        ['hub CA certificate', ca.paths.caCert],
        ['hub certificate', `${paths.hubCert} (${hub.subject}; ${opts.san.join(', ')})`],
        ['operator certificate', `${paths.operatorCert} (${op.subject})`],
        ...(result.replaced ? [['previous CA kept in', result.replaced]] : []),
      ],
    ),
  );
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function registerHubCommands(program: Command): void {
  const hub = program.command('hub').description('the hub: create its CA and identities (run comes with the hub daemon)');
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
        const san = opts.san.length ? opts.san : ['localhost', '127.0.0.1', hostname().toLowerCase()];
        await init({ ...opts, san });
      }),
    );
}
