// The objects of every kind: list (or watch), create, read, replace, merge-patch, delete and, for
// project kinds, the status subresource. One set of routes per kind, with concrete paths, so that
// the OpenAPI document names each kind's schemas; paths that name no kind, or a kind in the wrong
// scope, get an answer that says where to look.
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { Type, type TSchema } from '@sinclair/typebox';
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
import { admitCreate } from '../admission.js';
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
const PROJECT_CHILDREN = ['Cluster', 'Addon', 'Secret', 'NotificationChannel'];

export const resourceRoutes: FastifyPluginAsync<ResourceRouteOptions> = async (app, opts) => {
  for (const info of KINDS) new KindRoutes(app, info, opts).register();
  misroutes(app);
};

/** The routes of one kind; one method per operation. */
class KindRoutes {
  private readonly inProject: boolean;
  private readonly names: ReturnType<typeof schemaNames>;
  private readonly base: string;
  /** Only routes with path parameters get a params schema (Fastify warns about an undefined one). */
  private readonly collectionParams: { params?: typeof ProjectParams };
  private readonly objectParams: typeof ProjectNameParams | typeof NameParams;
  private readonly tags: string[];
  private readonly writeResponses: Record<number, TSchema>;

  constructor(
    private readonly app: FastifyInstance,
    private readonly info: KindInfo,
    private readonly deps: ResourceRouteOptions,
  ) {
    this.inProject = info.scope === 'project';
    this.names = schemaNames(info.kind);
    this.base = this.inProject ? `/projects/:project/${info.plural}` : `/${info.plural}`;
    this.collectionParams = this.inProject ? { params: ProjectParams } : {};
    this.objectParams = this.inProject ? ProjectNameParams : NameParams;
    this.tags = [info.kind];
    this.writeResponses = { ...this.object(200, 'the object as stored'), ...errorResponses(400, 401, 403, 404, 409, 413, 415, 422) };
  }

  register(): void {
    this.list();
    this.create();
    this.read();
    this.replaceAndPatch();
    if (this.inProject) this.status();
    this.delete();
  }

  private body(ref: string) {
    return { content: { 'application/json': { schema: Type.Ref(ref) }, 'application/yaml': { schema: Type.Ref(ref) } } };
  }

  private object(code: number, description: string) {
    return { [code]: Type.Ref(this.names.object, { description }) };
  }

  /** The access a request on one object of this kind needs. */
  private objectAccess(verb: Verb, params: Params, name = params.name): Access {
    if (this.inProject) return { verb, kind: this.info.kind, project: params.project!, name };
    return { verb, kind: this.info.kind, name, project: this.info.kind === 'Project' ? name : undefined };
  }

  private keyOf(params: Params): ObjectKey {
    return { kind: this.info.kind, project: this.inProject ? params.project! : '', name: params.name! };
  }

  private list(): void {
    const listResponses = {
      200: {
        description: `a ${this.names.list}, or with watch=true a stream of WatchEvents (one JSON object per line)`,
        content: {
          'application/json': { schema: Type.Ref(this.names.list) },
          'application/x-ndjson': { schema: Type.Ref(WatchEvent.$id!) },
        },
      },
      ...errorResponses(400, 401, 403, 404, 410),
    };
    const listOrWatch = async (req: FastifyRequest<{ Params: Params; Querystring: ListQuery }>, reply: FastifyReply) => {
      const q = req.query;
      const verb: Verb = q.watch ? 'watch' : 'list';
      const project = this.inProject ? req.params.project : undefined;
      // Without a project (global kinds, or a project kind across projects) every item is judged.
      const visible = project === undefined ? visibleTo(principal(req), verb, this.info.kind) : () => true;
      if (q.watch) return streamWatch(req, reply, { store: this.deps.store, kind: this.info.kind, project, visible, query: q });
      const result = await this.deps.store.list(this.info.kind, { project, labelSelector: q.labelSelector, limit: q.limit, continue: q.continue });
      return {
        apiVersion: API_VERSION,
        kind: this.names.list,
        metadata: { resourceVersion: result.resourceVersion, ...(result.continue ? { continue: result.continue } : {}) },
        items: result.items.filter(visible),
      };
    };
    this.app.get(this.base, {
      schema: { operationId: `list${this.info.kind}`, summary: `List or watch ${this.info.kind} objects`, tags: this.tags, ...this.collectionParams, querystring: ListQuery, response: listResponses },
      config: { access: this.inProject ? (req) => ({ verb: (req.query as ListQuery).watch ? 'watch' : 'list', kind: this.info.kind, project: (req.params as Params).project }) : 'authenticated' },
      handler: listOrWatch,
    });
    if (this.inProject) {
      this.app.get(`/${this.info.plural}`, {
        schema: {
          operationId: `list${this.info.kind}ForAllProjects`,
          summary: `List or watch ${this.info.kind} objects of every project you may read`,
          tags: this.tags,
          querystring: ListQuery,
          response: listResponses,
        },
        config: { access: 'authenticated' },
        handler: listOrWatch,
      });
    }
  }

