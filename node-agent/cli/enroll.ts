import type { Command } from 'commander';
import { formatTable } from '../../protocol/text-table.js';
import { isCountryCode } from '../../protocol/country.js';
import { ValidationError } from '../../protocol/errors.js';
import { agentAction, agentPrint, agentPrintJson } from './output.js';

interface EnrollFlags {
  hub: string;
  token: string;
  state: string;
  country?: string;
  force?: boolean;
  json?: boolean;
}

/** `ncbnet-agent enroll`: one-time onboarding of this NCB with a token from the hub operator. */
export function registerEnroll(program: Command): void {
  program
    .command('enroll')
    .description('enroll this NCB: make keys here (0600), pin the hub from the token, store the bundle')
    .requiredOption('--hub <url>', 'the hub API, e.g. https://hub.example.org:8443')
    .requiredOption('--token <token>', 'the single-use token from `ncbnet token create` (env NCBNET_TOKEN)', process.env.NCBNET_TOKEN)
    .option('--state <dir>', 'agent state directory', process.env.NCBNET_AGENT_STATE ?? '/var/lib/ncbnet-agent')
    .option('--country <CC>', 'this NCB’s country; the hub refuses a token made for another one')
    .option('--force', 'enroll again with new keys (the old certificate is revoked as superseded)')
    .option('--json', 'print the result as JSON')
    .action(
      agentAction(async (flags: EnrollFlags) => {
        if (flags.country !== undefined && !isCountryCode(flags.country)) {
          throw new ValidationError('CLI_BAD_COUNTRY', 'country', [`--country: not an ISO 3166-1 alpha-2 code in upper case (got ${JSON.stringify(flags.country)})`]);
        }
        // Loaded here, not at start: `ncbnet-agent run` never needs the CSR code (@peculiar/x509).
        const { enroll } = await import('../enroll/enroll.js');
        const bundle = await enroll({ hubUrl: flags.hub, token: flags.token, stateDir: flags.state, ...(flags.country ? { country: flags.country } : {}), force: flags.force ?? false });
        const facts = { country: bundle.country, serial: bundle.serial, notAfter: bundle.notAfter, overlayAddress: bundle.overlayAddress, natsUrl: bundle.hub.natsUrl, wgEndpoint: bundle.hub.wgEndpoint, state: flags.state };
        if (flags.json) return agentPrintJson(facts);
        agentPrint(formatTable(['country', 'overlay address', 'certificate', 'expires', 'hub tunnel endpoint'], [[facts.country, facts.overlayAddress, facts.serial, facts.notAfter, facts.wgEndpoint ?? '(none)']]));
        agentPrint(`\nenrolled; start the agent with: ncbnet-agent run --state ${flags.state}`);
      }),
    );
}
