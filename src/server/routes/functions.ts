// The function service's API beside the CRUD of Function, Pipeline and EventSource (which the
// generic resource routes serve): invoking, the activation records, the dead-letter list with
// replay, and pipeline runs traced step by step.
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import { ApiError } from '../../api/errors.js';
import { Activation, Delivery } from '../../api/functions.js';
import type { FunctionService } from '../../functions/service.js';
import { OPTIONAL_BODY } from '../openapi.js';
import { errorResponses, ProjectNameParams, ProjectParams } from '../schemas.js';
import {
  ActivationList,
  DeliveryList,
  EventBody,
  FunctionInstanceList,
  IdempotencyHeaders,
  Invocation,
  InvokeQuery,
  PipelineRunList,
  PipelineRunParams,
  PipelineRunTrace,
  ProjectIdParams,
  RECORD_LIMIT_DEFAULT,
  RecordsQuery,
} from '../function-schemas.js';

export interface FunctionRouteOptions {
  service: FunctionService;
}

interface NameParams {
  project: string;
  name: string;
}
interface IdParams {
  project: string;
  id: string;
}

export const functionRoutes: FastifyPluginAsync<FunctionRouteOptions> = async (app, { service }) => {
  const fnTags = ['Function'];
  const plTags = ['Pipeline'];
  const delivery = (description: string) => ({ 202: Type.Ref(Delivery.$id!, { description }) });

  app.post<{ Params: NameParams; Querystring: InvokeQuery }>('/projects/:project/functions/:name/invoke', {
    schema: {
      operationId: 'invokeFunction',
      summary: 'Invoke a function: wait for its result, or queue the call (?async=true)',
      tags: fnTags,
      params: ProjectNameParams,
      querystring: InvokeQuery,
      headers: IdempotencyHeaders,
      body: EventBody,
      [OPTIONAL_BODY]: true,
      response: {
        200: Type.Ref(Invocation.$id!, { description: 'the activation (whatever its outcome) and the result' }),
        ...delivery('queued (async=true); the same Idempotency-Key answers the same delivery'),
        ...errorResponses(400, 401, 403, 404, 413, 415),
      },
    },
    config: { access: (req) => ({ verb: 'invoke', kind: 'Function', ...(req.params as NameParams) }) },
    handler: async (req, reply) => {
      const { project, name } = req.params;
      const key = idempotencyKey(req);
      const fn = service.catalog.fn(project, name);
      if (!fn) throw ApiError.notFound('Function', name);
      if (req.query.async) {
        const retry = fn.spec?.triggers?.asyncRetry;
        const { delivery } = service.enqueue({ project, kind: 'Function', name, event: req.body ?? null, trigger: { type: 'api' }, ...key, ...(retry ? { retry } : {}) });
        void reply.code(202);
        return delivery;
      }
      const inv = await service.invoke(fn, req.body ?? null, { trigger: { type: 'api' } });
      return { kind: 'Invocation', activation: inv.activation, result: inv.value ?? null };
    },
  });

  app.get<{ Params: NameParams; Querystring: RecordsQuery }>('/projects/:project/functions/:name/activations', {
    schema: {
      operationId: 'listFunctionActivations',
      summary: "A function's activation records, newest first",
      tags: fnTags,
      params: ProjectNameParams,
      querystring: RecordsQuery,
      response: { 200: Type.Ref(ActivationList.$id!, { description: 'activations without their logs (readActivation has them)' }), ...errorResponses(400, 401, 404) },
    },
    config: { access: (req) => ({ verb: 'list', kind: 'Activation', project: (req.params as NameParams).project }) },
    handler: async (req) => {
      const { project, name } = req.params;
      // Without their logs (up to 64 KiB each): one activation's answer has them.
      const items = service.records.activations({ project, function: name, limit: req.query.limit ?? RECORD_LIMIT_DEFAULT }).map(({ logs: _logs, ...a }) => a);
      return { kind: 'ActivationList', items };
    },
  });

  app.get<{ Params: NameParams }>('/projects/:project/functions/:name/instances', {
    schema: {
      operationId: 'listFunctionInstances',
      summary: "A function's sandbox instances in this Marina process: revision, state, calls in flight, idle time",
      tags: fnTags,
      params: ProjectNameParams,
      response: { 200: Type.Ref(FunctionInstanceList.$id!, { description: 'instances (none: scaled to zero)' }), ...errorResponses(401, 404) },
    },
    config: { access: (req) => ({ verb: 'get', kind: 'Function', ...(req.params as NameParams) }) },
    handler: async (req) => {
      const { project, name } = req.params;
      if (!service.catalog.fn(project, name)) throw ApiError.notFound('Function', name);
      return { kind: 'FunctionInstanceList', items: service.pool?.describe(project, name) ?? [] };
    },
  });

  app.get<{ Params: IdParams }>('/projects/:project/activations/:id', {
    schema: {
      operationId: 'readActivation',
      summary: 'One activation record with its logs',
      tags: fnTags,
      params: ProjectIdParams,
      response: { 200: Type.Ref(Activation.$id!, { description: 'the activation' }), ...errorResponses(401, 404) },
    },
    config: { access: (req) => ({ verb: 'get', kind: 'Activation', ...(req.params as IdParams), name: (req.params as IdParams).id }) },
    handler: async (req) => {
      const { project, id } = req.params;
      const a = service.records.activation(project, id);
      if (!a) throw ApiError.notFound('Activation', id);
      return a;
    },
  });

  app.get<{ Params: { project: string }; Querystring: RecordsQuery }>('/projects/:project/deadletters', {
    schema: {
      operationId: 'listDeadLetters',
      summary: 'Asynchronous invocations and pipeline runs that failed their last attempt, newest first',
      tags: fnTags,
      params: ProjectParams,
      querystring: RecordsQuery,
      response: { 200: Type.Ref(DeliveryList.$id!, { description: 'dead letters: the event, the attempts, the last error' }), ...errorResponses(400, 401, 404) },
    },
    config: { access: (req) => ({ verb: 'list', kind: 'DeadLetter', project: (req.params as { project: string }).project }) },
    handler: async (req) => ({ kind: 'DeliveryList', items: service.records.deadLetters(req.params.project, req.query.limit ?? RECORD_LIMIT_DEFAULT) }),
  });

  app.post<{ Params: IdParams }>('/projects/:project/deadletters/:id/replay', {
    schema: {
      operationId: 'replayDeadLetter',
      summary: 'Queue a dead letter again, with fresh attempts, on the current revision',
      tags: fnTags,
      params: ProjectIdParams,
      response: { ...delivery('queued again'), ...errorResponses(401, 403, 404) },
    },
    config: { access: (req) => ({ verb: 'invoke', kind: 'DeadLetter', project: (req.params as IdParams).project, name: (req.params as IdParams).id }) },
    handler: async (req, reply) => {
      const { project, id } = req.params;
      service.replay(project, id);
      void reply.code(202);
      return service.records.get(id);
    },
  });

  app.post<{ Params: NameParams }>('/projects/:project/pipelines/:name/invoke', {
    schema: {
      operationId: 'invokePipeline',
      summary: 'Start a pipeline run (asynchronous: follow it under runs)',
      tags: plTags,
      params: ProjectNameParams,
      headers: IdempotencyHeaders,
      body: EventBody,
      [OPTIONAL_BODY]: true,
      response: { ...delivery('the run is queued; its id appears in the delivery once it starts'), ...errorResponses(400, 401, 403, 404, 413, 415) },
    },
    config: { access: (req) => ({ verb: 'invoke', kind: 'Pipeline', ...(req.params as NameParams) }) },
    handler: async (req, reply) => {
      const { project, name } = req.params;
      if (!service.catalog.pipeline(project, name)) throw ApiError.notFound('Pipeline', name);
      const { delivery } = service.enqueue({ project, kind: 'Pipeline', name, event: req.body ?? null, trigger: { type: 'api' }, ...idempotencyKey(req) });
      void reply.code(202);
      return delivery;
    },
  });

  app.get<{ Params: NameParams; Querystring: RecordsQuery }>('/projects/:project/pipelines/:name/runs', {
    schema: {
      operationId: 'listPipelineRuns',
      summary: "A pipeline's runs, newest first",
      tags: plTags,
      params: ProjectNameParams,
      querystring: RecordsQuery,
      response: { 200: Type.Ref(PipelineRunList.$id!, { description: 'runs with their steps' }), ...errorResponses(400, 401, 404) },
    },
    config: { access: (req) => ({ verb: 'list', kind: 'PipelineRun', project: (req.params as NameParams).project }) },
    handler: async (req) => {
      const { project, name } = req.params;
      return { kind: 'PipelineRunList', items: service.records.runs(project, name, req.query.limit ?? RECORD_LIMIT_DEFAULT) };
    },
  });

  app.get<{ Params: NameParams & { id: string } }>('/projects/:project/pipelines/:name/runs/:id', {
    schema: {
      operationId: 'readPipelineRun',
      summary: 'One pipeline run traced step by step: its steps and the activation of every attempt',
      tags: plTags,
      params: PipelineRunParams,
      response: { 200: Type.Ref(PipelineRunTrace.$id!, { description: 'the run' }), ...errorResponses(401, 404) },
    },
    config: { access: (req) => ({ verb: 'get', kind: 'PipelineRun', project: (req.params as IdParams).project, name: (req.params as IdParams).id }) },
    handler: async (req) => {
      const { project, name, id } = req.params;
      const run = service.records.run(project, id);
      if (!run || run.pipeline !== name) throw ApiError.notFound('PipelineRun', id);
      return { ...run, activations: service.records.activations({ project, pipelineRun: id }) };
    },
  });
};

/**
 * Idempotency-Key of an asynchronous call (namespaced so that it cannot collide with Marina's own
 * keys). Checked on every call, so that a bad key is refused whether or not the call is queued.
 */
export function idempotencyKey(req: FastifyRequest): { idempotencyKey?: string } {
  const key = req.headers['idempotency-key'];
  if (key === undefined) return {};
  if (typeof key !== 'string' || key.length === 0 || key.length > 256) throw ApiError.badRequest('Idempotency-Key must be 1–256 characters', 'Idempotency-Key');
  return { idempotencyKey: `client:${key}` };
}
