// Alert and NotificationChannel through the REST API: who may do what, and validation.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { API_VERSION, type Resource } from '../api/meta.js';
import { ROLES, startTestApi, type TestApi } from '../../test/support/api.js';

const BASE = '/api/v1alpha1';
let api: TestApi;

before(async () => {
  api = await startTestApi();
});
after(async () => {
  await api?.close();
});

function req(user: string, method: string, url: string, payload?: unknown) {
  const headers: Record<string, string> = { authorization: `Bearer ${api.tokens[user]}` };
  if (payload !== undefined) headers['content-type'] = 'application/json';
  return api.app.inject({ method: method as 'GET', url, headers, payload: payload === undefined ? undefined : JSON.stringify(payload) });
}

function channelBody(name: string, spec: Record<string, unknown> = {}) {
  return { apiVersion: API_VERSION, kind: 'NotificationChannel', metadata: { name }, spec: { type: 'webhook', url: 'https://hooks.example.com/marina', ...spec } };
}

function alertBody(name: string, spec: Record<string, unknown> = {}) {
  return {
    apiVersion: API_VERSION,
    kind: 'Alert',
    metadata: { name },
    spec: { rule: 'NodeConditionUnhealthy', severity: 'warning', cluster: 'demo', labels: { node: 'w1' }, annotations: { summary: 'Node w1 NotReady' }, ...spec },
  };
}

describe('alerts through the API', () => {
  before(async () => {
    await api.store.create({ ...alertBody('seeded'), metadata: { name: 'seeded', project: 'alpha' }, status: { state: 'firing', startsAt: '2030-01-01T00:00:00Z' } } as Resource);
  });

  for (const role of ROLES) {
    it(`${role} reads alerts but may not create, change or delete them`, async () => {
      assert.equal((await req(role, 'GET', `${BASE}/projects/alpha/alerts`)).json().items.length, 1);
      assert.equal((await req(role, 'GET', `${BASE}/projects/alpha/alerts/seeded`)).statusCode, 200);
      assert.equal((await req(role, 'POST', `${BASE}/projects/alpha/alerts`, alertBody(`by-${role}`))).statusCode, 403);
      const current = (await req(role, 'GET', `${BASE}/projects/alpha/alerts/seeded`)).json();
      current.spec.severity = 'info';
      assert.equal((await req(role, 'PUT', `${BASE}/projects/alpha/alerts/seeded`, current)).statusCode, 403);
      assert.equal((await req(role, 'DELETE', `${BASE}/projects/alpha/alerts/seeded`)).statusCode, 403);
    });
  }

  it('is invisible to other projects and writable by platform admins', async () => {
    assert.equal((await req('outsider', 'GET', `${BASE}/projects/alpha/alerts/seeded`)).statusCode, 404);
    assert.equal((await req('outsider', 'GET', `${BASE}/alerts`)).json().items.length, 0);
    const res = await req('platform', 'POST', `${BASE}/projects/alpha/alerts`, alertBody('by-platform'));
    assert.equal(res.statusCode, 201, res.body);
    assert.equal((await req('platform', 'DELETE', `${BASE}/projects/alpha/alerts/by-platform`)).statusCode, 200);
  });

  const invalid: [string, Record<string, unknown>, string][] = [
    ['a lower-case rule', { rule: 'nodeDown' }, 'spec.rule'],
    ['an unknown severity', { severity: 'fatal' }, 'spec.severity'],
    ['a label that is no Prometheus label name', { labels: { 'node-name': 'w1' } }, 'spec.labels["node-name"]'],
    ['a label Marina sets itself', { labels: { alertname: 'x' } }, 'spec.labels.alertname'],
    ['a missing summary', { annotations: {} }, 'spec.annotations.summary'],
    ['an unknown annotation', { annotations: { summary: 's', runbook: 'x' } }, 'spec.annotations.runbook'],
  ];
  for (const [what, spec, field] of invalid) {
    it(`${what} → 422 naming ${field}`, async () => {
      const res = await req('platform', 'POST', `${BASE}/projects/alpha/alerts`, alertBody('bad', spec));
      assert.equal(res.statusCode, 422, res.body);
      assert.equal(res.json().field, field, res.body);
    });
  }
});

