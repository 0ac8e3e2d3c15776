/**
 * Every scenario of the fault suite, in the order they run. Attacks share one hub daemon (started
 * on first use), fuzz targets their own in-process components, and fault injection (kill -9,
 * links down, full disk, damaged files, reload storm) shares one network in namespaces under a
 * steady load, each row counting messages accepted, delivered, lost and duplicated.
 */
import { attackAdminApi } from './attacks/admin.js';
import { attackBrokerConnections, attackBrokerSubjects } from './attacks/broker.js';
import { attackEnvelopes, attackReplays } from './attacks/envelopes.js';
import { attackTokenBruteForce, attackTokens } from './attacks/tokens.js';
import { fuzzEnvelope } from './fuzz/envelope.js';
import { fuzzHubApi } from './fuzz/hub-api.js';
import { fuzzLocalApi } from './fuzz/local-api.js';
import { floodOneCountry } from './faults/flood.js';
import { killHub, killNatsServer, killRecipient, killSender } from './faults/kills.js';
import { hubUnreachable, partitionOne } from './faults/links.js';
import { reloadStorm } from './faults/reload-storm.js';
import { damagedFiles, diskFull } from './faults/storage.js';
import type { FaultContext } from './lib/context.js';
import { crashedRow, finishRow, type Row, type RowInput, type RowKind } from './lib/report.js';

export interface Scenario {
  /** For `FAULTS_ONLY=id,id`. */
  id: string;
  kind: RowKind;
  /** Shown in progress lines, and as the row of a scenario that crashed. */
  title: string;
  /** Fault scenarios only: part of the quick set `make test` runs (faults/faults.test.ts). */
  quick?: boolean;
  run(ctx: FaultContext): Promise<RowInput[]>;
}

export const SCENARIOS: readonly Scenario[] = [
  { id: 'broker-subjects', kind: 'attack', title: "broker: a country's certificate on forbidden subjects and APIs", run: attackBrokerSubjects },
  { id: 'broker-connections', kind: 'attack', title: 'broker: identities it must not admit', run: attackBrokerConnections },
  { id: 'tokens', kind: 'attack', title: 'enroll: replayed, mismatched, expired and foreign tokens', run: attackTokens },
  { id: 'token-brute-force', kind: 'attack', title: 'enroll: brute force of tokens', run: attackTokenBruteForce },
  { id: 'envelopes', kind: 'attack', title: 'envelopes: forged, revoked, expired', run: attackEnvelopes },
  { id: 'replays', kind: 'attack', title: 'envelopes: replays', run: attackReplays },
  { id: 'admin', kind: 'attack', title: 'admin API: callers that are not operators', run: attackAdminApi },
  { id: 'fuzz-envelope', kind: 'fuzz', title: 'fuzz: envelope validator', run: (ctx) => fuzzEnvelope(ctx, ctx.sizes.fuzzCases) },
  { id: 'fuzz-local-api', kind: 'fuzz', title: 'fuzz: agent local API', run: (ctx) => fuzzLocalApi(ctx, ctx.sizes.fuzzCases) },
  { id: 'fuzz-hub-api', kind: 'fuzz', title: 'fuzz: hub enrollment API', run: (ctx) => fuzzHubApi(ctx, ctx.sizes.fuzzCases) },
  { id: 'kill-nats-server', kind: 'fault', quick: true, title: 'kill -9 of nats-server under load', run: killNatsServer },
  { id: 'partition', kind: 'fault', title: 'one country partitioned, the others measured', run: partitionOne },
  { id: 'hub-unreachable', kind: 'fault', title: 'hub unreachable (link down), then back', run: hubUnreachable },
  { id: 'kill-sender', kind: 'fault', title: 'kill -9 of a sending agent', run: killSender },
  { id: 'kill-recipient', kind: 'fault', quick: true, title: 'kill -9 of a receiving agent, repeatedly', run: killRecipient },
  { id: 'reload-storm', kind: 'fault', title: 'registry changes in a row under load', run: reloadStorm },
  { id: 'disk-full', kind: 'fault', quick: true, title: "an agent's state disk full, then space back", run: diskFull },
  { id: 'damaged-files', kind: 'fault', title: 'agents restarted on damaged outbox, inbox and status files', run: damagedFiles },
  { id: 'flood', kind: 'fault', title: 'one country floods at 10x its rate; the others keep their latency', run: floodOneCountry },
  // Last: when the hub cannot come back, every scenario after it would fail for that one reason.
  { id: 'kill-hub', kind: 'fault', title: 'kill -9 of the hub daemon', run: killHub },
];

/** The scenarios `FAULTS_ONLY` (comma-separated ids) selects; all when unset. Throws on an unknown id. */
export function selectScenarios(only: string | undefined): readonly Scenario[] {
  if (only === undefined || only.trim() === '') return SCENARIOS;
  const ids = only.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = ids.filter((id) => !SCENARIOS.some((s) => s.id === id));
  if (unknown.length > 0) throw new Error(`FAULTS_ONLY: unknown scenario ${unknown.join(', ')} (one of ${SCENARIOS.map((s) => s.id).join(', ')})`);
  return SCENARIOS.filter((s) => ids.includes(s.id));
}

/** Runs one scenario; a throw becomes a crashed row rather than ending the suite. */
export async function runScenario(s: Scenario, ctx: FaultContext): Promise<Row[]> {
  const started = performance.now();
  try {
    return (await s.run(ctx)).map(finishRow);
  } catch (err) {
    return [crashedRow(s.title, s.kind, err, performance.now() - started)];
  }
}
