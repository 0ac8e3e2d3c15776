import type { FastifySchemaCompiler } from 'fastify';
import type { TSchema } from 'typebox';
import { Compile } from 'typebox/compile';
import { ValidationError } from '../../protocol/errors.js';
import { schemaProblems } from '../../protocol/validate.js';

export const API_BAD_REQUEST = 'API_BAD_REQUEST';

/**
 * Validates requests with TypeBox itself (not ajv), so HTTP bodies, config files and envelopes
 * share one schema language and one error format: every problem at once, `body.csr: … (got …)`.
 */
export const typeboxValidatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const check = Compile(schema);
  const where = httpPart === 'querystring' ? 'query' : (httpPart ?? 'request');
  return (data: unknown) => {
    if (check.Check(data)) return { value: data };
    return { error: new ValidationError(API_BAD_REQUEST, `request ${where}`, schemaProblems(schema, data, where)) };
  };
};
