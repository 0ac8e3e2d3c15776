import { CodedError } from '../../protocol/errors.js';

/*
 * The hub's own database errors. What a country is told about its queries is a `QUERY_*` code
 * (`protocol/query.ts`), shared with the agents; these are for the operator.
 */

/** Base of the database services' operator-side errors. */
export class DbError extends CodedError {}

/** A seed run's writes did not all reach the bucket (the stream stored fewer than were sent). */
export const DB_SEED_INCOMPLETE = 'DB_SEED_INCOMPLETE';
