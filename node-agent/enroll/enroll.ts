import { X509Certificate, createHash } from 'node:crypto';
import { access, mkdir, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { Value } from 'typebox/value';
import { createCountryCsr } from '../../pki/csr-create.js';
import { writeFileDurable, writeSecretFile } from '../../pki/files.js';
import { generateP256, privateKeyToPem } from '../../pki/keys.js';
import { readPemBlocks } from '../../pki/pem.js';
import { parseToken } from '../../pki/tokens.js';
import { BundleSchema, type Bundle } from '../../protocol/bundle.js';
import { schemaProblems } from '../../protocol/validate.js';
import { genKey, pubKey } from '../../system/wg.js';
import { AGENT_ALREADY_ENROLLED, AGENT_BAD_HUB_URL, AGENT_HUB_NOT_PINNED, AGENT_HUB_REFUSED, AgentError } from '../errors.js';
import { agentPaths, writeBundle } from '../state.js';
import { hubCall, hubJson } from './hub-client.js';

export interface EnrollOptions {
  hubUrl: string;
  token: string;
  stateDir: string;
  /** When given, the CSR names it, and a token for another country is refused by the hub. */
  country?: string;
  force?: boolean;
  log?: Logger;
}

function fingerprint(cert: string | Uint8Array): string {
  return createHash('sha256').update(new X509Certificate(cert).raw).digest('hex');
}

/**
 * Finds the hub's root certificate and checks it against the token (as kubeadm's discovery hash
 * does): the chain is fetched once without verification, the certificate whose SHA-256 matches
 * the token's fingerprint becomes the trust anchor, and every later call verifies the hub's TLS
 * certificate (chain and host name) against it. A hub that cannot show that root is not ours.
 */
export async function pinHubRoot(hubUrl: string, caFingerprint: string): Promise<string> {
  const answer = await hubCall(`${hubUrl}/pki/ca`, { insecureForPinning: true }, 'GET');
  if (answer.status !== 200) throw new AgentError(AGENT_HUB_REFUSED, `${hubUrl}/pki/ca answered ${answer.status}; is this an ncbnet hub?`);
  let certs: Uint8Array[];
  try {
    certs = readPemBlocks(answer.body.toString('utf8'), 'hub CA chain')
      .filter((b) => b.label === 'CERTIFICATE')
      .map((b) => b.der);
  } catch (err) {
    throw new AgentError(AGENT_HUB_NOT_PINNED, `${hubUrl}/pki/ca did not return certificates`, { cause: err });
  }
  const root = certs.find((der) => fingerprint(der) === caFingerprint);
  if (!root) throw new AgentError(AGENT_HUB_NOT_PINNED, `the hub at ${hubUrl} does not hold the CA this token was made for (fingerprint ${caFingerprint.slice(0, 16)}…); check the URL and the token`);
  return new X509Certificate(root).toString();
}

/**
 * `ncbnet-agent enroll`: keys are made here and never leave (P-256 for the certificate, X25519
 * for WireGuard, both 0600), the hub is pinned from the token, and the bundle is stored as the
 * last-known-good state. Private keys are written under `.pending` names first and moved into
 * place only after the hub accepted, so a failed enrollment leaves the old state (with `--force`)
 * or nothing behind.
 */
export async function enroll(opts: EnrollOptions): Promise<Bundle> {
  const paths = agentPaths(opts.stateDir);
  let url: URL;
  try {
    url = new URL(opts.hubUrl);
  } catch (err) {
    throw new AgentError(AGENT_BAD_HUB_URL, `--hub: not a URL (got ${JSON.stringify(opts.hubUrl)})`, { cause: err });
  }
  if (url.protocol !== 'https:') throw new AgentError(AGENT_BAD_HUB_URL, `--hub: must be https:// (got ${JSON.stringify(opts.hubUrl)})`);
  const hubUrl = url.origin;
  const token = parseToken(opts.token);
  if (!opts.force && (await access(paths.bundle).then(() => true, () => false))) {
    throw new AgentError(AGENT_ALREADY_ENROLLED, `${opts.stateDir}: already enrolled; pass --force to enroll again with new keys`);
  }
  const root = await pinHubRoot(hubUrl, token.caFingerprint);

  const keys = await generateP256();
  const csr = await createCountryCsr(keys, opts.country);
  const wgPrivate = await genKey();
  const pending = { countryKey: `${paths.countryKey}.pending`, wgKey: `${paths.wgKey}.pending` };
  await mkdir(dirname(paths.countryKey), { recursive: true, mode: 0o700 });
  await mkdir(dirname(paths.wgKey), { recursive: true, mode: 0o700 });
  await rm(pending.countryKey, { force: true });
  await rm(pending.wgKey, { force: true });
  await writeSecretFile(pending.countryKey, await privateKeyToPem(keys.privateKey));
  await writeSecretFile(pending.wgKey, `${wgPrivate}\n`);
  try {
    const bundle = await hubJson<unknown>(`${hubUrl}/v1/enroll`, { ca: root }, 'POST', { token: opts.token, csr, wgPublicKey: await pubKey(wgPrivate) });
    if (!Value.Check(BundleSchema, bundle)) {
      throw new AgentError(AGENT_HUB_REFUSED, `the hub's bundle is not what this agent understands: ${schemaProblems(BundleSchema, bundle, 'bundle').slice(0, 3).join('; ')}`);
    }
    if (fingerprint(bundle.caCertificate) !== token.caFingerprint) throw new AgentError(AGENT_HUB_NOT_PINNED, 'the bundle names another root CA than the token');
    await rename(pending.countryKey, paths.countryKey);
    await rename(pending.wgKey, paths.wgKey);
    await writeFileDurable(paths.countryCert, bundle.certificate);
    await writeFileDurable(paths.chain, bundle.chain);
    await writeFileDurable(paths.root, bundle.caCertificate);
    await writeBundle(opts.stateDir, bundle);
    opts.log?.info({ country: bundle.country, serial: bundle.serial, overlayAddress: bundle.overlayAddress }, 'enrolled');
    return bundle;
  } catch (err) {
    await rm(pending.countryKey, { force: true });
    await rm(pending.wgKey, { force: true });
    throw err;
  }
}
