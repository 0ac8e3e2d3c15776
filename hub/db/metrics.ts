/**
 * The database services' metrics, on the registry the hub serves (STYLE: passed in, never the
 * global one): `ncbnet_db_queries_total{service,result}` and the time from the request's arrival
 * to its answer, `ncbnet_db_query_duration_seconds{service}`. Labels are bounded: the five
 * services plus `unknown`, and the results below.
 */
import { Counter, Histogram, type Registry as PromRegistry } from 'prom-client';
import { QUERY_SERVICES } from '../../protocol/query.js';

/** How a query ended: found, not found, stored, deleted, refused (the caller's fault), failed (the hub's). */
export const DB_RESULTS = ['hit', 'miss', 'stored', 'deleted', 'refused', 'failed'] as const;
export type DbResult = (typeof DB_RESULTS)[number];

/** Direct KV gets take well under a millisecond; a signature check about one; 100 ms is the target p99. */
const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** Counts and times every query the database services answer. */
export class DbMetrics {
  readonly #queries: Counter<'service' | 'result'>;
  readonly #duration: Histogram<'service'>;

  constructor(register: PromRegistry) {
    this.#queries = new Counter({ name: 'ncbnet_db_queries_total', help: 'Database queries answered, by service and result', labelNames: ['service', 'result'], registers: [register] });
    this.#duration = new Histogram({ name: 'ncbnet_db_query_duration_seconds', help: 'Time from a query reaching the hub to its answer', labelNames: ['service'], buckets: BUCKETS, registers: [register] });
    // Series exist from the start, so a rate over them is 0 rather than absent on a quiet hub.
    for (const service of QUERY_SERVICES) for (const result of DB_RESULTS) this.#queries.inc({ service, result }, 0);
  }

  /** One answered query; `service` is `unknown` for a subject that names no service. */
  observe(service: string, result: DbResult, seconds: number): void {
    this.#queries.inc({ service, result });
    this.#duration.observe({ service }, seconds);
  }
}
