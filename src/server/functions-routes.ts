// The function service's HTTP surface (a Fastify plugin). CRUD of Function, Pipeline and
// EventSource goes through the generic resource routes; this adds:
//   POST /api/v1alpha1/projects/:project/functions/:name/invoke       sync (200 Invocation) or ?async=true (202 Delivery)
//   GET  /api/v1alpha1/projects/:project/functions/:name/activations  newest first
//   GET  /api/v1alpha1/projects/:project/activations/:id              one activation with its logs
//   GET  /api/v1alpha1/projects/:project/deadletters                  the dead-letter list
//   POST /api/v1alpha1/projects/:project/deadletters/:id/replay       queue it again (202)
//   POST /api/v1alpha1/projects/:project/pipelines/:name/invoke       start a run (202 Delivery)
//   GET  /api/v1alpha1/projects/:project/pipelines/:name/runs[/:id]   runs, one run traced step by step
//   POST /api/v1alpha1/projects/:project/events                       ingest a CloudEvent (bearer token)
//   POST /events/:project/:source                                     ingest a CloudEvent signed with HMAC-SHA256
//   ANY  /fn/:project/:name[/*]                                       the HTTP trigger
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from '../api/errors.js';
import { CloudEvent, type Activation, type EventSource } from '../api/functions.js';
import type { Role } from '../api/kinds.js';
import { VERSION } from '../api/meta.js';
import { schemaErrors } from '../api/validate.js';
import { PROJECT_ATTRIBUTE } from '../functions/events.js';
import type { FunctionService } from '../functions/service.js';
import type { Store, TokenStore } from '../store/types.js';
import { decide, type Principal, type Verb } from './authz.js';

export interface FunctionRoutesDeps {
  service: FunctionService;
  store: Store;
  tokens: TokenStore;
}

const API = `/api/${VERSION}/projects/:project`;
/** Types of Marina's own events: an external sender may not forge them. */
const RESERVED_TYPE_PREFIX = 'dev.marina.';

type P = { project: string; name: string };

