import { pino, type Logger } from 'pino';

/**
 * Paths pino blanks in every log line (STYLE, Logging): tokens, private keys, CSRs and
 * certificates never reach the logs, whatever object an error or a request carries.
 */
export const REDACT_PATHS = [
  'token',
  '*.token',
  'key',
  '*.key',
  'privateKey',
  '*.privateKey',
  'secret',
  '*.secret',
  'csr',
  '*.csr',
  'req.headers.authorization',
  'headers.authorization',
];

/** The daemon's root logger: JSON lines on stdout, secrets redacted. */
export function createLogger(level: string, name: string, destination?: pino.DestinationStream): Logger {
  return pino({ name, level, redact: { paths: REDACT_PATHS, censor: '[redacted]' }, base: { pid: process.pid } }, destination);
}
