import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { API_VERSION, type Resource } from '../api/meta.js';
import { seriesKey } from '../health/shared.js';
import type { HealthReport } from '../health/types.js';
import { openSqliteStore } from '../store/sqlite.js';
import { ROLES, clusterBody, startTestApi, type TestApi } from '../../test/support/api.js';

const BASE = '/api/v1alpha1';
let api: TestApi;

before(async () => {
  api = await startTestApi({ bodyLimit: 64 * 1024 });
});
after(async () => {
  await api?.close();
});

function req(user: string | undefined, method: string, url: string, payload?: unknown, contentType = 'application/json') {
  const headers: Record<string, string> = {};
  if (user) headers.authorization = `Bearer ${api.tokens[user]}`;
  if (payload !== undefined) headers['content-type'] = contentType;
  return api.app.inject({
    method: method as 'GET',
    url,
    headers,
    payload: payload === undefined ? undefined : typeof payload === 'string' ? payload : JSON.stringify(payload),
  });
}

describe('authentication', () => {
  it('rejects a missing token with 401 in the Status shape', async () => {
    const res = await req(undefined, 'GET', `${BASE}/projects`);
    assert.equal(res.statusCode, 401);
    assert.equal(res.json().kind, 'Status');
    assert.equal(res.json().reason, 'Unauthorized');
  });
  it('rejects an unknown token', async () => {
    const res = await api.app.inject({ method: 'GET', url: `${BASE}/projects`, headers: { authorization: 'Bearer mrn_nope' } });
    assert.equal(res.statusCode, 401);
  });
  it('answers whoami with the roles', async () => {
    const res = await req('operator', 'GET', `${BASE}/whoami`);
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json().projects, [{ name: 'alpha', role: 'operator' }]);
  });
  it('leaves /healthz and /openapi/v3 open', async () => {
    assert.equal((await api.app.inject({ url: '/healthz' })).statusCode, 200);
    const doc = (await api.app.inject({ url: '/openapi/v3' })).json();
    assert.equal(doc.openapi, '3.1.0');
    assert.ok(doc.paths[`${BASE}/projects/{project}/clusters`].post);
    assert.equal(doc.components.schemas.Cluster.properties.spec.properties.nodePools.minItems, 1);
  });
});

