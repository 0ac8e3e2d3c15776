import { InvalidArgumentError, type Command } from 'commander';
import { formatTable } from '../../protocol/text-table.js';
import type { InboxItem } from '../relay/types.js';
import { agentAction, agentPrint, agentPrintJson } from './output.js';
import { connect, withConnection, type ConnectionFlags } from './connection.js';

interface InboxFlags extends ConnectionFlags {
  wait?: number;
  limit?: number;
  ack?: boolean;
  json?: boolean;
}

/** A commander parser for a number in [min, max] (a bad value is a usage error, exit 64). */
export function numberIn(min: number, max: number, integer = false): (text: string) => number {
  return (text) => {
    const n = Number(text);
    if (text.trim() === '' || !Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
      throw new InvalidArgumentError(`must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}`);
    }
    return n;
  };
}

const COLUMNS = ['id', 'from', 'kind', 'subject', 'received'];
function row(item: InboxItem): string[] {
  return [item.id, item.envelope.from, item.envelope.kind, item.envelope.subject ?? '', item.receivedAt];
}

/** `ncbnet-agent inbox`: lists (and with --ack, consumes) the messages delivered to this NCB. */
export function registerInboxCommand(program: Command): void {
  withConnection(
    program
      .command('inbox')
      .description('list delivered messages no application has acked yet')
      .option('--wait <seconds>', 'when none is waiting, wait up to this long for one (0-60)', numberIn(0, 60))
      .option('--limit <n>', 'most messages listed (1-1000, default 100)', numberIn(1, 1000, true))
      .option('--ack', 'ack every listed message after printing it (they leave the inbox)'),
  )
    .option('--json', 'print JSON for scripts (the full items, envelopes included)')
    .action(
      agentAction(async (flags: InboxFlags) => {
        const client = await connect(flags);
        let items = await client.inbox({ ...(flags.wait === undefined ? {} : { wait: flags.wait }), ...(flags.limit === undefined ? {} : { limit: flags.limit }) });
        if (flags.ack) {
          // Printed only once acked: a failure half-way leaves the rest in the inbox, not lost.
          const acked: InboxItem[] = [];
          for (const item of items) acked.push(await client.ack(item.id));
          items = acked;
        }
        if (flags.json) return agentPrintJson(items);
        agentPrint(items.length > 0 ? formatTable(COLUMNS, items.map(row)) : 'no messages waiting');
      }),
    );
}
