import { AuditError } from '../../protocol/audit.js';

export { AUDIT_CHAIN_BROKEN, AUDIT_RECORD_INVALID, AuditError } from '../../protocol/audit.js';

/**
 * Failures of the hub's audit log (`audit-log.ts`, `audit-stream.ts`). The record and chain codes
 * live with the record in `protocol/audit.ts`; these are about the AUDIT stream.
 */
export class AuditLogError extends AuditError {}

/** The AUDIT stream exists with a setting that cannot change in place (retention, storage). */
export const AUDIT_STREAM_CONFLICT = 'AUDIT_STREAM_CONFLICT';
/** The AUDIT stream could not be read, created or updated, or a record could not be stored. */
export const AUDIT_UNAVAILABLE = 'AUDIT_UNAVAILABLE';
/** Another writer kept appending first; this append gave up after its retries (nothing stored). */
export const AUDIT_APPEND_CONFLICT = 'AUDIT_APPEND_CONFLICT';
/** The log is closed; nothing more can be appended. */
export const AUDIT_CLOSED = 'AUDIT_CLOSED';
/** `forMessage` was given something that is not a message id (ULID). */
export const AUDIT_BAD_MESSAGE_ID = 'AUDIT_BAD_MESSAGE_ID';
