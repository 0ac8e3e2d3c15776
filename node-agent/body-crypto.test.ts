// End-to-end body encryption between agents with real certificates: FR encrypts to DE (and to
// itself), NL cannot read it; DE's renewal keeps the old key under identity/previous/ so messages
// still on their way to the old certificate decrypt; retired keys are pruned after their time.
import { X509Certificate } from 'node:crypto';
import { chmod, mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { initCa } from '../pki/ca-init.js';
import { CertificateAuthority } from '../pki/ca.js';
import { cmsRecipientSerials } from '../pki/cms.js';
import { createCsr } from '../pki/csr-create.js';
import { writeSecretFile } from '../pki/files.js';
import { generateP256, privateKeyToPem } from '../pki/keys.js';
import type { Directory } from '../protocol/directory.js';
import { newUlid, type Envelope } from '../protocol/envelope.js';
import { tempDir } from '../test/helpers/tmpdir.js';
import { BodyCrypto, RETIRED_KEY_KEEP_MS, retiredDir, retireIdentity } from './body-crypto.js';
import { MemberDirectory } from './directory.js';
import { agentPaths, type AgentPaths } from './state.js';

const silent = pino({ level: 'silent' });

const root = await tempDir(t, 'ncbnet-body-crypto-');
await initCa(join(root, 'ca'));
const ca = await CertificateAuthority.load(join(root, 'ca'));
const trust = { trustedRoots: [ca.root.toString('pem')], intermediates: [ca.issuer.toString('pem')] };

interface Identity {
  cert: string;
  key: string;
  serial: string;
  notAfterMs: number;
}

async function issue(cc: string): Promise<Identity> {
  const keys = await generateP256();
  const issued = await ca.issue({ kind: 'country', name: cc, csr: await createCsr('country', cc, keys) });
  return { cert: issued.pem, key: await privateKeyToPem(keys.privateKey), serial: issued.serial, notAfterMs: issued.notAfter.getTime() };
}

/** Writes `id` as the agent's current identity, as enrollment and renewal leave it. */
async function install(paths: AgentPaths, id: Identity): Promise<void> {
  await mkdir(join(paths.dir, 'identity'), { recursive: true, mode: 0o700 });
  await rm(paths.countryKey, { force: true });
  await writeSecretFile(paths.countryKey, id.key);
  await writeFile(paths.countryCert, id.cert);
}

/** What the hub serves: mutable, so a renewal can be published. */
const members: Record<string, Identity> = {};
function served(): Directory {
  return {
    generatedAt: new Date().toISOString(),
    countries: Object.entries(members)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([code, id]) => ({ code, name: code, certificate: id.cert, certSerial: id.serial, notAfter: new Date(id.notAfterMs).toISOString() })),
  };
}

interface Agent {
  paths: AgentPaths;
  directory: MemberDirectory;
  crypto: BodyCrypto;
}

async function agent(cc: string, opts: { now?: () => number } = {}): Promise<Agent> {
  const stateDir = join(root, `agent-${cc}`);
  const paths = agentPaths(stateDir);
  if (members[cc] === undefined) {
    members[cc] = await issue(cc);
    await install(paths, members[cc]);
  }
  const directory = await MemberDirectory.open({ country: cc, cachePath: join(stateDir, 'directory.json'), fetch: () => Promise.resolve(served()), trust, log: silent });
  return { paths, directory, crypto: new BodyCrypto({ paths, directory, log: silent, ...opts }) };
}

function envelopeOf(encrypted: string, to: Envelope['to'] = ['DE']): Envelope {
  return { v: 1, id: newUlid(), kind: 'message', from: 'FR', to, priority: 'routine', created: new Date().toISOString(), handling: 'restricted', encrypted };
}

const FR = await agent('FR');
const DE = await agent('DE');
const NL = await agent('NL');
const text = 'Notice rouge — Jean Dupont, né le 1970-01-01 ✓';

t.test('body-crypto: FR encrypts to DE and to itself; DE and FR read it, NL does not', async (t) => {
  const cms = await FR.crypto.encrypt(['DE'], text);
  t.same(cmsRecipientSerials(cms).sort(), [members['FR']?.serial, members['DE']?.serial].sort(), 'recipients: the sender and DE, nobody else');
  const env = envelopeOf(cms);
  t.equal(await DE.crypto.decrypt(env), text);
  t.equal(await FR.crypto.decrypt(env), text, 'the sender reads its own message');
  await t.rejects(NL.crypto.decrypt(env), { code: 'PKI_CMS_NOT_RECIPIENT', message: new RegExp(env.id) });
  await t.rejects(DE.crypto.decrypt({ ...env, encrypted: undefined, body: 'plain' }), { code: 'PKI_CMS_NOT_RECIPIENT' }, 'nothing encrypted: nothing to decrypt');
});

t.test('body-crypto: a broadcast is encrypted to every member', async (t) => {
  const cms = await FR.crypto.encrypt('*', text);
  t.equal(cmsRecipientSerials(cms).length, 3, 'FR (own copy), DE and NL, FR only once');
  const env = envelopeOf(cms, '*');
  for (const a of [FR, DE, NL]) t.equal(await a.crypto.decrypt(env), text);
});

