import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { API_VERSION } from '../api/meta.js';
import { openSqliteStore } from '../store/sqlite.js';
import { buildApp } from './app.js';

async function appWith(consoleDir: string | false) {
  const store = openSqliteStore({ path: ':memory:', encryptionKey: randomBytes(32) });
  await store.create({ apiVersion: API_VERSION, kind: 'User', metadata: { name: 'admin' }, spec: { platformAdmin: true } });
  const token = (await store.tokens.issue({ user: 'admin' })).token;
  const { app, close } = await buildApp({ store, tokens: store.tokens, audit: store.audit, validation: { kubernetesVersions: ['v1.36.3'] }, consoleDir });
  await app.ready();
  return { app, token, close: async () => (await close(), await store.close()) };
}

describe('web console serving', () => {
  let tmp = '';
  let built: { app: FastifyInstance; token: string; close(): Promise<void> };
  let missing: { app: FastifyInstance; token: string; close(): Promise<void> };

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'marina-console-'));
    const dir = join(tmp, 'console');
    mkdirSync(join(dir, 'assets'), { recursive: true });
    writeFileSync(join(dir, 'index.html'), '<!doctype html><title>Marina console</title><div id="root"></div>');
    writeFileSync(join(dir, 'assets', 'app-1234.js'), 'console.log(1)');
    built = await appWith(dir);
    missing = await appWith(join(tmp, 'nothing-here'));
  });
  after(async () => {
    await built?.close();
    await missing?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('redirects / to the console and serves its index and hashed assets without a token', async () => {
    const root = await built.app.inject({ method: 'GET', url: '/' });
    assert.equal(root.statusCode, 302);
    assert.equal(root.headers.location, '/console/');
    const bare = await built.app.inject({ method: 'GET', url: '/console' });
    assert.ok([301, 302].includes(bare.statusCode));
    assert.equal(bare.headers.location, '/console/');
    const index = await built.app.inject({ method: 'GET', url: '/console/' });
    assert.equal(index.statusCode, 200);
    assert.match(String(index.headers['content-type']), /text\/html/);
    assert.match(index.body, /Marina console/);
    assert.equal(index.headers['cache-control'], 'no-cache');
    const asset = await built.app.inject({ method: 'GET', url: '/console/assets/app-1234.js' });
    assert.equal(asset.statusCode, 200);
    assert.equal(asset.body, 'console.log(1)');
    assert.match(String(asset.headers['cache-control']), /immutable/);
  });

  it('answers client-side routes with the app, missing files with 404', async () => {
    const route = await built.app.inject({ method: 'GET', url: '/console/projects/default/clusters/web?x=1' });
    assert.equal(route.statusCode, 200);
    assert.match(route.body, /Marina console/);
    const gone = await built.app.inject({ method: 'GET', url: '/console/assets/old-999.js' });
    assert.equal(gone.statusCode, 404);
    assert.equal(gone.json().kind, 'Status');
  });

  it('leaves the API alone: unknown /api paths are the API\'s 404 Status, probes stay open', async () => {
    const auth = { authorization: `Bearer ${built.token}` };
    const unknown = await built.app.inject({ method: 'GET', url: '/api/v1alpha1/projects/p/clusters/x/y/z', headers: auth });
    assert.equal(unknown.statusCode, 404);
    assert.deepEqual(Object.keys(unknown.json()).sort(), ['code', 'kind', 'message', 'reason']);
    assert.equal(unknown.json().reason, 'NotFound');
    const noKind = await built.app.inject({ method: 'GET', url: '/api/v1alpha1/widgets', headers: auth });
    assert.equal(noKind.statusCode, 404);
    assert.match(noKind.json().message, /no resource type "widgets"/);
    const noToken = await built.app.inject({ method: 'GET', url: '/api/v1alpha1/projects' });
    assert.equal(noToken.statusCode, 401);
    assert.equal((await built.app.inject({ method: 'GET', url: '/healthz' })).json().status, 'ok');
    assert.equal((await built.app.inject({ method: 'GET', url: '/openapi/v3' })).statusCode, 200);
    const elsewhere = await built.app.inject({ method: 'GET', url: '/nope' });
    assert.equal(elsewhere.statusCode, 404);
    assert.equal(elsewhere.json().kind, 'Status');
  });

  it('starts without a built console and says so at /', async () => {
    const root = await missing.app.inject({ method: 'GET', url: '/' });
    assert.equal(root.statusCode, 503);
    assert.match(root.body, /web console is not built/);
    assert.match(root.body, /npm run build/);
    assert.equal((await missing.app.inject({ method: 'GET', url: '/console/projects' })).statusCode, 503);
    const api = await missing.app.inject({ method: 'GET', url: '/api/v1alpha1/whoami', headers: { authorization: `Bearer ${missing.token}` } });
    assert.equal(api.json().user, 'admin');
  });
});