  private create(): void {
    this.app.post(this.base, {
      schema: {
        operationId: `create${this.info.kind}`,
        summary: `Create a ${this.info.kind}`,
        tags: this.tags,
        ...this.collectionParams,
        body: this.body(this.names.object),
        response: { ...this.object(201, 'created'), ...errorResponses(400, 401, 403, 404, 409, 413, 415, 422) },
      },
      config: { access: (req) => this.objectAccess('create', req.params as Params, nameIn(req.body)) },
      handler: async (req: FastifyRequest<{ Params: Params }>, reply) => {
        const p = principal(req);
        const obj = bodyObject(req);
        const meta = (obj.metadata ?? {}) as Record<string, unknown>;
        if (this.inProject) {
          const project = req.params.project!;
          if (meta.project !== undefined && meta.project !== project) {
            throw ApiError.invalidField('metadata.project', `must match the project in the URL (${project}), got ${JSON.stringify(meta.project)}`);
          }
          obj.metadata = { ...meta, project };
          if (!(await this.deps.store.get({ kind: 'Project', project: '', name: project }))) throw ApiError.notFound('Project', project);
        }
        const valid = validateObject(stripServerFields(obj), undefined, this.deps.validation);
        const created = await this.deps.store.create(await admitCreate(this.deps.store, valid, p));
        await recordChange(this.deps.audit, p, 'create', created, 201);
        void reply.code(201);
        return created;
      },
    });
  }

  private read(): void {
    this.app.get(`${this.base}/:name`, {
      schema: { operationId: `read${this.info.kind}`, summary: `Read a ${this.info.kind}`, tags: this.tags, params: this.objectParams, response: { ...this.object(200, 'the object'), ...errorResponses(401, 403, 404) } },
      config: { access: (req) => this.objectAccess('get', req.params as Params) },
      handler: async (req: FastifyRequest<{ Params: Params }>) => {
        const obj = await this.deps.store.get(this.keyOf(req.params));
        if (!obj) throw ApiError.notFound(this.info.kind, req.params.name!);
        return obj;
      },
    });
  }

