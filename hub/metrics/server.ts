/**
 * The plain-HTTP listener for Prometheus: `/metrics` (text exposition format, prom-client's
 * content type) and the hub's `/healthz` and `/readyz`. Not authenticated and not encrypted, as
 * Prometheus targets usually are: the bind address (`metrics.host`, loopback by default) is the
 * access control. Nothing secret is exposed (country codes, counts, times).
 */
import type { AddressInfo } from 'node:net';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { LogController } from 'fastify';
import type { Logger } from 'pino';
import type { Registry as PromRegistry } from 'prom-client';
import { registerHealthRoutes, type ReadinessCheck } from '../api/routes-health.js';
import { typeboxValidatorCompiler } from '../api/validation.js';
import { METRICS_LISTEN_FAILED, MetricsError } from './errors.js';

export interface MetricsServerOptions {
  host: string;
  port: number;
  register: PromRegistry;
  readiness: ReadinessCheck;
  log: Logger;
}

/** A listening metrics server. */
export interface MetricsServer {
  /** `http://HOST:PORT/metrics`, with the port actually bound. */
  url: string;
  close(): Promise<void>;
}

/** An address a local client can dial for a listener bound to `host` (wildcards mean loopback). */
function dialHost(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

/** Starts the listener; rejects with `METRICS_LISTEN_FAILED` when the address cannot be bound. */
export async function startMetricsServer(o: MetricsServerOptions): Promise<MetricsServer> {
  const app = Fastify({ loggerInstance: o.log, logController: new LogController({ disableRequestLogging: true }), forceCloseConnections: true }).withTypeProvider<TypeBoxTypeProvider>();
  app.setValidatorCompiler(typeboxValidatorCompiler);
  app.get('/metrics', { schema: { hide: true } }, async (_req, reply) => {
    const body = await o.register.metrics();
    return reply.type(o.register.contentType).send(body);
  });
  registerHealthRoutes(app, o.readiness);
  app.setNotFoundHandler((req, reply) => reply.status(404).send({ code: 'API_NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0] ?? ''}; try /metrics` }));
  try {
    await app.listen({ host: o.host, port: o.port });
  } catch (err) {
    await app.close();
    throw new MetricsError(METRICS_LISTEN_FAILED, `metrics: cannot listen on ${o.host}:${o.port}: ${(err as Error).message}`, { cause: err });
  }
  const port = (app.server.address() as AddressInfo).port;
  return { url: `http://${dialHost(o.host)}:${port}/metrics`, close: () => app.close() };
}
