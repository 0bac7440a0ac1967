import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import Fastify from 'fastify';
import { openSqliteStore } from '../store/sqlite.js';
import { registerAuth, type CredentialAccess } from './auth.js';
import { registerHttp } from './http.js';
import { MembershipIndex } from './membership.js';

test('routes with a credential of their own must be outside the API prefix and document it', async () => {
  const store = openSqliteStore({ path: ':memory:', encryptionKey: randomBytes(32) });
  const membership = await MembershipIndex.start(store);
  const verify = () => undefined;
  const access: CredentialAccess = { credential: 'joinToken', verify };
  const app = Fastify();
  try {
    registerHttp(app);
    registerAuth(app, { store, tokens: store.tokens, audit: store.audit, membership });
    assert.throws(() => app.get('/join/x', { config: { access } }, async () => 'x'), /takes a joinToken but does not document it/);
    assert.throws(() => app.get('/api/v1alpha1/x', { schema: { security: [{ joinToken: [] }] }, config: { access } }, async () => 'x'), /API routes take API tokens/);
    app.get('/join/ok', { schema: { security: [{ joinToken: [] }] }, config: { access: { credential: 'joinToken', verify: (t) => void assert.equal(t, 'good') } } }, async () => 'ok');
    assert.equal((await app.inject({ url: '/join/ok' })).statusCode, 401);
    assert.equal((await app.inject({ url: '/join/ok', headers: { authorization: 'Bearer good' } })).body, 'ok');
  } finally {
    membership.stop();
    await app.close();
    await store.close();
  }
});
