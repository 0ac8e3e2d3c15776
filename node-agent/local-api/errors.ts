import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { CodedError, ValidationError } from '../../protocol/errors.js';

/*
 * Every code the local API answers with, and every code its client and the agent CLI raise.
 * Codes are stable (`<AREA>_<WHAT>`): NCB applications branch on them; messages may change.
 */

/** No `Authorization: Bearer …` header (or another scheme). */
export const LOCAL_AUTH_REQUIRED = 'LOCAL_AUTH_REQUIRED';
/** A bearer token that matches no entry of the tokens file. */
export const LOCAL_AUTH_BAD_TOKEN = 'LOCAL_AUTH_BAD_TOKEN';
/** The request does not match its schema; `problems` lists every reason. */
export const LOCAL_BAD_REQUEST = 'LOCAL_BAD_REQUEST';
/** The body is not JSON (or is empty where JSON is expected). */
export const LOCAL_MALFORMED_JSON = 'LOCAL_MALFORMED_JSON';
/** The body is larger than the configured limit. */
export const LOCAL_BODY_TOO_LARGE = 'LOCAL_BODY_TOO_LARGE';
/** The body is not `application/json`. */
export const LOCAL_UNSUPPORTED_MEDIA_TYPE = 'LOCAL_UNSUPPORTED_MEDIA_TYPE';
/** A recipient matches the code pattern but is no assigned ISO 3166-1 country (`ZZ`). */
export const LOCAL_UNKNOWN_RECIPIENT = 'LOCAL_UNKNOWN_RECIPIENT';
/** No outgoing message or inbox item has this id. */
export const LOCAL_UNKNOWN_MESSAGE = 'LOCAL_UNKNOWN_MESSAGE';
/** No such route. */
export const LOCAL_NOT_FOUND = 'LOCAL_NOT_FOUND';
/** The tokens file has a line that is not `name:token` (or a duplicate name, or a short token). */
export const LOCAL_TOKENS_MALFORMED = 'LOCAL_TOKENS_MALFORMED';
/** The tokens file can be read or written by group or others. */
export const LOCAL_TOKENS_PERMISSIONS = 'LOCAL_TOKENS_PERMISSIONS';
/** The tokens file has no entry with the wanted name (client side). */
export const LOCAL_TOKEN_MISSING = 'LOCAL_TOKEN_MISSING';
/**
 * The caller's role may not do this (send this kind, colour or handling; query this service or
 * op; read the agent status). The message names the role and what was refused. An inbox item the
 * role may not read is never refused with it: it is answered as unknown (404), so its existence leaks.
 */
export const LOCAL_ROLE_FORBIDDEN = 'LOCAL_ROLE_FORBIDDEN';
/** The users file is not valid JSON of the expected shape (every problem listed). */
export const LOCAL_USERS_MALFORMED = 'LOCAL_USERS_MALFORMED';
/** `user add`: a user (or a tokens-file entry) already has this name. */
export const LOCAL_USER_EXISTS = 'LOCAL_USER_EXISTS';
/** `user remove`: no user has this name. */
export const LOCAL_USER_UNKNOWN = 'LOCAL_USER_UNKNOWN';
/** `user add`: the role is none of ncb-admin, officer, border, customs. */
export const LOCAL_USER_BAD_ROLE = 'LOCAL_USER_BAD_ROLE';
/** `user add`: the name is not lower-case letters, digits, '.', '_' or '-' (at most 64). */
export const LOCAL_USER_BAD_NAME = 'LOCAL_USER_BAD_NAME';
/** `user remove`: the name is an entry of the tokens file, which only its operators edit. */
export const LOCAL_USER_IN_TOKENS_FILE = 'LOCAL_USER_IN_TOKENS_FILE';
/** `user add|remove`: another live process is changing the users file; try again. */
export const LOCAL_USERS_LOCKED = 'LOCAL_USERS_LOCKED';

/** The agent's local API cannot be reached (connection refused, reset, timed out). */
export const AGENT_UNREACHABLE = 'AGENT_UNREACHABLE';
/** No `run/endpoints.json` in the state directory: the agent does not run there. */
export const AGENT_NOT_RUNNING = 'AGENT_NOT_RUNNING';
/** `run/endpoints.json` exists but does not have the expected shape. */
export const AGENT_ENDPOINTS_INVALID = 'AGENT_ENDPOINTS_INVALID';
/** The local API answered something that is not the expected JSON. */
export const AGENT_BAD_ANSWER = 'AGENT_BAD_ANSWER';
/** A CLI flag has a value the command cannot use (beyond what commander checks). */
export const AGENT_CLI_BAD_FLAG = 'AGENT_CLI_BAD_FLAG';

/** Base of the local API's coded errors. */
export class LocalApiError extends CodedError {}

