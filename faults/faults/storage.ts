/**
 * The agent's disk under load: its state disk full (ES's state is a small tmpfs, filled to the last
 * byte), then space back without a restart; and an agent restarted on damaged files (garbage
 * lines in the middle of its inbox and status journals, a torn last line, a garbage line and a torn tail in the outbox's segment).
 */
import { appendFile, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FaultContext } from '../lib/context.js';
import { SMALL_DISK_COUNTRY } from '../lib/fault-network.js';
import { formatCounts, underLoad, type FaultRun, type Injected } from '../lib/fault-run.js';
import type { RowInput } from '../lib/report.js';
import { waitFor } from '../../test/helpers/wait.js';

/** What the local API must answer when the state disk is full (HTTP 507 with one of these codes). */
const FULL_CODES = ['LOCAL_STORAGE_FULL', 'RELAY_STORAGE_FULL'];

/**
 * ES's disk full: its API refuses new messages with 507 and a code instead of accepting what it
 * cannot keep; everything accepted before is delivered; once space is back it accepts again,
 * without a restart.
 */
export function diskFull(ctx: FaultContext): Promise<RowInput[]> {
  const cc = SMALL_DISK_COUNTRY;
  return underLoad(ctx, `disk full: ${cc}'s state disk, then space back`, async ({ fn, load, ledger, flow, progress }: FaultRun): Promise<Injected> => {
    const pid = fn.net.agents[cc]?.child.pid;
    const before = load.refusalsOf(cc);
    const bytes = await fn.fillDisk();
    const failures: Record<string, number> = {};
    let whileFull: Record<string, number> = {};
    try {
      // Until the sender has been refused a few times (or 20 s passed): the disk is full meanwhile.
      const count = (): number => Object.values(load.refusalsOf(cc)).reduce((a, b) => a + b, 0) - Object.values(before).reduce((a, b) => a + b, 0);
      await waitFor(`${cc}'s API to refuse while its disk is full`, () => count() >= 5, 20_000, 100).catch(() => undefined);
      await flow(10, 10_000);
      const now = load.refusalsOf(cc);
      whileFull = {};
      for (const [k, n] of Object.entries(now)) if (n > (before[k] ?? 0)) whileFull[k] = n - (before[k] ?? 0);
    } finally {
      await fn.freeDisk();
    }
    const good = Object.entries(whileFull).filter(([k]) => FULL_CODES.some((c) => k === `507 ${c}`)).reduce((a, [, n]) => a + n, 0);
    const other = Object.entries(whileFull).filter(([k]) => !FULL_CODES.some((c) => k === `507 ${c}`));
    for (const [k, n] of other) failures[`disk full answered ${k}, not 507 with a storage-full code`] = n;
    if (good === 0 && other.length === 0) failures['nothing refused while the disk was full'] = 1;
    progress(`      ${cc}'s disk filled (${bytes} bytes); its API answered: ${formatCounts(whileFull)}`);
    // Recovery without a restart: the same process accepts again.
    const acceptedAt = ledger.acceptedFrom(cc);
    let recovered = true;
    await waitFor(`${cc} to accept again once space is back`, () => ledger.acceptedFrom(cc) >= acceptedAt + 5, 30_000, 200).catch(() => {
      recovered = false;
    });
    if (!recovered) failures['no recovery within 30 s of space coming back'] = 1;
    if (fn.net.agents[cc]?.child.pid !== pid || fn.net.agents[cc]?.child.exitCode !== null) failures['the agent exited'] = 1;
    return { faults: 1, notes: [`${cc}'s tmpfs filled with ${bytes} bytes; while full its API answered ${formatCounts(whileFull)}; ${recovered ? 'accepting again once space was back, same process' : 'did NOT recover'}`], failures };
  }).then((row) => [row]);
}

/** A 26-character ULID that sorts after every real id (time part in the far future), never accepted. */
const FOREIGN_ULID = '7ZZZZZZZZZZZZZZZZZZZZZZZZZ';

/** Inserts `line` after the first line of `path` and appends a torn (half) record; resolves whether the file had a line to put it after. */
async function damageJournal(path: string, garbage: string): Promise<boolean> {
  const text = await readFile(path, 'utf8').catch(() => '');
  const lines = text.split('\n').filter((l) => l.length > 0);
  if (lines.length === 0) return false;
  const torn = (lines.at(-1) ?? '').slice(0, Math.floor((lines.at(-1) ?? '').length / 2));
  await writeFile(path, [lines[0], garbage, ...lines.slice(1)].join('\n') + '\n' + torn);
  return true;
}

async function damagedCopies(dir: string): Promise<string[]> {
  return (await readdir(dir).catch(() => [] as string[])).filter((f) => f.includes('.damaged-'));
}

async function getJson(url: string, token: string): Promise<Record<string, unknown>> {
  const r = await fetch(url, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(5_000) });
  return (await r.json()) as Record<string, unknown>;
}

/**
 * FR (sender, cut off so its outbox holds messages) and DE (recipient, its reader paused so its
 * inbox holds unacked items) are killed, their files damaged, and started again: each must start
 * (no crash loop), keep every intact record, put the damaged lines aside, and deliver everything.
 */
