import type { Command } from 'commander';
import { EXIT } from '../../protocol/exit-codes.js';
import { loadHubConfig } from '../config.js';
import { HubDaemon } from '../daemon.js';
import { createLogger } from '../log.js';
import { reportError } from './action.js';

interface RunOptions {
  state: string;
  config?: string;
}

/**
 * `ncbnet hub run`: validates the config (exit 78 listing every problem), starts the hub, and
 * runs until SIGTERM or SIGINT, then stops everything in reverse order (nats-server included)
 * and exits 0. A second signal while stopping exits at once.
 */
async function run(opts: RunOptions): Promise<void> {
  let config;
  try {
    config = await loadHubConfig(opts.config);
  } catch (err) {
    process.exitCode = reportError(err);
    return;
  }
  const log = createLogger(config.log.level, 'ncbnet-hub');
  const daemon = new HubDaemon({ stateDir: opts.state, config, log });
  let stopping: Promise<void> | undefined;
  let markStopped = (): void => undefined;
  const stopped = new Promise<void>((resolve) => {
    markStopped = resolve;
  });
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn({ signal }, 'second signal while stopping; exiting now');
      process.exit(EXIT.failure);
    }
    log.info({ signal }, 'stopping');
    stopping = daemon.stop().then(() => {
      process.exitCode = EXIT.ok;
      markStopped();
    });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  try {
    await daemon.start();
  } catch (err) {
    log.fatal({ err }, 'hub failed to start');
    await daemon.stop();
    // Also one line on stderr for the operator at the terminal; the JSON log is for machines.
    const code = reportError(err);
    process.exitCode = code === EXIT.failure ? EXIT.unavailable : code;
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
    return;
  }
  // Runs until a signal; the listening servers keep the event loop alive meanwhile.
  await stopped;
}

export function registerHubRun(hub: Command): void {
  hub
    .command('run')
    .description('run the hub daemon (broker, registry, enrollment and admin API, router, WireGuard) until SIGTERM')
    .requiredOption('--state <dir>', 'hub state directory made by `ncbnet hub init`')
    .option('--config <file>', 'hub.json (every key optional; see docs/architecture.md)')
    .action(run);
}
