#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { EXIT } from '../../protocol/exit-codes.js';
import { VERSION } from '../../protocol/version.js';

/**
 * Builds the `ncbnet-agent` CLI. Its commands (enroll, run, send, inbox, status) arrive with the
 * node-agent work; until then it only answers --help and --version, rather than offering
 * commands that do nothing.
 */
export function buildAgentProgram(): Command {
  return new Command('ncbnet-agent')
    .description('ncbnet node agent for a National Central Bureau (enroll, run, send: not built yet)')
    .version(VERSION)
    .exitOverride();
}

try {
  await buildAgentProgram().parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exitCode = err.exitCode === 0 ? EXIT.ok : EXIT.usage;
  else throw err;
}
