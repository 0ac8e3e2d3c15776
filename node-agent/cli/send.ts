import { readFile } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { ENVELOPE_KINDS, NOTICE_COLOURS, PRIORITIES } from '../../protocol/envelope.js';
import { formatTable } from '../../protocol/text-table.js';
import { AGENT_CLI_BAD_FLAG, LocalApiError } from '../local-api/errors.js';
import type { MessageDraft } from '../relay/types.js';
import { agentAction, agentPrint, agentPrintJson } from './output.js';
import { connect, withConnection, type ConnectionFlags } from './connection.js';

interface SendFlags extends ConnectionFlags {
  to: string;
  kind: MessageDraft['kind'];
  subject?: string;
  body?: string;
  bodyFile?: string;
  priority?: 'urgent' | 'routine';
  noticeColour?: NonNullable<MessageDraft['notice']>['colour'];
  handling?: 'public' | 'restricted' | 'confidential';
  inReplyTo?: string;
  deletes?: string;
  reason?: string;
  json?: boolean;
}

/** `DE,IT` → `['DE', 'IT']`; `*` stays `*`. The agent judges the codes (one place for the rules). */
function parseRecipients(text: string): MessageDraft['to'] {
  if (text.trim() === '*') return '*';
  return text.split(',').map((cc) => cc.trim().toUpperCase());
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function bodyOf(flags: SendFlags): Promise<string> {
  if (flags.body !== undefined) return flags.body;
  if (flags.bodyFile === undefined) throw new LocalApiError(AGENT_CLI_BAD_FLAG, 'pass the message with --body TEXT or --body-file FILE (- for stdin)');
  return flags.bodyFile === '-' ? readStdin() : readFile(flags.bodyFile, 'utf8');
}

/** `ncbnet-agent send`: hands a message to the running agent; prints its id once it is on disk. */
export function registerSendCommand(program: Command): void {
  // Drafts may carry every kind but `receipt`, which only the agents themselves write.
  const kinds = ENVELOPE_KINDS.filter((k) => k !== 'receipt');
  withConnection(
    program
      .command('send')
      .description('send a message to other NCBs through the running agent (answered once it is on disk in the outbox)')
      .requiredOption('--to <countries>', "recipients: ISO codes separated by commas (DE,IT), or '*' for every member country")
      .addOption(new Option('--kind <kind>', 'message kind').choices(kinds).default('message'))
      .option('--subject <text>', 'subject line')
      .addOption(new Option('--body <text>', 'message text').conflicts('bodyFile'))
      .option('--body-file <path>', 'read the message text from a file (- for stdin)')
      .addOption(new Option('--priority <priority>', 'delivery priority').choices([...PRIORITIES]))
      .addOption(new Option('--notice-colour <colour>', 'notice colour (with --kind notice)').choices([...NOTICE_COLOURS]))
      .addOption(new Option('--handling <code>', 'dissemination restriction; restricted and confidential bodies are encrypted end to end to the recipients (no --subject then)').choices(['public', 'restricted', 'confidential']))
      .option('--in-reply-to <id>', 'id of the message this one answers')
      .option('--deletes <id>', 'with --kind deletion: id of the message every recipient must purge (only its sender may ask)')
      .option('--reason <code>', 'with --kind deletion: why, as a code (e.g. CCF_ORDER)'),
  )
    .option('--json', 'print JSON for scripts')
    .action(
      agentAction(async (flags: SendFlags) => {
        const draft: MessageDraft = {
          kind: flags.kind,
          to: parseRecipients(flags.to),
          body: await bodyOf(flags),
          ...(flags.subject === undefined ? {} : { subject: flags.subject }),
          ...(flags.priority === undefined ? {} : { priority: flags.priority }),
          ...(flags.noticeColour === undefined ? {} : { notice: { colour: flags.noticeColour } }),
          ...(flags.handling === undefined ? {} : { handling: flags.handling }),
          ...(flags.inReplyTo === undefined ? {} : { inReplyTo: flags.inReplyTo }),
          ...(flags.deletes === undefined ? {} : { deletes: flags.deletes }),
          ...(flags.reason === undefined ? {} : { reason: flags.reason }),
        };
        const answer = await (await connect(flags)).send(draft);
        if (flags.json) return agentPrintJson(answer);
        agentPrint(formatTable(['id', 'status'], [[answer.id, answer.status]]));
      }),
    );
}
