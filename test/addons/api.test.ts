// The add-on kinds at the API edge: what is refused (422 naming the field) before anything is
// stored, who may do what, and what the OpenAPI document says.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { API_VERSION } from '../../src/api/meta.js';
import { addonBody, BASE, definitionBody, startAddonApi, type AddonApi } from './harness.js';

let api: AddonApi;
before(async () => {
  api = await startAddonApi();
});
after(async () => {
  await api?.close();
});

const CM = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: demo\ndata:\n  n: "${values.n}"\n';
const SCHEMA = { type: 'object', additionalProperties: false, properties: { n: { type: 'integer', minimum: 1, default: 1 } } };

describe('AddonDefinition', () => {
  it('a definition whose manifests do not parse is refused at creation, naming the file field and the line', async () => {
    const r = await api.req('platform', 'POST', `${BASE}/addondefinitions`, definitionBody('broken', '1.0.0', 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [x\n'));
    assert.equal(r.status, 422);
    assert.equal(r.json.field, 'spec.manifests[0].content');
    assert.match(r.json.message, /m\.yaml document 1: .*line \d+/);
    assert.equal((await api.req('platform', 'GET', `${BASE}/addondefinitions/broken-v1-0-0`)).status, 404, 'nothing stored');
  });

  it('refuses unknown placeholders, a values schema Ajv rejects, defaults that break the schema, and a name that does not fit', async () => {
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [definitionBody('a', '1.0.0', CM), 'spec.manifests', /\$\{values\.n\} is not declared in spec\.valuesSchema/],
      [definitionBody('a', '1.0.0', CM, { valuesSchema: { type: 'object', properties: { n: { type: 'integr' } } } }), 'spec.valuesSchema', /schema is invalid: data\/properties\/n\/type/],
      [definitionBody('a', '1.0.0', CM, { valuesSchema: { ...SCHEMA, properties: { n: { type: 'integer', minimum: 1, default: 0 } } } }), 'spec.valuesSchema', /defaults do not satisfy/],
      [{ ...definitionBody('a', '1.0.0', CM, { valuesSchema: SCHEMA }), metadata: { name: 'a' } }, 'metadata.name', /must be "a-v1-0-0"/],
      [definitionBody('a', '1.0', CM, { valuesSchema: SCHEMA }), 'spec.version', /does not match/],
      [definitionBody('a', '1.0.0', CM, { valuesSchema: SCHEMA, dependencies: [{ addon: 'a' }] }), 'spec.dependencies[0].addon', /itself/],
    ];
    for (const [body, field, message] of cases) {
      const r = await api.req('platform', 'POST', `${BASE}/addondefinitions`, body);
      assert.equal(r.status, 422, JSON.stringify(r.json));
      const cause = (r.json.causes as { field: string; message: string }[]).find((c) => c.field === field);
      assert.ok(cause, `${field} in ${JSON.stringify(r.json.causes)}`);
      assert.match(cause.message, message);
    }
  });

  it('platform admins add definitions; everyone reads the catalog; members cannot write it', async () => {
    const body = definitionBody('demo', '1.0.0', CM, { valuesSchema: SCHEMA });
    assert.equal((await api.req('member', 'POST', `${BASE}/addondefinitions`, body)).status, 403);
    assert.equal((await api.req('platform', 'POST', `${BASE}/addondefinitions`, body)).status, 201);
    const list = await api.req('viewer', 'GET', `${BASE}/addondefinitions`);
    assert.equal(list.status, 200);
    const names = (list.json.items as { metadata: { name: string } }[]).map((d) => d.metadata.name);
    for (const n of ['coredns-v1-12-0', 'fluent-bit-v3-1-9', 'fluent-bit-v3-2-4', 'demo-v1-0-0']) assert.ok(names.includes(n), n);
    const changed = (await api.req('platform', 'GET', `${BASE}/addondefinitions/demo-v1-0-0`)).json;
    changed.spec.version = '1.0.1';
    const r = await api.req('platform', 'PUT', `${BASE}/addondefinitions/demo-v1-0-0`, changed);
    assert.equal(r.status, 422);
    assert.ok((r.json.causes as { field: string }[]).some((c) => c.field === 'spec.version'));
  });
});

describe('Addon', () => {
  it('bad values get a 422 naming the field; unknown add-ons and versions name what exists', async () => {
    const bad = await api.req('member', 'POST', `${BASE}/projects/alpha/addons`, addonBody('c1-coredns', { cluster: 'c1', addon: 'coredns', version: '1.12.0', values: { replicas: 0, colour: 'red' } }));
    assert.equal(bad.status, 422);
    const fields = Object.fromEntries((bad.json.causes as { field: string; message: string }[]).map((c) => [c.field, c.message]));
    assert.match(fields['spec.values.replicas']!, /must be >= 1/);
    assert.match(fields['spec.values.colour']!, /unknown field/);
    assert.ok(bad.json.field in fields, 'the first offending field is repeated at the top');

    const version = await api.req('member', 'POST', `${BASE}/projects/alpha/addons`, addonBody('c1-fb', { cluster: 'c1', addon: 'fluent-bit', version: '9.9.9' }));
    assert.equal(version.json.field, 'spec.version');
    assert.match(version.json.message, /available: 3\.2\.4, 3\.1\.9/);
    const unknown = await api.req('member', 'POST', `${BASE}/projects/alpha/addons`, addonBody('c1-x', { cluster: 'c1', addon: 'nope', version: '1.0.0' }));
    assert.equal(unknown.json.field, 'spec.addon');
  });

  it('members enable, change and disable add-ons; viewers only read; cluster and add-on are immutable', async () => {
    const body = addonBody('c1-coredns', { cluster: 'c1', addon: 'coredns', version: '1.12.0', values: { replicas: 3 } });
    assert.equal((await api.req('viewer', 'POST', `${BASE}/projects/alpha/addons`, body)).status, 403);
    const created = await api.req('member', 'POST', `${BASE}/projects/alpha/addons`, body);
    assert.equal(created.status, 201, JSON.stringify(created.json));
    const moved = { ...created.json, spec: { ...created.json.spec, cluster: 'c2' } };
    const r = await api.req('member', 'PUT', `${BASE}/projects/alpha/addons/c1-coredns`, moved);
    assert.equal(r.status, 422);
    assert.equal(r.json.field, 'spec.cluster');
    const patched = await api.app.inject({
      method: 'PATCH',
      url: `${BASE}/projects/alpha/addons/c1-coredns`,
      headers: { authorization: `Bearer ${api.tokens.member}`, 'content-type': 'application/merge-patch+json' },
      payload: JSON.stringify({ spec: { values: { replicas: 11 } } }),
    });
    assert.equal(patched.statusCode, 422);
    assert.equal(patched.json().field, 'spec.values.replicas');
    assert.equal((await api.req('member', 'DELETE', `${BASE}/projects/alpha/addons/c1-coredns`)).status, 200);
  });
});

describe('AddonPolicy', () => {
  it('is created from the catalog with DNS in the default set; one object; defaults must exist and their values fit', async () => {
    const p = await api.req('viewer', 'GET', `${BASE}/addonpolicies/default`);
    assert.equal(p.status, 200);
    assert.ok((p.json.spec.defaults as { addon: string }[]).some((d) => d.addon === 'coredns'));
    const other = await api.req('platform', 'POST', `${BASE}/addonpolicies`, { apiVersion: API_VERSION, kind: 'AddonPolicy', metadata: { name: 'mine' }, spec: { defaults: [] } });
    assert.equal(other.json.field, 'metadata.name');
    const next = { ...p.json, spec: { defaults: [{ addon: 'coredns', values: { replicas: 'two' } }, { addon: 'nope' }, { addon: 'fluent-bit', version: '0.1.0' }], resyncSeconds: 5 } };
    const r = await api.req('platform', 'PUT', `${BASE}/addonpolicies/default`, next);
    assert.equal(r.status, 422);
    const fields = (r.json.causes as { field: string }[]).map((c) => c.field).sort();
    assert.deepEqual(fields, ['spec.defaults[0].values.replicas', 'spec.defaults[1].addon', 'spec.defaults[2].version']);
    assert.equal((await api.req('member', 'PUT', `${BASE}/addonpolicies/default`, p.json)).status, 403);
  });
});

it('the OpenAPI document describes the add-on kinds', async () => {
  const doc = (await api.app.inject({ method: 'GET', url: '/openapi/v3' })).json();
  for (const kind of ['AddonDefinition', 'Addon', 'AddonPolicy']) assert.ok(doc.components.schemas[kind], kind);
  assert.ok(doc.paths[`${BASE}/projects/{project}/addons`]);
});
