import { test } from 'node:test';
import assert from 'node:assert/strict';
import { API_VERSION } from '../api/meta.js';
import { openTestStore } from '../store/test-util.js';
import type { TokenStore } from '../store/types.js';
import { CachingTokenStore, UserIndex } from './principals.js';

/** A TokenStore that counts how often it is asked to verify. */
function counting(inner: TokenStore): TokenStore & { verifies: number } {
  const c = {
    verifies: 0,
    verify: async (t: string) => {
      c.verifies++;
      return inner.verify(t);
    },
    issue: inner.issue.bind(inner),
    list: inner.list.bind(inner),
    revoke: inner.revoke.bind(inner),
    revokeUser: inner.revokeUser.bind(inner),
  };
  return c;
}

test('a verified token is answered from memory, and a revocation through the cache takes effect at once', async () => {
  const store = openTestStore();
  const inner = counting(store.tokens);
  const tokens = new CachingTokenStore(inner);
  const a = await tokens.issue({ user: 'ann' });
  const b = await tokens.issue({ user: 'ann' });
  assert.deepEqual(await tokens.verify(a.token), { id: a.id, user: 'ann' });
  assert.deepEqual(await tokens.verify(a.token), { id: a.id, user: 'ann' });
  assert.equal(inner.verifies, 1, 'the second verification read nothing');
  assert.equal(await tokens.verify('mrn_guess'), undefined);
  assert.equal(await tokens.verify('mrn_guess'), undefined);
  assert.equal(inner.verifies, 3, 'unknown tokens are not remembered');
  await tokens.verify(b.token);
  assert.equal(await tokens.revoke(a.id), true);
  assert.equal(await tokens.verify(a.token), undefined, 'revoked: refused at once');
  assert.ok(await tokens.verify(b.token), 'the other token still works');
  await tokens.revokeUser('ann');
  assert.equal(await tokens.verify(b.token), undefined);
  await store.close();
});

test('a cached token is refused once it expires, and entries are re-read after their time to live', async () => {
  const store = openTestStore();
  let now = Date.parse('2030-01-01T00:00:00Z');
  const inner = counting(store.tokens);
  const tokens = new CachingTokenStore(inner, { now: () => now, ttlMs: 10_000 });
  const t = await tokens.issue({ user: 'bob', expiresAt: new Date(Date.now() + 3_600_000).toISOString() });
  now = Date.now();
  assert.ok(await tokens.verify(t.token));
  now += 5_000;
  assert.ok(await tokens.verify(t.token));
  assert.equal(inner.verifies, 1);
  now += 6_000;
  assert.ok(await tokens.verify(t.token));
  assert.equal(inner.verifies, 2, 'read again after the time to live');
  // Expiry is checked on every use, also within the time to live.
  const long = new CachingTokenStore(store.tokens, { now: () => now, ttlMs: 10 * 3_600_000 });
  assert.ok(await long.verify(t.token));
  now += 3_600_000;
  assert.equal(await long.verify(t.token), undefined, 'expired while cached');
  await store.close();
});

test('the user index follows users: created, promoted, deleted', async () => {
  const store = openTestStore();
  await store.create({ apiVersion: API_VERSION, kind: 'User', metadata: { name: 'cy' }, spec: {} });
  const changed: string[] = [];
  const users = await UserIndex.start(store, (u) => changed.push(u));
  assert.equal(users.platformAdmin('cy'), false);
  assert.equal(users.platformAdmin('nobody'), undefined);
  const cy = (await store.get({ kind: 'User', project: '', name: 'cy' }))!;
  await store.update({ ...cy, spec: { platformAdmin: true } });
  await new Promise((r) => setImmediate(r));
  assert.equal(users.platformAdmin('cy'), true);
  await store.delete({ kind: 'User', project: '', name: 'cy' });
  await new Promise((r) => setImmediate(r));
  assert.equal(users.platformAdmin('cy'), undefined);
  assert.deepEqual(changed, ['cy', 'cy']);
  users.stop();
  await store.close();
});
