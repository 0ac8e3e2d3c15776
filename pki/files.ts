import { constants } from 'node:fs';
import { mkdir, open, rename, stat, readFile, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { KeyFileError, PKI_KEY_PERMISSIONS } from './errors.js';

/** fsyncs a directory, so a create, rename or unlink in it survives a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  const fd = await open(dir, constants.O_RDONLY);
  try {
    await fd.sync();
  } finally {
    await fd.close();
  }
}

/**
 * Writes a file durably: to a temporary sibling (created exclusively, with `mode`), fsync, rename
 * over the target, fsync the directory. Readers see the old content or the new, never a torn file.
 * With `exclusive`, an existing target is an EEXIST error instead of being replaced.
 */
export async function writeFileDurable(
  path: string,
  data: string | Uint8Array,
  opts: { mode?: number; exclusive?: boolean } = {},
): Promise<void> {
  const mode = opts.mode ?? 0o644;
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  if (opts.exclusive) {
    const fd = await open(path, 'wx', mode);
    try {
      await fd.writeFile(data);
      await fd.sync();
    } finally {
      await fd.close();
    }
    await fsyncDir(dirname(path));
    return;
  }
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  const fd = await open(tmp, 'wx', mode);
  try {
    await fd.writeFile(data);
    await fd.sync();
  } catch (err) {
    await fd.close();
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fd.close();
  await rename(tmp, path);
  await fsyncDir(dirname(path));
}

/** Writes a secret (private key) with mode 0600; never loosens the mode of an existing file. */
export function writeSecretFile(path: string, data: string, opts: { exclusive?: boolean } = {}): Promise<void> {
  return writeFileDurable(path, data, { mode: 0o600, exclusive: opts.exclusive ?? true });
}

/**
 * Reads a secret file, refusing one that group or others can read or write (as ssh does): a
 * key that others could read must be treated as disclosed, not silently used.
 */
export async function readSecretFile(path: string): Promise<string> {
  const st = await stat(path);
  if ((st.mode & 0o077) !== 0) {
    const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
    throw new KeyFileError(PKI_KEY_PERMISSIONS, `${path}: private key is accessible to group or others (mode ${mode}); run chmod 600 ${path}`);
  }
  return readFile(path, 'utf8');
}
