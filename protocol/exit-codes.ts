import { CodedError, ValidationError } from './errors.js';

/**
 * Exit codes of both CLIs, after sysexits(3), so scripts can tell "you typed it wrong" from
 * "the input was refused" from "the state is missing".
 */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 64,
  dataErr: 65,
  noInput: 66,
  unavailable: 69,
  cantCreate: 73,
  ioErr: 74,
  tempFail: 75,
  noPerm: 77,
  config: 78,
} as const;

const BY_CODE: Readonly<Record<string, number>> = {
  PKI_CA_EXISTS: EXIT.cantCreate,
  CLI_OUTPUT_EXISTS: EXIT.cantCreate,
  PKI_CA_MISSING: EXIT.noInput,
  CLI_INPUT_MISSING: EXIT.noInput,
  PKI_CA_INVALID: EXIT.config,
  PKI_KEY_PERMISSIONS: EXIT.noPerm,
  PKI_BAD_COUNTRY: EXIT.usage,
  PKI_BAD_NAME: EXIT.usage,
  PKI_BAD_LIFETIME: EXIT.usage,
  PKI_BAD_REASON: EXIT.usage,
  ENROLL_TOKEN_BAD_TTL: EXIT.usage,
  CLI_BAD_DURATION: EXIT.usage,
  CLI_BAD_COUNTRY: EXIT.usage,
  CLI_HUB_UNREACHABLE: EXIT.unavailable,
  CLI_HUB_RUNNING: EXIT.tempFail,
  CLI_NO_CREDENTIALS: EXIT.noInput,
  CLI_BAD_ANSWER: EXIT.failure,
  HUB_CONFIG_INVALID: EXIT.config,
  HUB_CONFIG_UNREADABLE: EXIT.config,
  HUB_STATE_MISSING: EXIT.noInput,
  AGENT_CONFIG_INVALID: EXIT.config,
  AGENT_CONFIG_UNREADABLE: EXIT.config,
  AGENT_ALREADY_ENROLLED: EXIT.cantCreate,
  AGENT_NOT_ENROLLED: EXIT.noInput,
  AGENT_STATE_CORRUPT: EXIT.dataErr,
  AGENT_HUB_UNREACHABLE: EXIT.unavailable,
  AGENT_HUB_NOT_PINNED: EXIT.noPerm,
  AGENT_HUB_REFUSED: EXIT.dataErr,
  AGENT_BAD_HUB_URL: EXIT.usage,
  REGISTRY_UNKNOWN_COUNTRY: EXIT.noInput,
  REGISTRY_NOT_A_COUNTRY: EXIT.usage,
  REGISTRY_COUNTRY_EXISTS: EXIT.cantCreate,
  REGISTRY_BAD_TRANSITION: EXIT.dataErr,
  REGISTRY_CONFLICT: EXIT.tempFail,
  REGISTRY_UNAVAILABLE: EXIT.tempFail,
  AUDIT_CHAIN_BROKEN: EXIT.dataErr,
  AUDIT_UNAVAILABLE: EXIT.unavailable,
  API_BAD_REQUEST: EXIT.dataErr,
  AUTH_CLIENT_CERT_REQUIRED: EXIT.noPerm,
  AUTH_WRONG_IDENTITY: EXIT.noPerm,
  AGENT_UNREACHABLE: EXIT.unavailable,
  AGENT_NOT_RUNNING: EXIT.unavailable,
  AGENT_ENDPOINTS_INVALID: EXIT.unavailable,
  AGENT_BAD_ANSWER: EXIT.failure,
  AGENT_CLI_BAD_FLAG: EXIT.usage,
  LOCAL_AUTH_REQUIRED: EXIT.noPerm,
  LOCAL_AUTH_BAD_TOKEN: EXIT.noPerm,
  LOCAL_TOKENS_PERMISSIONS: EXIT.noPerm,
  LOCAL_TOKENS_MALFORMED: EXIT.config,
  LOCAL_TOKEN_MISSING: EXIT.noInput,
  LOCAL_BAD_REQUEST: EXIT.dataErr,
  LOCAL_MALFORMED_JSON: EXIT.dataErr,
  LOCAL_BODY_TOO_LARGE: EXIT.dataErr,
  LOCAL_UNKNOWN_RECIPIENT: EXIT.dataErr,
  LOCAL_UNKNOWN_MESSAGE: EXIT.noInput,
  LOCAL_ROLE_FORBIDDEN: EXIT.noPerm,
  LOCAL_USER_EXISTS: EXIT.cantCreate,
  LOCAL_USER_UNKNOWN: EXIT.noInput,
  LOCAL_USER_BAD_ROLE: EXIT.usage,
  LOCAL_USER_BAD_NAME: EXIT.usage,
  LOCAL_USER_IN_TOKENS_FILE: EXIT.dataErr,
  LOCAL_USERS_MALFORMED: EXIT.config,
  LOCAL_USERS_LOCKED: EXIT.tempFail,
  RELAY_STORAGE_FULL: EXIT.tempFail,
  // Database services (protocol/query.ts) and B2B databases (protocol/b2b.ts).
  QUERY_BAD_KEY: EXIT.dataErr,
  QUERY_BAD_RECORD: EXIT.dataErr,
  QUERY_INVALID: EXIT.dataErr,
  QUERY_UNSUPPORTED_OP: EXIT.usage,
  QUERY_UNKNOWN_SERVICE: EXIT.usage,
  QUERY_TOO_LARGE: EXIT.dataErr,
  QUERY_NOT_OWNER: EXIT.noPerm,
  QUERY_CONFLICT: EXIT.tempFail,
  QUERY_TIMEOUT: EXIT.tempFail,
  QUERY_HUB_UNREACHABLE: EXIT.unavailable,
  QUERY_UNAVAILABLE: EXIT.unavailable,
  B2B_NOT_ALLOWED: EXIT.noPerm,
  B2B_BAD_KEY: EXIT.dataErr,
  B2B_INVALID: EXIT.dataErr,
  B2B_UNREACHABLE: EXIT.unavailable,
  B2B_UNAVAILABLE: EXIT.unavailable,
  B2B_TIMEOUT: EXIT.tempFail,
};

/** The exit code for an error: usage for bad flags, data error for refused input, and so on. */
export function exitCodeFor(err: unknown): number {
  if (!(err instanceof CodedError)) {
    const errno = (err as NodeJS.ErrnoException | undefined)?.code;
    if (errno === 'ENOENT') return EXIT.noInput;
    if (errno === 'EEXIST') return EXIT.cantCreate;
    if (errno === 'EACCES' || errno === 'EPERM') return EXIT.noPerm;
    return EXIT.failure;
  }
  const mapped = BY_CODE[err.code];
  if (mapped !== undefined) return mapped;
  if (err instanceof ValidationError && err.code.endsWith('_CONFIG_INVALID')) return EXIT.config;
  if (/^(PKI_|ENROLL_TOKEN_)/.test(err.code)) return EXIT.dataErr;
  return EXIT.failure;
}