describe('authorization matrix', () => {
  // Expected outcome per role for each (verb, kind) in the user's own project.
  const expectations: { verb: string; kind: string; allowed: string[] }[] = [
    { verb: 'list', kind: 'clusters', allowed: ['viewer', 'member', 'operator', 'admin'] },
    { verb: 'create', kind: 'clusters', allowed: ['member', 'operator', 'admin'] },
    { verb: 'list', kind: 'secrets', allowed: ['member', 'operator', 'admin'] },
    { verb: 'create', kind: 'secrets', allowed: ['member', 'operator', 'admin'] },
    { verb: 'delete', kind: 'machines', allowed: ['operator', 'admin'] },
    { verb: 'update', kind: 'projects', allowed: ['admin'] },
  ];
  let n = 0;
  async function attempt(user: string, verb: string, kind: string, project: string) {
    const name = `obj-${++n}`;
    const base = `${BASE}/projects/${project}/${kind}`;
    switch (verb) {
      case 'list':
        return req(user, 'GET', base);
      case 'create':
        if (kind === 'clusters') return req(user, 'POST', base, clusterBody(name));
        return req(user, 'POST', base, { apiVersion: API_VERSION, kind: 'Secret', metadata: { name }, spec: { type: 'opaque', data: { a: 'b' } } });
      case 'delete': {
        // Seed as the platform admin, then try to delete as the user.
        await api.store.create({
          apiVersion: API_VERSION,
          kind: 'Machine',
          metadata: { name, project },
          spec: { cluster: 'c', pool: 'p', roles: ['worker'], provider: 'local', kubernetesVersion: 'v1.36.3' },
        });
        return req(user, 'DELETE', `${base}/${name}`);
      }
      case 'update': {
        const current = (await req('platform', 'GET', `${BASE}/projects/${project}`)).json();
        current.spec.displayName = `changed by ${user}`;
        return req(user, 'PUT', `${BASE}/projects/${project}`, current);
      }
    }
    throw new Error(verb);
  }

  for (const { verb, kind, allowed } of expectations) {
    for (const role of ROLES) {
      const ok = allowed.includes(role);
      it(`${role} ${ok ? 'may' : 'may not'} ${verb} ${kind} in its own project`, async () => {
        const res = await attempt(role, verb, kind, 'alpha');
        if (ok) assert.ok(res.statusCode < 300, `expected success, got ${res.statusCode} ${res.body}`);
        else {
          assert.equal(res.statusCode, 403, res.body);
          assert.equal(res.json().reason, 'Forbidden');
        }
      });
    }
    it(`nobody outside sees ${kind} of another project (${verb} → 404)`, async () => {
      const res = await attempt('outsider', verb, kind, 'alpha');
      assert.equal(res.statusCode, 404, res.body);
    });
    it(`the platform admin may ${verb} ${kind} anywhere`, async () => {
      const res = await attempt('platform', verb, kind, 'beta');
      assert.ok(res.statusCode < 300, res.body);
    });
  }

  it('lists across projects only what the caller may see', async () => {
    await req('outsider', 'POST', `${BASE}/projects/beta/clusters`, clusterBody('beta-only'));
    const mine = (await req('viewer', 'GET', `${BASE}/clusters`)).json();
    assert.ok(mine.items.length > 0);
    assert.ok(mine.items.every((c: { metadata: { project: string } }) => c.metadata.project === 'alpha'));
    const projects = (await req('viewer', 'GET', `${BASE}/projects`)).json();
    assert.deepEqual(projects.items.map((p: { metadata: { name: string } }) => p.metadata.name), ['alpha']);
  });

  it('hides users from non-admins but lets everyone read themselves', async () => {
    assert.equal((await req('member', 'GET', `${BASE}/users/member`)).statusCode, 200);
    assert.equal((await req('member', 'GET', `${BASE}/users/admin`)).statusCode, 404);
    assert.equal((await req('member', 'POST', `${BASE}/users`, { apiVersion: API_VERSION, kind: 'User', metadata: { name: 'x' }, spec: {} })).statusCode, 403);
  });

  it('writes status only for platform admins', async () => {
    await req('member', 'POST', `${BASE}/projects/alpha/clusters`, clusterBody('status-target'));
    const current = (await req('member', 'GET', `${BASE}/projects/alpha/clusters/status-target`)).json();
    const body = { ...current, status: { phase: 'Ready' } };
    assert.equal((await req('admin', 'PUT', `${BASE}/projects/alpha/clusters/status-target/status`, body)).statusCode, 403);
    const res = await req('platform', 'PUT', `${BASE}/projects/alpha/clusters/status-target/status`, body);
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.json().status.phase, 'Ready');
  });
});

