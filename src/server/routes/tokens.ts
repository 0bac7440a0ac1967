// API tokens: everyone issues, lists and revokes their own; platform admins anyone's. The secret
// is shown once, in the answer that issues it.
import type { FastifyPluginAsync } from 'fastify';
import { Type } from '@sinclair/typebox';
import { ApiError } from '../../api/errors.js';
import { schemaErrors } from '../../api/validate.js';
import type { AuditLog, Store, TokenStore } from '../../store/types.js';
import { principal } from '../auth.js';
import { decideAccess } from '../authz.js';
import { IssuedToken, IssueTokenRequest, Status, TokenList, TokenParams, errorResponses, parseDateTime } from '../schemas.js';

export interface TokenRouteOptions {
  store: Store;
  tokens: TokenStore;
  audit: AuditLog;
}

export const tokenRoutes: FastifyPluginAsync<TokenRouteOptions> = async (app, { store, tokens, audit }) => {
  const tags = ['Token'];

  app.post('/tokens', {
    schema: {
      operationId: 'issueToken',
      summary: 'Issue an API token (for yourself; platform admins: for anyone)',
      tags,
      body: { content: { 'application/json': { schema: Type.Ref(IssueTokenRequest.$id!) } } },
      response: { 201: Type.Ref(IssuedToken.$id!, { description: 'the token; its secret is shown only here' }), ...errorResponses(400, 401, 403, 413, 415, 422) },
    },
    config: { access: (req) => ({ verb: 'create', kind: 'Token', owner: ownerIn(req.body) ?? principal(req).user }) },
    handler: async (req, reply) => {
      const p = principal(req);
      const body = req.body as IssueTokenRequest;
      if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
        throw ApiError.badRequest('request body must be a JSON object, e.g. {} for a token of your own');
      }
      const causes = schemaErrors(IssueTokenRequest, body);
      if (causes.length > 0) throw ApiError.invalid(causes);
      const user = body.user ?? p.user;
      if (!(await store.get({ kind: 'User', project: '', name: user }))) throw ApiError.invalidField('user', `no user ${JSON.stringify(user)}`);
      const expiresAt = body.expiresAt === undefined ? undefined : new Date(parseDateTime(body.expiresAt)).toISOString();
      const issued = await tokens.issue({ user, description: body.description, expiresAt });
      await audit.append({ time: new Date().toISOString(), user: p.user, verb: 'create', kind: 'Token', project: '', name: issued.id, code: 201 });
      void reply.code(201);
      return issued;
    },
  });

  app.get('/tokens', {
    schema: {
      operationId: 'listTokens',
      summary: 'Your tokens (platform admins: everyone’s), without their secrets',
      tags,
      response: { 200: Type.Ref(TokenList.$id!, { description: 'tokens, oldest first' }), ...errorResponses(401) },
    },
    config: { access: 'authenticated' },
    handler: async (req) => {
      const p = principal(req);
      const all = await tokens.list();
      return { items: all.filter((t) => decideAccess(p, { verb: 'list', kind: 'Token', owner: t.user, name: t.id }) === 'allow') };
    },
  });

  app.delete<{ Params: { id: string } }>('/tokens/:id', {
    schema: {
      operationId: 'revokeToken',
      summary: 'Revoke a token',
      tags,
      params: TokenParams,
      response: { 200: Type.Ref(Status.$id!, { description: 'revoked' }), ...errorResponses(401, 404) },
    },
    config: {
      access: async (req) => {
        const id = (req.params as { id: string }).id;
        const owner = (await tokens.list()).find((t) => t.id === id)?.user;
        return { verb: 'delete', kind: 'Token', name: id, owner };
      },
    },
    handler: async (req) => {
      const p = principal(req);
      if (!(await tokens.revoke(req.params.id))) throw new ApiError(404, 'NotFound', `token ${JSON.stringify(req.params.id)} not found`);
      await audit.append({ time: new Date().toISOString(), user: p.user, verb: 'delete', kind: 'Token', project: '', name: req.params.id, code: 200 });
      return { kind: 'Status', code: 200, reason: 'OK', message: 'revoked' };
    },
  });
};

/** The `user` a token request names, when it names one as a string (else the schema check refuses it). */
function ownerIn(body: unknown): string | undefined {
  const user = (body as { user?: unknown } | null | undefined)?.user;
  return typeof user === 'string' ? user : undefined;
}
