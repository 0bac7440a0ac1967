// Join tokens through the API (create, list, revoke, who may) and the join protocol's token checks
// (expired, revoked, used, full, forged), on an in-memory store with the real import provider.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { API_VERSION } from '../api/meta.js';
import { ArtifactCatalog } from '../joins/artifacts.js';
import { JoinService } from '../joins/service.js';
import { TOKEN_PATTERN } from '../api/join-tokens.js';
import { ImportProvider } from '../providers/import/index.js';
import { clusterBody, startTestApi, type TestApi } from '../../test/support/api.js';

const BASE = '/api/v1alpha1/projects/alpha/clusters/c1/jointokens';
const PIN = `sha256:${'ab'.repeat(32)}`;
let api: TestApi;
let tls = true;
let dir = '';
let imports: ImportProvider;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'marina-join-routes-'));
  imports = new ImportProvider({ root: dir, reachableEndpoint: () => undefined });
  api = await startTestApi({
    joins: (store) => ({
      service: new JoinService(store, imports),
      imports,
      artifacts: new ArtifactCatalog(() => {
        throw new Error('no toolchain in this test');
      }),
      target: () => (tls ? { url: 'https://marina.test:7443', caPin: PIN, caPem: '-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n' } : undefined),
    }),
  });
  const cluster = clusterBody('c1', {
      nodePools: [
        { name: 'cp', roles: ['etcd', 'controlplane'], replicas: 1 },
        { name: 'workers', roles: ['worker'], replicas: 1 },
        { name: 'byo', roles: ['worker'], replicas: 2, provider: 'import' },
      ],
  });
  await api.store.create({ ...cluster, metadata: { name: 'c1', project: 'alpha' } } as never);
  // The pool object the Cluster controller would make.
  await api.store.create({
    apiVersion: API_VERSION,
    kind: 'NodePool',
    metadata: { name: 'c1-byo', project: 'alpha', labels: { 'marina.dev/cluster': 'c1', 'marina.dev/pool': 'byo' } },
    spec: { cluster: 'c1', roles: ['worker'], replicas: 2, kubernetesVersion: 'v1.36.3', provider: 'import' },
  });
});
after(async () => {
  await api?.close();
  rmSync(dir, { recursive: true, force: true });
});

function call(user: string | undefined, method: string, url: string, body?: unknown, bearer?: string) {
  const headers: Record<string, string> = {};
  if (user) headers.authorization = `Bearer ${api.tokens[user]}`;
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  return api.app.inject({ method: method as 'GET', url, headers, ...(body !== undefined ? { payload: JSON.stringify(body) } : {}) });
}

const joinWith = (token: string, hostname = 'gpu-1') => call(undefined, 'POST', '/join/v1/machines', { hostname, address: '10.1.2.3' }, token);

describe('join tokens API', () => {
  let first: { id: string; token: string; command: string };

  it('creates a token for an import pool: the answer carries the command with URL, token and CA pin', async () => {
    const res = await call('member', 'POST', BASE, { pool: 'byo', singleUse: true, ttlSeconds: 600 });
    assert.equal(res.statusCode, 201, res.body);
    first = res.json();
    assert.match(first.token, TOKEN_PATTERN);
    assert.equal(first.command, `marina agent join --url https://marina.test:7443 --token ${first.token} --ca-pin ${PIN}`);
    assert.equal(res.json().singleUse, true);
    assert.ok(Date.parse(res.json().expiresAt) - Date.now() <= 600_000);
  });

  it('stores only the hash, lists without the secret and audits by id', async () => {
    const secrets = await api.store.list('Secret', { project: 'alpha' });
    assert.equal(JSON.stringify(secrets.items).includes(first.token), false, 'the token is not stored');
    const list = await call('member', 'GET', BASE);
    assert.equal(list.statusCode, 200);
    assert.equal(list.body.includes(first.token.split('.')[1]!), false, 'the secret is not listed');
    assert.deepEqual(
      list.json().items.map((t: { id: string; state: string }) => [t.id, t.state]),
      [[first.id, 'active']],
    );
    const audit = await api.store.audit.list({ kind: 'JoinToken' });
    assert.deepEqual(audit.map((a) => a.name), [first.id]);
  });

  it('refuses viewers (403), pools that are not import pools (422 field pool), unknown fields (422)', async () => {
    assert.equal((await call('viewer', 'POST', BASE, { pool: 'byo' })).statusCode, 403);
    const notImport = await call('member', 'POST', BASE, { pool: 'workers' });
    assert.equal(notImport.statusCode, 422);
    assert.equal(notImport.json().field, 'pool');
    const unknown = await call('member', 'POST', BASE, { pool: 'byo', ttl: '1h' });
    assert.equal(unknown.statusCode, 422);
    assert.equal((await call('outsider', 'GET', BASE)).statusCode, 404);
  });

  it('refuses to create tokens while Marina serves plain HTTP (the pin would mean nothing)', async () => {
    tls = false;
    try {
      const res = await call('member', 'POST', BASE, { pool: 'byo' });
      assert.equal(res.statusCode, 409);
      assert.match(res.json().message, /--tls auto/);
    } finally {
      tls = true;
    }
  });
});

