// The objects of every kind: list (or watch), create, read, replace, merge-patch, delete and, for
// project kinds, the status subresource. One set of routes per kind, with concrete paths, so that
// the OpenAPI document names each kind's schemas; paths that name no kind, or a kind in the wrong
// scope, get an answer that says where to look.
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import { ApiError, isApiError } from '../../api/errors.js';
import { API_VERSION, type ObjectKey, type Resource } from '../../api/meta.js';
import { KINDS, kindByPlural, validateObject, type KindInfo, type ValidationContext } from '../../api/registry.js';
import type { AuditLog, Store } from '../../store/types.js';
import { principal, visibleTo } from '../auth.js';
import type { Access, Verb } from '../authz.js';
import { API_PREFIX } from '../http.js';
import { applyMergePatch } from '../merge-patch.js';
import {
  DeleteQuery,
  ListQuery,
  MergePatch,
  NameParams,
  ProjectNameParams,
  ProjectParams,
  WatchEvent,
  errorResponses,
  schemaNames,
} from '../schemas.js';
import { recordChange } from './audit.js';
import { streamWatch } from './watch.js';

export interface ResourceRouteOptions {
  store: Store;
  audit: AuditLog;
  validation: ValidationContext;
}

interface Params {
  project?: string;
  name?: string;
}

/** Kinds in a project whose existence keeps the project from being deleted. */
const PROJECT_CHILDREN = ['Cluster', 'Secret', 'NotificationChannel'];

export const resourceRoutes: FastifyPluginAsync<ResourceRouteOptions> = async (app, opts) => {
  for (const info of KINDS) kindRoutes(app, info, opts);
  misroutes(app);
};