export async function functionRoutes(app: FastifyInstance, deps: FunctionRoutesDeps): Promise<void> {
  const { service, store } = deps;

  const authorize = (req: FastifyRequest, verb: Verb, kind: string, project: string, name: string): Principal => {
    const p = req.principal;
    if (!p) throw ApiError.unauthorized();
    const d = decide(p, verb, kind, project);
    if (d === 'invisible') throw ApiError.notFound(kind === 'FunctionInvocation' ? 'Function' : kind, name);
    if (d === 'forbidden') throw ApiError.forbidden(`user ${p.user} may not ${verb === 'create' && kind === 'FunctionInvocation' ? 'invoke functions' : `${verb} ${kind}`} in project ${project}`);
    return p;
  };
  const fnOr404 = (project: string, name: string) => {
    const fn = service.catalog.fn(project, name);
    if (!fn) throw ApiError.notFound('Function', name);
    return fn;
  };

  app.post<{ Params: P; Querystring: { async?: string } }>(`${API}/functions/:name/invoke`, async (req, reply) => {
    const { project, name } = req.params;
    authorize(req, 'create', 'FunctionInvocation', project, name);
    const fn = fnOr404(project, name);
    if (isTrue(req.query.async)) {
      const { delivery } = service.enqueue({
        project,
        kind: 'Function',
        name,
        event: req.body ?? null,
        trigger: { type: 'api' },
        ...idempotencyHeader(req),
        ...(fn.spec?.triggers?.asyncRetry ? { retry: fn.spec.triggers.asyncRetry } : {}),
      });
      void reply.code(202);
      return delivery;
    }
    const inv = await service.invoke(fn, req.body ?? null, { trigger: { type: 'api' } });
    return { kind: 'Invocation', activation: inv.activation, result: inv.value ?? null };
  });

  app.get<{ Params: P; Querystring: { limit?: string } }>(`${API}/functions/:name/activations`, async (req) => {
    const { project, name } = req.params;
    authorize(req, 'list', 'Function', project, name);
    return { kind: 'ActivationList', items: service.records.activations({ project, function: name, limit: limit(req.query.limit) }) };
  });

  app.get<{ Params: { project: string; id: string } }>(`${API}/activations/:id`, async (req) => {
    const { project, id } = req.params;
    authorize(req, 'get', 'Function', project, id);
    const a = service.records.activation(project, id);
    if (!a) throw new ApiError(404, 'NotFound', `activation ${JSON.stringify(id)} not found`);
    return a;
  });

  app.get<{ Params: { project: string }; Querystring: { limit?: string } }>(`${API}/deadletters`, async (req) => {
    const { project } = req.params;
    authorize(req, 'list', 'Function', project, '');
    return { kind: 'DeliveryList', items: service.records.deadLetters(project, limit(req.query.limit)) };
  });

  app.post<{ Params: { project: string; id: string } }>(`${API}/deadletters/:id/replay`, async (req, reply) => {
    const { project, id } = req.params;
    authorize(req, 'create', 'FunctionInvocation', project, id);
    service.replay(project, id);
    void reply.code(202);
    return service.records.get(id);
  });

  app.post<{ Params: P }>(`${API}/pipelines/:name/invoke`, async (req, reply) => {
    const { project, name } = req.params;
    authorize(req, 'create', 'FunctionInvocation', project, name);
    if (!service.catalog.pipeline(project, name)) throw ApiError.notFound('Pipeline', name);
    const { delivery } = service.enqueue({ project, kind: 'Pipeline', name, event: req.body ?? null, trigger: { type: 'api' }, ...idempotencyHeader(req) });
    void reply.code(202);
    return delivery;
  });

  app.get<{ Params: P; Querystring: { limit?: string } }>(`${API}/pipelines/:name/runs`, async (req) => {
    const { project, name } = req.params;
    authorize(req, 'list', 'Pipeline', project, name);
    return { kind: 'PipelineRunList', items: service.records.runs(project, name, limit(req.query.limit)) };
  });

  app.get<{ Params: P & { id: string } }>(`${API}/pipelines/:name/runs/:id`, async (req) => {
    const { project, name, id } = req.params;
    authorize(req, 'get', 'Pipeline', project, name);
    const run = service.records.run(project, id);
    if (!run || run.pipeline !== name) throw new ApiError(404, 'NotFound', `pipeline run ${JSON.stringify(id)} not found`);
    return { ...run, activations: service.records.activations({ project, pipelineRun: id }) };
  });

  // Raw bodies from here on: signatures are computed over the exact bytes, and functions get
  // whatever content type their callers send.
  await app.register(async (raw) => {
    raw.removeAllContentTypeParsers();
    raw.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

    raw.post<{ Params: { project: string } }>(`${API}/events`, async (req, reply) => {
      const { project } = req.params;
      authorize(req, 'create', 'FunctionInvocation', project, '');
      await ingest(project, req, reply);
    });

    raw.post<{ Params: { project: string; source: string } }>('/events/:project/:source', async (req, reply) => {
      const { project, source } = req.params;
      await verifySignature(project, source, req);
      await ingest(project, req, reply);
    });

    const httpTrigger = async (req: FastifyRequest<{ Params: P & { '*'?: string }; Querystring: Record<string, string> }>, reply: FastifyReply) => {
      const { project, name } = req.params;
      const fn = service.catalog.fn(project, name);
      const http = fn?.spec?.triggers?.http;
      if (!fn || http?.enabled === false) throw new ApiError(404, 'NotFound', `no function ${project}/${name} with an HTTP trigger`);
      if (http?.public !== true) await authenticateInvoker(req, project, name);
      const event = requestEvent(req);
      if (isTrue(req.query.async) || /\brespond-async\b/.test(String(req.headers.prefer ?? ''))) {
        const { delivery } = service.enqueue({
          project,
          kind: 'Function',
          name,
          event,
          trigger: { type: 'http' },
          ...idempotencyHeader(req),
          ...(fn.spec?.triggers?.asyncRetry ? { retry: fn.spec.triggers.asyncRetry } : {}),
        });
        void reply.code(202).header('location', `/api/${VERSION}/projects/${project}/functions/${name}/activations`);
        return delivery;
      }
      const inv = await service.invoke(fn, event, { trigger: { type: 'http' } });
      return sendResult(reply, inv.activation, inv.value);
    };
    raw.all('/fn/:project/:name', httpTrigger);
    raw.all('/fn/:project/:name/*', httpTrigger);
  });

  async function ingest(project: string, req: FastifyRequest, reply: FastifyReply): Promise<void> {
    const event = parseCloudEvent(req);
    const causes = schemaErrors(CloudEvent, event);
    if (causes.length) throw ApiError.invalid(causes);
    if (event.type.startsWith(RESERVED_TYPE_PREFIX)) throw ApiError.invalidField('type', `types starting with ${RESERVED_TYPE_PREFIX} are Marina's own events`);
    // The project is the one the sender is authenticated for, whatever the event says.
    event[PROJECT_ATTRIBUTE] = project;
    await service.publish(event);
    void reply.code(202).send({ kind: 'Status', code: 202, message: `event ${event.id} accepted` });
  }

  async function verifySignature(project: string, source: string, req: FastifyRequest): Promise<void> {
    const header = String(req.headers['x-marina-signature'] ?? '');
    const m = /^sha256=([0-9a-f]{64})$/i.exec(header);
    // One answer for every failure, so a caller learns nothing about which sources exist.
    const refuse = () => ApiError.unauthorized('missing or bad X-Marina-Signature (sha256=<hex HMAC-SHA256 of the body>)');
    if (!m) throw refuse();
    const es = (await store.get({ kind: 'EventSource', project, name: source })) as EventSource | undefined;
    if (!es) throw refuse();
    const secret = await store.get({ kind: 'Secret', project, name: es.spec.hmacSecret.name });
    const key = (secret?.spec as { data?: Record<string, string> } | undefined)?.data?.[es.spec.hmacSecret.key];
    if (!key) throw refuse();
    const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const want = createHmac('sha256', key).update(body).digest();
    const got = Buffer.from(m[1]!, 'hex');
    if (got.length !== want.length || !timingSafeEqual(got, want)) throw refuse();
  }

  /** HTTP trigger callers: a bearer token of a member of the project (or a platform admin). */
  async function authenticateInvoker(req: FastifyRequest, project: string, name: string): Promise<void> {
    const match = /^Bearer\s+(\S+)$/i.exec(String(req.headers.authorization ?? ''));
    if (!match) throw ApiError.unauthorized();
    const verified = await deps.tokens.verify(match[1]!);
    if (!verified) throw ApiError.unauthorized('token is invalid, revoked or expired');
    const user = await store.get({ kind: 'User', project: '', name: verified.user });
    if (!user) throw ApiError.unauthorized();
    const proj = await store.get({ kind: 'Project', project: '', name: project });
    const role = ((proj?.spec as { members?: { user: string; role: Role }[] } | undefined)?.members ?? []).find((m) => m.user === verified.user)?.role;
    req.principal = {
      user: verified.user,
      platformAdmin: (user.spec as { platformAdmin?: boolean }).platformAdmin === true,
      roles: new Map(role ? [[project, role]] : []),
    };
    authorize(req, 'create', 'FunctionInvocation', project, name);
  }
}

