import { CodedError } from '../protocol/errors.js';

/** Failures of the node agent outside the relay (`relay/errors.ts`) and local API. */
export class AgentError extends CodedError {}

export const AGENT_CONFIG_INVALID = 'AGENT_CONFIG_INVALID';
export const AGENT_CONFIG_UNREADABLE = 'AGENT_CONFIG_UNREADABLE';
export const AGENT_ALREADY_ENROLLED = 'AGENT_ALREADY_ENROLLED';
export const AGENT_NOT_ENROLLED = 'AGENT_NOT_ENROLLED';
export const AGENT_STATE_CORRUPT = 'AGENT_STATE_CORRUPT';
export const AGENT_HUB_UNREACHABLE = 'AGENT_HUB_UNREACHABLE';
export const AGENT_HUB_NOT_PINNED = 'AGENT_HUB_NOT_PINNED';
export const AGENT_HUB_REFUSED = 'AGENT_HUB_REFUSED';
export const AGENT_BAD_HUB_URL = 'AGENT_BAD_HUB_URL';
export const AGENT_RENEW_FAILED = 'AGENT_RENEW_FAILED';
