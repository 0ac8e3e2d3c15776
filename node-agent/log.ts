import { pino, type Logger } from 'pino';
import { REDACT_PATHS } from '../protocol/redaction.js';


/** The agent's root logger: JSON lines on stdout, secrets redacted. */
export function createAgentLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino({ name: 'ncbnet-agent', level, redact: { paths: [...REDACT_PATHS], censor: '[redacted]' }, base: { pid: process.pid } }, destination);
}
