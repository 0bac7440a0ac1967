// The OpenAPI 3 document, generated from the same TypeBox schemas that validate requests.
import type { TSchema } from '@sinclair/typebox';
import { KINDS, type KindInfo } from '../api/registry.js';
import { VERSION } from '../api/meta.js';

type Json = Record<string, unknown>;

/** TypeBox schemas carry symbol keys and $id; OpenAPI wants plain JSON Schema. */
function plain(schema: TSchema): Json {
  return JSON.parse(JSON.stringify(schema, (key, value) => (key === '$id' ? undefined : value))) as Json;
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const statusResponse = (description: string) => ({ description, content: { 'application/json': { schema: ref('Status') } } });

function objectResponses(kind: string, okCode: string, okDescription: string): Json {
  return {
    [okCode]: { description: okDescription, content: { 'application/json': { schema: ref(kind) } } },
    '400': statusResponse('malformed request'),
    '401': statusResponse('missing or invalid token'),
    '403': statusResponse('not allowed for your role'),
    '404': statusResponse('not found (or not visible to you)'),
    '409': statusResponse('already exists, or resourceVersion conflict'),
    '413': statusResponse('body too large'),
    '422': statusResponse('invalid object; `field` names the offending field'),
  };
}

function pathsFor(info: KindInfo): Record<string, Json> {
  const base = info.scope === 'project' ? `/api/${VERSION}/projects/{project}/${info.plural}` : `/api/${VERSION}/${info.plural}`;
  const params: Json[] = [];
  if (info.scope === 'project') params.push({ name: 'project', in: 'path', required: true, schema: { type: 'string' } });
  const nameParam = { name: 'name', in: 'path', required: true, schema: { type: 'string' } };
  const body = {
    required: true,
    content: { 'application/json': { schema: ref(info.kind) }, 'application/yaml': { schema: ref(info.kind) } },
  };
  const paths: Record<string, Json> = {
    [base]: {
      parameters: params,
      get: {
        operationId: `list${info.kind}`,
        summary: `List or watch ${info.kind} objects`,
        parameters: [
          { name: 'labelSelector', in: 'query', schema: { type: 'string' } },
          { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 10000 } },
          { name: 'continue', in: 'query', schema: { type: 'string' } },
          { name: 'watch', in: 'query', schema: { type: 'boolean' }, description: 'stream changes as application/x-ndjson' },
          { name: 'resourceVersion', in: 'query', schema: { type: 'string' }, description: 'watch from after this version; 410 if too old' },
        ],
        responses: {
          '200': {
            description: 'a list, or a stream of watch events',
            content: {
              'application/json': { schema: { type: 'object', properties: { items: { type: 'array', items: ref(info.kind) } } } },
              'application/x-ndjson': { schema: ref('WatchEvent') },
            },
          },
          '410': statusResponse('resourceVersion too old; list again'),
        },
      },
      post: { operationId: `create${info.kind}`, requestBody: body, responses: objectResponses(info.kind, '201', 'created') },
    },
    [`${base}/{name}`]: {
      parameters: [...params, nameParam],
      get: { operationId: `read${info.kind}`, responses: objectResponses(info.kind, '200', 'the object') },
      put: { operationId: `replace${info.kind}`, requestBody: body, responses: objectResponses(info.kind, '200', 'updated') },
      patch: {
        operationId: `patch${info.kind}`,
        requestBody: { required: true, content: { 'application/merge-patch+json': { schema: { type: 'object' } } } },
        responses: objectResponses(info.kind, '200', 'patched'),
      },
      delete: {
        operationId: `delete${info.kind}`,
        responses: {
          ...objectResponses(info.kind, '200', 'deleted'),
          '202': { description: 'deletion started; finalizers pending', content: { 'application/json': { schema: ref(info.kind) } } },
        },
      },
    },
  };
  if (info.scope === 'project') {
    paths[`${base}/{name}/status`] = {
      parameters: [...params, nameParam],
      put: { operationId: `replace${info.kind}Status`, requestBody: body, responses: objectResponses(info.kind, '200', 'status updated') },
    };
  }
  return paths;
}

export function buildOpenApi(): Json {
  const schemas: Json = {};
  for (const info of KINDS) schemas[info.kind] = plain(info.schema);
  schemas.Status = {
    type: 'object',
    required: ['kind', 'code', 'reason', 'message'],
    properties: {
      kind: { const: 'Status' },
      code: { type: 'integer' },
      reason: { type: 'string' },
      message: { type: 'string' },
      field: { type: 'string' },
      causes: { type: 'array', items: { type: 'object', properties: { field: { type: 'string' }, message: { type: 'string' } } } },
    },
  };
  schemas.WatchEvent = {
    type: 'object',
    properties: { type: { enum: ['ADDED', 'MODIFIED', 'DELETED', 'BOOKMARK'] }, object: { type: 'object' } },
  };
  const paths: Json = {};
  for (const info of KINDS) Object.assign(paths, pathsFor(info));
  paths[`/api/${VERSION}/projects/{project}/clusters/{name}/kubeconfig`] = {
    get: {
      operationId: 'readClusterKubeconfig',
      parameters: [
        { name: 'project', in: 'path', required: true, schema: { type: 'string' } },
        { name: 'name', in: 'path', required: true, schema: { type: 'string' } },
      ],
      responses: { '200': { description: 'admin kubeconfig', content: { 'application/yaml': { schema: { type: 'string' } } } } },
    },
  };
  paths[`/api/${VERSION}/kubernetesversions`] = {
    get: {
      operationId: 'listKubernetesVersions',
      responses: {
        '200': {
          description: 'the Kubernetes versions spec.kubernetesVersion accepts, and the default',
          content: {
            'application/json': {
              schema: {
                type: 'object',
                required: ['kind', 'default', 'versions'],
                properties: { kind: { type: 'string', enum: ['KubernetesVersionList'] }, default: { type: 'string', nullable: true }, versions: { type: 'array', items: { type: 'string' } } },
              },
            },
          },
        },
      },
    },
  };
  paths[`/api/${VERSION}/projects/{project}/clusters/{name}/health`] = {
    get: {
      operationId: 'readClusterHealth',
      description: 'the newest health report and the samples of the last 24 hours (see src/health/types.ts: ClusterHealth)',
      parameters: [
        { name: 'project', in: 'path', required: true, schema: { type: 'string' } },
        { name: 'name', in: 'path', required: true, schema: { type: 'string' } },
        { name: 'since', in: 'query', required: false, schema: { type: 'string', format: 'date-time' }, description: 'only samples after this time (default: 24 hours ago)' },
      ],
      responses: {
        '200': {
          description: 'ClusterHealth',
          content: {
            'application/json': {
              schema: {
                type: 'object',
                required: ['kind', 'project', 'cluster', 'latest', 'samples'],
                properties: {
                  kind: { type: 'string', enum: ['ClusterHealth'] },
                  project: { type: 'string' },
                  cluster: { type: 'string' },
                  latest: { type: 'object', nullable: true, description: 'HealthReport: checks, nodes, metrics; null before the first check' },
                  samples: { type: 'array', items: { type: 'object', description: 'HealthSample' } },
                },
              },
            },
          },
        },
      },
    },
  };
  return {
    openapi: '3.0.3',
    info: { title: 'Marina API', version: VERSION, description: 'Managed Kubernetes clusters for private clouds' },
    components: { schemas, securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    security: [{ bearer: [] }],
    paths,
  };
}
