import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { CertificateAuthority } from '../../pki/ca.js';
import { METRICS_STATUS_UNAVAILABLE } from '../metrics/errors.js';
import { HubStatusSchema, type HubStatus } from '../metrics/status.js';
import { operatorOnly } from './auth.js';
import { ErrorSchema, type ApiApp } from './schemas.js';

/** Reads the hub's status now; undefined while the daemon has not built its collectors. */
export type StatusSource = () => Promise<HubStatus> | undefined;

/**
 * `GET /v1/admin/status` (`ncbnet status`): every country's connection, last heartbeat, tunnel
 * handshake, backlog, certificate expiry and policy sync, from the same collectors as `/metrics`.
 * Operators only, like the rest of `/v1/admin`.
 */
export function registerStatusRoutes(app: ApiApp, ca: CertificateAuthority, status: StatusSource | undefined): void {
  void app.register(
    (plain, _opts, done) => {
      const scope = plain.withTypeProvider<TypeBoxTypeProvider>();
      scope.addHook('onRequest', operatorOnly(ca));
      scope.get(
        '/status',
        {
          schema: {
            tags: ['admin'],
            security: [{ clientCertificate: [] }],
            summary: 'Every country: connected, last seen, tunnel handshake, backlog, certificate expiry, policy in sync',
            response: { 200: HubStatusSchema, 401: ErrorSchema, 403: ErrorSchema, 503: ErrorSchema },
          },
        },
        async (_req, reply) => {
          const pending = status?.();
          if (pending === undefined) {
            return reply.status(503).send({ code: METRICS_STATUS_UNAVAILABLE, message: 'the hub has not started its status collectors yet' });
          }
          return reply.status(200).send(await pending);
        },
      );
      done();
    },
    { prefix: '/v1/admin' },
  );
}
