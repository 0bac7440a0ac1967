// The REST API: Kubernetes-style resource paths per project and kind, JSON or YAML bodies,
// streamed watch, one error shape, authorization on every request and an audit trail of changes.
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { parse as parseYaml } from 'yaml';
import type { Registry } from 'prom-client';
import type { Logger } from 'pino';
import { ApiError, isApiError } from '../api/errors.js';
import { API_VERSION, VERSION, type ObjectKey, type Resource } from '../api/meta.js';
import { kindByPlural, validateObject, type KindInfo, type ValidationContext } from '../api/registry.js';
import type { AuditLog, SeriesStore, Store, TokenStore } from '../store/types.js';
import { seriesKey } from '../health/controller.js';
import type { ClusterHealth, HealthReport, HealthSample } from '../health/types.js';
import { decide, type Principal, type Verb } from './authz.js';
import { MembershipIndex } from './membership.js';
import { applyMergePatch } from './merge-patch.js';
import { buildOpenApi } from './openapi.js';
import { registerConsole } from './console.js';
import { functionRoutes } from './functions-routes.js';
import type { FunctionService } from '../functions/service.js';

export const API_PREFIX = `/api/${VERSION}`;
const DEFAULT_BODY_LIMIT = 1024 * 1024;
const WATCH_HEARTBEAT_MS = 15_000;
/** A watcher that lets this much output pile up is too slow to follow and is disconnected. */
const WATCH_MAX_BUFFERED_BYTES = 16 * 1024 * 1024;

export interface AppOptions {
  store: Store;
  tokens: TokenStore;
  audit: AuditLog;
  validation: ValidationContext;
  metrics?: Registry;
  logger?: Logger | false;
  bodyLimit?: number;
  /** Health reports and series for GET .../clusters/{name}/health (read at request time). */
  health?: {
    latest(project: string, cluster: string): HealthReport | undefined;
    series?: SeriesStore;
  };
  /** Directory of the built web console (default dist/console); false serves no console. */
  consoleDir?: string | false;
  /** The function service (its routes: invoke, activations, dead letters, events, /fn/...). */
  functions?: FunctionService;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
}

interface ResourceParams {
  project?: string;
  plural: string;
  name?: string;
}