// ---------- request/response mapping ----------

/** What the handler of an HTTP-triggered function receives. */
export interface HttpEvent {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: Record<string, string>;
  /** Parsed JSON, text, or base64 (isBase64Encoded) for other content. */
  body: unknown;
  isBase64Encoded?: boolean;
}

function requestEvent(req: FastifyRequest<{ Params: { '*'?: string }; Querystring: Record<string, string> }>): HttpEvent {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) {
    // The caller's credentials are Marina's business, not the function's.
    if (k === 'authorization' || k === 'cookie' || v === undefined) continue;
    headers[k] = Array.isArray(v) ? v.join(', ') : v;
  }
  const event: HttpEvent = { method: req.method, path: `/${req.params['*'] ?? ''}`, query: { ...req.query }, headers, body: null };
  const raw = Buffer.isBuffer(req.body) ? req.body : undefined;
  if (raw && raw.length > 0) {
    const ct = headers['content-type'] ?? '';
    if (/[/+]json\b/.test(ct)) {
      try {
        event.body = JSON.parse(raw.toString('utf8'));
      } catch {
        throw ApiError.badRequest('malformed JSON body', 'body');
      }
    } else if (/^text\/|[/+]xml\b|x-www-form-urlencoded/.test(ct)) {
      event.body = raw.toString('utf8');
    } else {
      event.body = raw.toString('base64');
      event.isBase64Encoded = true;
    }
  }
  return event;
}