function kindRoutes(app: FastifyInstance, info: KindInfo, deps: ResourceRouteOptions): void {
  const { store, audit, validation } = deps;
  const inProject = info.scope === 'project';
  const names = schemaNames(info.kind);
  const base = inProject ? `/projects/:project/${info.plural}` : `/${info.plural}`;
  /** Only routes with path parameters get a params schema (Fastify warns about an undefined one). */
  const collectionParams = inProject ? { params: ProjectParams } : {};
  const objectParams = inProject ? ProjectNameParams : NameParams;
  const tags = [info.kind];
  const body = (ref: string) => ({
    content: { 'application/json': { schema: Type.Ref(ref) }, 'application/yaml': { schema: Type.Ref(ref) } },
  });
  const object = (code: number, description: string) => ({ [code]: Type.Ref(names.object, { description }) });

  /** The access a request on one object of this kind needs. */
  const objectAccess = (verb: Verb, params: Params, name = params.name): Access =>
    inProject ? { verb, kind: info.kind, project: params.project!, name } : { verb, kind: info.kind, name, project: info.kind === 'Project' ? name : undefined };
  const keyOf = (params: Params): ObjectKey => ({ kind: info.kind, project: inProject ? params.project! : '', name: params.name! });

  // ---------- list / watch ----------

  const listResponses = {
    200: {
      description: `a ${names.list}, or with watch=true a stream of WatchEvents (one JSON object per line)`,
      content: {
        'application/json': { schema: Type.Ref(names.list) },
        'application/x-ndjson': { schema: Type.Ref(WatchEvent.$id!) },
      },
    },
    ...errorResponses(400, 401, 403, 404, 410),
  };
  async function listOrWatch(req: FastifyRequest<{ Params: Params; Querystring: ListQuery }>, reply: FastifyReply) {
    const q = req.query;
    const verb: Verb = q.watch ? 'watch' : 'list';
    const project = inProject ? req.params.project : undefined;
    // Without a project (global kinds, or a project kind across projects) every item is judged.
    const visible = project === undefined ? visibleTo(principal(req), verb, info.kind) : () => true;
    if (q.watch) return streamWatch(req, reply, { store, kind: info.kind, project, visible, query: q });
    const result = await store.list(info.kind, { project, labelSelector: q.labelSelector, limit: q.limit, continue: q.continue });
    return {
      apiVersion: API_VERSION,
      kind: names.list,
      metadata: { resourceVersion: result.resourceVersion, ...(result.continue ? { continue: result.continue } : {}) },
      items: result.items.filter(visible),
    };
  }
  app.get(base, {
    schema: { operationId: `list${info.kind}`, summary: `List or watch ${info.kind} objects`, tags, ...collectionParams, querystring: ListQuery, response: listResponses },
    config: { access: inProject ? (req) => ({ verb: (req.query as ListQuery).watch ? 'watch' : 'list', kind: info.kind, project: (req.params as Params).project }) : 'authenticated' },
    handler: listOrWatch,
  });
  if (inProject) {
    app.get(`/${info.plural}`, {
      schema: {
        operationId: `list${info.kind}ForAllProjects`,
        summary: `List or watch ${info.kind} objects of every project you may read`,
        tags,
        querystring: ListQuery,
        response: listResponses,
      },
      config: { access: 'authenticated' },
      handler: listOrWatch,
    });
  }

  // ---------- create ----------

  app.post(base, {
    schema: {
      operationId: `create${info.kind}`,
      summary: `Create a ${info.kind}`,
      tags,
      ...collectionParams,
      body: body(names.object),
      response: { ...object(201, 'created'), ...errorResponses(400, 401, 403, 404, 409, 413, 415, 422) },
    },
    config: { access: (req) => objectAccess('create', req.params as Params, nameIn(req.body)) },
    handler: async (req: FastifyRequest<{ Params: Params }>, reply) => {
      const p = principal(req);
      const obj = bodyObject(req);
      const meta = (obj.metadata ?? {}) as Record<string, unknown>;
      if (inProject) {
        const project = req.params.project!;
        if (meta.project !== undefined && meta.project !== project) {
          throw ApiError.invalidField('metadata.project', `must match the project in the URL (${project}), got ${JSON.stringify(meta.project)}`);
        }
        obj.metadata = { ...meta, project };
        if (!(await store.get({ kind: 'Project', project: '', name: project }))) throw ApiError.notFound('Project', project);
      }
      const created = await store.create(validateObject(stripServerFields(obj), undefined, validation));
      await recordChange(audit, p, 'create', created, 201);
      void reply.code(201);
      return created;
    },
  });

  // ---------- read ----------

  app.get(`${base}/:name`, {
    schema: { operationId: `read${info.kind}`, summary: `Read a ${info.kind}`, tags, params: objectParams, response: { ...object(200, 'the object'), ...errorResponses(401, 403, 404) } },
    config: { access: (req) => objectAccess('get', req.params as Params) },
    handler: async (req: FastifyRequest<{ Params: Params }>) => {
      const obj = await store.get(keyOf(req.params));
      if (!obj) throw ApiError.notFound(info.kind, req.params.name!);
      return obj;
    },
  });

  // ---------- replace / patch ----------

  const writeResponses = { ...object(200, 'the object as stored'), ...errorResponses(400, 401, 403, 404, 409, 413, 415, 422) };

  /** Reads the current object, builds the next one from it and stores it if it passes validation. */
  async function updateWith(req: FastifyRequest<{ Params: Params }>, verb: Verb, build: (current: Resource) => Record<string, unknown>) {
    const key = keyOf(req.params);
    const current = await store.get(key);
    if (!current) throw ApiError.notFound(info.kind, key.name);
    const next = build(structuredClone(current));
    const meta = (next.metadata ?? {}) as Record<string, unknown>;
    if (meta.name !== key.name) throw ApiError.invalidField('metadata.name', `must match the name in the URL (${key.name})`);
    if (inProject && meta.project !== undefined && meta.project !== key.project) {
      throw ApiError.invalidField('metadata.project', `must match the project in the URL (${key.project})`);
    }
    if (meta.resourceVersion === undefined) throw ApiError.invalidField('metadata.resourceVersion', 'is required for an update (optimistic concurrency)');
    next.metadata = { ...meta, project: inProject ? key.project : undefined };
    if (!inProject) delete (next.metadata as Record<string, unknown>).project;
    delete next.status;
    const obj = validateObject(next, current, validation);
    if (current.metadata.deletionTimestamp && JSON.stringify(obj.spec) !== JSON.stringify(current.spec)) {
      throw ApiError.invalidField('spec', `${info.kind} ${key.name} is being deleted; its spec can no longer change`);
    }
    const updated = await store.update(obj);
    await recordChange(audit, principal(req), verb, updated, 200);
    return updated;
  }

  app.put(`${base}/:name`, {
    schema: { operationId: `replace${info.kind}`, summary: `Replace a ${info.kind} (metadata.resourceVersion is the precondition)`, tags, params: objectParams, body: body(names.replace), response: writeResponses },
    config: { access: (req) => objectAccess('update', req.params as Params) },
    handler: async (req: FastifyRequest<{ Params: Params }>) => {
      const replacement = bodyObject(req);
      return updateWith(req, 'update', () => replacement);
    },
  });

  app.patch(`${base}/:name`, {
    schema: {
      operationId: `patch${info.kind}`,
      summary: `Change a ${info.kind} with a JSON merge patch (with metadata.resourceVersion: as a precondition)`,
      tags,
      params: objectParams,
      body: { content: { 'application/merge-patch+json': { schema: MergePatch } } },
      response: writeResponses,
    },
    config: { access: (req) => objectAccess('patch', req.params as Params) },
    handler: async (req: FastifyRequest<{ Params: Params }>) => {
      const ct = String(req.headers['content-type'] ?? '');
      if (!ct.startsWith('application/merge-patch+json') && !ct.startsWith('application/json') && !isYaml(ct)) {
        throw new ApiError(415, 'UnsupportedMediaType', `PATCH needs Content-Type application/merge-patch+json, got ${JSON.stringify(ct)}`);
      }
      const patch = bodyObject(req);
      // Without a resourceVersion in the patch the change applies to whatever is current, retried
      // on conflict; with one it is a precondition, as in Kubernetes.
      const pinned = (patch.metadata as { resourceVersion?: unknown } | undefined)?.resourceVersion !== undefined;
      for (let attempt = 0; ; attempt++) {
        try {
          return await updateWith(req, 'patch', (current) => applyMergePatch(current, patch) as Record<string, unknown>);
        } catch (err) {
          if (!pinned && isApiError(err) && err.reason === 'Conflict' && attempt < 5) continue;
          throw err;
        }
      }
    },
  });

  // ---------- status ----------

  if (inProject) {
    app.put(`${base}/:name/status`, {
      schema: {
        operationId: `replace${info.kind}Status`,
        summary: `Replace the status of a ${info.kind} (Marina's controllers; platform admins)`,
        tags,
        params: objectParams,
        body: body(names.status),
        response: writeResponses,
      },
      config: { access: (req) => objectAccess('updateStatus', req.params as Params) },
      handler: async (req: FastifyRequest<{ Params: Params }>) => {
        const key = keyOf(req.params);
        const given = bodyObject(req);
        const current = await store.get(key);
        if (!current) throw ApiError.notFound(info.kind, key.name);
        const resourceVersion = (given.metadata as Record<string, unknown> | undefined)?.resourceVersion;
        const candidate = { ...current, status: given.status, metadata: { ...current.metadata, resourceVersion } };
        validateObject(candidate, current, validation);
        const updated = await store.updateStatus(candidate as Resource);
        await recordChange(audit, principal(req), 'updateStatus', updated, 200);
        return updated;
      },
    });
  }

  // ---------- delete ----------

  app.delete(`${base}/:name`, {
    schema: {
      operationId: `delete${info.kind}`,
      summary: `Delete a ${info.kind}`,
      tags,
      params: objectParams,
      querystring: DeleteQuery,
      response: {
        ...object(200, 'deleted; the last state'),
        ...object(202, 'deletion started; finalizers pending (metadata.deletionTimestamp is set)'),
        ...errorResponses(400, 401, 403, 404, 409),
      },
    },
    config: { access: (req) => objectAccess('delete', req.params as Params) },
    handler: async (req: FastifyRequest<{ Params: Params; Querystring: { resourceVersion?: string } }>, reply) => {
      const key = keyOf(req.params);
      if (info.kind === 'Project') {
        const children = await Promise.all(PROJECT_CHILDREN.map((k) => store.list(k, { project: key.name, limit: 1 })));
        if (children.some((c) => c.items.length > 0)) {
          throw new ApiError(409, 'Conflict', `project ${key.name} still has clusters, secrets or notification channels; delete them first`, [
            { field: 'metadata.name', message: 'project not empty' },
          ]);
        }
      }
      const result = await store.delete(key, { resourceVersion: req.query.resourceVersion });
      const code = result.removed ? 200 : 202;
      await recordChange(audit, principal(req), 'delete', result.object, code);
      void reply.code(code);
      return result.object;
    },
  });
}

