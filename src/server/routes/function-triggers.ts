// The entry points that take raw bodies: CloudEvents ingestion (signatures are computed over the
// exact bytes, and binary-mode data may be anything) and the functions' HTTP trigger (functions
// get whatever content type their callers send).
//   POST /api/v1alpha1/projects/{project}/events   a CloudEvent, with a member's bearer token
//   POST /events/{project}/{eventsource}           a CloudEvent signed with the EventSource's HMAC key
//   GET|POST|PUT|PATCH|DELETE /fn/{project}/{name}[/{path}]   the HTTP trigger
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest, HTTPMethods } from 'fastify';
import { Type, type TObject } from '@sinclair/typebox';
import { ApiError } from '../../api/errors.js';
import { CloudEvent, type EventSource } from '../../api/functions.js';
import { schemaErrors } from '../../api/validate.js';
import { PROJECT_ATTRIBUTE } from '../../events/bus.js';
import type { FunctionService } from '../../functions/service.js';
import type { Store } from '../../store/types.js';
import type { Access } from '../authz.js';
import { parseCloudEvent, requestEvent, sendResult } from '../function-http.js';
import {
  CloudEventBody,
  CloudEventHeaders,
  EventSourceParams,
  HttpTriggerPathParams,
  HttpTriggerQuery,
  IdempotencyHeaders,
  SIGNATURE_HEADER,
  SignedCloudEventHeaders,
} from '../function-schemas.js';
import { API_PREFIX } from '../http.js';
import { OPTIONAL_BODY } from '../openapi.js';
import { errorResponses, ProjectNameParams, ProjectParams, Status } from '../schemas.js';
import { idempotencyKey } from './functions.js';

export interface FunctionTriggerOptions {
  service: FunctionService;
  store: Store;
}

/** Types of Marina's own events: an outside sender may not forge them. */
const RESERVED_TYPE_PREFIX = 'dev.marina.';
const HTTP_TRIGGER_METHODS: HTTPMethods[] = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];

interface TriggerParams {
  project: string;
  name: string;
  '*'?: string;
}

