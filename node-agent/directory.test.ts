// The agent's member directory against real certificates from a throwaway CA: only entries whose
// certificate chains to the network's root, names the entry's country and serial and is still
// valid are kept; the cache file carries the agent through a hub outage; refreshes are rate-limited.
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { initCa } from '../pki/ca-init.js';
import { CertificateAuthority } from '../pki/ca.js';
import { createCsr } from '../pki/csr-create.js';
import { generateP256 } from '../pki/keys.js';
import type { Directory, DirectoryEntry } from '../protocol/directory.js';
import { tempDir } from '../test/helpers/tmpdir.js';
import { MemberDirectory, type MemberDirectoryOptions } from './directory.js';
import { RelayError } from './relay/errors.js';

const silent = pino({ level: 'silent' });
const MIN = 60_000;

interface Issued {
  pem: string;
  serial: string;
  notAfter: Date;
}

async function newCa(dir: string) {
  await initCa(dir);
  const ca = await CertificateAuthority.load(dir);
  const issue = async (cc: string, lifetimeMs?: number): Promise<Issued> => {
    const keys = await generateP256();
    const issued = await ca.issue({ kind: 'country', name: cc, csr: await createCsr('country', cc, keys), ...(lifetimeMs === undefined ? {} : { lifetimeMs }) });
    return { pem: issued.pem, serial: issued.serial, notAfter: issued.notAfter };
  };
  return { ca, issue, trust: { trustedRoots: [ca.root.toString('pem')], intermediates: [ca.issuer.toString('pem')] } };
}

const root = await tempDir(t, 'ncbnet-directory-');
const net = await newCa(join(root, 'ca'));
const other = await newCa(join(root, 'other-ca'));
const certs = {
  FR: await net.issue('FR'),
  DE: await net.issue('DE'),
  NL: await net.issue('NL'),
  IT: await net.issue('IT'),
  BE: await net.issue('BE'),
  // Five minutes, the shortest lifetime the CA grants: expired for a clock ten minutes ahead.
  ES: await net.issue('ES', 5 * MIN),
  otherDE: await other.issue('DE'),
};

function entry(code: string, cert: Issued, over: Partial<DirectoryEntry> = {}): DirectoryEntry {
  return { code, name: `Country ${code}`, certificate: cert.pem, certSerial: cert.serial, notAfter: cert.notAfter.toISOString(), ...over };
}

function directory(...entries: DirectoryEntry[]): Directory {
  return { generatedAt: new Date().toISOString(), countries: entries };
}

const good = directory(entry('DE', certs.DE), entry('FR', certs.FR), entry('NL', certs.NL));

/** Opens a directory for FR with a fetch that counts its calls. */
async function openFor(t: Test, over: Partial<MemberDirectoryOptions> & { cachePath?: string } = {}) {
  const calls = { n: 0 };
  const cachePath = over.cachePath ?? join(await tempDir(t), 'directory.json');
  const fetch = over.fetch ?? (() => Promise.resolve(good));
  const dir = await MemberDirectory.open({
    country: 'FR',
    trust: net.trust,
    log: silent,
    ...over,
    cachePath,
    fetch: () => {
      calls.n++;
      return fetch();
    },
  });
  return { dir, calls, cachePath };
}

function capture() {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { lines, log };
}

t.test('directory: a valid directory gives each recipient its certificate; a broadcast leaves out our own country', async (t) => {
  const { dir, calls } = await openFor(t);
  t.same(dir.countries(), [], 'nothing known before the first lookup');
  t.same(await dir.certificatesFor(['DE']), [{ code: 'DE', pem: certs.DE.pem, serial: certs.DE.serial }]);
  t.equal(calls.n, 1, 'the first lookup fetched');
  t.same(dir.countries(), ['DE', 'FR', 'NL']);
  t.same(
    (await dir.certificatesFor(['NL', 'DE'])).map((c) => [c.code, c.pem]),
    [
      ['NL', certs.NL.pem],
      ['DE', certs.DE.pem],
    ],
    'in the order asked',
  );
  t.same(
    (await dir.certificatesFor('*')).map((c) => c.code),
    ['DE', 'NL'],
    'every member but FR',
  );
  t.equal(calls.n, 1, 'known recipients within maxAge: no further fetch');
});

