import type { Command } from 'commander';
import { EXIT } from '../../protocol/exit-codes.js';
import { formatTable } from '../../protocol/text-table.js';
import { agentAction, agentPrint, agentPrintJson } from './output.js';
import { connect, withConnection, type ConnectionFlags } from './connection.js';

interface StatusFlags extends ConnectionFlags {
  json?: boolean;
}

const yesNo = (b: boolean): string => (b ? 'yes' : 'no');

/**
 * `ncbnet-agent status [ID]`: without ID, the agent (readiness and summary; exit 69 when it is
 * not ready, so scripts can wait on it); with ID, where that message is.
 */
export function registerStatusCommand(program: Command): void {
  withConnection(
    program
      .command('status')
      .argument('[id]', 'id of a message sent through this agent')
      .description('show the running agent (exit 69 when not ready), or where a sent message is'),
  )
    .option('--json', 'print JSON for scripts')
    .action(
      agentAction(async (id: string | undefined, flags: StatusFlags) => {
        const client = await connect(flags);
        if (id !== undefined) {
          const status = await client.status(id);
          if (flags.json) return agentPrintJson(status);
          const rows: string[][] = [
            ['id', status.id],
            ['state', status.state],
            ['to', Array.isArray(status.to) ? status.to.join(',') : status.to],
            ['accepted', status.acceptedAt],
          ];
          if (status.submittedAt) rows.push(['submitted', status.submittedAt]);
          if (status.rejectedAt) rows.push(['rejected', status.rejectedAt]);
          if (status.rejection) rows.push(['rejection', [status.rejection.code, ...status.rejection.problems].join('; ')]);
          agentPrint(formatTable(['field', 'value'], rows));
          // Receipts per recipient (delivered when stored at the NCB, read when its application acked it).
          const receipts = Object.entries(status.recipients ?? {}).sort(([a], [b]) => a.localeCompare(b));
          if (receipts.length > 0) agentPrint(`\n${formatTable(['recipient', 'receipt', 'at', 'reason'], receipts.map(([cc, r]) => [cc, r.state, r.at, r.reason ?? '']))}`);
          return;
        }
        const [readiness, summary] = await Promise.all([client.readiness(), client.summary()]);
        if (!readiness.ready) process.exitCode = EXIT.unavailable;
        if (flags.json) return agentPrintJson({ ...summary, ...readiness });
        const rows: string[][] = [
          ['country', summary.country],
          ['version', summary.version],
          ['ready', yesNo(readiness.ready)],
          ['connected', yesNo(summary.connected)],
          ['outbox', String(summary.outboxDepth)],
          ['inbox unacked', String(summary.inboxUnacked)],
          ...Object.entries(readiness.checks).map(([name, ok]) => [`check ${name}`, ok ? 'ok' : 'FAILING']),
        ];
        agentPrint(formatTable(['field', 'value'], rows));
      }),
    );
}