export const functionTriggerRoutes: FastifyPluginAsync<FunctionTriggerOptions> = async (app, { service, store }) => {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  const accepted = { 202: Type.Ref(Status.$id!, { description: 'accepted: queued for every subscription whose filter matches' }) };

  app.post<{ Params: { project: string } }>(`${API_PREFIX}/projects/:project/events`, {
    schema: {
      operationId: 'ingestCloudEvent',
      summary: "Send a CloudEvent to the project's subscriptions (structured or binary mode)",
      description: 'The event belongs to the project in the path whatever it says; types under dev.marina. are Marina\'s own and refused.',
      tags: ['Function'],
      params: ProjectParams,
      headers: CloudEventHeaders,
      body: CloudEventBody,
      response: { ...accepted, ...errorResponses(400, 401, 403, 404, 413, 422) },
    },
    config: { access: (req) => ({ verb: 'invoke', kind: 'CloudEvent', project: (req.params as { project: string }).project }) },
    handler: async (req, reply) => ingest(req.params.project, req, reply),
  });

  app.post<{ Params: { project: string; source: string } }>('/events/:project/:source', {
    schema: {
      operationId: 'ingestSignedCloudEvent',
      summary: 'Send a CloudEvent as a third party, signed with the EventSource\'s HMAC-SHA256 key (no token)',
      description: 'Every failure to authenticate (no or bad signature, unknown event source, missing key) is the same 401.',
      tags: ['Function'],
      security: [],
      params: EventSourceParams,
      headers: SignedCloudEventHeaders,
      body: CloudEventBody,
      response: { ...accepted, ...errorResponses(400, 401, 413, 422) },
    },
    // The signature is the authentication (verifySignature), not a user's token.
    config: { access: 'public' },
    preHandler: async (req) => verifySignature(req.params.project, req.params.source, req),
    handler: async (req, reply) => ingest(req.params.project, req, reply),
  });

  registerHttpTrigger(app, service);

  async function ingest(project: string, req: FastifyRequest, reply: FastifyReply): Promise<void> {
    const event = parseCloudEvent(req);
    const causes = schemaErrors(CloudEvent, event);
    if (causes.length) throw ApiError.invalid(causes);
    if (event.type.startsWith(RESERVED_TYPE_PREFIX)) throw ApiError.invalidField('type', `types starting with ${RESERVED_TYPE_PREFIX} are Marina's own events`);
    event[PROJECT_ATTRIBUTE] = project;
    await service.publish(event);
    void reply.code(202).send({ kind: 'Status', code: 202, reason: 'Accepted', message: `event ${event.id} accepted` });
  }

  async function verifySignature(project: string, source: string, req: FastifyRequest): Promise<void> {
    const header = req.headers[SIGNATURE_HEADER];
    const m = typeof header === 'string' ? /^sha256=([0-9a-f]{64})$/i.exec(header) : null;
    // One answer for every failure, so that a caller learns nothing about which sources exist.
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
};

/** `/fn/{project}/{name}` and `/fn/{project}/{name}/{path}`: the request in, the function's answer out. */
function registerHttpTrigger(app: FastifyInstance, service: FunctionService): void {
  // Public functions need no token; the others a project member's (decided by the one hook).
  const access = (req: FastifyRequest): Access | 'public' => {
    const { project, name } = req.params as TriggerParams;
    const http = service.catalog.fn(project, name)?.spec?.triggers?.http;
    return http?.public === true && http.enabled !== false ? 'public' : { verb: 'invoke', kind: 'Function', project, name };
  };
  const handler = async (req: FastifyRequest<{ Params: TriggerParams; Querystring: HttpTriggerQuery }>, reply: FastifyReply) => {
    const { project, name } = req.params;
    const key = idempotencyKey(req);
    const fn = service.catalog.fn(project, name);
    if (!fn || fn.spec?.triggers?.http?.enabled === false) throw new ApiError(404, 'NotFound', `no function ${project}/${name} with an HTTP trigger`);
    const { async: queue, ...query } = req.query;
    const event = requestEvent(req, req.params['*'] ?? '', query);
    if (queue || /\brespond-async\b/.test(String(req.headers.prefer ?? ''))) {
      const retry = fn.spec?.triggers?.asyncRetry;
      const { delivery } = service.enqueue({ project, kind: 'Function', name, event, trigger: { type: 'http' }, ...key, ...(retry ? { retry } : {}) });
      void reply.code(202).header('location', `${API_PREFIX}/projects/${project}/functions/${name}/activations`);
      return delivery;
    }
    const inv = await service.invoke(fn, event, { trigger: { type: 'http' } });
    return sendResult(reply, inv.activation, inv.value);
  };
  const schema = (method: HTTPMethods, operationId: string, params: TObject, summary: string) => ({
    operationId,
    summary,
    description:
      'The request becomes the event {method, path, query, headers (without authorization and cookie), body: parsed JSON, text, or base64 with isBase64Encoded}. ' +
      'The function answers with any status code, headers and body; `?async=true` or `Prefer: respond-async` queues the call instead (202 with the Delivery).',
    tags: ['Function'],
    // Public functions take calls without a token.
    security: [{}, { bearer: [] }] as { [scheme: string]: string[] }[],
    params,
    querystring: HttpTriggerQuery,
    headers: IdempotencyHeaders,
    ...(method === 'GET' ? {} : { body: { description: 'any body of any content type, or none', content: { '*/*': { schema: Type.Unknown() } } }, [OPTIONAL_BODY]: true }),
    response: {
      default: {
        description:
          "the function's answer: whatever status, headers and body it returns (a result that is not {statusCode, headers?, body?, isBase64Encoded?} is a 200 JSON body). " +
          'Marina itself answers 202 with the Delivery when queued, and a Status with 400 (malformed JSON body, bad Idempotency-Key), 401 (no or bad token; not for public functions), ' +
          '403 (role), 404 (no such function, or its HTTP trigger is off), 413 (body too large), 502 (the handler failed, ran out of memory or crashed), 503 (no capacity), 504 (deadline)',
        headers: {
          'x-marina-activation-id': { description: 'the activation record of the call', schema: { type: 'string' } },
          'x-marina-cold-start': { description: 'whether the call started an instance', schema: { type: 'string', enum: ['true', 'false'] } },
        },
        content: { '*/*': { schema: Type.Unknown() } },
      },
    },
  });
  // One route per method, so that each is its own operation in the document.
  for (const method of HTTP_TRIGGER_METHODS) {
    const verb = method.charAt(0) + method.slice(1).toLowerCase();
    app.route({ method, url: '/fn/:project/:name', schema: schema(method, `callFunction${verb}`, ProjectNameParams, `Call a function through its HTTP trigger (${method})`), config: { access }, handler });
    app.route({
      method,
      url: '/fn/:project/:name/*',
      schema: schema(method, `callFunctionPath${verb}`, HttpTriggerPathParams, `Call a function through its HTTP trigger with a sub-path, its event.path (${method})`),
      config: {
        access,
        // OpenAPI has no wildcard: the document names the rest of the path `path`.
        swaggerTransform: ({ schema, url }) => ({
          url: url.replace(/\*$/, ':path'),
          schema: { ...schema, params: Type.Object({ ...ProjectNameParams.properties, path: HttpTriggerPathParams.properties['*'] }) },
        }),
      },
      handler,
    });
  }
}
