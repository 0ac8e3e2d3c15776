import { pino, type Logger } from 'pino';
import { REDACT_PATHS } from '../protocol/redaction.js';

/** The daemon's root logger: JSON lines on stdout, secrets redacted. */
export function createLogger(level: string, name: string, destination?: pino.DestinationStream): Logger {
  return pino({ name, level, redact: { paths: [...REDACT_PATHS], censor: '[redacted]' }, base: { pid: process.pid } }, destination);
}
