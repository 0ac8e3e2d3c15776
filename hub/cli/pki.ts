import { access, readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { CertificateAuthority } from '../../pki/ca.js';
import { crlToPem } from '../../pki/crl.js';
import { isProcessAlive } from '../../pki/file-lock.js';
import { writeFileDurable } from '../../pki/files.js';
import { parseReason } from '../../pki/ledger.js';
import { normalizeSerial } from '../../pki/serial.js';
import { CodedError } from '../../protocol/errors.js';
import { parseDuration } from '../../protocol/duration.js';
import { formatTable } from '../../protocol/text-table.js';
import { readEndpoints } from '../runtime.js';
import { action, print, printJson } from './action.js';

interface StateOpts {
  state: string;
  json?: boolean;
}

async function readInput(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new CodedError('CLI_INPUT_MISSING', `${what}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
  }
}

/** Refuses an existing output file unless `--force`; checked before any work is done. */
async function checkOutput(path: string, force: boolean | undefined): Promise<void> {
  if (!force && (await access(path).then(() => true, () => false))) {
    throw new CodedError('CLI_OUTPUT_EXISTS', `--out: ${path} already exists; pass --force to replace it`);
  }
}

/**
 * The offline commands write the CA journals directly; a hub running on the same directory
 * would not see those records (its CRL would miss an offline revocation), so they refuse then.
 */
async function refuseIfHubRuns(state: string): Promise<void> {
  const running = await readEndpoints(state);
  if (running && isProcessAlive(running.pid)) {
    throw new CodedError('CLI_HUB_RUNNING', `a hub (pid ${running.pid}) is running on ${state}; use the admin API (ncbnet country …) or stop the hub first`);
  }
}

async function sign(opts: StateOpts & { country: string; csr: string; out: string; lifetime?: string; force?: boolean }): Promise<void> {
  const lifetimeMs = opts.lifetime === undefined ? undefined : parseDuration(opts.lifetime, '--lifetime');
  const csr = await readInput(opts.csr, '--csr');
  await checkOutput(opts.out, opts.force);
  await refuseIfHubRuns(opts.state);
  const ca = await CertificateAuthority.load(opts.state);
  const issued = await ca.issue({ kind: 'country', name: opts.country, csr, ...(lifetimeMs === undefined ? {} : { lifetimeMs }) });
  await writeFileDurable(opts.out, issued.pem);
  const facts = { serial: issued.serial, subject: issued.subject, notBefore: issued.notBefore.toISOString(), notAfter: issued.notAfter.toISOString(), certificate: opts.out };
  if (opts.json) return printJson({ ...facts, chain: issued.chainPem });
  print(formatTable(['serial', 'subject', 'not after', 'written to'], [[facts.serial, facts.subject, facts.notAfter, opts.out]]));
  print('\nCA chain to send with the certificate (hub CA, then root):');
  print(issued.chainPem);
}

async function revoke(opts: StateOpts & { serial: string; reason: string }): Promise<void> {
  const reason = parseReason(opts.reason);
  const serial = normalizeSerial(opts.serial);
  await refuseIfHubRuns(opts.state);
  const ca = await CertificateAuthority.load(opts.state);
  const cert = await ca.revoke(serial, reason);
  if (opts.json) return printJson(cert);
  print(formatTable(['serial', 'subject', 'revoked at', 'reason'], [[cert.serial, cert.subject, cert.revokedAt ?? '', reason]]));
  print('Publish a new CRL (ncbnet pki crl) so relying parties learn of it.');
}

async function crl(opts: StateOpts & { out: string; lifetime?: string }): Promise<void> {
  const lifetimeMs = opts.lifetime === undefined ? undefined : parseDuration(opts.lifetime, '--lifetime');
  const ca = await CertificateAuthority.load(opts.state);
  const list = await ca.crl(lifetimeMs === undefined ? {} : { lifetimeMs });
  await writeFileDurable(opts.out, crlToPem(list));
  const facts = { out: opts.out, revoked: list.entries.length, thisUpdate: list.thisUpdate.toISOString(), nextUpdate: list.nextUpdate?.toISOString() };
  if (opts.json) return printJson(facts);
  print(formatTable(['written to', 'revoked', 'this update', 'next update'], [[opts.out, facts.revoked, facts.thisUpdate, facts.nextUpdate ?? '']]));
}

async function list(opts: StateOpts): Promise<void> {
  const ca = await CertificateAuthority.load(opts.state);
  const now = Date.now();
  const certs = ca.ledger.list().map((c) => ({ ...c, status: c.revokedAt ? 'revoked' : Date.parse(c.notAfter) <= now ? 'expired' : 'valid' }));
  if (opts.json) return printJson(certs);
  print(formatTable(['serial', 'kind', 'name', 'status', 'not after', 'reason'], certs.map((c) => [c.serial, c.kind, c.name, c.status, c.notAfter, c.reason ?? ''])));
}

export function registerPkiCommands(program: Command): void {
  const pki = program.command('pki').description('offline CA operations on a hub state directory (for countries with poor connectivity)');
  pki
    .command('sign')
    .description('sign a country CSR: the country comes from --country, never from the CSR')
    .requiredOption('--state <dir>', 'hub state directory')
    .requiredOption('--country <CC>', 'ISO 3166-1 alpha-2 code the certificate is for')
    .requiredOption('--csr <file>', 'PKCS#10 request (PEM), P-256 key')
    .requiredOption('--out <file>', 'where to write the certificate (PEM)')
    .option('--lifetime <duration>', 'certificate lifetime, e.g. 7d (default 7d)')
    .option('--force', 'replace --out if it exists')
    .option('--json', 'print the result as JSON')
    .action(action(sign));
  pki
    .command('revoke')
    .description('revoke a certificate by serial (final)')
    .requiredOption('--state <dir>', 'hub state directory')
    .requiredOption('--serial <hex>', 'serial number (hex, colons allowed)')
    .requiredOption('--reason <reason>', 'unspecified | keyCompromise | caCompromise | affiliationChanged | superseded | cessationOfOperation | privilegeWithdrawn')
    .option('--json', 'print the result as JSON')
    .action(action(revoke));
  pki
    .command('crl')
    .description('write a fresh CRL (PEM, X509 CRL) of every revoked, unexpired certificate')
    .requiredOption('--state <dir>', 'hub state directory')
    .requiredOption('--out <file>', 'where to write the CRL')
    .option('--lifetime <duration>', 'time until nextUpdate (default 24h)')
    .option('--json', 'print the result as JSON')
    .action(action(crl));
  pki
    .command('list')
    .description('list every certificate this CA issued, with its status')
    .requiredOption('--state <dir>', 'hub state directory')
    .option('--json', 'print the result as JSON')
    .action(action(list));
}
