// Join tokens of a cluster: create (the answer carries the token and the one command line for the
// server, once), list (never the secret), revoke. Access is decided for the kind `JoinToken` in
// the cluster's project (authz.ts: members create and revoke, viewers list).
import type { FastifyPluginAsync } from 'fastify';
import { Type } from '@sinclair/typebox';
import { ApiError } from '../../api/errors.js';
import type { JoinService } from '../../joins/service.js';
import type { AuditLog } from '../../store/types.js';
import { principal } from '../auth.js';
import { objectBody } from '../http.js';
import type { Verb } from '../authz.js';
import { CreateJoinTokenRequest, JoinTokenCreated, JoinTokenInfo, JoinTokenList, JoinTokenParams } from '../join-schemas.js';
import { ProjectNameParams, errorResponses } from '../schemas.js';

export interface JoinTokenRouteOptions {
  joins: JoinService;
  audit: AuditLog;
  /** Marina's URL and CA pin for join commands; undefined while Marina serves plain HTTP. */
  joinTarget: () => { url: string; caPin: string } | undefined;
}

interface Params {
  project: string;
  name: string;
}

/** The command a user runs on the server. */
function joinCommand(url: string, token: string, caPin: string): string {
  return `marina agent join --url ${url} --token ${token} --ca-pin ${caPin}`;
}

export const joinTokenRoutes: FastifyPluginAsync<JoinTokenRouteOptions> = async (app, { joins, audit, joinTarget }) => {
  const tags = ['JoinToken'];
  const tokenAccess = (verb: Verb) => (req: { params: unknown }) => ({ verb, kind: 'JoinToken', project: (req.params as Params).project, name: (req.params as Params).name });

  app.post<{ Params: Params }>('/projects/:project/clusters/:name/jointokens', {
    schema: {
      operationId: 'createJoinToken',
      summary: "Create a join token for one of the cluster's import pools; the answer holds the token and the command for the server (shown once)",
      tags,
      params: ProjectNameParams,
      body: { content: { 'application/json': { schema: Type.Ref(CreateJoinTokenRequest.$id!) } } },
      response: { 201: Type.Ref(JoinTokenCreated.$id!, { description: 'the token (shown only here)' }), ...errorResponses(400, 401, 403, 404, 409, 413, 415, 422) },
    },
    config: { access: tokenAccess('create') },
    handler: async (req, reply) => {
      const body = objectBody<CreateJoinTokenRequest>(CreateJoinTokenRequest, req.body, '{"pool": "byo"}');
      const target = joinTarget();
      if (!target) {
        throw new ApiError(409, 'Conflict', 'Marina serves plain HTTP: a CA pin would mean nothing. Start it on an address other hosts reach with `marina server --tls auto`');
      }
      const { record, token } = await joins.createToken(req.params.project, req.params.name, body, principal(req).user);
      await audit.append({ time: new Date().toISOString(), user: principal(req).user, verb: 'create', kind: 'JoinToken', project: req.params.project, name: record.id, code: 201 });
      void reply.code(201);
      return { ...record, token, caPin: target.caPin, url: target.url, command: joinCommand(target.url, token, target.caPin) };
    },
  });

  app.get<{ Params: Params }>('/projects/:project/clusters/:name/jointokens', {
    schema: {
      operationId: 'listJoinTokens',
      summary: "The cluster's join tokens, without their secrets",
      tags,
      params: ProjectNameParams,
      response: { 200: Type.Ref(JoinTokenList.$id!, { description: 'oldest first' }), ...errorResponses(401, 403, 404) },
    },
    config: { access: tokenAccess('list') },
    handler: async (req) => ({ items: await joins.listTokens(req.params.project, req.params.name) }),
  });

  app.delete<{ Params: Params & { id: string } }>('/projects/:project/clusters/:name/jointokens/:id', {
    schema: {
      operationId: 'revokeJoinToken',
      summary: 'Revoke a join token (servers that joined with it stay)',
      tags,
      params: JoinTokenParams,
      response: { 200: Type.Ref(JoinTokenInfo.$id!, { description: 'the revoked token' }), ...errorResponses(400, 401, 403, 404) },
    },
    config: { access: tokenAccess('delete') },
    handler: async (req) => {
      const record = await joins.revokeToken(req.params.project, req.params.name, req.params.id);
      await audit.append({ time: new Date().toISOString(), user: principal(req).user, verb: 'delete', kind: 'JoinToken', project: req.params.project, name: record.id, code: 200 });
      return { ...record, state: 'revoked' };
    },
  });
};
