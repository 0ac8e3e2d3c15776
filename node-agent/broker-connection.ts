import { readFile } from 'node:fs/promises';
import type { NodeConnectionOptions } from '@nats-io/transport-node';
import type { Bundle } from '../protocol/bundle.js';
import { subjects } from '../protocol/subjects.js';
import { agentPaths } from './state.js';

/**
 * How an agent connects to the hub's broker (ARCHITECTURE, node-agent): its country certificate
 * over TLS, the country's inbox prefix (its permissions allow replies only there), waiting as long
 * as it takes for the first connection and reconnecting forever after, with jitter so 195 agents
 * do not return at once. `servers` defaults to the bundle's URL (over the tunnel).
 */
export async function brokerConnectionOptions(stateDir: string, bundle: Bundle, servers: string = bundle.hub.natsUrl): Promise<NodeConnectionOptions> {
  const paths = agentPaths(stateDir);
  const [cert, chain, key] = await Promise.all([readFile(paths.countryCert, 'utf8'), readFile(paths.chain, 'utf8'), readFile(paths.countryKey, 'utf8')]);
  return {
    servers,
    name: `ncbnet-agent-${bundle.country}`,
    tls: { cert: cert + chain, key, ca: bundle.caCertificate },
    inboxPrefix: subjects.inboxPrefix(bundle.country),
    waitOnFirstConnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 1000,
    reconnectJitter: 1000,
    reconnectJitterTLS: 2000,
    timeout: 10_000,
    // Every request would otherwise build a stack trace up front, for errors that are rare.
    noAsyncTraces: true,
  };
}
