import { CodedError } from '../../protocol/errors.js';

/**
 * Failures setting up or tearing down the JetStream streams and consumers of the broker
 * (`streams.ts`). Kept apart from `errors.ts` (the nats-server supervisor's) so each has one owner.
 */
export class StreamError extends CodedError {}

/** A stream or consumer exists with a setting that cannot be changed in place (retention, storage, ack policy). */
export const STREAM_CONFIG_CONFLICT = 'STREAM_CONFIG_CONFLICT';
/** Creating, reading or updating a stream failed. */
export const STREAM_ENSURE_FAILED = 'STREAM_ENSURE_FAILED';
/** Creating, reading or updating a consumer failed. */
export const STREAM_CONSUMER_FAILED = 'STREAM_CONSUMER_FAILED';
/** Deleting a country's consumer or purging its messages failed. */
export const STREAM_REMOVE_FAILED = 'STREAM_REMOVE_FAILED';
