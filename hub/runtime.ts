import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import Type, { type Static } from 'typebox';
import { Value } from 'typebox/value';

/**
 * What a running hub writes to `DIR/run/endpoints.json` once it listens: the ports actually in
 * use (a config may say 0 = any) and its pid, so the operator CLI finds the admin API by the state
 * directory alone, and tests find a hub started on free ports.
 */
export const EndpointsSchema = Type.Object({
  pid: Type.Integer(),
  apiUrl: Type.String(),
  natsUrl: Type.String(),
  monitorUrl: Type.String(),
  /** `http://HOST:PORT/metrics` (plain HTTP, also /healthz and /readyz); absent when the listener could not start. */
  metricsUrl: Type.Optional(Type.String()),
  startedAt: Type.String(),
});
export type Endpoints = Static<typeof EndpointsSchema>;

export function endpointsPath(stateDir: string): string {
  return join(stateDir, 'run', 'endpoints.json');
}

/** The endpoints of the hub running on `stateDir`, or undefined when none is written or it is unreadable. */
export async function readEndpoints(stateDir: string): Promise<Endpoints | undefined> {
  try {
    const value: unknown = JSON.parse(await readFile(endpointsPath(stateDir), 'utf8'));
    return Value.Check(EndpointsSchema, value) ? value : undefined;
  } catch {
    return undefined;
  }
}
