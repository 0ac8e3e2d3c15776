import type { FastifySchemaCompiler } from 'fastify';
import Type, { type TSchema } from 'typebox';
import { Compile } from 'typebox/compile';
import { Value } from 'typebox/value';
import { describeValue, schemaProblems } from '../../protocol/validate.js';
import { MessageDraftSchema } from '../relay/types.js';
import { LOCAL_BAD_REQUEST, LocalApiValidationError } from './errors.js';

/** Lists every problem of a value for one schema, each `prefix.path: problem (got X)`. */
export type ProblemFinder = (value: unknown, prefix: string) => string[];

const STRICT = { additionalProperties: false } as const;
const [LIST_BRANCH, ALL_BRANCH] = MessageDraftSchema.properties.to.anyOf;
const DRAFT_WITH_LIST: TSchema = Type.Object({ ...MessageDraftSchema.properties, to: LIST_BRANCH }, STRICT);
const DRAFT_WITH_ALL: TSchema = Type.Object({ ...MessageDraftSchema.properties, to: ALL_BRANCH }, STRICT);

/**
 * Problems of a message draft. `to` is a union (list or `*`), for which a plain schema check
 * reports one line per branch ("must be string", "must be equal to constant", "must match a
 * schema in anyOf"); checking against the branch the value's shape selects reports only the one
 * that matters, e.g. `body.to[0]: must match pattern …` (as `protocol/envelope.ts` does).
 */
export function draftProblems(value: unknown, prefix: string): string[] {
  const to: unknown = field(value, 'to');
  const problems = Array.isArray(to)
    ? schemaProblems(DRAFT_WITH_LIST, value, prefix)
    : schemaProblems(DRAFT_WITH_ALL, value, prefix).map((p) =>
        p.startsWith(`${prefix}.to: must be equal to constant`) ? `${prefix}.to: must be "*" or a list of country codes (got ${describeValue(to)})` : p,
      );
  return collapseChoices(problems, value, prefix);
}

function field(value: unknown, key: string): unknown {
  return value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[key] : undefined;
}

/** The string constants of a union of literals (`kind`, `priority`), or undefined for any other schema. */
function literalChoices(schema: unknown): string[] | undefined {
  const anyOf = (schema as { anyOf?: unknown } | undefined)?.anyOf;
  if (!Array.isArray(anyOf)) return undefined;
  const consts = anyOf.map((s) => (s as { const?: unknown }).const);
  return consts.every((c): c is string => typeof c === 'string') ? consts : undefined;
}

/** The draft's fields that are a choice among words, by their path under the body. */
const CHOICES: ReadonlyMap<string, { choices: readonly string[]; get: (draft: unknown) => unknown }> = new Map([
  ['kind', { choices: literalChoices(MessageDraftSchema.properties.kind) ?? [], get: (d: unknown) => field(d, 'kind') }],
  ['priority', { choices: literalChoices(MessageDraftSchema.properties.priority) ?? [], get: (d: unknown) => field(d, 'priority') }],
  ['notice.colour', { choices: literalChoices(MessageDraftSchema.properties.notice.properties.colour) ?? [], get: (d: unknown) => field(field(d, 'notice'), 'colour') }],
]);

/**
 * A union of literals fails with one line per branch and one for the union; one line naming the
 * choices says it better: `body.kind: must be one of notice, diffusion, … (got "gossip")`.
 */
function collapseChoices(problems: string[], value: unknown, prefix: string): string[] {
  const out: string[] = [];
  const done = new Set<string>();
  for (const p of problems) {
    const path = p.slice(prefix.length + 1, p.indexOf(': '));
    const choice = p.startsWith(`${prefix}.`) ? CHOICES.get(path) : undefined;
    if (!choice || p.endsWith(': required')) {
      out.push(p);
      continue;
    }
    if (done.has(path)) continue;
    done.add(path);
    out.push(`${prefix}.${path}: must be one of ${choice.choices.join(', ')} (got ${describeValue(choice.get(value))})`);
  }
  return out;
}

/**
 * Validates requests with TypeBox itself (not ajv), so HTTP bodies, config files and envelopes
 * share one schema language and one error format: every problem at once, `body.to[0]: … (got …)`.
 * Query strings arrive as text, so they are converted to the schema's types first (`wait=1.5`).
 * `finders` gives schemas whose problems read better from a custom finder (unions).
 */
export function makeValidatorCompiler(finders: ReadonlyMap<TSchema, ProblemFinder> = new Map<TSchema, ProblemFinder>([[MessageDraftSchema, draftProblems]])): FastifySchemaCompiler<TSchema> {
  return ({ schema, httpPart }) => {
    const check = Compile(schema);
    const where = httpPart === 'querystring' ? 'query' : (httpPart ?? 'request');
    const find = finders.get(schema) ?? ((value: unknown, prefix: string) => schemaProblems(schema, value, prefix));
    return (data: unknown) => {
      const value = httpPart === 'querystring' || httpPart === 'params' ? Value.Convert(schema, data) : data;
      if (check.Check(value)) return { value };
      const problems = find(value, where);
      return { error: new LocalApiValidationError(LOCAL_BAD_REQUEST, `request ${where}`, problems.length > 0 ? problems : [`${where}: invalid`]) };
    };
  };
}