describe('bad input never changes the store', () => {
  const cases: { name: string; body: string | object; contentType?: string; code: number; field?: string }[] = [
    { name: 'malformed JSON', body: '{"apiVersion": ', code: 400 },
    { name: 'malformed YAML', body: 'kind: [unclosed', contentType: 'application/yaml', code: 400 },
    { name: 'a JSON array', body: '[1,2]', code: 400 },
    { name: 'wrong apiVersion', body: { ...clusterBody('c1'), apiVersion: 'v1' }, code: 422, field: 'apiVersion' },
    { name: 'wrong kind', body: { ...clusterBody('c1'), kind: 'Banana' }, code: 422, field: 'kind' },
    { name: 'invalid name', body: clusterBody('Not_A_Name'), code: 422, field: 'metadata.name' },
    { name: 'unknown field', body: { ...clusterBody('c1'), spec: { ...(clusterBody('c1').spec as object), colour: 'blue' } }, code: 422, field: 'spec.colour' },
    { name: 'even etcd count', body: clusterBody('c1', { nodePools: [{ name: 'e', roles: ['etcd', 'controlplane'], replicas: 2 }] }), code: 422, field: 'spec.nodePools[0].replicas' },
    { name: 'no control plane', body: clusterBody('c1', { nodePools: [{ name: 'e', roles: ['etcd'], replicas: 1 }] }), code: 422, field: 'spec.nodePools' },
    { name: 'unknown version', body: clusterBody('c1', { kubernetesVersion: 'v1.99.0' }), code: 422, field: 'spec.kubernetesVersion' },
    { name: 'malformed CIDR', body: clusterBody('c1', { network: { podCIDR: '10.0.0.0/33' } }), code: 422, field: 'spec.network.podCIDR' },
    { name: 'overlapping CIDRs', body: clusterBody('c1', { network: { podCIDR: '10.0.0.0/8', serviceCIDR: '10.96.0.0/16' } }), code: 422, field: 'spec.network.serviceCIDR' },
    { name: 'negative replicas', body: clusterBody('c1', { nodePools: [{ name: 'a', roles: ['etcd', 'controlplane', 'worker'], replicas: -1 }] }), code: 422, field: 'spec.nodePools[0].replicas' },
    { name: 'negative unhealthy timeout', body: clusterBody('c1', { nodePools: [{ name: 'a', roles: ['etcd', 'controlplane', 'worker'], replicas: 1, healing: { unhealthyTimeoutSeconds: -5 } }] }), code: 422, field: 'spec.nodePools[0].healing.unhealthyTimeoutSeconds' },
    { name: 'guard over 100%', body: clusterBody('c1', { nodePools: [{ name: 'e', roles: ['etcd', 'controlplane'], replicas: 1 }, { name: 'w', roles: ['worker'], replicas: 3, healing: { maxInFlight: '150%' } }] }), code: 422, field: 'spec.nodePools[1].healing.maxInFlight' },
    { name: 'guard 0%', body: clusterBody('c1', { nodePools: [{ name: 'e', roles: ['etcd', 'controlplane'], replicas: 1 }, { name: 'w', roles: ['worker'], replicas: 3, healing: { maxInFlight: '0%' } }] }), code: 422, field: 'spec.nodePools[1].healing.maxInFlight' },
    { name: 'guard of 2 on etcd', body: clusterBody('c1', { nodePools: [{ name: 'e', roles: ['etcd', 'controlplane'], replicas: 3, healing: { maxInFlight: 2 } }] }), code: 422, field: 'spec.nodePools[0].healing.maxInFlight' },
    { name: 'timeout shorter than the check interval', body: clusterBody('c1', { health: { intervalSeconds: 30 }, nodePools: [{ name: 'e', roles: ['etcd', 'controlplane', 'worker'], replicas: 1, healing: { unhealthyTimeoutSeconds: 10 } }] }), code: 422, field: 'spec.nodePools[0].healing.unhealthyTimeoutSeconds' },
    { name: 'startup timeout shorter than the check interval', body: clusterBody('c1', { health: { intervalSeconds: 30 }, nodePools: [{ name: 'e', roles: ['etcd', 'controlplane', 'worker'], replicas: 1, healing: { startupTimeoutSeconds: 5 } }] }), code: 422, field: 'spec.nodePools[0].healing.startupTimeoutSeconds' },
    { name: 'zero check interval', body: clusterBody('c1', { health: { intervalSeconds: 0 } }), code: 422, field: 'spec.health.intervalSeconds' },
    { name: 'oversized body', body: JSON.stringify({ ...clusterBody('c1'), metadata: { name: 'c1', annotations: { big: 'x'.repeat(70 * 1024) } } }), code: 413 },
    { name: 'project mismatch', body: { ...clusterBody('c1'), metadata: { name: 'c1', project: 'beta' } }, code: 422, field: 'metadata.project' },
  ];
  for (const c of cases) {
    it(`${c.name} → ${c.code}${c.field ? ` naming ${c.field}` : ''}`, async () => {
      const before = await api.store.currentRevision();
      const res = await req('member', 'POST', `${BASE}/projects/alpha/clusters`, c.body, c.contentType);
      assert.equal(res.statusCode, c.code, res.body);
      const status = res.json();
      assert.equal(status.kind, 'Status');
      assert.equal(status.code, c.code);
      if (c.field) assert.equal(status.field, c.field, res.body);
      assert.equal(await api.store.currentRevision(), before, 'store changed');
    });
  }

  it('accepts YAML bodies', async () => {
    const yaml = `apiVersion: ${API_VERSION}\nkind: Secret\nmetadata:\n  name: from-yaml\nspec:\n  type: opaque\n  data:\n    k: v\n`;
    const res = await req('member', 'POST', `${BASE}/projects/alpha/secrets`, yaml, 'application/yaml');
    assert.equal(res.statusCode, 201, res.body);
  });

  it('answers a stale resourceVersion with 409 and keeps the object', async () => {
    const created = (await req('member', 'POST', `${BASE}/projects/alpha/clusters`, clusterBody('stale'))).json();
    const fresh = structuredClone(created);
    fresh.metadata.labels = { a: 'b' };
    assert.equal((await req('member', 'PUT', `${BASE}/projects/alpha/clusters/stale`, fresh)).statusCode, 200);
    created.metadata.labels = { a: 'c' };
    const res = await req('member', 'PUT', `${BASE}/projects/alpha/clusters/stale`, created);
    assert.equal(res.statusCode, 409);
    assert.equal(res.json().field, 'metadata.resourceVersion');
    assert.deepEqual((await req('member', 'GET', `${BASE}/projects/alpha/clusters/stale`)).json().metadata.labels, { a: 'b' });
  });

  it('refuses an existing name with 409', async () => {
    await req('member', 'POST', `${BASE}/projects/alpha/clusters`, clusterBody('dup'));
    const res = await req('member', 'POST', `${BASE}/projects/alpha/clusters`, clusterBody('dup'));
    assert.equal(res.statusCode, 409);
    assert.equal(res.json().reason, 'AlreadyExists');
  });

  it('unknown resource types and projects are 404', async () => {
    assert.equal((await req('platform', 'GET', `${BASE}/projects/alpha/bananas`)).statusCode, 404);
    assert.equal((await req('platform', 'POST', `${BASE}/projects/nope/clusters`, clusterBody('x'))).statusCode, 404);
  });
});

