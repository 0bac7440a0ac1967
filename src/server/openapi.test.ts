// The served OpenAPI document is the API's contract: it must be valid OpenAPI, and it must
// document what the server can answer and accept.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Validator } from '@seriousme/openapi-schema-validator';
import { startTestApi, type TestApi } from '../../test/support/api.js';

interface Operation {
  operationId?: string;
  parameters?: { name: string; in: string; schema?: { type?: string; readOnly?: boolean } }[];
  requestBody?: unknown;
  responses: Record<string, { content?: Record<string, { schema?: { $ref?: string } }> }>;
}

let api: TestApi;
let doc: { openapi: string; paths: Record<string, Record<string, Operation>>; components: { schemas: Record<string, any> } };

before(async () => {
  api = await startTestApi();
  doc = (await api.app.inject({ url: '/openapi/v3' })).json();
});
after(async () => {
  await api?.close();
});

const operations = () =>
  Object.entries(doc.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, op]) => ({ path, method, op })));

describe('the OpenAPI document', () => {
  it('validates as OpenAPI 3.1', async () => {
    const result = await new Validator().validate(structuredClone(doc));
    assert.equal(result.valid, true, JSON.stringify(result.errors, null, 1)?.slice(0, 4000));
    assert.equal(doc.openapi, '3.1.0');
  });

  it('names every operation and documents 401 and the Status shape of every error it can answer', () => {
    const seen = new Set<string>();
    for (const { path, method, op } of operations()) {
      assert.ok(op.operationId, `${method} ${path} has no operationId`);
      assert.ok(!seen.has(op.operationId!), `operationId ${op.operationId} twice`);
      seen.add(op.operationId!);
      assert.ok(op.responses['401'], `${method} ${path} does not document 401`);
      for (const [code, response] of Object.entries(op.responses)) {
        if (Number(code) < 400) continue;
        assert.equal(response.content?.['application/json']?.schema?.$ref, '#/components/schemas/Status', `${method} ${path} ${code}`);
      }
      if (op.requestBody) {
        for (const code of ['413', '415', '422']) assert.ok(op.responses[code], `${method} ${path} takes a body but does not document ${code}`);
      }
      if (op.parameters?.some((p) => p.in === 'query')) assert.ok(op.responses['400'], `${method} ${path} has query parameters but no 400`);
    }
    assert.ok(seen.size > 50, `only ${seen.size} operations`);
  });

  it('types every query parameter of a list', () => {
    const list = doc.paths['/api/v1alpha1/projects/{project}/clusters']!.get!;
    const types = Object.fromEntries(list.parameters!.filter((p) => p.in === 'query').map((p) => [p.name, p.schema?.type]));
    assert.deepEqual(types, { labelSelector: 'string', limit: 'integer', continue: 'string', watch: 'boolean', resourceVersion: 'string', timeoutSeconds: 'integer' });
    assert.ok(list.responses['410'], 'an expired resourceVersion or continue token is a 410');
  });

  it('marks the fields the server owns read-only; a replace sends resourceVersion back', () => {
    const meta = doc.components.schemas.Cluster.properties.metadata.properties;
    for (const f of ['project', 'uid', 'resourceVersion', 'generation', 'creationTimestamp', 'deletionTimestamp']) assert.equal(meta[f].readOnly, true, f);
    assert.equal(meta.name.readOnly, undefined);
    assert.equal(doc.components.schemas.Cluster.properties.status.readOnly, true);
    const replace = doc.components.schemas.ClusterReplace.properties.metadata;
    assert.ok(replace.required.includes('resourceVersion'));
    assert.equal(replace.properties.resourceVersion.readOnly, undefined);
    assert.equal(doc.components.schemas.ClusterStatusReplace.properties.status.readOnly, false);
  });
});
