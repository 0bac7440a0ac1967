// The SQLite store: the shared conformance suite (./conformance.ts), then what only SQLite promises:
// dense revisions (genesis 1, +1 per change), synchronous live delivery in one global order, the
// retention window of its event table, persistence in one file, and its encryption at rest on disk.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ApiError } from '../api/errors.js';
import type { Resource } from '../api/meta.js';
import { storeConformance } from './conformance.js';
import { loadOrCreateEncryptionKey, openSqliteStore } from './sqlite.js';
import { cluster, collect, countingLogger, flush, obj, openTestStore, randomKey, TEST_KEY } from './test-util.js';

/** Asserts that `p` rejects (or `fn` throws) an ApiError with this code and, optionally, field. */
async function rejectsApi(p: Promise<unknown> | (() => unknown), code: number, field?: string): Promise<ApiError> {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof ApiError, `expected ApiError ${code}, got ${String(err)}`);
  assert.equal(err.code, code, err.message);
  if (field !== undefined) assert.equal(err.toStatus().field, field, err.message);
  return err;
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'marina-store-'));
}

const dirs: string[] = [];
storeConformance('sqlite', {
  async open(opts = {}) {
    const dir = tempDir();
    dirs.push(dir);
    return openSqliteStore({
      path: join(dir, 'marina.db'),
      encryptionKey: TEST_KEY,
      logger: opts.logger ?? countingLogger(),
      ...(opts.historyLimit !== undefined ? { historyLimit: opts.historyLimit } : {}),
    });
  },
  async raw(store, key) {
    // The store's file: the newest directory handed out (each test opens one store).
    const db = new Database(join(dirs[dirs.length - 1]!, 'marina.db'), { readonly: true });
    try {
      const row = db.prepare('SELECT json FROM objects WHERE kind = ? AND project = ? AND name = ?').get(key.kind, key.project, key.name) as { json: string };
      return row.json;
    } finally {
      db.close();
    }
  },
  async teardown() {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  },
  futureRevisionIsGone: true,
});

describe('sqlite: dense revisions and synchronous delivery', () => {
  test('genesis revision 1; every change +1; failed and no-op writes take none', async () => {
    const s = openTestStore();
    assert.equal((await s.list('Cluster')).resourceVersion, '1', 'a fresh store lists at revision 1 (never "0")');
    const c = await s.create(cluster('p1', 'a', { size: 3 }));
    assert.equal(c.metadata.resourceVersion, '2');
    await rejectsApi(s.create(cluster('p1', 'a')), 409, 'metadata.name');
    await rejectsApi(s.create(cluster('', 'b')), 422, 'metadata.project');
    await s.update({ ...c }); // no-op
    assert.equal(await s.currentRevision(), '2');
    const u = await s.update({ ...c, spec: { size: 4 } });
    assert.equal(u.metadata.resourceVersion, '3');
    const d = await s.delete({ kind: 'Cluster', project: 'p1', name: 'a' });
    assert.equal(d.object.metadata.resourceVersion, '4');
    await s.close();
  });

  test('live events are delivered from within the mutation, in one order across kinds', async () => {
    const s = openTestStore();
    const all = collect(s, {});
    await s.create(obj('Project', '', 'p', { members: [] }));
    assert.deepEqual(all.summary(), ['ADDED p@2'], 'delivered before create() resolved');
    await s.create(cluster('p', 'a'));
    await s.create(obj('Secret', 'p', 's', { type: 'x', data: {} }));
    assert.deepEqual(all.summary(), ['ADDED p@2', 'ADDED a@3', 'ADDED s@4']);
    const replay = collect(s, { resourceVersion: '1' });
    await flush();
    assert.deepEqual(replay.summary(), all.summary(), 'a replay of every kind is in one revision order too');
    await s.close();
  });

  test('the stored spec is free: SQLite does not check it against the kind schema', async () => {
    const s = openTestStore();
    const c = await s.create(cluster('p', 'a', { size: 1, anything: ['goes'] }));
    assert.deepEqual(c.spec, { size: 1, anything: ['goes'] });
    await s.close();
  });
});

