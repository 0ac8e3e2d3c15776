/**
 * The target of the attacks: the real hub daemon (`ncbnet hub run` as its own process: nats-server
 * with mTLS and per-country permissions, router with signature checks, hash-chained audit, CA,
 * enrollment and admin API) on loopback, with FR, DE and IT enrolled through the real API. The
 * attacker holds each country's key, as a compromised or misbehaving NCB would.
 *
 * Prepared offline before the hub starts, the way an operator would with `ncbnet pki sign|revoke`
 * (which refuse while a hub runs on the directory): a second operator certificate and a revoked
 * one, an enrollment token that has already expired (made with the token store's clock set two
 * hours back: the shortest TTL is a minute, too long to wait for), and identities from a foreign CA.
 */
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Endpoints } from '../../hub/runtime.js';
import { identityPaths, initHubState } from '../../hub/state-init.js';
import { initCa } from '../../pki/ca-init.js';
import { CertificateAuthority } from '../../pki/ca.js';
import { normalizeSerial } from '../../pki/serial.js';
import { EnrollmentTokens } from '../../pki/tokens.js';
import { subjects } from '../../protocol/subjects.js';
import { startHubProcess, type DaemonOwner, type DaemonProcess } from '../../test/helpers/daemon-process.js';
import { httpsCall, type HttpsAnswer } from '../../test/helpers/https.js';
import { enrollCountry, issueIdentity, type EnrolledCountry, type TlsIdentity } from '../../test/helpers/identities.js';
import { closedPort } from '../../test/helpers/ports.js';
import { tempDir } from '../../test/helpers/tmpdir.js';
import { waitFor } from '../../test/helpers/wait.js';

export const ATTACK_COUNTRIES = ['FR', 'DE', 'IT'] as const;
export type AttackCountry = (typeof ATTACK_COUNTRIES)[number];

export interface AttackNetwork {
  stateDir: string;
  hub: DaemonProcess<Endpoints>;
  apiUrl: string;
  natsUrl: string;
  rootPem: string;
  /** The hub's own broker identity (full permissions): the observer that sees what got through. */
  hubIdentity: TlsIdentity;
  /** The operator `hub init` made. */
  operator: TlsIdentity;
  /** A second operator, issued offline and valid (the control for the revoked one). */
  spareOperator: TlsIdentity;
  /** An operator certificate issued offline and revoked (keyCompromise) before the hub started. */
  revokedOperator: TlsIdentity;
  /** An operator and a country certificate from another root CA. */
  foreignOperator: TlsIdentity;
  foreignCountry: TlsIdentity;
  /** Enrolled countries; a scenario that renews one replaces its entry. */
  countries: Record<AttackCountry, EnrolledCountry>;
  /** A token for ES (added, pending) whose TTL ran out two hours ago. */
  expiredToken: string;
  /** One HTTPS call to the hub API as `who` (no client certificate when undefined). */
  call(method: string, path: string, who: TlsIdentity | undefined, body?: unknown): Promise<HttpsAnswer>;
  /** `/v1/admin…` as the first operator. */
  admin(method: string, path: string, body?: unknown): Promise<HttpsAnswer>;
  /** A NATS connection with `who`'s certificate (none when undefined), inbox prefix of `country`; closed at teardown. */
  connect(who: TlsIdentity | undefined, country?: string): Promise<NatsConnection>;
}

