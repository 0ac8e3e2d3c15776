import { readFile } from 'node:fs/promises';
import Type from 'typebox';
import { Value } from 'typebox/value';
import { writeFileDurable } from '../../pki/files.js';
import { schemaProblems } from '../../protocol/validate.js';
import { HubError, REGISTRY_SNAPSHOT_CORRUPT } from '../errors.js';
import { CountryRecordSchema, type CountryRecord } from './record.js';

const SnapshotSchema = Type.Object(
  { v: Type.Literal(1), writtenAt: Type.String({ format: 'date-time' }), countries: Type.Array(CountryRecordSchema) },
  { additionalProperties: false },
);

/**
 * The registry's copy on disk. The KV bucket is the source of truth, but it lives inside
 * JetStream, which is only there once nats-server runs; and nats-server's config (one user per
 * active country) must be rendered before it starts. The snapshot breaks that circle.
 */
export async function readSnapshot(path: string): Promise<CountryRecord[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new HubError(REGISTRY_SNAPSHOT_CORRUPT, `${path}: not JSON (${(err as Error).message})`, { cause: err });
  }
  if (!Value.Check(SnapshotSchema, value)) {
    throw new HubError(REGISTRY_SNAPSHOT_CORRUPT, `${path}: ${schemaProblems(SnapshotSchema, value, 'snapshot').slice(0, 5).join('; ')}`);
  }
  return value.countries;
}

/** Replaces the snapshot atomically (temp file, fsync, rename). */
export async function writeSnapshot(path: string, countries: readonly CountryRecord[], now: Date): Promise<void> {
  const body = { v: 1, writtenAt: now.toISOString(), countries: [...countries].sort((a, b) => a.code.localeCompare(b.code)) };
  await writeFileDurable(path, `${JSON.stringify(body, null, 1)}\n`, { mode: 0o600 });
}
