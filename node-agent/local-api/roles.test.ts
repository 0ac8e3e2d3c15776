import t from 'tap';
import { HANDLING_CODES, NOTICE_COLOURS } from '../../protocol/envelope.js';
import { QUERY_OPS, QUERY_SERVICES } from '../../protocol/query.js';
import type { MessageDraft } from '../relay/types.js';
import { ROLE_POLICIES, ROLES, b2bRefusal, canRead, canReadEnquiries, canReadStatus, isRole, queryRefusal, sendRefusal, type Role } from './roles.js';

// The expected matrix, written out here rather than derived from ROLE_POLICIES, so a change to a
// role's policy has to be made twice: once in roles.ts, once here on purpose.
const SEND_KINDS: Record<Role, string[]> = {
  'ncb-admin': ['notice', 'diffusion', 'message', 'query', 'reply', 'deletion'],
  officer: ['notice', 'diffusion', 'message', 'query', 'reply'],
  border: ['message', 'query', 'reply'],
  customs: ['message', 'query', 'reply'],
};
const READ: Record<Role, string[]> = {
  'ncb-admin': ['public', 'restricted', 'confidential'],
  officer: ['public', 'restricted', 'confidential'],
  border: ['public', 'restricted'],
  customs: ['public', 'restricted'],
};
const QUERY: Record<Role, Record<string, string[]>> = {
  'ncb-admin': Object.fromEntries(QUERY_SERVICES.map((s) => [s, ['get', 'search', 'put', 'delete']])),
  officer: Object.fromEntries(QUERY_SERVICES.map((s) => [s, ['get', 'search']])),
  border: { sltd: ['get'], smv: ['get'], nominal: ['get', 'search'] },
  customs: { smv: ['get'], woa: ['get'], firearms: ['get'] },
};
const DRAFT_KINDS: MessageDraft['kind'][] = ['notice', 'diffusion', 'message', 'query', 'reply', 'deletion'];

t.test('roles: the four roles, and nothing else, are roles', async (t) => {
  t.same([...ROLES], ['ncb-admin', 'officer', 'border', 'customs']);
  for (const r of ROLES) t.ok(isRole(r), r);
  for (const bad of ['admin', 'Border', '', 'ncb-admin ', undefined, 3, 'constructor', '__proto__']) t.notOk(isRole(bad), `not a role: ${String(bad)}`);
  t.ok(Object.isFrozen(ROLE_POLICIES) && ROLES.every((r) => Object.isFrozen(ROLE_POLICIES[r]) && Object.isFrozen(ROLE_POLICIES[r].query)), 'policies are frozen');
});

t.test('roles: what each role may send, kind by kind, colour by colour, handling by handling', async (t) => {
  for (const role of ROLES) {
    for (const kind of DRAFT_KINDS) {
      for (const handling of HANDLING_CODES) {
        const colours = kind === 'notice' ? NOTICE_COLOURS : [undefined];
        for (const colour of colours) {
          const draft = { kind, handling, ...(colour === undefined ? {} : { notice: { colour } }) };
          const allowed = SEND_KINDS[role].includes(kind) && READ[role].includes(handling);
          const refusal = sendRefusal(role, draft);
          t.equal(refusal === undefined, allowed, `${role} ${kind}${colour ? ` ${colour}` : ''} ${handling}: ${refusal ?? 'allowed'}`);
          if (refusal !== undefined) t.match(refusal, new RegExp(`^role ${role} may not send `), 'the refusal names the role');
        }
      }
    }
  }
  t.equal(sendRefusal('border', { kind: 'notice', notice: { colour: 'red' } }), 'role border may not send kind notice', 'the done-when case: no Red Notice from border');
  t.equal(sendRefusal('customs', { kind: 'diffusion', handling: 'confidential' }), 'role customs may not send kind diffusion nor handling confidential', 'every refused part is named');
  t.equal(sendRefusal('border', { kind: 'message' }), undefined, 'absent handling is public');
});

t.test('roles: which handling codes each role may read; unknown codes fail closed', async (t) => {
  for (const role of ROLES) {
    for (const handling of HANDLING_CODES) t.equal(canRead(role, handling), READ[role].includes(handling), `${role} reads ${handling}`);
    t.ok(canRead(role, undefined), `${role} reads an item without handling (public)`);
  }
  t.notOk(canRead('officer', 'secret'), 'an unknown code is hidden from officer');
  t.notOk(canRead('border', 'secret'), 'and from border');
  t.ok(canRead('ncb-admin', 'secret'), 'but shown to the NCB administrator');
});

t.test('roles: which services and operations each role may use', async (t) => {
  for (const role of ROLES) {
    for (const service of QUERY_SERVICES) {
      for (const op of QUERY_OPS) {
        const allowed = (QUERY[role][service] ?? []).includes(op);
        const refusal = queryRefusal(role, service, op);
        t.equal(refusal === undefined, allowed, `${role} ${op} ${service}: ${refusal ?? 'allowed'}`);
      }
    }
  }
  t.equal(queryRefusal('border', 'sltd', 'get'), undefined, 'the done-when case: border may query SLTD');
  t.equal(queryRefusal('border', 'sltd', 'put'), 'role border may not put in sltd (allowed: get)');
  t.equal(queryRefusal('customs', 'sltd', 'get'), 'role customs may not query sltd');
});

t.test('roles: only ncb-admin reads the agent status and the B2B enquiries; NCB staff query B2B databases', async (t) => {
  t.same(
    ROLES.filter((r) => canReadStatus(r)),
    ['ncb-admin'],
  );
  t.same(
    ROLES.filter((r) => canReadEnquiries(r)),
    ['ncb-admin'],
  );
  t.same(
    ROLES.filter((r) => b2bRefusal(r) === undefined),
    ['ncb-admin', 'officer'],
  );
  t.equal(b2bRefusal('border'), "role border may not query other countries' national databases");
});