const FAILURE_CODE: Record<string, number> = { timeout: 504, error: 502, oom: 502, crashed: 502, canceled: 503 };

function sendResult(reply: FastifyReply, a: Activation, value: unknown): FastifyReply {
  void reply.header('x-marina-activation-id', a.id).header('x-marina-cold-start', String(a.coldStart));
  if (a.outcome !== 'success') {
    const capacity = a.error?.startsWith('no instance of') || a.error?.startsWith('functions cannot run');
    const code = capacity ? 503 : (FAILURE_CODE[a.outcome] ?? 502);
    return reply.code(code).type('application/json').send({ kind: 'Status', code, reason: 'FunctionFailed', message: `${a.outcome}: ${(a.error ?? '').split('\n')[0]}`, activation: a.id });
  }
  // { statusCode, headers?, body?, isBase64Encoded? } is a full response; anything else is a JSON body.
  const r = value as { statusCode?: unknown; headers?: Record<string, string>; body?: unknown; isBase64Encoded?: boolean } | null;
  if (r && typeof r === 'object' && typeof r.statusCode === 'number' && Number.isInteger(r.statusCode) && r.statusCode >= 100 && r.statusCode <= 599) {
    void reply.code(r.statusCode);
    for (const [k, v] of Object.entries(r.headers ?? {})) if (typeof v === 'string') void reply.header(k, v);
    if (r.body === undefined || r.body === null) return reply.send();
    if (typeof r.body === 'string') return reply.send(r.isBase64Encoded ? Buffer.from(r.body, 'base64') : r.body);
    return reply.type('application/json').send(JSON.stringify(r.body));
  }
  return reply.type('application/json').send(JSON.stringify(value ?? null));
}

/** Structured mode (the whole event as JSON) or binary mode (ce-* headers, the body is data). */
function parseCloudEvent(req: FastifyRequest): CloudEvent {
  const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
  const ct = String(req.headers['content-type'] ?? '');
  if (ct.startsWith('application/cloudevents+json') || (!req.headers['ce-specversion'] && /[/+]json\b/.test(ct))) {
    try {
      return JSON.parse(raw.toString('utf8')) as CloudEvent;
    } catch {
      throw ApiError.badRequest('malformed JSON body');
    }
  }
  if (!req.headers['ce-specversion']) throw ApiError.badRequest('send a CloudEvent: application/cloudevents+json (structured) or ce-* headers (binary mode)');
  const event: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(req.headers)) if (k.startsWith('ce-') && typeof v === 'string') event[k.slice(3)] = v;
  if (ct) event.datacontenttype = ct;
  if (raw.length) {
    if (/[/+]json\b/.test(ct)) {
      try {
        event.data = JSON.parse(raw.toString('utf8'));
      } catch {
        throw ApiError.badRequest('malformed JSON data');
      }
    } else if (/^text\//.test(ct)) event.data = raw.toString('utf8');
    else event.data_base64 = raw.toString('base64');
  }
  return event as CloudEvent;
}

function idempotencyHeader(req: FastifyRequest): { idempotencyKey?: string } {
  const key = req.headers['idempotency-key'];
  if (key === undefined) return {};
  if (typeof key !== 'string' || key.length === 0 || key.length > 256) throw ApiError.badRequest('Idempotency-Key must be 1–256 characters', 'Idempotency-Key');
  return { idempotencyKey: `client:${key}` };
}

function isTrue(v: string | undefined): boolean {
  return v === 'true' || v === '1';
}

function limit(raw: string | undefined): number {
  if (raw === undefined || raw === '') return 50;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw ApiError.badRequest('limit must be an integer between 1 and 1000', 'limit');
  return n;
}

