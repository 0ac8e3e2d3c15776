import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerBase } from 'fastify';
import type { Logger } from 'pino';
import Type from 'typebox';

/** Each readiness condition and whether it holds now. */
export type ReadinessCheck = () => Record<string, boolean>;

const Checks = Type.Record(Type.String(), Type.Boolean());
const Readiness = Type.Object({
  ready: Type.Boolean(),
  checks: Checks,
  failing: Type.Array(Type.String(), { description: 'the checks that do not hold, e.g. ["broker", "router"]' }),
});

/** Any of the hub's fastify instances: the HTTPS API and the plain-HTTP metrics listener. */
type AnyApp<S extends RawServerBase> = FastifyInstance<S, RawRequestDefaultExpression<S>, RawReplyDefaultExpression<S>, Logger, TypeBoxTypeProvider>;

/**
 * `/healthz`: the process answers. `/readyz`: it can do its job (broker up and connected, router
 * running, tunnel up when WireGuard is on); 503 naming what is not, so a probe or a person sees
 * why. Served on the HTTPS API and on the metrics listener (plain HTTP, for Prometheus and
 * blackbox probes without client certificates).
 */
export function registerHealthRoutes<S extends RawServerBase>(app: AnyApp<S>, readiness: ReadinessCheck): void {
  app.get('/healthz', { schema: { tags: ['health'], response: { 200: Type.Object({ status: Type.Literal('ok') }) } } }, () => ({ status: 'ok' as const }));
  app.get('/readyz', { schema: { tags: ['health'], response: { 200: Readiness, 503: Readiness } } }, (_req, reply) => {
    const checks = readiness();
    const failing = Object.entries(checks).flatMap(([name, ok]) => (ok ? [] : [name]));
    const ready = failing.length === 0;
    void reply.code(ready ? 200 : 503);
    return { ready, checks, failing };
  });
}