describe('sqlite: retention window', () => {
  test('an expired continue token is 410 Gone', async () => {
    const s = openTestStore({ historyLimit: 2 });
    for (const n of ['a', 'b', 'c']) await s.create(cluster('p', n));
    const page = await s.list('Cluster', { limit: 1 });
    for (let i = 0; i < 10; i++) await s.create(cluster('q', `x${i}`));
    await rejectsApi(s.list('Cluster', { limit: 1, continue: page.continue }), 410);
    await s.close();
  });
  test('retention boundary: every revision within historyLimit resumes exactly; 410 only below it', async () => {
    for (const historyLimit of [1, 3, 150]) {
      const s = openTestStore({ historyLimit });
      for (let i = 0; i < 300; i++) {
        await s.create(cluster('p', `o${i}`));
        const rev = Number(await s.currentRevision());
        if (i % 37 !== 0 && i < 297) continue;
        let firstOk: number | undefined;
        for (let from = 1; from <= rev; from++) {
          let events: string[] | undefined;
          try {
            const w = collect(s, { resourceVersion: String(from) });
            await flush();
            w.watch.stop();
            events = w.events.map((e) => e.object.metadata.resourceVersion!);
          } catch (err) {
            assert.ok(err instanceof ApiError && err.code === 410);
            assert.equal(firstOk, undefined, 'no 410 above a resumable revision');
            assert.ok(from < rev - historyLimit, `410 at ${from} within the last ${historyLimit} of ${rev}`);
            continue;
          }
          firstOk ??= from;
          const want = Array.from({ length: rev - from }, (_, k) => String(from + k + 1));
          assert.deepEqual(events, want, `resume from ${from} at ${rev} (historyLimit ${historyLimit})`);
        }
        // Retention stays within the documented window: historyLimit .. historyLimit + 1%.
        assert.ok(firstOk! >= rev - historyLimit - Math.max(1, Math.floor(historyLimit / 100)) || firstOk === 1, `kept too much: ${firstOk} at ${rev}`);
      }
      await s.close();
    }
  });

});

