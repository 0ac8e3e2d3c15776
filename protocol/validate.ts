import type { Static, TSchema } from 'typebox';
import { Compile, type Validator } from 'typebox/compile';
import { Settings } from 'typebox/system';
import { Value } from 'typebox/value';
import { ValidationError } from './errors.js';

const MAX_SHOWN = 60;

/**
 * TypeBox stops collecting errors after 8 by default; ncbnet promises every problem at once
 * (STYLE, Configuration), so raise the cap once for the process. Bounded, so a hostile input
 * with a million bad keys still costs little.
 */
Settings.Set({ maxErrors: 200 });

/** Renders a value for an error message: short, single line, never the whole of a large input. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  let text: string;
  try {
    // JSON.stringify gives undefined for functions and symbols; name their type instead.
    text = JSON.stringify(value) ?? typeof value;
  } catch {
    text = typeof value;
  }
  return text.length > MAX_SHOWN ? `${text.slice(0, MAX_SHOWN)}…` : text;
}

function valueAt(root: unknown, pointer: string): unknown {
  if (pointer === '') return root;
  let node: unknown = root;
  for (const raw of pointer.split('/').slice(1)) {
    const key = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

function dotted(prefix: string, pointer: string): string {
  const parts = pointer
    .split('/')
    .slice(1)
    .map((p) => p.replaceAll('~1', '/').replaceAll('~0', '~'));
  const path = parts.reduce((acc, p) => (/^\d+$/.test(p) ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '');
  if (!prefix) return path || '(root)';
  return path ? (path.startsWith('[') ? `${prefix}${path}` : `${prefix}.${path}`) : prefix;
}

/**
 * Schemas compiled to a checking function on first use. Envelopes are checked several times per
 * message on both agents and the hub, and the interpreted `Value.Check` was about a tenth of an
 * agent's CPU under load; the compiled check is over ten times faster. Only the first answer
 * ("valid?") is compiled; the errors of an invalid value still come from `Value.Errors`. Keyed by
 * the schema object, so schemas built on the fly are not kept alive by the cache.
 */
const compiled = new WeakMap<TSchema, Validator>();

/** Whether `value` matches `schema` (compiled once per schema object). */
export function isValid<S extends TSchema>(schema: S, value: unknown): value is Static<S> {
  let validator = compiled.get(schema);
  if (validator === undefined) {
    validator = Compile(schema);
    compiled.set(schema, validator);
  }
  return validator.Check(value);
}

/**
 * Lists every way `value` fails `schema`, one line each: `path: problem (got X)`.
 * `prefix` names the root (`hub`, `body`, `csr`) so the line points at the right place.
 */
export function schemaProblems(schema: TSchema, value: unknown, prefix = ''): string[] {
  if (isValid(schema, value)) return [];
  const problems: string[] = [];
  for (const e of Value.Errors(schema, value)) {
    // `additionalProperties: false` reports each extra key twice; keep the clearer form.
    if (e.keyword === 'boolean' && e.schemaPath.endsWith('/additionalProperties')) continue;
    if (e.keyword === 'additionalProperties') {
      const extra = (e.params as { additionalProperties?: string[] }).additionalProperties ?? [];
      for (const key of extra) problems.push(`${dotted(prefix, `${e.instancePath}/${key}`)}: unknown key`);
      continue;
    }
    if (e.keyword === 'required') {
      const missing = (e.params as { requiredProperties?: string[] }).requiredProperties ?? [];
      for (const key of missing) problems.push(`${dotted(prefix, `${e.instancePath}/${key}`)}: required`);
      if (missing.length) continue;
    }
    const got = describeValue(valueAt(value, e.instancePath));
    problems.push(`${dotted(prefix, e.instancePath)}: ${e.message} (got ${got})`);
  }
  return [...new Set(problems)];
}

/**
 * Checks `value` against `schema` and returns it typed, or throws a {@link ValidationError}
 * with `code` listing every problem at once.
 */
export function parseWith<S extends TSchema>(
  schema: S,
  value: unknown,
  opts: { code: string; what: string; prefix?: string },
): Static<S> {
  if (isValid(schema, value)) return value;
  throw new ValidationError(opts.code, opts.what, schemaProblems(schema, value, opts.prefix ?? ''));
}
