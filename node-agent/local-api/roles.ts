/**
 * Access levels inside a country (issue 8): the NCB extends the agent's local API to border
 * police, customs and immigration, each as a user (an application or a person) with a role.
 * A role limits what its users may send, which database services they may query, and which
 * handling codes they may read. Pure data and checks; the routes enforce them.
 *
 * | role      | send kinds                                   | notice colours | send handling              | read handling                     | query (service: ops)                                      | B2B query | status, B2B enquiries |
 * |-----------|----------------------------------------------|----------------|----------------------------|-----------------------------------|-----------------------------------------------------------|-----------|-----------------------|
 * | ncb-admin | all (notice, diffusion, message, query, reply, deletion) | all | public, restricted, confidential | public, restricted, confidential | every service: get, search, put, delete                    | yes       | yes                   |
 * | officer   | notice, diffusion, message, query, reply     | all            | public, restricted, confidential | public, restricted, confidential | every service: get, search                                | yes       | no                    |
 * | border    | message, query, reply                        | none           | public, restricted         | public, restricted                | sltd: get; smv: get; nominal: get, search                 | no        | no                    |
 * | customs   | message, query, reply                        | none           | public, restricted         | public, restricted                | smv: get; woa: get; firearms: get                         | no        | no                    |
 *
 * Why these lines: confidential traffic is for the NCB itself (its administrators and officers);
 * restricted is law-enforcement only, which border police and customs are. Notices and diffusions
 * ask other countries to act (arrest, locate, warn) and commit the NCB, so only the NCB sends
 * them; a deletion (a CCF-ordered purge) and writing the country's records into the shared
 * databases (put, delete) are the NCB administrator's. Border police check travel documents,
 * vehicles and wanted persons; customs check vehicles, works of art and firearms. `/v1/status`
 * (outbox depth, unacked inbox count) describes all the NCB's traffic, so it is ncb-admin's, as
 * are the notices of who enquired in the country's own B2B databases. Another country shares its
 * national database with this NCB under a policy it agreed with the NCB, so B2B lookups stay with
 * the NCB's own staff (ncb-admin, officer) unless that agreement says more.
 * A role may not send a handling code it could not read back: its replies would be unreadable.
 */
import { HANDLING_CODES, NOTICE_COLOURS, type HandlingCode } from '../../protocol/envelope.js';
import { QUERY_OPS, QUERY_SERVICES, type QueryOp, type QueryService } from '../../protocol/query.js';
import type { MessageDraft } from '../relay/types.js';

/** Every role, most powerful first. */
export const ROLES = ['ncb-admin', 'officer', 'border', 'customs'] as const;
/** One of {@link ROLES}. */
export type Role = (typeof ROLES)[number];

/** The role of every entry of the tokens file (`name:token` lines: the operator and the NCB's own applications). */
export const TOKENS_FILE_ROLE: Role = 'ncb-admin';

type DraftKind = MessageDraft['kind'];
type NoticeColour = (typeof NOTICE_COLOURS)[number];

/** What one role may do. */
export interface RolePolicy {
  /** Kinds of message it may send. */
  readonly sendKinds: readonly DraftKind[];
  /** Colours of the notices it may send (only when `sendKinds` has `notice`). */
  readonly noticeColours: readonly NoticeColour[];
  /** Handling codes of what it sends (absent handling is public). */
  readonly sendHandling: readonly HandlingCode[];
  /** Handling codes of the inbox items it may see; every other item is invisible to it. */
  readonly readHandling: readonly HandlingCode[];
  /** Database services and, per service, the operations it may use. */
  readonly query: Readonly<Partial<Record<QueryService, readonly QueryOp[]>>>;
  /** May read `/v1/status` (the whole NCB's traffic figures) and the B2B enquiry notices. */
  readonly status: boolean;
  /** May query other countries' national databases (B2B, `POST /v1/b2b/{country}/{db}`). */
  readonly b2bQuery: boolean;
}

const ALL_KINDS: readonly DraftKind[] = ['notice', 'diffusion', 'message', 'query', 'reply', 'deletion'];
const everyService = (ops: readonly QueryOp[]): Record<QueryService, readonly QueryOp[]> =>
  Object.fromEntries(QUERY_SERVICES.map((s) => [s, ops])) as Record<QueryService, readonly QueryOp[]>;