t.test('body-crypto: an unknown recipient fails with the directory\'s code', async (t) => {
  await t.rejects(FR.crypto.encrypt(['DE', 'IT'], text), { code: 'RELAY_RECIPIENT_KEY_UNKNOWN', problems: [/^to\[1\]/] });
});

t.test('body-crypto: after DE renews, messages to its old and its new certificate both decrypt; old keys go after their time', async (t) => {
  const old = members['DE'] as Identity;
  const beforeRenewal = envelopeOf(await FR.crypto.encrypt(['DE'], 'to the old key'));
  t.same(cmsRecipientSerials(beforeRenewal.encrypted ?? '').includes(old.serial), true);

  // The renewal: retire the pair (twice: a crash and retry must be harmless), install the new one, reload.
  await retireIdentity(DE.paths, old.cert, old.key);
  await retireIdentity(DE.paths, old.cert, old.key);
  const renewed = await issue('DE');
  members['DE'] = renewed;
  await install(DE.paths, renewed);
  await DE.crypto.reload();

  const previous = retiredDir(DE.paths);
  t.equal(previous, join(DE.paths.dir, 'identity', 'previous'));
  t.same((await readdir(previous)).sort(), [`${old.serial}.crt`, `${old.serial}.key`]);
  t.equal((await stat(join(previous, `${old.serial}.key`))).mode & 0o777, 0o600, 'the retired key is 0600');
  t.equal((await stat(previous)).mode & 0o077, 0, 'identity/previous is closed to group and others');

  t.equal(await DE.crypto.decrypt(beforeRenewal), 'to the old key', 'a message on its way during the renewal still decrypts');
  await FR.directory.refresh();
  const afterRenewal = envelopeOf(await FR.crypto.encrypt(['DE'], 'to the new key'));
  t.ok(cmsRecipientSerials(afterRenewal.encrypted ?? '').includes(renewed.serial), 'FR now encrypts to the new certificate');
  t.notOk(cmsRecipientSerials(afterRenewal.encrypted ?? '').includes(old.serial));
  t.equal(await DE.crypto.decrypt(afterRenewal), 'to the new key');
  const ownCopy = envelopeOf(await DE.crypto.encrypt(['FR'], 'from DE'));
  t.ok(cmsRecipientSerials(ownCopy.encrypted ?? '').includes(renewed.serial), 'DE\'s own copy is for its new certificate');
  t.equal(await DE.crypto.decrypt(ownCopy), 'from DE');

  // A restarted agent (fresh BodyCrypto, no explicit reload) finds both keys too.
  const restarted = new BodyCrypto({ paths: DE.paths, directory: DE.directory, log: silent });
  t.equal(await restarted.decrypt(beforeRenewal), 'to the old key');
  t.equal(await restarted.decrypt(afterRenewal), 'to the new key');

  // Pruning: kept until RETIRED_KEY_KEEP_MS after the old certificate expired, then deleted on reload.
  const oldNotAfter = Date.parse(new X509Certificate(old.cert).validTo);
  const justBefore = new BodyCrypto({ paths: DE.paths, directory: DE.directory, log: silent, now: () => oldNotAfter + RETIRED_KEY_KEEP_MS - 60_000 });
  await justBefore.reload();
  t.equal((await readdir(previous)).length, 2, 'still within the keep time');
  t.equal(await justBefore.decrypt(beforeRenewal), 'to the old key');
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const after = new BodyCrypto({ paths: DE.paths, directory: DE.directory, log, now: () => oldNotAfter + RETIRED_KEY_KEEP_MS + 60_000 });
  await after.reload();
  t.same(await readdir(previous), [], 'the retired pair is deleted');
  t.match(lines, [{ msg: 'retired country key removed', serial: old.serial }]);
  await t.rejects(after.decrypt(beforeRenewal), { code: 'PKI_CMS_NOT_RECIPIENT' }, 'the old key is gone');
  t.equal(await after.decrypt(afterRenewal), 'to the new key', 'the current key is never pruned');
});

t.test('body-crypto: an unreadable retired pair is skipped with a warning; the current one still works', async (t) => {
  const paths = agentPaths(await tempDir(t));
  const current = await issue('DE');
  const retired = await issue('DE');
  await install(paths, current);
  await retireIdentity(paths, retired.cert, retired.key);
  await chmod(join(retiredDir(paths), `${retired.serial}.key`), 0o644);
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const directory = await MemberDirectory.open({ country: 'DE', cachePath: join(paths.dir, 'directory.json'), fetch: () => Promise.resolve(served()), trust, log: silent });
  const crypto = new BodyCrypto({ paths, directory, log });
  await crypto.reload();
  t.match(lines, [{ level: 40, msg: 'retired key pair unreadable, skipped' }]);
  members['DE'] = current;
  await FR.directory.refresh();
  t.equal(await crypto.decrypt(envelopeOf(await FR.crypto.encrypt(['DE'], 'still here'))), 'still here');
});
