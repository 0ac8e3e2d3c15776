import Type from 'typebox';
import type { ApiApp } from './schemas.js';

/** Each readiness condition and whether it holds now. */
export type ReadinessCheck = () => Record<string, boolean>;

const Checks = Type.Record(Type.String(), Type.Boolean());

/** `/healthz`: the process answers. `/readyz`: it can do its job (broker up, registry open, tunnel up). */
export function registerHealthRoutes(app: ApiApp, readiness: ReadinessCheck): void {
  app.get('/healthz', { schema: { tags: ['health'], response: { 200: Type.Object({ status: Type.Literal('ok') }) } } }, () => ({ status: 'ok' as const }));
  app.get(
    '/readyz',
    { schema: { tags: ['health'], response: { 200: Type.Object({ ready: Type.Boolean(), checks: Checks }), 503: Type.Object({ ready: Type.Boolean(), checks: Checks }) } } },
    (_req, reply) => {
      const checks = readiness();
      const ready = Object.values(checks).every(Boolean);
      void reply.code(ready ? 200 : 503);
      return { ready, checks };
    },
  );
}
