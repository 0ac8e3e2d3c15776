import type { LocalApiApp, Readiness } from './schemas.js';
import { ReadinessSchema } from './schemas.js';
import Type from 'typebox';

/** Each readiness condition (tunnel up, broker connected, …) and whether it holds now. */
export type ReadinessCheck = () => Record<string, boolean>;

/** The `/readyz` answer: ready when every check holds, with each check named (so a 503 says which failed). */
export function readinessOf(check: ReadinessCheck): Readiness {
  const checks = check();
  return { ready: Object.values(checks).every(Boolean), checks };
}

/**
 * `/healthz`: the process answers. `/readyz`: the agent can do its job now; 503 when any check
 * fails, so systemd, monitoring and the NCB's applications can wait for it. Neither needs a token:
 * they reveal nothing but the names of the checks. The local API and the metrics listener both
 * serve them.
 */
export function registerHealthRoutes(app: LocalApiApp, readiness: ReadinessCheck): void {
  app.get('/healthz', { schema: { tags: ['health'], summary: 'The agent process answers', response: { 200: Type.Object({ status: Type.Literal('ok') }) } } }, () => ({ status: 'ok' as const }));
  app.get(
    '/readyz',
    { schema: { tags: ['health'], summary: 'The agent can relay messages now (503 when a check fails)', response: { 200: ReadinessSchema, 503: ReadinessSchema } } },
    (_req, reply) => {
      const answer = readinessOf(readiness);
      void reply.code(answer.ready ? 200 : 503);
      return answer;
    },
  );
}
