// The HTTP edge every route shares: JSON and YAML bodies, one error shape (Status) for every
// failure, and query/path parameters checked against the route's TypeBox schema — the same
// schema the OpenAPI document shows — with a 400 that names the parameter.
import type { FastifyInstance, FastifyRequest, FastifySchemaCompiler } from 'fastify';
import type { TObject, TSchema } from '@sinclair/typebox';
import { parse as parseYaml } from 'yaml';
import { ApiError, isApiError } from '../api/errors.js';
import { VERSION } from '../api/meta.js';
import { schemaErrors } from '../api/validate.js';

export const API_PREFIX = `/api/${VERSION}`;

export function registerHttp(app: FastifyInstance): void {
  registerBodyParsers(app);
  app.setValidatorCompiler(compileParameters);
  // Bodies are validated by the handlers (the kinds' full admission check answers 422 with every
  // offending field), and answers are written as they are: the route schemas only document them.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  app.setErrorHandler((err: unknown, req, reply) => {
    const apiErr = toApiError(err);
    if (apiErr.code >= 500) req.log.error({ err }, 'request failed');
    void reply.code(apiErr.code).type('application/json').send(apiErr.toStatus());
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send(new ApiError(404, 'NotFound', `no route for ${req.method} ${req.url}`).toStatus());
  });
}

/**
 * Query and path parameters arrive as strings: each is read as its schema's type (integers as
 * decimal digits, booleans as exactly `true` or `false`), then checked against the schema.
 * Anything else — `watch=null`, `limit=true`, `limit=-1`, a repeated parameter — is a 400 whose
 * `field` names the parameter.
 */
export const compileParameters: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  if (httpPart !== 'querystring' && httpPart !== 'params') return () => true;
  const props = (schema as TObject).properties ?? {};
  return (data: unknown) => {
    const raw = (data ?? {}) as Record<string, unknown>;
    const value: Record<string, unknown> = {};
    for (const [name, v] of Object.entries(raw)) value[name] = props[name] ? fromString(props[name]!, v) : v;
    const causes = schemaErrors(schema, value);
    if (causes.length === 0) return { value };
    const first = causes[0]!;
    const field = first.field === '<root>' ? httpPart : first.field;
    return { error: ApiError.badRequest(`${httpPart === 'params' ? 'path parameter' : 'query parameter'} ${field}: ${first.message}, got ${JSON.stringify(raw[field] ?? null)}`, field) };
  };
};

/**
 * A JSON object body checked against its schema: 400 when it is no object (`example` shows one),
 * 422 naming every offending field.
 */
export function objectBody<T>(schema: TSchema, value: unknown, example = '{}'): T {
  if (value === undefined || value === null || typeof value !== 'object' || Array.isArray(value)) throw ApiError.badRequest(`request body must be a JSON object like ${example}`);
  const causes = schemaErrors(schema, value);
  if (causes.length > 0) throw ApiError.invalid(causes);
  return value as T;
}

function fromString(schema: TSchema, v: unknown): unknown {
  if (typeof v !== 'string') return v;
  switch (schema.type) {
    case 'integer':
      return /^-?[0-9]{1,16}$/.test(v) ? Number(v) : v;
    case 'number':
      return v.trim() !== '' && Number.isFinite(Number(v)) ? Number(v) : v;
    case 'boolean':
      return v === 'true' ? true : v === 'false' ? false : v;
    default:
      return v;
  }
}

function registerBodyParsers(app: FastifyInstance): void {
  const parseJson = (_req: FastifyRequest, body: string, done: (err: Error | null, value?: unknown) => void) => {
    if (body === '') return done(null, undefined);
    try {
      done(null, JSON.parse(body));
    } catch (err) {
      done(ApiError.badRequest(`malformed JSON: ${(err as Error).message}`));
    }
  };
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser(['application/json', 'application/merge-patch+json'], { parseAs: 'string' }, parseJson);
  app.addContentTypeParser(/^(application|text)\/(x-)?yaml/, { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, parseYaml(body as string, { maxAliasCount: 100 }));
    } catch (err) {
      done(ApiError.badRequest(`malformed YAML: ${(err as Error).message}`));
    }
  });
}

export function toApiError(err: unknown): ApiError {
  if (isApiError(err)) return err;
  const e = err as { code?: string; statusCode?: number; message?: string; validation?: unknown };
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return new ApiError(413, 'RequestEntityTooLarge', `request body is larger than the limit: ${e.message}`);
  }
  if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    return new ApiError(415, 'UnsupportedMediaType', `${e.message}; send application/json or application/yaml`);
  }
  if (e.statusCode === 413) return new ApiError(413, 'RequestEntityTooLarge', e.message ?? 'request body too large');
  if (e.statusCode !== undefined && e.statusCode >= 400 && e.statusCode < 500) {
    return new ApiError(e.statusCode, e.statusCode === 404 ? 'NotFound' : 'BadRequest', e.message ?? 'bad request');
  }
  return new ApiError(500, 'InternalError', 'internal error; see the server log');
}