  private replaceAndPatch(): void {
    /** Reads the current object, builds the next one from it and stores it if it passes validation. */
    const updateWith = async (req: FastifyRequest<{ Params: Params }>, verb: Verb, build: (current: Resource) => Record<string, unknown>) => {
      const key = this.keyOf(req.params);
      const current = await this.deps.store.get(key);
      if (!current) throw ApiError.notFound(this.info.kind, key.name);
      const next = build(structuredClone(current));
      const meta = (next.metadata ?? {}) as Record<string, unknown>;
      if (meta.name !== key.name) throw ApiError.invalidField('metadata.name', `must match the name in the URL (${key.name})`);
      if (this.inProject && meta.project !== undefined && meta.project !== key.project) {
        throw ApiError.invalidField('metadata.project', `must match the project in the URL (${key.project})`);
      }
      if (meta.resourceVersion === undefined) throw ApiError.invalidField('metadata.resourceVersion', 'is required for an update (optimistic concurrency)');
      next.metadata = { ...meta, project: this.inProject ? key.project : undefined };
      if (!this.inProject) delete (next.metadata as Record<string, unknown>).project;
      delete next.status;
      const obj = validateObject(next, current, this.deps.validation);
      if (current.metadata.deletionTimestamp && JSON.stringify(obj.spec) !== JSON.stringify(current.spec)) {
        throw ApiError.invalidField('spec', `${this.info.kind} ${key.name} is being deleted; its spec can no longer change`);
      }
      const updated = await this.deps.store.update(obj);
      await recordChange(this.deps.audit, principal(req), verb, updated, 200);
      return updated;
    };

    this.app.put(`${this.base}/:name`, {
      schema: { operationId: `replace${this.info.kind}`, summary: `Replace a ${this.info.kind} (metadata.resourceVersion is the precondition)`, tags: this.tags, params: this.objectParams, body: this.body(this.names.replace), response: this.writeResponses },
      config: { access: (req) => this.objectAccess('update', req.params as Params) },
      handler: async (req: FastifyRequest<{ Params: Params }>) => {
        const replacement = bodyObject(req);
        return updateWith(req, 'update', () => replacement);
      },
    });

    this.app.patch(`${this.base}/:name`, {
      schema: {
        operationId: `patch${this.info.kind}`,
        summary: `Change a ${this.info.kind} with a JSON merge patch (with metadata.resourceVersion: as a precondition)`,
        tags: this.tags,
        params: this.objectParams,
        body: { content: { 'application/merge-patch+json': { schema: MergePatch } } },
        response: this.writeResponses,
      },
      config: { access: (req) => this.objectAccess('patch', req.params as Params) },
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
  }

  private status(): void {
    if (this.inProject) {
      this.app.put(`${this.base}/:name/status`, {
        schema: {
          operationId: `replace${this.info.kind}Status`,
          summary: `Replace the status of a ${this.info.kind} (Marina's controllers; platform admins)`,
          tags: this.tags,
          params: this.objectParams,
          body: this.body(this.names.status),
          response: this.writeResponses,
        },
        config: { access: (req) => this.objectAccess('updateStatus', req.params as Params) },
        handler: async (req: FastifyRequest<{ Params: Params }>) => {
          const key = this.keyOf(req.params);
          const given = bodyObject(req);
          const current = await this.deps.store.get(key);
          if (!current) throw ApiError.notFound(this.info.kind, key.name);
          const resourceVersion = (given.metadata as Record<string, unknown> | undefined)?.resourceVersion;
          const candidate = { ...current, status: given.status, metadata: { ...current.metadata, resourceVersion } };
          validateObject(candidate, current, this.deps.validation);
          const updated = await this.deps.store.updateStatus(candidate as Resource);
          await recordChange(this.deps.audit, principal(req), 'updateStatus', updated, 200);
          return updated;
        },
      });
    }
  }

  private delete(): void {
    this.app.delete(`${this.base}/:name`, {
      schema: {
        operationId: `delete${this.info.kind}`,
        summary: `Delete a ${this.info.kind}`,
        tags: this.tags,
        params: this.objectParams,
        querystring: DeleteQuery,
        response: {
          ...this.object(200, 'deleted; the last state'),
          ...this.object(202, 'deletion started; finalizers pending (metadata.deletionTimestamp is set)'),
          ...errorResponses(400, 401, 403, 404, 409),
        },
      },
      config: { access: (req) => this.objectAccess('delete', req.params as Params) },
      handler: async (req: FastifyRequest<{ Params: Params; Querystring: { resourceVersion?: string } }>, reply) => {
        const key = this.keyOf(req.params);
        if (this.info.kind === 'Project') {
          const children = await Promise.all(PROJECT_CHILDREN.map((k) => this.deps.store.list(k, { project: key.name, limit: 1 })));
          if (children.some((c) => c.items.length > 0)) {
            throw new ApiError(409, 'Conflict', `project ${key.name} still has clusters, add-ons, secrets or notification channels; delete them first`, [
              { field: 'metadata.name', message: 'project not empty' },
            ]);
          }
        }
        const result = await this.deps.store.delete(key, { resourceVersion: req.query.resourceVersion });
        const code = result.removed ? 200 : 202;
        await recordChange(this.deps.audit, principal(req), 'delete', result.object, code);
        void reply.code(code);
        return result.object;
      },
    });
  }
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
