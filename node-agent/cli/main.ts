#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { EXIT } from '../../protocol/exit-codes.js';
import { VERSION } from '../../protocol/version.js';
import { agentReportError } from './output.js';
import { registerEnroll } from './enroll.js';
import { registerInboxCommand } from './inbox.js';
import { registerQueryCommand } from './query.js';
import { registerRun } from './run.js';
import { registerSendCommand } from './send.js';
import { registerStatusCommand } from './status.js';
import { registerUserCommand } from './user.js';

const EXIT_HELP = `
Exit codes:
  0   success              64  bad flags or arguments   65  input refused (bad message, unknown recipient)
  2   query: no hit        66  not enrolled, unknown message id, user or missing file
  69  agent or hub unreachable, or not ready             75  temporary: timeout, disk full, users file busy; retry
  73  already enrolled (use --force), user exists        77  token refused, file permissions, role forbids it
  78  bad configuration                                 1   unexpected error`;

/** Builds the `ncbnet-agent` CLI, one line per command. */
export function buildAgentProgram(): Command {
  const program = new Command('ncbnet-agent')
    .description('ncbnet node agent for a National Central Bureau: enroll once, run unattended, send and receive messages')
    .version(VERSION)
    .addHelpText('after', EXIT_HELP)
    .exitOverride()
    .showHelpAfterError();
  registerEnroll(program);
  registerRun(program);
  registerSendCommand(program);
  registerInboxCommand(program);
  registerStatusCommand(program);
  registerQueryCommand(program);
  registerUserCommand(program);
  return program;
}

try {
  await buildAgentProgram().parseAsync(process.argv);
} catch (err) {
  process.exitCode = err instanceof CommanderError && err.exitCode === 0 ? EXIT.ok : agentReportError(err);
}