describe('updates, patches and deletes', () => {
  it('bumps generation on spec changes only', async () => {
    const c = (await req('member', 'POST', `${BASE}/projects/alpha/clusters`, clusterBody('gen'))).json();
    assert.equal(c.metadata.generation, 1);
    const labelled = (await req('member', 'PATCH', `${BASE}/projects/alpha/clusters/gen`, { metadata: { labels: { x: 'y' } } }, 'application/merge-patch+json')).json();
    assert.equal(labelled.metadata.generation, 1);
    labelled.spec.nodePools[2].replicas = 4;
    const scaled = (await req('member', 'PUT', `${BASE}/projects/alpha/clusters/gen`, labelled)).json();
    assert.equal(scaled.metadata.generation, 2);
  });

  it('answers 202 while finalizers are pending and refuses spec changes then', async () => {
    const c = (await req('member', 'POST', `${BASE}/projects/alpha/clusters`, { ...clusterBody('fin'), metadata: { name: 'fin', finalizers: ['test/hold'] } })).json();
    const del = await req('member', 'DELETE', `${BASE}/projects/alpha/clusters/fin`);
    assert.equal(del.statusCode, 202);
    assert.ok(del.json().metadata.deletionTimestamp);
    const current = (await req('member', 'GET', `${BASE}/projects/alpha/clusters/fin`)).json();
    current.spec.nodePools[2].replicas = 5;
    const res = await req('member', 'PUT', `${BASE}/projects/alpha/clusters/fin`, current);
    assert.equal(res.statusCode, 422);
    assert.equal(res.json().field, 'spec');
    assert.equal(c.metadata.name, 'fin');
    const release = await req('member', 'PATCH', `${BASE}/projects/alpha/clusters/fin`, { metadata: { finalizers: null } }, 'application/merge-patch+json');
    assert.equal(release.statusCode, 200, release.body);
    assert.equal((await req('member', 'GET', `${BASE}/projects/alpha/clusters/fin`)).statusCode, 404);
  });

  it('records every mutation in the audit log', async () => {
    await req('member', 'POST', `${BASE}/projects/alpha/clusters`, clusterBody('audited'));
    await req('member', 'DELETE', `${BASE}/projects/alpha/clusters/audited`);
    const log = (await req('admin', 'GET', `${BASE}/audit?project=alpha`)).json();
    const mine = log.items.filter((e: { name: string }) => e.name === 'audited');
    assert.deepEqual(mine.map((e: { verb: string; user: string; code: number }) => [e.verb, e.user, e.code]), [
      ['delete', 'member', 200],
      ['create', 'member', 201],
    ]);
    assert.equal((await req('member', 'GET', `${BASE}/audit?project=alpha`)).statusCode, 403);
    assert.equal((await req('outsider', 'GET', `${BASE}/audit?project=alpha`)).statusCode, 404);
  });
});

