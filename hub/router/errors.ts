import { CodedError } from '../../protocol/errors.js';

/**
 * The router's codes (STYLE, Errors: one errors file per package). Most are rejection codes a
 * sender reads in its `rejected` event; the rest name failures of the router itself, which are
 * retried rather than sent back.
 */

/** The envelope's `from` is not the country whose subject it was submitted on. */
export const ROUTER_SENDER_MISMATCH = 'ROUTER_SENDER_MISMATCH';
/** The submitting country is not an active member (e.g. revoked, and its connection not yet dropped). */
export const ROUTER_SENDER_INACTIVE = 'ROUTER_SENDER_INACTIVE';
/** A listed recipient is not an active member; nothing is delivered. */
export const ROUTER_UNKNOWN_RECIPIENT = 'ROUTER_UNKNOWN_RECIPIENT';
/** `to: '*'` and no other country is active. */
export const ROUTER_NO_RECIPIENTS = 'ROUTER_NO_RECIPIENTS';
/** `expires` had passed when the router took the envelope. */
export const ROUTER_EXPIRED = 'ROUTER_EXPIRED';
/** The SUBMIT subject names no country, so there is nobody to answer. */
export const ROUTER_BAD_SUBJECT = 'ROUTER_BAD_SUBJECT';
/** A deletion names a message the hub has no `routed` record of (never routed, or a wrong id). */
export const ROUTER_DELETION_UNKNOWN_MESSAGE = 'ROUTER_DELETION_UNKNOWN_MESSAGE';
/** A deletion names a message another country sent: only the originator may have it deleted. */
export const ROUTER_DELETION_NOT_ORIGINATOR = 'ROUTER_DELETION_NOT_ORIGINATOR';
/** Some copies were not stored in DELIVER; the submission is retried. */
export const ROUTER_DELIVERY_FAILED = 'ROUTER_DELIVERY_FAILED';
/** Some stored copies of a message to delete could not be erased from DELIVER; the deletion is retried. */
export const ROUTER_ERASE_FAILED = 'ROUTER_ERASE_FAILED';
/** The router could not bind to its consumer. */
export const ROUTER_START_FAILED = 'ROUTER_START_FAILED';

/** A failure of the router itself (not of a submission, which is answered with a rejection event). */
export class RouterError extends CodedError {}