/**
 * Paths that look like resource paths but name no kind, or a kind in the wrong scope: a 404 or a
 * 400 that says where the kind lives. Not part of the OpenAPI document.
 */
function misroutes(app: FastifyInstance): void {
  const misrouted = async (req: FastifyRequest<{ Params: { project?: string; plural: string } }>) => {
    const { project, plural } = req.params;
    const info = kindByPlural(plural);
    if (!info) throw new ApiError(404, 'NotFound', `the server has no resource type ${JSON.stringify(plural)}`);
    if (info.scope === 'project' && project === undefined) {
      throw ApiError.badRequest(`${info.kind} lives in a project: use ${API_PREFIX}/projects/<project>/${info.plural}`);
    }
    if (info.scope === 'global' && project !== undefined) {
      throw ApiError.badRequest(`${info.kind} is not a project resource; use ${API_PREFIX}/${info.plural}`);
    }
    throw new ApiError(404, 'NotFound', `no route for ${req.method} ${req.url}`);
  };
  const route = { schema: { hide: true }, config: { access: 'authenticated' as const }, handler: misrouted };
  const collection = ['GET', 'POST'] as const;
  const member = ['GET', 'PUT', 'PATCH', 'DELETE'] as const;
  app.route({ ...route, method: [...collection], url: '/:plural' });
  app.route({ ...route, method: [...member], url: '/:plural/:name' });
  app.route({ ...route, method: [...collection], url: '/projects/:project/:plural' });
  app.route({ ...route, method: [...member], url: '/projects/:project/:plural/:name' });
  app.route({ ...route, method: 'PUT', url: '/projects/:project/:plural/:name/status' });
}

// ---------- request helpers ----------

function bodyObject(req: FastifyRequest): Record<string, unknown> {
  const body = req.body;
  if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw ApiError.badRequest('request body must be a JSON or YAML object');
  }
  return structuredClone(body) as Record<string, unknown>;
}

/** metadata.name of a body, for the access check before the body is validated. */
function nameIn(body: unknown): string {
  const name = (body as { metadata?: { name?: unknown } } | undefined)?.metadata?.name;
  return typeof name === 'string' ? name : '';
}

/** Clients cannot set server-owned metadata or status on create. */
function stripServerFields(body: Record<string, unknown>): Record<string, unknown> {
  const meta = { ...(body.metadata as Record<string, unknown> | undefined) };
  for (const f of ['uid', 'resourceVersion', 'generation', 'creationTimestamp', 'deletionTimestamp']) delete meta[f];
  const { status: _status, ...rest } = body;
  return { ...rest, metadata: meta };
}

function isYaml(ct: string): boolean {
  return /^(application|text)\/(x-)?yaml/.test(ct);
}