describe('watch', () => {
  it('answers 410 Gone for a resourceVersion older than the retained history', async () => {
    const small = await startTestApi({ historyLimit: 5 });
    try {
      for (let i = 0; i < 10; i++) {
        await small.store.create({ apiVersion: API_VERSION, kind: 'Secret', metadata: { name: `s${i}`, project: 'alpha' }, spec: { type: 'opaque', data: {} } });
      }
      const res = await small.app.inject({
        url: `${BASE}/projects/alpha/secrets?watch=true&resourceVersion=1`,
        headers: { authorization: `Bearer ${small.tokens.member}` },
      });
      assert.equal(res.statusCode, 410);
      assert.equal(res.json().reason, 'Gone');
    } finally {
      await small.close();
    }
  });

  it('streams changes after a resourceVersion as NDJSON', async () => {
    const address = await api.app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const list = (await req('member', 'GET', `${BASE}/projects/alpha/secrets`)).json();
      const controller = new AbortController();
      const res = await fetch(`${address}${BASE}/projects/alpha/secrets?watch=true&resourceVersion=${list.metadata.resourceVersion}`, {
        headers: { authorization: `Bearer ${api.tokens.member}` },
        signal: controller.signal,
      });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), 'application/x-ndjson');
      await req('member', 'POST', `${BASE}/projects/alpha/secrets`, { apiVersion: API_VERSION, kind: 'Secret', metadata: { name: 'watched' }, spec: { type: 'opaque', data: { k: 'v' } } });
      await req('member', 'DELETE', `${BASE}/projects/alpha/secrets/watched`);
      const reader = res.body!.getReader();
      let text = '';
      while (text.split('\n').filter(Boolean).length < 2) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
      controller.abort();
      const events = text.split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((e) => e.type !== 'BOOKMARK');
      assert.deepEqual(events.map((e) => [e.type, e.object.metadata.name]), [
        ['ADDED', 'watched'],
        ['DELETED', 'watched'],
      ]);
      assert.equal(events[0].object.spec.data.k, 'v');
    } finally {
      // The listener closes with the app in after().
    }
  });
});

describe('cluster health', () => {
  it('answers the newest report and the samples after `since`, to viewers; 404 for unknown clusters, 400 for a bad since', async () => {
    const reports = new Map<string, HealthReport>();
    const series = openSqliteStore({ path: ':memory:', encryptionKey: randomBytes(32) }).series;
    const api = await startTestApi({ health: { latest: (p, c) => reports.get(`${p}/${c}`), series } });
    try {
      const get = (user: string, path: string) =>
        api.app.inject({ method: 'GET', url: `${BASE}/projects/alpha/clusters/${path}`, headers: { authorization: `Bearer ${api.tokens[user]}` } });
      assert.equal((await api.app.inject({ method: 'POST', url: `${BASE}/projects/alpha/clusters`, headers: { authorization: `Bearer ${api.tokens.member}` }, payload: clusterBody('h') })).statusCode, 201);
      let res = await get('viewer', 'h/health');
      assert.equal(res.statusCode, 200, res.body);
      assert.deepEqual(res.json(), { kind: 'ClusterHealth', project: 'alpha', cluster: 'h', latest: null, samples: [] });

      const t = (s: number) => new Date(Date.now() - s * 1000).toISOString();
      reports.set('alpha/h', { project: 'alpha', cluster: 'h', at: t(0), durationMs: 5, healthy: true, checks: [{ component: 'endpoint', ok: true, message: 'ok' }], nodes: [] });
      for (const s of [7200, 60, 30]) {
        await series.append(seriesKey('alpha', 'h'), t(s), { t: t(s), healthy: true, failedChecks: 0, nodesReady: 1, nodesTotal: 1 }, { retainSince: t(86400), maxPoints: 100 });
      }
      res = await get('viewer', 'h/health');
      assert.equal(res.json().latest.checks[0].component, 'endpoint');
      assert.equal(res.json().samples.length, 3);
      res = await get('viewer', `h/health?since=${encodeURIComponent(t(120))}`);
      assert.equal(res.json().samples.length, 2);

      res = await get('viewer', 'h/health?since=yesterday');
      assert.equal(res.statusCode, 400);
      assert.equal(res.json().field, 'since');
      assert.equal((await get('viewer', 'nope/health')).statusCode, 404);
      const outsider = await api.app.inject({ method: 'GET', url: `${BASE}/projects/alpha/clusters/h/health`, headers: { authorization: `Bearer ${api.tokens.outsider}` } });
      assert.equal(outsider.statusCode, 404, "another project's cluster is not acknowledged");
    } finally {
      await api.close();
    }
  });
});

