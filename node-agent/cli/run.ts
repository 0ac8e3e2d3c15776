import type { Command } from 'commander';
import { EXIT } from '../../protocol/exit-codes.js';
import { loadAgentConfig } from '../config.js';
import { AgentDaemon } from '../daemon.js';
import { createAgentLogger } from '../log.js';
import { agentReportError } from './output.js';

interface RunFlags {
  state: string;
  config?: string;
}

/**
 * `ncbnet-agent run`: validates the config (exit 78 listing every problem), starts from the
 * last-known-good bundle, and runs until SIGTERM/SIGINT; then stops in reverse order (the tunnel
 * interface and the `inet ncbnet` table are removed, the outbox and inbox stay on disk) and exits 0.
 * SIGHUP reads agent.json again (`config-reload.ts`): `b2b.databases` apply at once, other changed
 * settings are named and wait for a restart, and a bad file changes nothing.
 */
async function run(flags: RunFlags): Promise<void> {
  let config;
  try {
    config = await loadAgentConfig(flags.config);
  } catch (err) {
    process.exitCode = agentReportError(err);
    return;
  }
  const log = createAgentLogger(config.log.level);
  const daemon = new AgentDaemon({ stateDir: flags.state, config, log });
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn({ signal }, 'second signal while stopping; exiting now');
      process.exit(EXIT.failure);
    }
    stopping = true;
    log.info({ signal }, 'stopping');
    // Exit explicitly: a first broker connection still being retried would keep the loop alive.
    void daemon.stop().then(() => process.exit(EXIT.ok));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // agent.json again: checked in full first; a bad file or database changes nothing.
  process.on('SIGHUP', () => {
    void (async () => {
      try {
        const next = await loadAgentConfig(flags.config);
        const { applied, needRestart } = await daemon.reload(next);
        log.info({ applied }, 'configuration reloaded');
        if (needRestart.length > 0) log.warn({ settings: needRestart }, 'changed settings take effect at the next restart');
      } catch (err) {
        log.error({ err }, 'configuration not reloaded; the one in force stays');
      }
    })();
  });
  try {
    await daemon.start();
  } catch (err) {
    log.fatal({ err }, 'agent failed to start');
    await daemon.stop();
    const code = agentReportError(err);
    process.exit(code === EXIT.failure ? EXIT.unavailable : code);
  }
}

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('run the agent (tunnel, firewall, relay, local API, heartbeats, renewal) until SIGTERM; SIGHUP reloads agent.json (b2b.databases apply at once)')
    .option('--state <dir>', 'agent state directory', process.env.NCBNET_AGENT_STATE ?? '/var/lib/ncbnet-agent')
    .option('--config <file>', 'agent.json (every key optional; see deploy/agent.example.json)')
    .action(run);
}
