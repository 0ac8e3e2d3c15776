/**
 * Attack 2: enrollment tokens against the real hub daemon's `POST /v1/enroll` over HTTPS — a used
 * token replayed (also raced: two enrollments with one token at the same moment), a token for one
 * country with a CSR naming another, an expired token, a token for another hub CA, and a brute
 * force of random well-formed tokens. Each must be refused with its code, and change nothing (the
 * registry, the token). The brute force also tells whether the API throttles a guesser at all.
 */
import { randomBytes } from 'node:crypto';
import { countryKeys } from '../../test/helpers/country-identity.js';
import type { HttpsAnswer } from '../../test/helpers/https.js';
import type { FaultContext } from '../lib/context.js';
import type { AttackNetwork } from '../lib/network.js';
import type { RowInput } from '../lib/report.js';

interface Attempt {
  what: string;
  answer: HttpsAnswer;
  status: number;
  code: string;
}

function codeOf(a: HttpsAnswer): string {
  const code = (a.json as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : `(no code, ${a.text.slice(0, 80)})`;
}

/** A row from attempts each expected to answer `status` and `code`; `broken` lists state that changed although refused. */
function row(scenario: string, attempts: Attempt[], started: number, broken: string[] = []): RowInput {
  const notes: string[] = [];
  let refused = 0;
  let leaked = 0;
  for (const a of attempts) {
    const got = codeOf(a.answer);
    if (a.answer.status === a.status && got === a.code) {
      refused += 1;
      continue;
    }
    if (a.answer.status < 300) leaked += 1;
    notes.push(`${a.answer.status < 300 ? 'LEAK' : 'UNEXPECTED'}: ${a.what}: ${a.answer.status} ${got}, expected ${a.status} ${a.code}`);
  }
  if (broken.length > 0) {
    leaked += broken.length;
    notes.push(...broken.map((b) => `LEAK: ${b}`));
  }
  if (notes.length === 0) notes.push(`each answered ${[...new Set(attempts.map((a) => `${a.status} ${a.code}`))].join(', ')}`);
  return { scenario, kind: 'attack', attempts: attempts.length + broken.length, refused, leaked, notes, ms: performance.now() - started };
}

async function token(net: AttackNetwork, country: string): Promise<string> {
  const made = await net.admin('POST', '/tokens', { country });
  if (made.status !== 201) throw new Error(`token for ${country}: ${made.status} ${made.text}`);
  return (made.json as { token: string }).token;
}

async function addCountry(net: AttackNetwork, code: string): Promise<void> {
  const added = await net.admin('POST', '/countries', { code, name: `Country ${code}` });
  if (added.status !== 201) throw new Error(`country add ${code}: ${added.status} ${added.text}`);
}

interface CountryView {
  status?: string;
  certSerial?: string;
  /** Tokens made for the country, by id, and whether each was used. */
  used: Record<string, boolean>;
}

async function statusOf(net: AttackNetwork, code: string): Promise<CountryView> {
  const shown = (await net.admin('GET', `/countries/${code}`)).json as { country?: { status?: string; certSerial?: string }; tokens?: { id: string; usedAt?: string }[] };
  return { ...(shown.country ?? {}), used: Object.fromEntries((shown.tokens ?? []).map((t) => [t.id, t.usedAt !== undefined])) };
}

const enroll = (net: AttackNetwork, body: unknown) => net.call('POST', '/v1/enroll', undefined, body);

/** The replay, mismatch, expiry and wrong-CA rows. */
export async function attackTokens(ctx: FaultContext): Promise<RowInput[]> {
  const net = await ctx.network();
  const rows: RowInput[] = [];

  let started = performance.now();
  await addCountry(net, 'PT');
  const ptToken = await token(net, 'PT');
  const pt = await countryKeys('PT');
  const first = await enroll(net, { token: ptToken, csr: pt.csr, wgPublicKey: pt.wgPublicKey });
  if (first.status !== 200) throw new Error(`control enrollment of PT failed: ${first.status} ${first.text}`);
  const ptSerial = (await statusOf(net, 'PT')).certSerial;
  const ptAgain = await countryKeys('PT');
  const replays: Attempt[] = [
    { what: 'the same request again', answer: await enroll(net, { token: ptToken, csr: pt.csr, wgPublicKey: pt.wgPublicKey }), status: 409, code: 'ENROLL_TOKEN_USED' },
    { what: 'the used token with new keys', answer: await enroll(net, { token: ptToken, csr: ptAgain.csr, wgPublicKey: ptAgain.wgPublicKey }), status: 409, code: 'ENROLL_TOKEN_USED' },
  ];
  // Two enrollments racing with one fresh token: exactly one may win.
  await addCountry(net, 'NL');
  const nlToken = await token(net, 'NL');
  const [a, b] = [await countryKeys('NL'), await countryKeys('NL')];
  const raced = await Promise.all([enroll(net, { token: nlToken, csr: a.csr, wgPublicKey: a.wgPublicKey }), enroll(net, { token: nlToken, csr: b.csr, wgPublicKey: b.wgPublicKey })]);
  const winners = raced.filter((r) => r.status === 200);
  const loser = raced.find((r) => r.status !== 200) ?? raced[1];
  replays.push({ what: 'the same fresh token twice at once (the second)', answer: loser, status: 409, code: 'ENROLL_TOKEN_USED' });
  const broken: string[] = [];
  if ((await statusOf(net, 'PT')).certSerial !== ptSerial) broken.push("a refused replay changed PT's certificate");
  const nlSerial = (await statusOf(net, 'NL')).certSerial;
  const winnerSerial = (winners[0]?.json as { serial?: string } | undefined)?.serial;
  if (winners.length === 1 && nlSerial !== winnerSerial) broken.push(`NL's registry holds ${String(nlSerial)}, not the winner's ${String(winnerSerial)}`);
  rows.push(row('enroll: a used token replayed, and one token raced twice', replays, started, broken));

  started = performance.now();
  const deBefore = await statusOf(net, 'DE');
  const deToken = await token(net, 'DE');
  const frCsr = await countryKeys('FR');
  const itCsr = await countryKeys('IT');
  const mismatch: Attempt[] = [
    { what: "DE's token, CSR naming FR", answer: await enroll(net, { token: deToken, csr: frCsr.csr, wgPublicKey: frCsr.wgPublicKey }), status: 422, code: 'PKI_CSR_COUNTRY_MISMATCH' },
    { what: "DE's token, CSR naming IT", answer: await enroll(net, { token: deToken, csr: itCsr.csr, wgPublicKey: itCsr.wgPublicKey }), status: 422, code: 'PKI_CSR_COUNTRY_MISMATCH' },
  ];
  const deAfter = await statusOf(net, 'DE');
  const frAfter = await statusOf(net, 'FR');
  const changed: string[] = [];
  if (deAfter.certSerial !== deBefore.certSerial || deAfter.status !== deBefore.status) changed.push("a refused enrollment changed DE's record");
  const deTokenId = deToken.split('.')[1] as string;
  if (deAfter.used[deTokenId] !== false) changed.push("the refused attempts used up DE's token");
  if (frAfter.certSerial !== net.countries.FR.serial) changed.push("a CSR naming FR changed FR's certificate");
  rows.push(row("enroll: a token for DE with a CSR naming another country", mismatch, started, changed));

  started = performance.now();
  const es = await countryKeys('ES');
  const expired: Attempt[] = [{ what: 'expired token for ES', answer: await enroll(net, { token: net.expiredToken, csr: es.csr, wgPublicKey: es.wgPublicKey }), status: 401, code: 'ENROLL_TOKEN_EXPIRED' }];
  const esStatus = (await statusOf(net, 'ES')).status;
  rows.push(row('enroll: an expired token', expired, started, esStatus === 'pending' ? [] : [`ES is ${String(esStatus)} after an expired token`]));

  started = performance.now();
  const other = await token(net, 'ES');
  const foreign = other.replace(/\.[0-9a-f]{64}$/, `.${randomBytes(32).toString('hex')}`);
  const wrongCa: Attempt[] = [{ what: 'token pinned to another root CA', answer: await enroll(net, { token: foreign, csr: es.csr, wgPublicKey: es.wgPublicKey }), status: 400, code: 'ENROLL_TOKEN_WRONG_CA' }];
  rows.push(row('enroll: a token made for another hub CA', wrongCa, started));
  return rows;
}

/** `count` random well-formed tokens in a row (right format, this hub's root fingerprint); then whether any was throttled. */
export async function attackTokenBruteForce(ctx: FaultContext): Promise<RowInput[]> {
  const net = await ctx.network();
  const count = ctx.sizes.bruteForceTokens;
  const fingerprint = (await token(net, 'ES')).split('.')[3] as string;
  const keys = await countryKeys('ES');
  const started = performance.now();
  const attempts: Attempt[] = [];
  let throttled = 0;
  let firstThrottledAt: number | undefined;
  for (let i = 0; i < count; i++) {
    const guess = `ncbnet1.${randomBytes(8).toString('hex')}.${randomBytes(32).toString('base64url')}.${fingerprint}`;
    const answer = await enroll(net, { token: guess, csr: keys.csr, wgPublicKey: keys.wgPublicKey });
    if (answer.status === 429) {
      throttled += 1;
      firstThrottledAt ??= i + 1;
      continue;
    }
    attempts.push({ what: `guess ${i + 1}`, answer, status: 401, code: 'ENROLL_TOKEN_UNKNOWN' });
  }
  const ms = performance.now() - started;
  const guesses = row(`enroll: brute force, ${count} random well-formed tokens`, attempts, started);
  guesses.attempts += throttled;
  guesses.refused += throttled;
  guesses.notes = [...(guesses.notes ?? []), `${Math.round((count * 1000) / ms)} guesses/s, one after another from one client`];
  const limit: RowInput = {
    scenario: 'enroll: brute force is rate-limited',
    kind: 'attack',
    attempts: count,
    refused: throttled,
    accepted: count - throttled,
    leaked: 0,
    notes: throttled > 0 ? [`first 429 after ${String(firstThrottledAt)} guesses; ${throttled} of ${count} throttled`] : [],
    ms,
    ...(throttled === 0 ? { missing: `rate limit: missing — ${count} wrong tokens in ${(ms / 1000).toFixed(2)} s from one address, every one answered 401 ENROLL_TOKEN_UNKNOWN, none 429` } : {}),
  };
  return [guesses, limit];
}