const policy = (p: RolePolicy): RolePolicy => Object.freeze({ ...p, query: Object.freeze({ ...p.query }) });

/** The policy of each role (see the table above). Frozen: no code path may widen a role at run time. */
export const ROLE_POLICIES: Readonly<Record<Role, RolePolicy>> = Object.freeze({
  'ncb-admin': policy({
    sendKinds: ALL_KINDS,
    noticeColours: NOTICE_COLOURS,
    sendHandling: HANDLING_CODES,
    readHandling: HANDLING_CODES,
    query: everyService(QUERY_OPS),
    status: true,
    b2bQuery: true,
  }),
  officer: policy({
    sendKinds: ['notice', 'diffusion', 'message', 'query', 'reply'],
    noticeColours: NOTICE_COLOURS,
    sendHandling: HANDLING_CODES,
    readHandling: HANDLING_CODES,
    query: everyService(['get', 'search']),
    status: false,
    b2bQuery: true,
  }),
  border: policy({
    sendKinds: ['message', 'query', 'reply'],
    noticeColours: [],
    sendHandling: ['public', 'restricted'],
    readHandling: ['public', 'restricted'],
    query: { sltd: ['get'], smv: ['get'], nominal: ['get', 'search'] },
    status: false,
    b2bQuery: false,
  }),
  customs: policy({
    sendKinds: ['message', 'query', 'reply'],
    noticeColours: [],
    sendHandling: ['public', 'restricted'],
    readHandling: ['public', 'restricted'],
    query: { smv: ['get'], woa: ['get'], firearms: ['get'] },
    status: false,
    b2bQuery: false,
  }),
});

/** True when `value` names a role. */
export function isRole(value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value);
}

/**
 * Why `role` may not send `draft`, as a sentence naming the role and what was refused (every
 * refused part), or undefined when it may. Checks kind, notice colour and handling.
 */
export function sendRefusal(role: Role, draft: Pick<MessageDraft, 'kind' | 'notice' | 'handling'>): string | undefined {
  const policy = ROLE_POLICIES[role];
  const refused: string[] = [];
  if (!policy.sendKinds.includes(draft.kind)) refused.push(`kind ${draft.kind}`);
  else if (draft.kind === 'notice' && draft.notice !== undefined && !policy.noticeColours.includes(draft.notice.colour)) refused.push(`a ${draft.notice.colour} notice`);
  const handling = draft.handling ?? 'public';
  if (!policy.sendHandling.includes(handling)) refused.push(`handling ${handling}`);
  return refused.length === 0 ? undefined : `role ${role} may not send ${refused.join(' nor ')}`;
}

/**
 * True when `role` may read an item with this handling code (absent is public). An unknown code
 * is unreadable to every role but ncb-admin: a newer peer's code fails closed.
 */
export function canRead(role: Role, handling: string | undefined): boolean {
  const code = handling ?? 'public';
  if (role === 'ncb-admin') return true;
  return (ROLE_POLICIES[role].readHandling as readonly string[]).includes(code);
}

/** Why `role` may not use `op` on `service`, or undefined when it may. */
export function queryRefusal(role: Role, service: QueryService, op: QueryOp): string | undefined {
  const ops = ROLE_POLICIES[role].query[service];
  if (ops === undefined) return `role ${role} may not query ${service}`;
  if (!ops.includes(op)) return `role ${role} may not ${op} in ${service} (allowed: ${ops.join(', ')})`;
  return undefined;
}

/** True when `role` may read `/v1/status`. */
export function canReadStatus(role: Role): boolean {
  return ROLE_POLICIES[role].status;
}

/** Why `role` may not query another country's national database (B2B), or undefined when it may. */
export function b2bRefusal(role: Role): string | undefined {
  return ROLE_POLICIES[role].b2bQuery ? undefined : `role ${role} may not query other countries' national databases`;
}

/** True when `role` may read who enquired in this country's own B2B databases (ncb-admin). */
export function canReadEnquiries(role: Role): boolean {
  return ROLE_POLICIES[role].status;
}