describe('kubernetes versions', () => {
  it('lists what spec.kubernetesVersion accepts and the default, to any signed-in user', async () => {
    const res = await api.app.inject({ method: 'GET', url: `${BASE}/kubernetesversions`, headers: { authorization: `Bearer ${api.tokens.outsider}` } });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), { kind: 'KubernetesVersionList', default: 'v1.36.3', versions: ['v1.36.3', 'v1.35.4'] });
    assert.equal((await api.app.inject({ method: 'GET', url: `${BASE}/kubernetesversions` })).statusCode, 401);
  });
});

describe('validation in one round', () => {
  it('a body with a schema error and a cross-field error gets both causes in one 422', async () => {
    const body = clusterBody('both', { network: { podCIDR: '10.0.0.0/33' }, nodePools: [{ name: 'a', roles: ['etcd', 'controlplane', 'worker'], replicas: -1 }] });
    const res = await api.app.inject({ method: 'POST', url: `${BASE}/projects/alpha/clusters`, headers: { authorization: `Bearer ${api.tokens.member}` }, payload: body });
    assert.equal(res.statusCode, 422);
    const fields = (res.json().causes as { field: string }[]).map((c) => c.field);
    assert.ok(fields.includes('spec.nodePools[0].replicas'), fields.join());
    assert.ok(fields.includes('spec.network.podCIDR'), fields.join());
    assert.equal(res.json().field, 'spec.nodePools[0].replicas', 'the first cause names the schema error');
  });
});

describe('query parameters are held to their schema', () => {
  // Each of these was answered as if the parameter were absent (a list, a whole list, ...).
  const refused: [string, string][] = [
    ['watch=null', 'watch'],
    ['watch=1', 'watch'],
    ['limit=true', 'limit'],
    ['limit=-1', 'limit'],
    ['limit=', 'limit'],
    ['limit=1&limit=2', 'limit'],
    ['limit=10001', 'limit'],
    ['watch=true&timeoutSeconds=0', 'timeoutSeconds'],
  ];
  for (const [query, field] of refused) {
    it(`?${query} → 400 naming ${field}`, async () => {
      const res = await req('viewer', 'GET', `${BASE}/projects/alpha/clusters?${query}`);
      assert.equal(res.statusCode, 400, res.body);
      assert.equal(res.json().kind, 'Status');
      assert.equal(res.json().field, field, res.body);
    });
  }

  it('a since without a time zone is refused, as RFC 3339 wants one', async () => {
    await req('member', 'POST', `${BASE}/projects/alpha/clusters`, clusterBody('since-target'));
    const res = await req('viewer', 'GET', `${BASE}/projects/alpha/clusters/since-target/health?since=2026-01-02T15:04:05`);
    assert.equal(res.statusCode, 400, res.body);
    assert.equal(res.json().field, 'since');
  });

  it('a since with a lower-case t and z is RFC 3339 too', async () => {
    await req('member', 'POST', `${BASE}/projects/alpha/clusters`, clusterBody('since-lower'));
    const res = await req('viewer', 'GET', `${BASE}/projects/alpha/clusters/since-lower/health?since=2026-01-02t15:04:05z`);
    assert.equal(res.statusCode, 200, res.body);
  });

  it('the audit log limit is an integer', async () => {
    const res = await req('admin', 'GET', `${BASE}/audit?project=alpha&limit=many`);
    assert.equal(res.statusCode, 400);
    assert.equal(res.json().field, 'limit');
  });

  it('timeoutSeconds ends a watch', async () => {
    const res = await req('viewer', 'GET', `${BASE}/projects/alpha/clusters?watch=true&timeoutSeconds=1`);
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], 'application/x-ndjson');
  });
});