t.test('directory: entries with a foreign, mislabelled, wrong-serial, expired or unreadable certificate are left out, the rest kept', async (t) => {
  const { lines, log } = capture();
  const tenMinutesAhead = Date.now() + 10 * MIN;
  const hostile = directory(
    entry('BE', certs.BE, { certSerial: 'deadbeef' }),
    entry('DE', certs.otherDE),
    entry('ES', certs.ES),
    entry('FR', certs.FR),
    entry('IT', certs.IT),
    entry('NL', certs.IT),
    entry('PT', certs.FR, { certificate: '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n' }),
  );
  const { dir } = await openFor(t, { fetch: () => Promise.resolve(hostile), log, now: () => tenMinutesAhead });
  t.same(await dir.certificatesFor(['IT']), [{ code: 'IT', pem: certs.IT.pem, serial: certs.IT.serial }], 'a good entry survives its bad neighbours');
  t.same(dir.countries(), ['FR', 'IT']);
  t.same((await dir.certificatesFor('*')).map((c) => c.code), ['IT']);
  for (const [i, cc] of ['BE', 'DE', 'ES', 'NL', 'PT'].entries()) {
    const err = await dir.certificatesFor(['IT', cc]).then(
      () => undefined,
      (e: unknown) => e,
    );
    t.ok(err instanceof RelayError, `${cc} refused`);
    t.match(err, { code: 'RELAY_RECIPIENT_KEY_UNKNOWN', problems: [new RegExp(`^to\\[1\\]: .*"${cc}"`)] }, `${cc}: named in problems (${i})`);
  }
  const refused = lines.filter((l) => l['msg'] === 'directory certificate refused');
  t.same(refused.map((l) => l['country']).sort(), ['BE', 'DE', 'ES', 'NL', 'PT'], 'each refusal logged');
  t.match(refused.find((l) => l['country'] === 'BE'), { problem: /serial is [0-9a-f]+, not deadbeef/ });
  t.match(refused.find((l) => l['country'] === 'NL'), { problem: /names IT, not NL/ });
  t.match(refused.find((l) => l['country'] === 'DE'), { problem: /does not chain to a trusted root/ });
  t.match(refused.find((l) => l['country'] === 'ES'), { problem: /expired/ });
  t.match(refused.find((l) => l['country'] === 'PT'), { problem: /not a PEM certificate/ });
});

t.test('directory: the validity comes from the certificate, and a certificate that expires while held stops being used', async (t) => {
  let now = Date.now();
  const lying = directory(entry('ES', certs.ES, { notAfter: '2999-01-01T00:00:00Z' }), entry('FR', certs.FR));
  const { dir } = await openFor(t, { fetch: () => Promise.resolve(lying), now: () => now, maxAgeMs: 60 * MIN, minRefreshMs: 60 * MIN });
  t.same((await dir.certificatesFor(['ES'])).map((c) => c.code), ['ES'], 'valid now');
  now = certs.ES.notAfter.getTime() + 1000;
  await t.rejects(dir.certificatesFor(['ES']), { code: 'RELAY_RECIPIENT_KEY_UNKNOWN' }, 'not the hub\'s notAfter: the certificate\'s');
  await t.rejects(dir.certificatesFor('*'), { code: 'RELAY_DIRECTORY_UNAVAILABLE' }, 'no one left to broadcast to');
});

t.test('directory: a failed fetch falls back to the cache file, also for a new directory opened on it', async (t) => {
  const { dir, cachePath } = await openFor(t);
  await dir.certificatesFor(['DE']);
  t.equal((await stat(cachePath)).mode & 0o777, 0o600, 'the cache is written 0600');
  t.same(JSON.parse(await readFile(cachePath, 'utf8')), good, 'the cache holds what the hub said');

  const { lines, log } = capture();
  const offline = await openFor(t, { cachePath, log, fetch: () => Promise.reject(new Error('ECONNREFUSED')) });
  t.same(offline.dir.countries(), ['DE', 'FR', 'NL'], 'loaded from the cache at open');
  t.same(await offline.dir.certificatesFor(['DE']), [{ code: 'DE', pem: certs.DE.pem, serial: certs.DE.serial }]);
  t.equal(offline.calls.n, 1, 'the cache is not taken as fresh: the hub was asked first');
  t.same((await offline.dir.certificatesFor('*')).map((c) => c.code), ['DE', 'NL']);
  t.match(lines, [{ msg: 'member directory loaded', source: 'cache' }]);
  t.ok(
    lines.some((l) => l['msg'] === 'member directory not fetched, using the cached copy'),
    'the failed fetch is logged',
  );
  t.equal(await offline.dir.refresh(), false, 'refresh says the hub did not answer');
  t.same(JSON.parse(await readFile(cachePath, 'utf8')), good, 'the cache is untouched by a failure');
});

t.test('directory: an answer that is not a directory is refused, the previous copy and the cache stay', async (t) => {
  let answer: unknown = good;
  const { dir, cachePath } = await openFor(t, { fetch: () => Promise.resolve(answer) });
  t.equal(await dir.refresh(), true);
  answer = { generatedAt: 'yesterday', countries: 'all of them' };
  t.equal(await dir.refresh(), false);
  t.same(dir.countries(), ['DE', 'FR', 'NL']);
  t.same(JSON.parse(await readFile(cachePath, 'utf8')), good);
});

t.test('directory: no cache and no hub is RELAY_DIRECTORY_UNAVAILABLE', async (t) => {
  const { dir } = await openFor(t, { fetch: () => Promise.reject(new Error('timeout')) });
  await t.rejects(dir.certificatesFor(['DE']), { code: 'RELAY_DIRECTORY_UNAVAILABLE', problems: [/^to\[0\]: .*"DE"/] });
  await t.rejects(dir.certificatesFor('*'), { code: 'RELAY_DIRECTORY_UNAVAILABLE' });
});

