/**
 * Every NATS subject, stream and consumer name ncbnet uses, built in one place (ARCHITECTURE,
 * Broker). Nothing else in the codebase writes a subject by hand, so permissions rendered for
 * nats-server and the subjects the router and agents use cannot drift apart.
 */
import { isCountryCode } from './country.js';
import { CodedError } from './errors.js';

export const SUBMIT_STREAM = 'SUBMIT';
export const DELIVER_STREAM = 'DELIVER';

/** A database service name in `ncb.query.<service>`: lower-case word, no dots or wildcards. */
const SERVICE_PATTERN = /^[a-z][a-z0-9-]{0,31}$/;

export class SubjectError extends CodedError {}
export const SUBJECT_BAD_COUNTRY = 'SUBJECT_BAD_COUNTRY';
export const SUBJECT_BAD_SERVICE = 'SUBJECT_BAD_SERVICE';

function cc(country: string): string {
  if (!isCountryCode(country)) throw new SubjectError(SUBJECT_BAD_COUNTRY, `subject: not a country code (got ${JSON.stringify(country)})`);
  return country;
}

export const subjects = {
  /** Where country CC submits envelopes (stream SUBMIT, work queue). */
  submit: (country: string) => `ncb.submit.${cc(country)}`,
  submitAll: 'ncb.submit.*',
  /** Where the router delivers to CC (stream DELIVER). */
  deliver: (country: string) => `ncb.deliver.${cc(country)}`,
  deliverAll: 'ncb.deliver.*',
  heartbeat: (country: string) => `ncb.heartbeat.${cc(country)}`,
  heartbeatAll: 'ncb.heartbeat.*',
  /** Hub → CC events: rejections, probes (`protocol/probe.ts`), later policy and CRL. */
  event: (country: string) => `ncb.event.${cc(country)}`,
  /** CC → hub: answers to the hub's synthetic probes (`protocol/probe.ts`). */
  probe: (country: string) => `ncb.probe.${cc(country)}`,
  probeAll: 'ncb.probe.*',
  query: (service: string) => {
    if (!SERVICE_PATTERN.test(service)) throw new SubjectError(SUBJECT_BAD_SERVICE, `subject: not a service name (got ${JSON.stringify(service)})`);
    return `ncb.query.${service}`;
  },
  queryAll: 'ncb.query.>',
  /** Country OWNER's national database `db` (B2B, `protocol/b2b.ts`): requests from the countries its policy allows. */
  b2b: (owner: string, db: string) => {
    if (!SERVICE_PATTERN.test(db)) throw new SubjectError(SUBJECT_BAD_SERVICE, `subject: not a database name (got ${JSON.stringify(db)})`);
    return `ncb.b2b.${cc(owner)}.${db}`;
  },
  /** Inbox prefix a country's client must use; its permissions allow replies only there. */
  inboxPrefix: (country: string) => `_INBOX_${cc(country)}`,
} as const;

/** Durable pull consumer on DELIVER that only CC may read. */
export function deliverConsumer(country: string): string {
  return `deliver-${cc(country)}`;
}

/** The country in `ncb.<kind>.<CC>`, or undefined when the subject is not one. */
export function countryOfSubject(subject: string, kind: 'submit' | 'deliver' | 'heartbeat' | 'event' | 'probe'): string | undefined {
  const prefix = `ncb.${kind}.`;
  if (!subject.startsWith(prefix)) return undefined;
  const rest = subject.slice(prefix.length);
  return isCountryCode(rest) ? rest : undefined;
}