describe('tokens', () => {
  it('issuing needs a body: no body is a 400, not a token for the caller', async () => {
    const res = await api.app.inject({ method: 'POST', url: `${BASE}/tokens`, headers: { authorization: `Bearer ${api.tokens.member}` } });
    assert.equal(res.statusCode, 400, res.body);
    const array = await req('member', 'POST', `${BASE}/tokens`, [1]);
    assert.equal(array.statusCode, 400, array.body);
  });

  it('unknown fields and malformed times are 422 naming the field', async () => {
    const extra = await req('member', 'POST', `${BASE}/tokens`, { colour: 'blue' });
    assert.equal(extra.statusCode, 422, extra.body);
    assert.equal(extra.json().field, 'colour');
    const time = await req('member', 'POST', `${BASE}/tokens`, { expiresAt: 'tomorrow' });
    assert.equal(time.statusCode, 422);
    assert.equal(time.json().field, 'expiresAt');
  });

  it('issues for yourself, not for others; revoking answers a complete Status', async () => {
    assert.equal((await req('member', 'POST', `${BASE}/tokens`, { user: 'admin' })).statusCode, 403);
    const issued = await req('member', 'POST', `${BASE}/tokens`, { description: 'ci' });
    assert.equal(issued.statusCode, 201, issued.body);
    const mine = (await req('member', 'GET', `${BASE}/tokens`)).json().items as { id: string; user: string }[];
    assert.ok(mine.length > 0 && mine.every((t) => t.user === 'member'));
    assert.equal((await req('admin', 'DELETE', `${BASE}/tokens/${issued.json().id}`)).statusCode, 404, "another user's token is not acknowledged");
    const revoked = await req('member', 'DELETE', `${BASE}/tokens/${issued.json().id}`);
    assert.equal(revoked.statusCode, 200);
    assert.deepEqual(revoked.json(), { kind: 'Status', code: 200, reason: 'OK', message: 'revoked' });
  });
});

describe('misrouted resource paths say where to look', () => {
  it('a project kind without a project, and a global kind inside one, are 400s', async () => {
    const noProject = await req('platform', 'POST', `${BASE}/clusters`, clusterBody('x'));
    assert.equal(noProject.statusCode, 400);
    assert.match(noProject.json().message, /lives in a project/);
    const inProject = await req('platform', 'GET', `${BASE}/projects/alpha/users`);
    assert.equal(inProject.statusCode, 400);
    assert.match(inProject.json().message, /not a project resource/);
    assert.equal((await req(undefined, 'GET', `${BASE}/projects/alpha/bananas`)).statusCode, 401, 'authentication comes first');
  });
});

describe('the typed client speaks this API', () => {
  it('creates, reads, lists, patches and deletes; reads whoami, versions, health, tokens and the audit log', async () => {
    const member = api.client('member');
    const created = await member.create(clusterBody('via-client') as unknown as Resource, 'alpha');
    assert.equal(created.metadata.project, 'alpha');
    assert.equal((await member.get('Cluster', 'via-client', 'alpha')).metadata.uid, created.metadata.uid);
    const list = await member.listAll('Cluster', { project: 'alpha', limit: 2 });
    assert.ok(list.items.some((c) => c.metadata.name === 'via-client'));
    const patched = await member.patch('Cluster', 'via-client', 'alpha', { metadata: { labels: { via: 'client' } } });
    assert.deepEqual(patched.metadata.labels, { via: 'client' });
    await assert.rejects(member.kubeconfig('alpha', 'via-client'), (err: Error & { code?: number }) => err.code === 409);
    assert.deepEqual((await member.clusterHealth('alpha', 'via-client')).samples, []);
    assert.deepEqual((await member.whoami()).projects, [{ name: 'alpha', role: 'member' }]);
    assert.deepEqual((await member.kubernetesVersions()).versions, ['v1.36.3', 'v1.35.4']);
    const token = await member.createToken({ description: 'client' });
    assert.ok((await member.listTokens()).some((t) => t.id === token.id));
    await member.revokeToken(token.id);
    assert.equal((await member.delete('Cluster', 'via-client', 'alpha')).removed, true);
    assert.ok((await api.client('admin').audit({ project: 'alpha', limit: 5 })).some((e) => e.name === 'via-client'));
    await assert.rejects(api.client('outsider').get('Cluster', 'via-client', 'alpha'), (err: Error & { code?: number }) => err.code === 404);
  });
});
