import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Minimal slice of a tap test used here (so helpers do not depend on tap's types). */
export interface Teardownable {
  teardown(fn: () => unknown): void;
}

/** A fresh temporary directory, removed when the test ends. */
export async function tempDir(t: Teardownable, prefix = 'ncbnet-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}