export async function buildApp(opts: AppOptions): Promise<{ app: FastifyInstance; close(): Promise<void> }> {
  const { store, tokens, audit, validation } = opts;
  const membership = await MembershipIndex.start(store);
  const app = Fastify({
    ...(opts.logger ? { loggerInstance: opts.logger as FastifyBaseLogger } : { logger: false }),
    bodyLimit: opts.bodyLimit ?? DEFAULT_BODY_LIMIT,
    return503OnClosing: true,
  });

  registerBodyParsers(app);

  app.setErrorHandler((err: unknown, req, reply) => {
    const apiErr = toApiError(err);
    if (apiErr.code >= 500) req.log.error({ err }, 'request failed');
    void reply.code(apiErr.code).type('application/json').send(apiErr.toStatus());
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send(new ApiError(404, 'NotFound', `no route for ${req.method} ${req.url}`).toStatus());
  });

  // Authentication for everything under the API prefix; /healthz, /metrics and /openapi stay open
  // so that probes and scrapers need no token.
  app.addHook('onRequest', async (req) => {
    if (!req.url.startsWith(API_PREFIX)) return;
    const header = req.headers.authorization;
    const match = header ? /^Bearer\s+(\S+)$/i.exec(header) : null;
    if (!match) throw ApiError.unauthorized();
    const verified = await tokens.verify(match[1]!);
    if (!verified) throw ApiError.unauthorized('token is invalid, revoked or expired');
    const user = await store.get({ kind: 'User', project: '', name: verified.user });
    if (!user) throw ApiError.unauthorized(`token's user ${JSON.stringify(verified.user)} no longer exists`);
    req.principal = {
      user: verified.user,
      platformAdmin: (user.spec as { platformAdmin?: boolean }).platformAdmin === true,
      roles: membership.rolesOf(verified.user),
      tokenId: verified.id,
    };
  });

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/metrics', async (_req, reply) => {
    if (!opts.metrics) throw new ApiError(404, 'NotFound', 'metrics are not enabled');
    void reply.type(opts.metrics.contentType);
    return opts.metrics.metrics();
  });
  const openapi = buildOpenApi();
  app.get('/openapi/v3', async () => openapi);

  // ---------- identity, tokens, audit ----------

  app.get(`${API_PREFIX}/whoami`, async (req) => {
    const p = principal(req);
    return {
      user: p.user,
      platformAdmin: p.platformAdmin,
      projects: [...p.roles].map(([name, role]) => ({ name, role })),
    };
  });

  // What spec.kubernetesVersion accepts, so forms can offer a choice instead of a 422.
  app.get(`${API_PREFIX}/kubernetesversions`, async () => ({
    kind: 'KubernetesVersionList',
    default: validation.defaultKubernetesVersion ?? validation.kubernetesVersions[0] ?? null,
    versions: validation.kubernetesVersions,
  }));

  app.post(`${API_PREFIX}/tokens`, async (req, reply) => {
    const p = principal(req);
    const body = (req.body ?? {}) as { user?: unknown; description?: unknown; expiresAt?: unknown };
    const user = body.user === undefined ? p.user : body.user;
    if (typeof user !== 'string') throw ApiError.invalidField('user', 'must be a user name');
    if (user !== p.user && !p.platformAdmin) throw ApiError.forbidden('only platform admins issue tokens for other users');
    if (!(await store.get({ kind: 'User', project: '', name: user }))) throw ApiError.invalidField('user', `no user ${JSON.stringify(user)}`);
    if (body.description !== undefined && typeof body.description !== 'string') throw ApiError.invalidField('description', 'must be a string');
    let expiresAt: string | undefined;
    if (body.expiresAt !== undefined) {
      if (typeof body.expiresAt !== 'string' || Number.isNaN(Date.parse(body.expiresAt))) {
        throw ApiError.invalidField('expiresAt', 'must be an RFC 3339 time');
      }
      expiresAt = new Date(body.expiresAt).toISOString();
    }
    const issued = await tokens.issue({ user, description: body.description as string | undefined, expiresAt });
    await audit.append({ time: now(), user: p.user, verb: 'create', kind: 'Token', project: '', name: issued.id, code: 201 });
    void reply.code(201);
    return issued;
  });

  app.get(`${API_PREFIX}/tokens`, async (req) => {
    const p = principal(req);
    return { items: await tokens.list(p.platformAdmin ? undefined : p.user) };
  });

  app.delete<{ Params: { id: string } }>(`${API_PREFIX}/tokens/:id`, async (req) => {
    const p = principal(req);
    const mine = await tokens.list(p.platformAdmin ? undefined : p.user);
    if (!mine.some((t) => t.id === req.params.id)) throw new ApiError(404, 'NotFound', `token ${JSON.stringify(req.params.id)} not found`);
    await tokens.revoke(req.params.id);
    await audit.append({ time: now(), user: p.user, verb: 'delete', kind: 'Token', project: '', name: req.params.id, code: 200 });
    return { kind: 'Status', code: 200, message: 'revoked' };
  });

  app.get<{ Querystring: { project?: string; user?: string; kind?: string; limit?: string } }>(`${API_PREFIX}/audit`, async (req) => {
    const p = principal(req);
    const { project } = req.query;
    if (!p.platformAdmin) {
      if (!project) throw ApiError.forbidden('only platform admins read the whole audit log; pass ?project=');
      const d = decide(p, 'delete', 'Project', project);
      if (d === 'invisible') throw ApiError.notFound('Project', project);
      if (d === 'forbidden') throw ApiError.forbidden(`reading the audit log of project ${project} needs the admin role`);
    }
    const limit = parseLimit(req.query.limit) ?? 100;
    return { items: await audit.list({ project, user: req.query.user, kind: req.query.kind, limit }) };
  });

  // ---------- resources ----------

  const listOrWatch = async (req: FastifyRequest<{ Params: ResourceParams; Querystring: Record<string, string> }>, reply: FastifyReply) => {
    const p = principal(req);
    const info = resolveKind(req.params.plural);
    const project = req.params.project;
    if (project !== undefined && info.scope !== 'project') {
      throw ApiError.badRequest(`${info.kind} is not a project resource; use ${API_PREFIX}/${info.plural}`);
    }
    const q = req.query;
    const watching = q.watch === 'true' || q.watch === '1';
    const verb: Verb = watching ? 'watch' : 'list';

    // A project kind listed without a project spans every project the caller may read.
    let visible: (project: string) => boolean = () => true;
    if (info.scope === 'project' && project === undefined) {
      visible = (proj) => decide(p, verb, info.kind, proj) === 'allow';
    } else if (info.scope === 'project') {
      authorize(p, verb, info.kind, project!, req.params.name ?? '');
    } else if (info.kind === 'Project') {
      visible = (name) => decide(p, 'get', 'Project', name) === 'allow';
    } else if (info.kind === 'User') {
      visible = () => p.platformAdmin;
    }

    if (watching) return streamWatch(req, reply, info, project, visible);

    const limit = parseLimit(q.limit);
    const result = await store.list(info.kind, { project, labelSelector: q.labelSelector, limit, continue: q.continue });
    const items = result.items.filter((o) => visible(info.scope === 'project' ? o.metadata.project ?? '' : o.metadata.name));
    return {
      apiVersion: API_VERSION,
      kind: `${info.kind}List`,
      metadata: { resourceVersion: result.resourceVersion, ...(result.continue ? { continue: result.continue } : {}) },
      items,
    };
  };

  function streamWatch(req: FastifyRequest, reply: FastifyReply, info: KindInfo, project: string | undefined, visible: (p: string) => boolean) {
    const q = req.query as Record<string, string>;
    const raw = reply.raw;
    let lastRv = q.resourceVersion ?? '0';
    let closed = false;
    // store.watch throws 410 Gone synchronously, before anything is written, so the client gets a
    // proper error response instead of a broken stream.
    const buffered: string[] = [];
    let started = false;
    const watch = store.watch({ kind: info.kind, project, labelSelector: q.labelSelector, resourceVersion: q.resourceVersion }, (ev) => {
      const scope = info.scope === 'project' ? ev.object.metadata.project ?? '' : ev.object.metadata.name;
      lastRv = ev.object.metadata.resourceVersion ?? lastRv;
      if (!visible(scope)) return;
      const line = JSON.stringify(ev) + '\n';
      if (!started) buffered.push(line);
      else write(line);
    });
    reply.hijack();
    raw.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' });
    // Send the headers now: a client waits for them before it does anything else.
    raw.flushHeaders();
    started = true;
    for (const line of buffered) write(line);
    const heartbeat = setInterval(() => {
      write(JSON.stringify({ type: 'BOOKMARK', object: { apiVersion: API_VERSION, kind: info.kind, metadata: { resourceVersion: lastRv } } }) + '\n');
    }, WATCH_HEARTBEAT_MS);
    const stop = () => {
      if (closed) return;
      closed = true;
      clearInterval(heartbeat);
      watch.stop();
      raw.end();
    };
    raw.on('close', stop);
    raw.on('error', stop);
    function write(line: string) {
      if (closed) return;
      raw.write(line);
      if (raw.writableLength > WATCH_MAX_BUFFERED_BYTES) {
        req.log.warn({ kind: info.kind }, 'watcher too slow, disconnecting');
        stop();
      }
    }
  }

  const create = async (req: FastifyRequest<{ Params: ResourceParams }>, reply: FastifyReply) => {
    const p = principal(req);
    const info = resolveKind(req.params.plural);
    const body = bodyObject(req);
    const meta = (body.metadata ?? {}) as Record<string, unknown>;
    let project = '';
    if (info.scope === 'project') {
      project = requireProjectScope(info, req.params.project);
      if (meta.project !== undefined && meta.project !== project) {
        throw ApiError.invalidField('metadata.project', `must match the project in the URL (${project}), got ${JSON.stringify(meta.project)}`);
      }
      body.metadata = { ...meta, project };
    } else if (req.params.project !== undefined) {
      throw ApiError.badRequest(`${info.kind} is not a project resource; use ${API_PREFIX}/${info.plural}`);
    }
    if (info.scope === 'project') authorize(p, 'create', info.kind, project, String(meta.name ?? ''));
    else if (!p.platformAdmin) throw ApiError.forbidden(`only platform admins may create ${info.kind} objects`);
    if (info.scope === 'project' && !(await store.get({ kind: 'Project', project: '', name: project }))) {
      throw ApiError.notFound('Project', project);
    }
    const obj = validateObject(stripServerFields(body), undefined, validation);
    const created = await store.create(obj);
    await record(p, 'create', created, 201);
    void reply.code(201);
    return created;
  };

  const get = async (req: FastifyRequest<{ Params: ResourceParams }>) => {
    const p = principal(req);
    const { info, key } = target(req.params);
    if (info.scope === 'project') authorize(p, 'get', info.kind, key.project, key.name);
    else if (info.kind === 'User' && key.name !== p.user && !p.platformAdmin) throw ApiError.notFound('User', key.name);
    else if (info.kind === 'Project') authorize(p, 'get', 'Project', key.name, key.name);
    const obj = await store.get(key);
    if (!obj) throw ApiError.notFound(info.kind, key.name);
    return obj;
  };

  const replace = async (req: FastifyRequest<{ Params: ResourceParams }>) => {
    const p = principal(req);
    const { info, key } = target(req.params);
    authorizeWrite(p, 'update', info, key);
    const body = bodyObject(req);
    return updateWith(p, info, key, () => body, 'update');
  };

  const patch = async (req: FastifyRequest<{ Params: ResourceParams }>) => {
    const p = principal(req);
    const { info, key } = target(req.params);
    authorizeWrite(p, 'patch', info, key);
    const ct = String(req.headers['content-type'] ?? '');
    if (!ct.startsWith('application/merge-patch+json') && !ct.startsWith('application/json') && !isYaml(ct)) {
      throw new ApiError(415, 'UnsupportedMediaType', `PATCH needs Content-Type application/merge-patch+json, got ${JSON.stringify(ct)}`);
    }
    const patchBody = bodyObject(req);
    // Without a resourceVersion in the patch the change applies to whatever is current, retried
    // on conflict; with one it is a precondition, as in Kubernetes.
    const pinned = (patchBody.metadata as { resourceVersion?: unknown } | undefined)?.resourceVersion !== undefined;
    for (let attempt = 0; ; attempt++) {
      try {
        return await updateWith(p, info, key, (current) => {
          const merged = applyMergePatch(current, patchBody) as Record<string, unknown>;
          return merged;
        }, 'patch');
      } catch (err) {
        if (!pinned && isApiError(err) && err.reason === 'Conflict' && attempt < 5) continue;
        throw err;
      }
    }
  };

  async function updateWith(p: Principal, info: KindInfo, key: ObjectKey, build: (current: Resource) => Record<string, unknown>, verb: Verb) {
    const current = await store.get(key);
    if (!current) throw ApiError.notFound(info.kind, key.name);
    const next = build(structuredClone(current));
    const meta = (next.metadata ?? {}) as Record<string, unknown>;
    if (meta.name !== key.name) throw ApiError.invalidField('metadata.name', `must match the name in the URL (${key.name})`);
    if (info.scope === 'project' && meta.project !== undefined && meta.project !== key.project) {
      throw ApiError.invalidField('metadata.project', `must match the project in the URL (${key.project})`);
    }
    if (meta.resourceVersion === undefined) throw ApiError.invalidField('metadata.resourceVersion', 'is required for an update (optimistic concurrency)');
    next.metadata = { ...meta, project: info.scope === 'project' ? key.project : undefined };
    if (info.scope !== 'project') delete (next.metadata as Record<string, unknown>).project;
    delete next.status;
    const obj = validateObject(next, current, validation);
    if (current.metadata.deletionTimestamp && JSON.stringify(obj.spec) !== JSON.stringify(current.spec)) {
      throw ApiError.invalidField('spec', `${info.kind} ${key.name} is being deleted; its spec can no longer change`);
    }
    const updated = await store.update(obj);
    await record(p, verb, updated, 200);
    return updated;
  }

  const updateStatus = async (req: FastifyRequest<{ Params: ResourceParams }>) => {
    const p = principal(req);
    const { info, key } = target(req.params);
    authorizeWrite(p, 'updateStatus', info, key);
    const body = bodyObject(req);
    const current = await store.get(key);
    if (!current) throw ApiError.notFound(info.kind, key.name);
    const candidate = { ...current, status: body.status, metadata: { ...current.metadata, resourceVersion: (body.metadata as Record<string, unknown> | undefined)?.resourceVersion } };
    validateObject(candidate, current, validation);
    const updated = await store.updateStatus(candidate as Resource);
    await record(p, 'updateStatus', updated, 200);
    return updated;
  };

  const remove = async (req: FastifyRequest<{ Params: ResourceParams; Querystring: { resourceVersion?: string } }>, reply: FastifyReply) => {
    const p = principal(req);
    const { info, key } = target(req.params);
    authorizeWrite(p, 'delete', info, key);
    if (info.kind === 'Project') {
      const children = await Promise.all(['Cluster', 'Secret', 'NotificationChannel'].map((k) => store.list(k, { project: key.name, limit: 1 })));
      if (children.some((c) => c.items.length > 0)) {
        throw new ApiError(409, 'Conflict', `project ${key.name} still has clusters, secrets or notification channels; delete them first`, [{ field: 'metadata.name', message: 'project not empty' }]);
      }
    }
    const result = await store.delete(key, { resourceVersion: req.query.resourceVersion });
    const code = result.removed ? 200 : 202;
    await record(p, 'delete', result.object, code);
    void reply.code(code);
    return result.object;
  };

  for (const base of [`${API_PREFIX}/:plural`, `${API_PREFIX}/projects/:project/:plural`]) {
    app.get(base, listOrWatch);
    app.post(base, create);
    app.get(`${base}/:name`, get);
    app.put(`${base}/:name`, replace);
    app.patch(`${base}/:name`, patch);
    app.delete(`${base}/:name`, remove);
  }
  app.put(`${API_PREFIX}/projects/:project/:plural/:name/status`, updateStatus);

  app.get<{ Params: { project: string; name: string } }>(`${API_PREFIX}/projects/:project/clusters/:name/kubeconfig`, async (req, reply) => {
    const p = principal(req);
    const { project, name } = req.params;
    authorize(p, 'get', 'Secret', project, name);
    const cluster = await store.get({ kind: 'Cluster', project, name });
    if (!cluster) throw ApiError.notFound('Cluster', name);
    const secret = await store.get({ kind: 'Secret', project, name: `${name}-admin-kubeconfig` });
    const kubeconfig = (secret?.spec as { data?: Record<string, string> } | undefined)?.data?.kubeconfig;
    if (!kubeconfig) {
      throw new ApiError(409, 'Conflict', `cluster ${name} has no kubeconfig yet (phase ${(cluster.status as { phase?: string } | undefined)?.phase ?? 'Pending'}); wait until it is provisioned`);
    }
    await audit.append({ time: now(), user: p.user, verb: 'get', kind: 'Kubeconfig', project, name, code: 200 });
    void reply.type('application/yaml');
    return kubeconfig;
  });

  app.get<{ Params: { project: string; name: string }; Querystring: { since?: string } }>(
    `${API_PREFIX}/projects/:project/clusters/:name/health`,
    async (req): Promise<ClusterHealth> => {
      const p = principal(req);
      const { project, name } = req.params;
      authorize(p, 'get', 'Cluster', project, name);
      const cluster = await store.get({ kind: 'Cluster', project, name });
      if (!cluster) throw ApiError.notFound('Cluster', name);
      let since = new Date(Date.now() - 24 * 3600 * 1000).toISOString();
      if (req.query.since !== undefined) {
        const t = Date.parse(req.query.since);
        if (!/^\d{4}-\d{2}-\d{2}T/.test(req.query.since) || !Number.isFinite(t)) {
          throw ApiError.badRequest(`since must be an RFC 3339 time such as 2026-01-02T15:04:05Z, got ${JSON.stringify(req.query.since)}`, 'since');
        }
        since = new Date(t).toISOString();
      }
      const series = opts.health?.series ? await opts.health.series.range(seriesKey(project, name), since) : [];
      return {
        kind: 'ClusterHealth',
        project,
        cluster: name,
        latest: opts.health?.latest(project, name) ?? null,
        samples: series.map((s) => s.sample as HealthSample),
      };
    },
  );

  if (opts.consoleDir !== false) await registerConsole(app, opts.consoleDir);
  if (opts.functions) await app.register(functionRoutes, { service: opts.functions, store, tokens });

  // ---------- helpers bound to this app ----------

  function authorize(p: Principal, verb: Verb, kind: string, project: string, name: string): void {
    const d = decide(p, verb, kind, project);
    if (d === 'allow') return;
    if (d === 'invisible') throw kind === 'Project' ? ApiError.notFound('Project', project) : ApiError.notFound(kind, name);
    void audit.append({ time: now(), user: p.user, verb, kind, project, name, code: 403 });
    throw ApiError.forbidden(`user ${p.user} may not ${verb} ${kind} in project ${project}`);
  }

  function authorizeWrite(p: Principal, verb: Verb, info: KindInfo, key: ObjectKey): void {
    if (info.scope === 'project') return authorize(p, verb, info.kind, key.project, key.name);
    if (info.kind === 'Project') return authorize(p, verb, 'Project', key.name, key.name);
    if (!p.platformAdmin) throw ApiError.forbidden(`only platform admins may ${verb} ${info.kind} objects`);
  }

  async function record(p: Principal, verb: Verb, obj: Resource, code: number) {
    await audit.append({
      time: now(),
      user: p.user,
      verb,
      kind: obj.kind,
      project: obj.metadata.project ?? '',
      name: obj.metadata.name,
      generation: obj.metadata.generation,
      resourceVersion: obj.metadata.resourceVersion,
      code,
    });
  }

  function target(params: ResourceParams): { info: KindInfo; key: ObjectKey } {
    const info = resolveKind(params.plural);
    const project = info.scope === 'project' ? requireProjectScope(info, params.project) : '';
    if (info.scope === 'global' && params.project !== undefined) {
      throw ApiError.badRequest(`${info.kind} is not a project resource; use ${API_PREFIX}/${info.plural}/${params.name}`);
    }
    return { info, key: { kind: info.kind, project, name: params.name! } };
  }

  return {
    app,
    async close() {
      membership.stop();
      await app.close();
    },
  };
}