describe('notification channels through the API', () => {
  const allowedToWrite = new Set(['admin']);
  const allowedToRead = new Set(['member', 'operator', 'admin']);
  for (const role of ROLES) {
    it(`${role} ${allowedToWrite.has(role) ? 'may' : 'may not'} create channels and ${allowedToRead.has(role) ? 'may' : 'may not'} read them`, async () => {
      const res = await req(role, 'POST', `${BASE}/projects/alpha/notificationchannels`, channelBody(`ch-${role}`));
      assert.equal(res.statusCode, allowedToWrite.has(role) ? 201 : 403, res.body);
      const list = await req(role, 'GET', `${BASE}/projects/alpha/notificationchannels`);
      assert.equal(list.statusCode, allowedToRead.has(role) ? 200 : 403, list.body);
    });
  }

  it('keeps the URL encrypted at rest and answers it to readers', async () => {
    await req('admin', 'POST', `${BASE}/projects/alpha/notificationchannels`, channelBody('secret-url', { type: 'slack', url: 'https://hooks.slack.com/services/T000/B000/XXXXSECRET' }));
    const got = (await req('member', 'GET', `${BASE}/projects/alpha/notificationchannels/secret-url`)).json();
    assert.equal(got.spec.url, 'https://hooks.slack.com/services/T000/B000/XXXXSECRET');
  });

  it('blocks deleting a project that still has channels', async () => {
    const res = await req('outsider', 'POST', `${BASE}/projects/beta/notificationchannels`, channelBody('keep'));
    assert.equal(res.statusCode, 201, res.body);
    const del = await req('outsider', 'DELETE', `${BASE}/projects/beta`);
    assert.equal(del.statusCode, 409, del.body);
    assert.match(del.json().message, /notification channels/);
  });

  const invalid: [string, Record<string, unknown>, string][] = [
    ['an unknown type', { type: 'email' }, 'spec.type'],
    ['a relative URL', { url: '/hook' }, 'spec.url'],
    ['a non-http URL', { url: 'ftp://example.com/hook' }, 'spec.url'],
    ['an empty URL', { url: '' }, 'spec.url'],
    ['a malformed rule filter', { rules: ['not a rule'] }, 'spec.rules[0]'],
    ['an empty rule filter', { rules: [] }, 'spec.rules'],
    ['an unknown minimum severity', { minSeverity: 'urgent' }, 'spec.minSeverity'],
    ['sendResolved that is no boolean', { sendResolved: 'yes' }, 'spec.sendResolved'],
    ['an unknown field', { headers: { a: 'b' } }, 'spec.headers'],
  ];
  for (const [what, spec, field] of invalid) {
    it(`${what} → 422 naming ${field}`, async () => {
      const before = await api.store.currentRevision();
      const res = await req('admin', 'POST', `${BASE}/projects/alpha/notificationchannels`, channelBody('bad', spec));
      assert.equal(res.statusCode, 422, res.body);
      assert.equal(res.json().field, field, res.body);
      assert.equal(await api.store.currentRevision(), before);
    });
  }

  it('validates updates too', async () => {
    const current = (await req('admin', 'GET', `${BASE}/projects/alpha/notificationchannels/ch-admin`)).json();
    current.spec.url = 'mailto:ops@example.com';
    const res = await req('admin', 'PUT', `${BASE}/projects/alpha/notificationchannels/ch-admin`, current);
    assert.equal(res.statusCode, 422);
    assert.equal(res.json().field, 'spec.url');
  });

  it('appears in the OpenAPI document', async () => {
    const doc = (await api.app.inject({ url: '/openapi/v3' })).json();
    assert.ok(doc.paths[`${BASE}/projects/{project}/notificationchannels`].post);
    assert.ok(doc.paths[`${BASE}/projects/{project}/alerts/{name}`].get);
    assert.deepEqual(doc.components.schemas.NotificationChannel.properties.spec.properties.type.anyOf.map((s: { enum: string[] }) => s.enum[0]), ['webhook', 'slack']);
  });
});