describe('join protocol: token checks', () => {
  const create = async (body: Record<string, unknown>) => {
    const res = await call('member', 'POST', BASE, { pool: 'byo', ...body });
    assert.equal(res.statusCode, 201, res.body);
    return res.json() as { id: string; token: string };
  };

  it('a valid token creates a Machine of provider import and hands out a credential', async () => {
    const t = await create({ singleUse: true, approval: true });
    const res = await joinWith(t.token);
    assert.equal(res.statusCode, 201, res.body);
    const joined = res.json();
    assert.match(joined.credential, /^mic_/);
    assert.equal(joined.approvalRequired, true);
    const m = (await api.store.get({ kind: 'Machine', project: 'alpha', name: joined.machine })) as { spec: Record<string, unknown>; metadata: { annotations: Record<string, string> } };
    assert.equal(m.spec.provider, 'import');
    assert.deepEqual(m.spec.runtime, { type: 'containerd' });
    assert.equal(m.metadata.annotations['marina.dev/approval'], 'required');
    assert.equal(m.metadata.annotations['marina.dev/hostname'], 'gpu-1');
    assert.equal(imports.authenticate(joined.credential)?.name, joined.machine);

    const again = await joinWith(t.token, 'gpu-2');
    assert.equal(again.statusCode, 401);
    assert.match(again.json().message, new RegExp(`join token ${t.id} was for a single use and is used already`));
  });

  it('refuses a revoked token, saying so', async () => {
    const t = await create({});
    assert.equal((await call('member', 'DELETE', `${BASE}/${t.id}`)).statusCode, 200);
    const res = await joinWith(t.token);
    assert.equal(res.statusCode, 401);
    assert.match(res.json().message, new RegExp(`join token ${t.id} was revoked at`));
  });

  it('refuses an expired token, saying so', async () => {
    const t = await create({ ttlSeconds: 1 });
    await new Promise((r) => setTimeout(r, 1100));
    const res = await joinWith(t.token);
    assert.equal(res.statusCode, 401);
    assert.match(res.json().message, new RegExp(`join token ${t.id} expired at .*marina cluster join-token create c1 --pool byo`));
  });

  it('refuses a forged secret and a malformed token without telling more', async () => {
    const t = await create({});
    const forged = await joinWith(`${t.id}.${'a'.repeat(16)}`);
    assert.equal(forged.statusCode, 401);
    assert.equal(forged.json().message, 'join token is not valid');
    assert.equal((await joinWith('nonsense')).statusCode, 401);
  });

  it('refuses a server when the pool is full', async () => {
    const t = await create({});
    assert.equal((await joinWith(t.token, 'gpu-3')).statusCode, 201); // the second of 2
    const full = await joinWith(t.token, 'gpu-4');
    assert.equal(full.statusCode, 409);
    assert.match(full.json().message, /pool byo of cluster c1 is full \(2\/2 servers\)/);
  });

  it('answers an unknown machine credential with 401', async () => {
    const res = await call(undefined, 'POST', '/join/v1/machine/sync', {}, 'mic_nope');
    assert.equal(res.statusCode, 401);
  });
});

describe('join protocol: declared credentials', () => {
  it('documents each route with its credential in the OpenAPI document', async () => {
    const doc = (await call(undefined, 'GET', '/openapi/v3')).json() as {
      paths: Record<string, Record<string, { security?: Record<string, string[]>[] }>>;
      components: { securitySchemes: Record<string, { type: string; scheme: string }> };
    };
    assert.deepEqual(Object.keys(doc.components.securitySchemes).sort(), ['bearer', 'joinToken', 'machineCredential']);
    assert.deepEqual(doc.paths['/join/v1/ca']?.get?.security, []);
    assert.deepEqual(doc.paths['/join/v1/machines']?.post?.security, [{ joinToken: [] }]);
    for (const [path, method] of [['/join/v1/machine/sync', 'post'], ['/join/v1/machine/left', 'post'], ['/join/v1/artifacts/{name}', 'get']] as const) {
      assert.deepEqual(doc.paths[path]?.[method]?.security, [{ machineCredential: [] }], path);
    }
  });

  it('answers a call without its credential, or with an API token instead, with 401', async () => {
    const missing = await call(undefined, 'POST', '/join/v1/machines', { hostname: 'x', address: '10.1.2.3' });
    assert.equal(missing.statusCode, 401);
    assert.match(missing.json().message, /missing bearer token \(joinToken\)/);
    assert.equal((await call('platform', 'POST', '/join/v1/machine/sync', {})).statusCode, 401, 'an API token is no machine credential');
    assert.equal((await call('platform', 'GET', '/join/v1/artifacts/kubelet')).statusCode, 401);
  });

  it('checks the body against its schema once the credential is good: 422 naming the field', async () => {
    const res = await call('member', 'POST', BASE, { pool: 'byo' });
    const { token } = res.json() as { token: string };
    const bad = await call(undefined, 'POST', '/join/v1/machines', { hostname: 'x', address: '10.1.2.300' }, token);
    assert.equal(bad.statusCode, 422);
    assert.equal(bad.json().field, 'address');
  });
});