// ---------- request helpers ----------

function principal(req: FastifyRequest): Principal {
  if (!req.principal) throw ApiError.unauthorized();
  return req.principal;
}

function resolveKind(plural: string): KindInfo {
  const info = kindByPlural(plural);
  if (!info) throw new ApiError(404, 'NotFound', `the server has no resource type ${JSON.stringify(plural)}`);
  return info;
}

function requireProjectScope(info: KindInfo, project?: string): string {
  if (info.scope !== 'project') return '';
  if (project === undefined) throw ApiError.badRequest(`${info.kind} lives in a project: use ${API_PREFIX}/projects/<project>/${info.plural}`);
  return project;
}

function bodyObject(req: FastifyRequest): Record<string, unknown> {
  const body = req.body;
  if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw ApiError.badRequest('request body must be a JSON or YAML object');
  }
  return structuredClone(body) as Record<string, unknown>;
}

/** Clients cannot set server-owned metadata or status on create. */
function stripServerFields(body: Record<string, unknown>): Record<string, unknown> {
  const meta = { ...(body.metadata as Record<string, unknown> | undefined) };
  for (const f of ['uid', 'resourceVersion', 'generation', 'creationTimestamp', 'deletionTimestamp']) delete meta[f];
  const { status: _status, ...rest } = body;
  return { ...rest, metadata: meta };
}

function parseLimit(raw: string | undefined): number | undefined {
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 10_000) throw ApiError.badRequest('limit must be an integer between 1 and 10000', 'limit');
  return n;
}

function now(): string {
  return new Date().toISOString();
}

function isYaml(ct: string): boolean {
  return /^(application|text)\/(x-)?yaml/.test(ct);
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

function toApiError(err: unknown): ApiError {
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

