import { setTimeout as delay } from 'node:timers/promises';

/** Polls `check` until it holds, every `everyMs`; throws naming `what` after `ms` (STYLE: never fixed sleeps). */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, ms = 10_000, everyMs = 20): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await delay(everyMs);
  }
}