describe('persistence and encryption at rest', () => {
  test('a reopened file keeps objects, the revision and the watch history', async () => {
    const dir = tempDir();
    try {
      const path = join(dir, 'marina.db');
      const s1 = openSqliteStore({ path, encryptionKey: TEST_KEY });
      const a = await s1.create(cluster('p', 'a'));
      await s1.update({ ...a, spec: { size: 2 } });
      await s1.close();
      await assert.rejects(s1.get({ kind: 'Cluster', project: 'p', name: 'a' }), /closed/);
      const s2 = openSqliteStore({ path, encryptionKey: TEST_KEY, logger: countingLogger() });
      assert.equal(await s2.currentRevision(), '3');
      assert.deepEqual((await s2.get({ kind: 'Cluster', project: 'p', name: 'a' }))!.spec, { size: 2 });
      const w = collect(s2, { resourceVersion: '2' });
      await s2.create(cluster('p', 'b'));
      assert.deepEqual(w.summary(), ['MODIFIED a@3', 'ADDED b@4']);
      const db = new Database(path, { readonly: true });
      assert.equal((db.prepare("SELECT value FROM meta WHERE key = 'revision'").get() as { value: number }).value, 4);
      db.close();
      await s2.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('Secret spec is encrypted in objects and events, and decrypted for reads and watchers', async () => {
    const dir = tempDir();
    try {
      const path = join(dir, 'marina.db');
      const key = randomKey();
      const s = openSqliteStore({ path, encryptionKey: key, logger: countingLogger() });
      const plaintext = 'hunter2-very-secret-value';
      const w = collect(s, {});
      const sec = await s.create(obj('Secret', 'p', 'db-password', { type: 'opaque', data: { password: plaintext } }, { labels: { visible: 'label-value' } }));
      const sec2 = await s.update({ ...sec, spec: { type: 'opaque', data: { password: plaintext + '-rotated' } } });
      assert.equal(sec2.metadata.generation, 2);
      assert.deepEqual((await s.get({ kind: 'Secret', project: 'p', name: 'db-password' }))!.spec, { type: 'opaque', data: { password: plaintext + '-rotated' } });
      assert.deepEqual((await s.list('Secret')).items[0]!.spec, sec2.spec);
      assert.deepEqual(w.events.map((e) => e.object.spec), [sec.spec, sec2.spec]);
      const replay = collect(s, { resourceVersion: '0' });
      const replayAll = collect(s, { kind: 'Secret', resourceVersion: '2' });
      await flush();
      assert.deepEqual(replay.events, []);
      assert.deepEqual(replayAll.events.map((e) => e.object.spec), [sec2.spec]);

      // Raw SQL: the JSON holds $encrypted in place of spec, in both tables; metadata stays readable.
      const raw = new Database(path, { readonly: true });
      const rows = [
        ...(raw.prepare("SELECT json FROM objects WHERE kind = 'Secret'").all() as { json: string }[]),
        ...(raw.prepare("SELECT json FROM events WHERE kind = 'Secret'").all() as { json: string }[]),
      ];
      raw.close();
      assert.equal(rows.length, 3);
      for (const r of rows) {
        assert.ok(!r.json.includes(plaintext), 'plaintext in a row');
        const parsed = JSON.parse(r.json) as Resource;
        assert.equal(typeof (parsed.spec as { $encrypted: string }).$encrypted, 'string');
        assert.equal(parsed.metadata.labels!.visible, 'label-value');
      }
      // Raw bytes of every file SQLite wrote (database, WAL): the plaintext is nowhere.
      const files = readdirSync(dir).filter((f) => f.startsWith('marina.db'));
      assert.ok(files.includes('marina.db-wal'));
      let sawLabel = false;
      for (const f of files) {
        const bytes = readFileSync(join(dir, f));
        assert.equal(bytes.indexOf(plaintext), -1, `plaintext found in ${f}`);
        sawLabel ||= bytes.indexOf('label-value') >= 0;
      }
      assert.ok(sawLabel, 'sanity: unencrypted data is visible in the raw files');
      await s.close();

      // A different key cannot read it.
      const wrong = openSqliteStore({ path, encryptionKey: randomKey(), logger: countingLogger() });
      await assert.rejects(wrong.get({ kind: 'Secret', project: 'p', name: 'db-password' }));
      await wrong.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('rejects a key that is not 32 bytes', () => {
    assert.throws(() => openSqliteStore({ path: ':memory:', encryptionKey: Buffer.alloc(16) }), /32-byte/);
  });

  test('loadOrCreateEncryptionKey: creates a 0600 hex file once; MARINA_ENCRYPTION_KEY wins', () => {
    const dir = tempDir();
    try {
      const data = join(dir, 'data');
      const k1 = loadOrCreateEncryptionKey(data, {});
      assert.equal(k1.length, 32);
      const file = join(data, 'encryption.key');
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.match(readFileSync(file, 'utf8'), /^[0-9a-f]{64}\n$/);
      assert.deepEqual(loadOrCreateEncryptionKey(data, {}), k1);
      const hex = 'ab'.repeat(32);
      assert.deepEqual(loadOrCreateEncryptionKey(data, { MARINA_ENCRYPTION_KEY: hex }), Buffer.from(hex, 'hex'));
      assert.throws(() => loadOrCreateEncryptionKey(data, { MARINA_ENCRYPTION_KEY: 'short' }), /64 hex/);
      const envOnly = join(dir, 'env-only');
      loadOrCreateEncryptionKey(envOnly, { MARINA_ENCRYPTION_KEY: hex });
      assert.throws(() => statSync(join(envOnly, 'encryption.key')), 'no file is created when the key comes from the environment');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('sqlite: tokens at rest', () => {
  test('only the hash of a token reaches the database files', async () => {
    const dir = tempDir();
    try {
      const s = openSqliteStore({ path: join(dir, 'marina.db'), encryptionKey: TEST_KEY });
      const issued = [await s.tokens.issue({ user: 'alice' }), await s.tokens.issue({ user: 'bob' })];
      assert.ok(await s.tokens.verify(issued[0]!.token));
      await s.close();
      for (const f of readdirSync(dir)) {
        const bytes = readFileSync(join(dir, f));
        for (const t of issued) assert.equal(bytes.indexOf(t.token.slice(4)), -1, `token secret stored in ${f}`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
