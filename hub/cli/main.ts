#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { EXIT } from '../../protocol/exit-codes.js';
import { VERSION } from '../../protocol/version.js';
import { reportError } from './action.js';
import { registerAuditCommands } from './audit.js';
import { registerCountryCommands, registerTokenCommands } from './country.js';
import { registerDbCommands } from './db.js';
import { registerHubCommands } from './hub-init.js';
import { registerPkiCommands } from './pki.js';
import { registerStatusCommand } from './status.js';

const EXIT_HELP = `
Exit codes:
  0   success              64  bad flags or arguments   65  input refused (CSR, serial, token)
  66  input, CA or country missing                   69  hub unreachable
  73  output or country already exists              75  conflict, retry
  77  key file permissions or operator not allowed  78  bad configuration
  1   unexpected error`;

/** Builds the `ncbnet` operator CLI. */
export function buildProgram(): Command {
  const program = new Command('ncbnet')
    .description('ncbnet operator CLI: the hub daemon, its CA, member countries and enrollment tokens')
    .version(VERSION)
    .addHelpText('after', EXIT_HELP)
    .exitOverride()
    .showHelpAfterError();
  registerHubCommands(program);
  registerPkiCommands(program);
  registerCountryCommands(program);
  registerTokenCommands(program);
  registerAuditCommands(program);
  registerStatusCommand(program);
  registerDbCommands(program);
  return program;
}

try {
  await buildProgram().parseAsync(process.argv);
} catch (err) {
  process.exitCode = err instanceof CommanderError && err.exitCode === 0 ? EXIT.ok : reportError(err);
}
