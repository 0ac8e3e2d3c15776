/**
 * The routing decision for one submission (pure: no I/O), apart from the router that applies it
 * (STYLE, Layout): does the envelope parse, come from its true sender, still hold, and to whom does
 * it go. A deletion's recipients come from its original's records instead (`deletion.ts`).
 */
import { isCountryCode } from '../../protocol/country.js';
import { EnvelopeError, MAX_ENVELOPE_BYTES, parseEnvelope, type Envelope } from '../../protocol/envelope.js';
import { describeValue } from '../../protocol/validate.js';
import { ROUTER_EXPIRED, ROUTER_NO_RECIPIENTS, ROUTER_SENDER_INACTIVE, ROUTER_SENDER_MISMATCH, ROUTER_UNKNOWN_RECIPIENT } from './errors.js';

/** Most problem lines sent back in one rejection. */
const MAX_PROBLEMS = 32;

/** Who may send and receive: the registry's view of active members. */
export interface RecipientDirectory {
  isActive(country: string): boolean;
  activeCountries(): readonly string[];
  /**
   * Suspended, not revoked: its consumer and backlog are kept for its return. Only deletions go to
   * such a country (it may hold the message being deleted); absent means "none is".
   */
  isSuspended?(country: string): boolean;
}

/** What {@link decideRoute} concluded about one submission. */
export type RouteDecision =
  | { ok: true; envelope: Envelope; recipients: string[] }
  | { ok: false; id: string | null; code: string; problems: string[] };

/** What {@link checkSubmission} concluded: a well-formed envelope from its true sender, or a refusal. */
export type SubmissionCheck = { ok: true; envelope: Envelope } | Extract<RouteDecision, { ok: false }>;

/** Options of {@link decideRoute}. */
export interface DecideOptions {
  maxEnvelopeBytes?: number;
  /** Current time in ms (default Date.now()). */
  nowMs?: number;
}

/**
 * Decides what to do with the bytes `sender` submitted (pure): refuse with a code and problems, or
 * deliver to these recipients. All or nothing: one unknown recipient refuses the whole submission,
 * so the sender learns of it and nobody gets a message whose recipient list was not honoured.
 */
export function decideRoute(sender: string, data: Uint8Array, directory: RecipientDirectory, opts: DecideOptions = {}): RouteDecision {
  const checked = checkSubmission(sender, data, directory, opts);
  return checked.ok ? resolveRecipients(checked.envelope, directory) : checked;
}

/**
 * The checks every submission passes whatever its kind (pure): the envelope parses, names the
 * submitting country, which is active, and has not expired. A deletion's recipients are then
 * found from the original's records (`planDeletion` in `deletion.ts`), everything else's by {@link decideRoute}.
 */
export function checkSubmission(sender: string, data: Uint8Array, directory: RecipientDirectory, opts: DecideOptions = {}): SubmissionCheck {
  let envelope: Envelope;
  try {
    envelope = parseEnvelope(data, { maxBytes: opts.maxEnvelopeBytes ?? MAX_ENVELOPE_BYTES });
  } catch (err) {
    if (!(err instanceof EnvelopeError)) throw err;
    return refuse(err.envelopeId ?? null, err.code, err.problems);
  }
  const id = envelope.id;
  if (envelope.from !== sender) {
    return refuse(id, ROUTER_SENDER_MISMATCH, [`from: must be the submitting country ${sender} (got ${describeValue(envelope.from)})`]);
  }
  if (!directory.isActive(sender)) return refuse(id, ROUTER_SENDER_INACTIVE, [`from: not an active member country (got ${describeValue(sender)})`]);
  if (envelope.expires !== undefined && Date.parse(envelope.expires) <= (opts.nowMs ?? Date.now())) {
    return refuse(id, ROUTER_EXPIRED, [`expires: already passed when routed (got ${describeValue(envelope.expires)})`]);
  }
  return { ok: true, envelope };
}

/**
 * Who gets a checked envelope (pure): `*` = every active country but the sender; a list must name
 * active countries only, or the whole submission is refused.
 */
export function resolveRecipients(envelope: Envelope, directory: RecipientDirectory): RouteDecision {
  const id = envelope.id;
  const sender = envelope.from;
  if (envelope.to === '*') {
    // The directory is trusted but its output becomes subjects: keep only real codes, once each.
    const recipients = [...new Set(directory.activeCountries())].filter((cc) => cc !== sender && isCountryCode(cc));
    if (recipients.length === 0) return refuse(id, ROUTER_NO_RECIPIENTS, ['to: no active member country besides the sender (got "*")']);
    return { ok: true, envelope, recipients };
  }
  const problems = envelope.to.flatMap((cc, i) => (directory.isActive(cc) ? [] : [`to[${i}]: not an active member country (got ${describeValue(cc)})`]));
  if (problems.length > 0) return refuse(id, ROUTER_UNKNOWN_RECIPIENT, problems);
  return { ok: true, envelope, recipients: [...envelope.to] };
}

function refuse(id: string | null, code: string, problems: readonly string[]): Extract<RouteDecision, { ok: false }> {
  return { ok: false, id, code, problems: problems.slice(0, MAX_PROBLEMS) };
}
