import { X509Certificate } from 'node:crypto';
import { readFile, rename, rm } from 'node:fs/promises';
import { Value } from 'typebox/value';
import { writeFileDurable, writeSecretFile } from '../../pki/files.js';
import { generateP256, privateKeyToPem } from '../../pki/keys.js';
import { retireIdentity } from '../body-crypto.js';
import { RenewResponseSchema, type Bundle } from '../../protocol/bundle.js';
import { AGENT_RENEW_FAILED, AgentError } from '../errors.js';
import { agentPaths, writeBundle } from '../state.js';
import { hubJson } from './hub-client.js';

/**
 * When to renew: at `fraction` of the certificate's lifetime (ARCHITECTURE: 2/3), moved by up to
 * ±5 % of the lifetime at random so 195 agents enrolled the same hour do not renew the same
 * second. Never in the past: an overdue renewal starts within a minute.
 */
export function renewalDelayMs(certificatePem: string, fraction: number, nowMs: number, random: () => number = Math.random): number {
  const cert = new X509Certificate(certificatePem);
  const from = Date.parse(cert.validFrom);
  const to = Date.parse(cert.validTo);
  const lifetime = Math.max(0, to - from);
  const jitter = (random() * 2 - 1) * 0.05 * lifetime;
  const at = from + fraction * lifetime + jitter;
  return Math.max(at - nowMs, Math.floor(random() * 60_000));
}

/**
 * Renews the country certificate over mTLS with the current one (`POST /v1/renew` through the
 * tunnel): a new P-256 key made here, the new certificate stored, the bundle updated. The new key
 * is written under a `.pending` name and moved into place only with its certificate, so a failure
 * at any point leaves the current identity working.
 */
export async function renewCertificate(stateDir: string, bundle: Bundle): Promise<Bundle> {
  const paths = agentPaths(stateDir);
  const [cert, chain, key] = await Promise.all([readFile(paths.countryCert, 'utf8'), readFile(paths.chain, 'utf8'), readFile(paths.countryKey, 'utf8')]);
  const keys = await generateP256();
  // Loaded on first renewal (a week apart), not at start: it pulls @peculiar/x509 into the agent.
  const { createCountryCsr } = await import('../../pki/csr-create.js');
  const csr = await createCountryCsr(keys, bundle.country);
  const pendingKey = `${paths.countryKey}.pending`;
  await rm(pendingKey, { force: true });
  await writeSecretFile(pendingKey, await privateKeyToPem(keys.privateKey));
  try {
    const answer = await hubJson<unknown>(`${bundle.hub.apiUrl}/v1/renew`, { ca: bundle.caCertificate, cert: cert + chain, key }, 'POST', { csr });
    if (!Value.Check(RenewResponseSchema, answer)) throw new AgentError(AGENT_RENEW_FAILED, 'the hub answered the renewal with something this agent does not understand');
    const next: Bundle = { ...bundle, serial: answer.serial, notAfter: answer.notAfter, certificate: answer.certificate, chain: answer.chain };
    // Keep the old pair for messages still encrypted to it (node-agent/body-crypto.ts).
    await retireIdentity(paths, cert, key);
    // Certificate before key: a crash between the two leaves an old key with a new certificate,
    // which the TLS library refuses loudly at start, rather than silently using a stale pair.
    await writeFileDurable(paths.countryCert, answer.certificate);
    await rename(pendingKey, paths.countryKey);
    await writeFileDurable(paths.chain, answer.chain);
    await writeBundle(stateDir, next);
    return next;
  } catch (err) {
    await rm(pendingKey, { force: true });
    throw err;
  }
}
