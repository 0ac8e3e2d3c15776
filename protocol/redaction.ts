/**
 * Paths pino blanks in every log line of both daemons (STYLE, Logging): tokens, private keys,
 * CSRs and bearer headers never reach the logs, whatever object an error or a request carries.
 */
export const REDACT_PATHS: readonly string[] = [
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
