/**
 * Attack 4: the hub's admin (and audit) API on the real daemon over HTTPS, called by everyone who
 * is not a valid operator: no client certificate, a country's certificate, a revoked operator
 * certificate, and an operator certificate from another root CA. Every route must refuse each of
 * them with the right status and code before doing anything; the state the writes would change
 * (a country added, DE suspended or revoked, a token made) is checked afterwards. A valid second
 * operator, issued offline like the revoked one, is the control: the same calls work for it.
 */
import type { TlsIdentity } from '../../test/helpers/identities.js';
import type { FaultContext } from '../lib/context.js';
import type { RowInput } from '../lib/report.js';

/** Admin and audit routes, writes included: [method, path, body]. */
export function adminRoutes(messageId: string): [string, string, unknown?][] {
  return [
    ['GET', '/v1/admin/countries'],
    ['GET', '/v1/admin/countries/DE'],
    ['POST', '/v1/admin/countries', { code: 'CH', name: 'Intruder' }],
    ['POST', '/v1/admin/tokens', { country: 'DE' }],
    ['POST', '/v1/admin/countries/DE/suspend', { reason: 'intrusion' }],
    ['POST', '/v1/admin/countries/DE/revoke', { reason: 'keyCompromise' }],
    ['POST', '/v1/admin/countries/IT/resume'],
    ['GET', '/v1/admin/status'],
    ['GET', '/v1/admin/audit/verify'],
    ['GET', `/v1/admin/audit/messages/${messageId}`],
    ['GET', '/v1/admin/audit/countries/DE'],
  ];
}

export async function attackAdminApi(ctx: FaultContext): Promise<RowInput[]> {
  const net = await ctx.network();
  const started = performance.now();
  const callers: [string, TlsIdentity | undefined, number, string][] = [
    ['no client certificate', undefined, 401, 'AUTH_CLIENT_CERT_REQUIRED'],
    ["FR's country certificate", net.countries.FR, 403, 'AUTH_WRONG_IDENTITY'],
    ['a revoked operator certificate', net.revokedOperator, 403, 'AUTH_WRONG_IDENTITY'],
    ['an operator certificate from another root CA', net.foreignOperator, 401, 'AUTH_CLIENT_CERT_REQUIRED'],
  ];
  const routes = adminRoutes('01JAAAAAAAAAAAAAAAAAAAAAAA');
  let attempts = 0;
  let refused = 0;
  let leaked = 0;
  const notes: string[] = [];
  /** One call that must be refused with `status` and `code`; anything under 300 is a leak. */
  const expectRefusal = async (who: string, identity: TlsIdentity | undefined, method: string, path: string, body: unknown, status: number, code: string): Promise<void> => {
    attempts += 1;
    const answer = await net.call(method, path, identity, body);
    const got = (answer.json as { code?: unknown } | undefined)?.code;
    if (answer.status === status && got === code) refused += 1;
    else {
      if (answer.status < 300) leaked += 1;
      notes.push(`${answer.status < 300 ? 'LEAK' : 'UNEXPECTED'}: ${who}: ${method} ${path}: ${answer.status} ${String(got)}, expected ${status} ${code}`);
    }
  };
  for (const [who, identity, status, code] of callers) {
    for (const [method, path, body] of routes) await expectRefusal(who, identity, method, path, body, status, code);
  }
  // The other routes that check an identity: the member directory and renewal.
  const others: [string, TlsIdentity | undefined, string, string, unknown, number, string][] = [
    ['no client certificate', undefined, 'GET', '/v1/directory', undefined, 401, 'AUTH_CLIENT_CERT_REQUIRED'],
    ['a revoked operator certificate', net.revokedOperator, 'GET', '/v1/directory', undefined, 403, 'AUTH_WRONG_IDENTITY'],
    ['an operator certificate from another root CA', net.foreignOperator, 'GET', '/v1/directory', undefined, 401, 'AUTH_CLIENT_CERT_REQUIRED'],
    ["the operator's certificate", net.operator, 'POST', '/v1/renew', { csr: 'x' }, 403, 'AUTH_WRONG_IDENTITY'],
  ];
  for (const [who, identity, method, path, body, status, code] of others) await expectRefusal(who, identity, method, path, body, status, code);
  // What the writes would have changed.
  const countries = ((await net.admin('GET', '/countries')).json as { code: string; status: string }[]) ?? [];
  const de = countries.find((c) => c.code === 'DE');
  attempts += 2;
  if (countries.some((c) => c.code === 'CH')) {
    leaked += 1;
    notes.push('LEAK: country CH was added');
  } else refused += 1;
  if (de?.status !== 'active') {
    leaked += 1;
    notes.push(`LEAK: DE is ${String(de?.status)}`);
  } else refused += 1;
  const control = await net.call('GET', '/v1/admin/countries', net.spareOperator);
  if (control.status !== 200) throw new Error(`control: a valid second operator was refused (${control.status} ${control.text})`);
  notes.unshift(`${callers.length} callers × ${routes.length} admin and audit routes, ${others.length} calls to /v1/directory and /v1/renew, then 2 state checks; a valid second operator gets 200`);
  return [{ scenario: 'admin API: no certificate, a country, a revoked and a foreign operator', kind: 'attack', attempts, refused, leaked, notes, ms: performance.now() - started }];
}