/** Starts the hub daemon and enrolls FR, DE and IT; everything is removed by `owner`'s teardown. */
export async function startAttackNetwork(owner: DaemonOwner, progress: (text: string) => void = () => undefined): Promise<AttackNetwork> {
  const stateDir = await tempDir(owner, 'ncbnet-faults-hub-');
  await initHubState({ state: stateDir, hubName: 'hub-1', sans: ['127.0.0.1', 'localhost'], operator: 'admin' });
  const ca = await CertificateAuthority.load(stateDir);
  const spareOperator = await issueIdentity(ca, 'operator', 'auditor');
  const revokedOperator = await issueIdentity(ca, 'operator', 'former');
  await ca.revoke(revokedOperator.serial, 'keyCompromise');
  const pastClock = () => new Date(Date.now() - 2 * 3600_000);
  const expired = await (await EnrollmentTokens.open(ca.paths.tokens, ca.rootFingerprint, pastClock)).create('ES', 60_000);
  const foreignDir = await tempDir(owner, 'ncbnet-faults-foreign-ca-');
  await initCa(foreignDir);
  const foreignCa = await CertificateAuthority.load(foreignDir);
  const foreignOperator = await issueIdentity(foreignCa, 'operator', 'admin');
  const foreignCountry = await issueIdentity(foreignCa, 'country', 'FR');

  const [apiPort, natsPort] = [await closedPort(), await closedPort()];
  const t0 = Date.now();
  const hub = await startHubProcess(owner, stateDir, {
    api: { host: '127.0.0.1', port: apiPort, publicUrl: `https://127.0.0.1:${apiPort}` },
    broker: { host: '127.0.0.1', port: natsPort, monitorPort: 0, natsUrlForAgents: `tls://127.0.0.1:${natsPort}` },
    metrics: { port: 0 },
    log: { level: 'warn' },
  });
  progress(`hub daemon up in ${Date.now() - t0} ms (pid ${hub.endpoints.pid}): API ${hub.endpoints.apiUrl}, broker ${hub.endpoints.natsUrl}`);

  const paths = identityPaths(stateDir);
  const rootPem = await readFile(ca.paths.rootCert, 'utf8');
  const identity = async (certPath: string, keyPath: string): Promise<TlsIdentity> => {
    const cert = await readFile(certPath, 'utf8');
    return { cert, key: await readFile(keyPath, 'utf8'), serial: normalizeSerial(new X509Certificate(cert).serialNumber) };
  };
  const operator = await identity(paths.operatorCert, paths.operatorKey);
  const hubIdentity = await identity(paths.hubCert, paths.hubKey);
  const apiUrl = hub.endpoints.apiUrl;
  const natsUrl = hub.endpoints.natsUrl;

  const call = (method: string, path: string, who: TlsIdentity | undefined, body?: unknown) =>
    httpsCall(`${apiUrl}${path}`, { method, ca: rootPem, ...(who ? { cert: who.cert, key: who.key } : {}), ...(body === undefined ? {} : { body }) });
  const admin = (method: string, path: string, body?: unknown) => call(method, `/v1/admin${path}`, operator, body);

  const connections: NatsConnection[] = [];
  owner.teardown(async () => {
    await Promise.all(connections.map((nc) => nc.close().catch(() => undefined)));
  });
  const connectAs = async (who: TlsIdentity | undefined, country?: string): Promise<NatsConnection> => {
    const nc = await connect({
      servers: natsUrl,
      tls: who === undefined ? { ca: rootPem } : { ca: rootPem, cert: who.cert, key: who.key },
      timeout: 3_000,
      reconnect: false,
      ...(country === undefined ? {} : { inboxPrefix: subjects.inboxPrefix(country) }),
    });
    connections.push(nc);
    return nc;
  };

  const esAdded = await admin('POST', '/countries', { code: 'ES', name: 'Country ES' });
  if (esAdded.status !== 201) throw new Error(`country add ES: ${esAdded.status} ${esAdded.text}`);
  const target = { apiUrl, rootPem, admin };
  const countries = {} as Record<AttackCountry, EnrolledCountry>;
  for (const cc of ATTACK_COUNTRIES) countries[cc] = await enrollCountry(target, cc);
  // Enrolling reloads nats-server with the new user and pin; wait until each can connect.
  for (const cc of ATTACK_COUNTRIES) {
    await waitFor(`${cc} admitted by the broker`, async () => {
      try {
        const nc = await connectAs(countries[cc], cc);
        await nc.close();
        return true;
      } catch {
        return false;
      }
    }, 15_000, 100);
  }
  progress(`enrolled ${ATTACK_COUNTRIES.join(', ')} (${Date.now() - t0} ms after the hub started)`);
  return {
    stateDir,
    hub,
    apiUrl,
    natsUrl,
    rootPem,
    hubIdentity,
    operator,
    spareOperator,
    revokedOperator,
    foreignOperator,
    foreignCountry,
    countries,
    expiredToken: expired.token,
    call,
    admin,
    connect: connectAs,
  };
}

/** The hub's connection, for observing: a `>` subscription sees everything published in the account. */
export function hubObserverConnection(net: AttackNetwork): Promise<NatsConnection> {
  return net.connect(net.hubIdentity);
}
