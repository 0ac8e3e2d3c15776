import { CodedError } from '../protocol/errors.js';

/**
 * Failures of the hub daemon outside the broker (whose errors live in `broker/errors.ts`).
 * Each code maps to an HTTP status in `api/errors.ts` and to an exit code in the CLI.
 */
export class HubError extends CodedError {}

export const HUB_CONFIG_INVALID = 'HUB_CONFIG_INVALID';
export const HUB_CONFIG_UNREADABLE = 'HUB_CONFIG_UNREADABLE';
export const HUB_STATE_MISSING = 'HUB_STATE_MISSING';

export const REGISTRY_COUNTRY_EXISTS = 'REGISTRY_COUNTRY_EXISTS';
export const REGISTRY_UNKNOWN_COUNTRY = 'REGISTRY_UNKNOWN_COUNTRY';
export const REGISTRY_NOT_A_COUNTRY = 'REGISTRY_NOT_A_COUNTRY';
export const REGISTRY_BAD_TRANSITION = 'REGISTRY_BAD_TRANSITION';
export const REGISTRY_CONFLICT = 'REGISTRY_CONFLICT';
export const REGISTRY_UNAVAILABLE = 'REGISTRY_UNAVAILABLE';
export const REGISTRY_SNAPSHOT_CORRUPT = 'REGISTRY_SNAPSHOT_CORRUPT';
export const REGISTRY_RECORD_CORRUPT = 'REGISTRY_RECORD_CORRUPT';
export const REGISTRY_OVERLAY_FULL = 'REGISTRY_OVERLAY_FULL';

export const ENROLL_BAD_REQUEST = 'ENROLL_BAD_REQUEST';
export const ENROLL_COUNTRY_NOT_ENROLLABLE = 'ENROLL_COUNTRY_NOT_ENROLLABLE';
export const ENROLL_WG_KEY_IN_USE = 'ENROLL_WG_KEY_IN_USE';
/** Too many wrong tokens from one address within a minute (`hub/api/failure-limiter.ts`). */
export const ENROLL_RATE_LIMITED = 'ENROLL_RATE_LIMITED';
export const RENEW_NOT_CURRENT = 'RENEW_NOT_CURRENT';
export const AUTH_CLIENT_CERT_REQUIRED = 'AUTH_CLIENT_CERT_REQUIRED';
export const AUTH_WRONG_IDENTITY = 'AUTH_WRONG_IDENTITY';