export function damagedFiles(ctx: FaultContext): Promise<RowInput[]> {
  return underLoad(ctx, 'damaged files: outbox, inbox and status journals at restart', async ({ fn, load, flow, progress }: FaultRun): Promise<Injected> => {
    const failures: Record<string, number> = {};
    const notes: string[] = [];
    load.pause('DE');
    await fn.setCountryLink('FR', false);
    let linkDown = true;
    try {
      await waitFor('FR outbox ≥ 5 and DE inbox ≥ 5 unacked', async () => {
        const fr = await getJson(`${fn.apiUrl('FR')}/v1/status`, fn.token('FR')).catch((): Record<string, unknown> => ({}));
        const de = await getJson(`${fn.apiUrl('DE')}/v1/status`, fn.token('DE')).catch((): Record<string, unknown> => ({}));
        return Number(fr['outboxDepth']) >= 5 && Number(de['inboxUnacked']) >= 5;
      }, 60_000, 200);
      await fn.killAgent('FR');
      await fn.killAgent('DE');
      const fr = fn.relayDir('FR');
      const de = fn.relayDir('DE');
      const garbage = '{"not": "a record" ###';
      const damaged = {
        'DE inbox.jsonl': await damageJournal(join(de, 'inbox.jsonl'), garbage),
        'DE status.jsonl': await damageJournal(join(de, 'status.jsonl'), garbage),
        'FR status.jsonl': await damageJournal(join(fr, 'status.jsonl'), garbage),
      };
      // The outbox is a segment log (node-agent/relay/outbox.ts): a garbage line (quarantined) then a
      // torn append (cut off) at the end of its newest segment. Appended, not inserted: removal
      // records name lines by offset, and shifting them would bring removed messages back.
      const segments = (await readdir(join(fr, 'outbox'))).filter((n) => /^seg-\d{16}\.log$/.test(n)).sort();
      const segment = join(fr, 'outbox', segments.at(-1) ?? 'seg-0000000000000001.log');
      await appendFile(segment, `${garbage}\n{"v": 1, "id": "${FOREIGN_ULID}", "kind": "mess`, { mode: 0o600 });
      notes.push(`damaged: ${Object.entries(damaged).map(([f, ok]) => `${f}${ok ? '' : ' (was empty)'}`).join(', ')}, a garbage line and a torn tail in FR's newest outbox segment`);
      // The outbox is on disk now; readiness needs the hub, so the link comes back before the restarts.
      await fn.setCountryLink('FR', true);
      linkDown = false;
      for (const cc of ['FR', 'DE']) {
        try {
          await fn.startAgent(cc);
        } catch (err) {
          const agent = fn.net.agents[cc];
          // Started but not ready (the new process runs) or exited: only the latter needs the repair.
          const running = agent !== undefined && agent.child.exitCode === null && agent.child.signalCode === null;
          failures[running ? `${cc} not ready within 60 s on damaged files` : `${cc} did not start on damaged files`] = 1;
          const line = (err instanceof Error ? err.message : String(err)).split('\n').find((l) => /CORRUPT|DAMAGED|code|timed out/.test(l)) ?? '';
          notes.push(`${cc} did not start: ${line.slice(0, 300)}`);
          if (running) continue;
          await repair(cc === 'FR' ? fr : de, garbage);
          await fn.startAgent(cc);
        }
      }
      const copies = [...(await damagedCopies(de)).map((f) => `DE/${f}`), ...(await damagedCopies(fr)).map((f) => `FR/${f}`)];
      const quarantined = await readdir(join(fr, 'quarantine')).catch(() => [] as string[]);
      notes.push(`damaged lines kept aside: ${copies.join(', ') || 'none'}; outbox quarantine: ${quarantined.join(', ') || 'none'}`);
      if (copies.length < Object.values(damaged).filter(Boolean).length) failures['damaged journal lines not kept aside (<file>.damaged-<time>)'] = 1;
      progress(`      FR and DE restarted on damaged files: ${copies.length} damaged copies, ${quarantined.length} quarantined outbox records`);
    } finally {
      if (linkDown) await fn.setCountryLink('FR', true);
      load.resume('DE');
    }
    await flow(20, 60_000);
    return { faults: 5, notes, failures };
  }).then((row) => [row]);
}

/** Takes our garbage back out (so the rest of the suite can run when the agent refused to start). */
async function repair(dir: string, garbage: string): Promise<void> {
  for (const name of ['inbox.jsonl', 'status.jsonl']) {
    const path = join(dir, name);
    const text = await readFile(path, 'utf8').catch(() => undefined);
    if (text === undefined) continue;
    const lines = text.split('\n').filter((l) => l !== garbage);
    // The torn tail: the agent cuts it off itself; drop it here too if it is not JSON.
    const last = lines.at(-1) ?? '';
    let ok = true;
    try {
      JSON.parse(last);
    } catch {
      ok = last === '';
    }
    await writeFile(path, (ok ? lines : lines.slice(0, -1)).join('\n') + (ok ? '' : '\n'));
  }
}
