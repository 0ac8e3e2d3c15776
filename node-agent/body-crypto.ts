/**
 * End-to-end encryption of restricted and confidential bodies at the agent (ARCHITECTURE,
 * "Messages"): the sending agent encrypts the body as CMS EnvelopedData (`pki/cms.ts`) to every
 * recipient's country certificate, from the member directory, and to its own, so it can read what
 * it sent; the hub routes and audits the header but cannot read the content; the recipient agent
 * decrypts with its private key, which never leaves the machine.
 *
 * Renewal makes a new key, yet messages encrypted to the previous certificate may still be on
 * their way (an agent can be away for days; DELIVER keeps copies 30 days). So a renewal retires
 * the old pair to `identity/previous/<serial>.{key,crt}` (key 0600) rather than dropping it, and
 * decryption picks the key by the serials the CMS names. Retired pairs are removed
 * {@link RETIRED_KEY_KEEP_MS} after their certificate expired.
 *
 * The CMS code (`pki/cms.ts`: pkijs, asn1js, @peculiar/x509) is loaded at the first encryption or
 * decryption, not at start: it costs the agent several MiB of resident memory, and an agent that
 * only sends and receives public messages never needs it.
 */
import { X509Certificate } from 'node:crypto';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { writeFileDurable, writeSecretFile, readSecretFile } from '../pki/files.js';
import { CmsError, PKI_CMS_DECRYPT_FAILED, PKI_CMS_NOT_RECIPIENT } from '../pki/errors.js';
import type { ALL_COUNTRIES, Envelope } from '../protocol/envelope.js';
import type { MemberDirectory } from './directory.js';
import type { AgentPaths } from './state.js';

/** How long a retired key is kept after its certificate expired: DELIVER's 30-day age, plus margin. */
export const RETIRED_KEY_KEEP_MS = 35 * 24 * 3600 * 1000;

/** Where retired key pairs live. */
export function retiredDir(paths: AgentPaths): string {
  return join(dirname(paths.countryKey), 'previous');
}

/** A private key and its certificate, both PEM. */
interface KeyPair {
  serial: string;
  certPem: string;
  keyPem: string;
  notAfterMs: number;
}

function serialOf(cert: X509Certificate): string {
  return cert.serialNumber.toLowerCase().replace(/^(00)+(?=[0-9a-f]{2})/, '');
}

/**
 * Keeps the current pair under `identity/previous/` before a renewal replaces it. Idempotent (a
 * crash and retry writes the same files again).
 */
export async function retireIdentity(paths: AgentPaths, certPem: string, keyPem: string): Promise<void> {
  const serial = serialOf(new X509Certificate(certPem));
  const dir = retiredDir(paths);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await rm(join(dir, `${serial}.key`), { force: true });
  await writeSecretFile(join(dir, `${serial}.key`), keyPem);
  await writeFileDurable(join(dir, `${serial}.crt`), certPem);
}

/** Options of {@link BodyCrypto}. */
export interface BodyCryptoOptions {
  paths: AgentPaths;
  directory: MemberDirectory;
  log: Logger;
  now?: () => number;
}

/** See the module comment. Call {@link reload} after a renewal. */
export class BodyCrypto {
  readonly #opts: BodyCryptoOptions;
  readonly #log: Logger;
  #pairs: KeyPair[] | undefined;

  constructor(opts: BodyCryptoOptions) {
    this.#opts = opts;
    this.#log = opts.log.child({ component: 'body-crypto' });
  }

  /** Re-reads the current and retired key pairs (and prunes the old ones). */
  async reload(): Promise<void> {
    const { paths } = this.#opts;
    const now = (this.#opts.now ?? Date.now)();
    const pairs = [await readPair(paths.countryCert, paths.countryKey)];
    const dir = retiredDir(paths);
    let names: string[] = [];
    try {
      names = await readdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    for (const name of names.filter((n) => n.endsWith('.crt'))) {
      const base = join(dir, name.slice(0, -'.crt'.length));
      try {
        const pair = await readPair(`${base}.crt`, `${base}.key`);
        if (pair.notAfterMs + RETIRED_KEY_KEEP_MS < now) {
          await rm(`${base}.key`, { force: true });
          await rm(`${base}.crt`, { force: true });
          this.#log.info({ serial: pair.serial }, 'retired country key removed');
        } else if (pair.serial !== pairs[0]?.serial) {
          pairs.push(pair);
        }
      } catch (err) {
        this.#log.warn({ err, file: `${base}.crt` }, 'retired key pair unreadable, skipped');
      }
    }
    this.#pairs = pairs;
  }

  /**
   * Encrypts `plaintext` to the recipients' certificates and this country's own; returns the base64
   * CMS for the envelope's `encrypted`. Throws `RELAY_RECIPIENT_KEY_UNKNOWN` /
   * `RELAY_DIRECTORY_UNAVAILABLE` (directory) or `PKI_CMS_*` (e.g. too large).
   */
  async encrypt(to: readonly string[] | typeof ALL_COUNTRIES, plaintext: string): Promise<string> {
    const recipients = await this.#opts.directory.certificatesFor(to);
    const own = (await this.#current()).certPem;
    const { encryptForRecipients } = await import('../pki/cms.js');
    return encryptForRecipients(plaintext, [own, ...recipients.map((r) => r.pem)]);
  }

  /**
   * The plaintext of an envelope's `encrypted` body, with whichever of this country's keys it was
   * encrypted to. Verify the envelope's signature first (CBC is malleable). Throws `PKI_CMS_*`:
   * `PKI_CMS_NOT_RECIPIENT` when none of our keys is among its recipients, `PKI_CMS_DECRYPT_FAILED`
   * when the text is not UTF-8.
   */
  async decrypt(envelope: Envelope): Promise<string> {
    const cms = envelope.encrypted;
    if (cms === undefined) throw new CmsError(PKI_CMS_NOT_RECIPIENT, `envelope ${envelope.id} has no encrypted body`);
    const { cmsRecipientSerials, decryptForRecipient } = await import('../pki/cms.js');
    const serials = new Set(cmsRecipientSerials(cms));
    if (this.#pairs === undefined) await this.reload();
    const pair = (this.#pairs ?? []).find((p) => serials.has(p.serial));
    if (pair === undefined) {
      throw new CmsError(PKI_CMS_NOT_RECIPIENT, `envelope ${envelope.id}: encrypted to certificates ${[...serials].join(', ')}, none of which is this country's`);
    }
    const bytes = await decryptForRecipient(cms, pair.certPem, pair.keyPem);
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch (err) {
      throw new CmsError(PKI_CMS_DECRYPT_FAILED, `envelope ${envelope.id}: decrypted body is not UTF-8 text`, { cause: err });
    }
  }

  async #current(): Promise<KeyPair> {
    if (this.#pairs === undefined) await this.reload();
    const pair = this.#pairs?.[0];
    if (pair === undefined) throw new Error('body-crypto: no current key pair');
    return pair;
  }
}

async function readPair(certPath: string, keyPath: string): Promise<KeyPair> {
  const [certPem, keyPem] = await Promise.all([readFile(certPath, 'utf8'), readSecretFile(keyPath)]);
  const cert = new X509Certificate(certPem);
  return { serial: serialOf(cert), certPem, keyPem, notAfterMs: Date.parse(cert.validTo) };
}