/** A refused request with every problem listed (`body.to[0]: …`); keeps the underlying error as `cause`. */
export class LocalApiValidationError extends ValidationError {
  constructor(code: string, what: string, problems: readonly string[], options?: { cause?: unknown }) {
    super(code, what, problems);
    if (options?.cause !== undefined) this.cause = options.cause;
  }
}

/** The body of every error answer: the stable code, a message for people, and each problem. */
export interface ErrorBody {
  code: string;
  message: string;
  problems?: readonly string[];
}

const STATUS_BY_CODE: Readonly<Record<string, number>> = {
  [LOCAL_AUTH_REQUIRED]: 401,
  [LOCAL_AUTH_BAD_TOKEN]: 401,
  [LOCAL_BAD_REQUEST]: 400,
  [LOCAL_MALFORMED_JSON]: 400,
  [LOCAL_BODY_TOO_LARGE]: 413,
  [LOCAL_UNSUPPORTED_MEDIA_TYPE]: 415,
  [LOCAL_UNKNOWN_RECIPIENT]: 422,
  [LOCAL_ROLE_FORBIDDEN]: 403,
  RELAY_BAD_DRAFT: 400,
  RELAY_ENCRYPTION_UNAVAILABLE: 422,
  // A country the directory does not know (yet): the application may fix the list or retry later.
  RELAY_RECIPIENT_KEY_UNKNOWN: 422,
  // PKI_CMS_* from encrypting (e.g. too many recipients, body too large for CMS): the draft's fault.
  PKI_CMS_TOO_LARGE: 413,
  PKI_CMS_TOO_MANY_RECIPIENTS: 422,
  // The agent's state disk is full (issue 9): 507 Insufficient Storage (RFC 4918 §11.5), with the
  // relay's own code in the body, so the application can tell "retry after the operator frees
  // space" from a transient failure. Nothing was stored; what was accepted before is kept.
  RELAY_STORAGE_FULL: 507,
  [LOCAL_UNKNOWN_MESSAGE]: 404,
  [LOCAL_NOT_FOUND]: 404,
};

/**
 * HTTP status for a coded error. A full state disk is 507 (`RELAY_STORAGE_FULL`); other relay
 * failures (fsync failed, EIO) are 503:
 * the message was not stored, and the application should retry later. Anything else unlisted
 * is the agent's fault (500).
 */
export function statusFor(code: string): number {
  const mapped = STATUS_BY_CODE[code];
  if (mapped !== undefined) return mapped;
  return code.startsWith('RELAY_') ? 503 : 500;
}

/**
 * Fastify's own refusals, renamed to local API codes so applications see one family of codes
 * (and never depend on fastify's internals).
 */
const FASTIFY_CODES: Readonly<Record<string, string>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: LOCAL_BODY_TOO_LARGE,
  FST_ERR_CTP_INVALID_JSON_BODY: LOCAL_MALFORMED_JSON,
  FST_ERR_CTP_EMPTY_JSON_BODY: LOCAL_MALFORMED_JSON,
  FST_ERR_CTP_INVALID_MEDIA_TYPE: LOCAL_UNSUPPORTED_MEDIA_TYPE,
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: LOCAL_BAD_REQUEST,
};

/**
 * One error handler for the whole local API (STYLE, Errors: catch at the boundary, log once,
 * answer with the code). Authorization headers are never logged: only the code and the path.
 */
export function makeErrorHandler(log: Logger) {
  return (err: FastifyError | Error, req: FastifyRequest, reply: FastifyReply): FastifyReply => {
    const url = req.url.split('?')[0] ?? '';
    if (err instanceof CodedError) {
      const status = statusFor(err.code);
      const body: ErrorBody = { code: err.code, message: err.message };
      // Validation errors and relay errors (RelayError.problems) both say what was wrong, line by line.
      const problems: unknown = err instanceof ValidationError ? err.problems : (err as { problems?: unknown }).problems;
      if (Array.isArray(problems) && problems.length > 0) body.problems = problems as string[];
      if (status >= 500) log.error({ err, url }, 'request failed');
      else log.info({ code: err.code, url, status }, 'request refused');
      if (status === 401) void reply.header('www-authenticate', err.code === LOCAL_AUTH_BAD_TOKEN ? 'Bearer realm="ncbnet-agent", error="invalid_token"' : 'Bearer realm="ncbnet-agent"');
      return reply.status(status).send(body);
    }
    const fe = err as FastifyError;
    if (typeof fe.statusCode === 'number' && fe.statusCode < 500) {
      const code = (typeof fe.code === 'string' ? FASTIFY_CODES[fe.code] : undefined) ?? LOCAL_BAD_REQUEST;
      log.info({ code, fastifyCode: fe.code, url, status: fe.statusCode }, 'request refused');
      return reply.status(fe.statusCode).send({ code, message: fe.message } satisfies ErrorBody);
    }
    log.error({ err, url }, 'unexpected error in request');
    return reply.status(500).send({ code: 'INTERNAL', message: 'internal error; the agent log has the details' } satisfies ErrorBody);
  };
}
