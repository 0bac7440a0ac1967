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
  api = await startTestApi({ functions: true });
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
      // A function's HTTP trigger passes through whatever the function answers: `default`.
      assert.ok(op.responses['401'] ?? op.responses.default, `${method} ${path} does not document 401`);
      for (const [code, response] of Object.entries(op.responses)) {
        if (code === 'default' || Number(code) < 400) continue;
        assert.equal(response.content?.['application/json']?.schema?.$ref, '#/components/schemas/Status', `${method} ${path} ${code}`);
      }
      if (op.requestBody && !op.responses.default) {
        // 422 is for bodies with a schema to break; a body that is any value (an event) has none.
        const content = Object.values((op.requestBody as { content: Record<string, { schema?: object }> }).content);
        const anyValue = content.every((c) => c.schema === undefined || Object.keys(c.schema).length === 0);
        const raw = content.length > 0 && (op.requestBody as { content: Record<string, unknown> }).content['*/*'] !== undefined;
        for (const code of ['413', ...(raw ? [] : ['415']), ...(anyValue ? [] : ['422'])]) assert.ok(op.responses[code], `${method} ${path} takes a body but does not document ${code}`);
      }
      if (op.parameters?.some((p) => p.in === 'query')) assert.ok(op.responses['400'] ?? op.responses.default, `${method} ${path} has query parameters but no 400`);
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

  it('documents the function service: the HTTP trigger takes any body and passes any answer through; event ingestion names its headers', () => {
    const call = doc.paths['/fn/{project}/{name}']!.post! as Operation & { security?: object[] };
    assert.deepEqual(Object.keys((call.requestBody as { content: object }).content), ['*/*']);
    assert.deepEqual(Object.keys(call.responses), ['default'], 'a function answers any status code');
    assert.deepEqual(call.security, [{}, { bearer: [] }], 'public functions need no token');
    assert.ok(doc.paths['/fn/{project}/{name}/{path}']?.get, 'the sub-path form is documented with a named parameter');
    assert.equal(doc.paths['/fn/{project}/{name}']!.get!.requestBody, undefined);

    const signed = doc.paths['/events/{project}/{source}']!.post! as Operation & { security?: object[] };
    assert.deepEqual(signed.security, [], 'signed with HMAC, not a token');
    const signature = signed.parameters!.find((p) => p.name === 'x-marina-signature');
    assert.equal(signature?.in, 'header');
    assert.equal((signature as { required?: boolean }).required, true);
    assert.ok(signed.parameters!.some((p) => p.in === 'header' && p.name === 'ce-type'), 'binary-mode headers');
    assert.deepEqual(Object.keys((signed.requestBody as { content: object }).content), ['application/cloudevents+json', '*/*']);

    const invoke = doc.paths['/api/v1alpha1/projects/{project}/functions/{name}/invoke']!.post!;
    // An invocation without a body is one with the event null (the fuzzer found it documented as required).
    assert.equal((invoke.requestBody as { required: boolean }).required, false);
    assert.equal((call.requestBody as { required: boolean }).required, false);
    assert.equal(JSON.stringify(doc).includes('x-optional-body'), false);
    assert.equal(invoke.responses['200']!.content!['application/json']!.schema!.$ref, '#/components/schemas/Invocation');
    assert.ok(doc.components.schemas.Activation && doc.components.schemas.PipelineRunTrace && doc.components.schemas.CloudEvent);
  });
});
