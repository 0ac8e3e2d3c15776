import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { CertificateAuthority } from '../pki/ca.js';
import { EnrollmentTokens } from '../pki/tokens.js';
import { AdminService } from './admin/service.js';
import { AuditLog } from './audit/audit-log.js';
import type { ReadinessCheck } from './api/routes-health.js';
import type { StatusSource } from './api/routes-status.js';
import type { ApiApp } from './api/schemas.js';
import { buildApiServer } from './api/server.js';
import type { HubConfig } from './config.js';
import { EnrollmentService, type EnrollmentStats, type HubNetwork } from './enrollment/service.js';
import { Registry, REGISTRY_BUCKET } from './registry/registry.js';
import { identityPaths } from './state-init.js';

export interface HubServicesOptions {
  stateDir: string;
  config: HubConfig;
  nc: NatsConnection;
  log: Logger;
  network: () => HubNetwork;
  readiness: ReadinessCheck;
  /** `GET /v1/admin/status` (the daemon's collectors). */
  status?: StatusSource;
  /** Counting hooks for enrollments and renewals (the daemon's metrics). */
  enrollmentStats?: EnrollmentStats;
  /** Replicas of the registry bucket (1 on one hub; 3 in a cluster). */
  replicas?: number;
}

/** The hub's services over an open broker connection: CA, tokens, registry, enrollment, admin, API. */
export interface HubServices {
  ca: CertificateAuthority;
  tokens: EnrollmentTokens;
  registry: Registry;
  enrollment: EnrollmentService;
  admin: AdminService;
  audit: AuditLog;
  api: ApiApp;
}

/** Where the registry's disk snapshot lives (read before the broker is up). */
export function snapshotPath(stateDir: string): string {
  return join(stateDir, 'registry', 'snapshot.json');
}

/**
 * Builds the hub's services in dependency order (STYLE: no singletons; `main.ts` composes).
 * Shared by the daemon and by integration tests, so tests run the same wiring as production.
 */
export async function openHubServices(o: HubServicesOptions): Promise<HubServices> {
  const apiUrl = o.config.api.publicUrl;
  const ca = await CertificateAuthority.load(o.stateDir, apiUrl ? { urls: { crl: `${apiUrl}/pki/crl`, ocsp: `${apiUrl}/pki/ocsp` } } : {});
  const tokens = await EnrollmentTokens.open(ca.paths.tokens, ca.rootFingerprint);
  const kv = await new Kvm(o.nc).create(REGISTRY_BUCKET, { history: 10, replicas: o.replicas ?? 1, storage: 'file' });
  const registry = await Registry.open({ kv, snapshotPath: snapshotPath(o.stateDir), log: o.log.child({ component: 'registry' }) });
  const audit = await AuditLog.open({ nc: o.nc, log: o.log.child({ component: 'audit' }), ...(o.replicas ? { replicas: o.replicas } : {}) });
  const enrollment = new EnrollmentService({ ca, tokens, registry, network: o.network, countryLifetimeMs: o.config.certificates.countryLifetimeMs, log: o.log.child({ component: 'enrollment' }), audit, ...(o.enrollmentStats ? { stats: o.enrollmentStats } : {}) });
  const admin = new AdminService({ ca, tokens, registry, log: o.log.child({ component: 'admin' }), audit });
  const paths = identityPaths(o.stateDir);
  const api = await buildApiServer({
    tls: { cert: await readFile(paths.hubCert, 'utf8'), key: await readFile(paths.hubKey, 'utf8'), ca: ca.root.toString('pem') },
    bodyLimitBytes: o.config.api.bodyLimitBytes,
    ca,
    enrollment,
    admin,
    audit,
    auditLog: audit,
    registry,
    readiness: o.readiness,
    status: o.status,
    log: o.log.child({ component: 'api' }),
  });
  return { ca, tokens, registry, enrollment, admin, audit, api };
}