t.test('directory: an unknown recipient is RELAY_RECIPIENT_KEY_UNKNOWN naming each to[i] without a certificate', async (t) => {
  const { dir } = await openFor(t);
  const err = await dir.certificatesFor(['DE', 'IT', 'NL', 'PL']).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof RelayError);
  t.match(err, { code: 'RELAY_RECIPIENT_KEY_UNKNOWN', message: /nothing was accepted/ });
  t.same(
    (err as RelayError).problems.map((p) => p.split(':')[0]),
    ['to[1]', 'to[3]'],
  );
  t.match((err as RelayError).problems, [/"IT"/, /"PL"/]);
});

t.test('directory: a damaged cache file is ignored, not fatal', async (t) => {
  for (const garbage of ['{"generatedAt":', '[1,2,3]\n', JSON.stringify({ generatedAt: new Date().toISOString(), countries: [{ code: 'DE' }] })]) {
    const cachePath = join(await tempDir(t), 'directory.json');
    await writeFile(cachePath, garbage, { mode: 0o600 });
    const { lines, log } = capture();
    const offline = await openFor(t, { cachePath, log, fetch: () => Promise.reject(new Error('down')) });
    t.same(offline.dir.countries(), [], `${JSON.stringify(garbage.slice(0, 20))}: nothing loaded`);
    t.ok(lines.some((l) => l['msg'] === 'directory cache damaged, ignored'), 'logged');
    await t.rejects(offline.dir.certificatesFor(['DE']), { code: 'RELAY_DIRECTORY_UNAVAILABLE' });
    const online = await openFor(t, { cachePath, log: silent });
    t.same((await online.dir.certificatesFor(['DE'])).map((c) => c.code), ['DE'], 'the hub\'s answer replaces the garbage');
    t.same(JSON.parse(await readFile(cachePath, 'utf8')), good);
  }
});

t.test('directory: a missing recipient refreshes at once, but not more often than minRefreshMs', async (t) => {
  let now = Date.now();
  let answer = good;
  const { dir, calls } = await openFor(t, { fetch: () => Promise.resolve(answer), now: () => now, minRefreshMs: 10_000, maxAgeMs: 5 * MIN });
  await dir.certificatesFor(['DE']);
  t.equal(calls.n, 1);
  now += 1000;
  await t.rejects(dir.certificatesFor(['IT']), { code: 'RELAY_RECIPIENT_KEY_UNKNOWN' });
  now += 1000;
  await t.rejects(dir.certificatesFor(['IT']), { code: 'RELAY_RECIPIENT_KEY_UNKNOWN' });
  t.equal(calls.n, 1, 'within minRefreshMs of the last fetch: no new one');
  answer = directory(...good.countries, entry('IT', certs.IT));
  now += 9000;
  t.same((await dir.certificatesFor(['IT'])).map((c) => c.code), ['IT'], 'IT just enrolled: found by the refresh');
  t.equal(calls.n, 2);
  now += 1000;
  await dir.certificatesFor(['DE', 'IT']);
  t.equal(calls.n, 2, 'everyone known: no refresh before maxAge');
  now += 5 * MIN + 1;
  await dir.certificatesFor(['DE']);
  t.equal(calls.n, 3, 'older than maxAge: refreshed even though DE is known');
});

t.test('directory: concurrent lookups share one fetch', async (t) => {
  let release: (v: unknown) => void = () => undefined;
  const { dir, calls } = await openFor(t, { fetch: () => new Promise((resolve) => (release = resolve)) });
  const lookups = Promise.all([dir.certificatesFor(['DE']), dir.certificatesFor(['NL']), dir.certificatesFor('*')]);
  await new Promise((r) => setImmediate(r));
  release(good);
  const answers = await lookups;
  t.same(
    answers.map((certs) => certs.map((c) => c.code)),
    [['DE'], ['NL'], ['DE', 'NL']],
  );
  t.equal(calls.n, 1);
});

t.test('directory: with the hub down, lookups are served from memory and the hub is asked at most every minRefreshMs', async (t) => {
  let now = Date.now();
  let isUp = true;
  const { dir, calls } = await openFor(t, {
    fetch: () => (isUp ? Promise.resolve(good) : Promise.reject(new Error('ETIMEDOUT'))),
    now: () => now,
    minRefreshMs: 10_000,
    maxAgeMs: 5 * MIN,
  });
  await dir.certificatesFor(['DE']);
  t.equal(calls.n, 1);
  isUp = false;
  now += 6 * MIN;
  for (let i = 0; i < 5; i++) {
    t.same((await dir.certificatesFor(['DE'])).map((c) => c.code), ['DE'], `lookup ${i} answered from memory`);
    now += 1000;
  }
  t.equal(calls.n, 2, 'one failed attempt, not one per lookup');
  now += 10_000;
  await dir.certificatesFor(['DE']);
  t.equal(calls.n, 3, 'tried again after minRefreshMs');
  isUp = true;
  now += 10_001;
  await dir.certificatesFor(['DE']);
  t.equal(calls.n, 4, 'the hub is back: refreshed');
  now += 1000;
  await dir.certificatesFor(['DE']);
  t.equal(calls.n, 4, 'fresh again: no fetch');
});
