import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ApiError } from '../api/errors.js';
import type { Resource } from '../api/meta.js';
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

describe('create and get', () => {
  test('assigns uid, resourceVersion, generation and creationTimestamp', async () => {
    const s = openTestStore();
    const input = cluster('p1', 'a', { size: 3 }, { labels: { tier: 'web' }, status: { phase: 'Given' } });
    input.metadata.uid = 'client-uid';
    input.metadata.resourceVersion = '999';
    input.metadata.generation = 42;
    input.metadata.creationTimestamp = '2000-01-01T00:00:00Z';
    input.metadata.deletionTimestamp = '2000-01-01T00:00:00Z';
    const c = await s.create(input);
    assert.match(c.metadata.uid!, /^[0-9a-f-]{36}$/);
    assert.notEqual(c.metadata.uid, 'client-uid');
    assert.equal(c.metadata.resourceVersion, '2');
    assert.equal(c.metadata.generation, 1);
    assert.ok(Date.now() - Date.parse(c.metadata.creationTimestamp!) < 60_000);
    assert.equal(c.metadata.deletionTimestamp, undefined);
    assert.deepEqual(c.status, { phase: 'Given' }, 'status supplied on create is kept');
    assert.deepEqual(await s.get({ kind: 'Cluster', project: 'p1', name: 'a' }), c);
    assert.equal(await s.currentRevision(), '2');
    await s.close();
  });

  test('409 when it exists; scope rules for metadata.project; unknown kind', async () => {
    const s = openTestStore();
    await s.create(cluster('p1', 'a'));
    await rejectsApi(s.create(cluster('p1', 'a')), 409, 'metadata.name');
    await s.create(cluster('p2', 'a')); // same name, other project
    await rejectsApi(s.create(cluster('', 'b')), 422, 'metadata.project');
    await rejectsApi(s.create(obj('Project', 'p1', 'x')), 422, 'metadata.project');
    await s.create(obj('Project', '', 'p1', { members: [] }));
    await rejectsApi(s.create(obj('Gadget', 'p1', 'x')), 400, 'kind');
    await rejectsApi(s.create(obj('Cluster', 'p1', '')), 422, 'metadata.name');
    assert.equal(await s.currentRevision(), '4', 'failed creates do not bump the revision');
    await s.close();
  });

  test('get returns undefined when missing, and private copies', async () => {
    const s = openTestStore();
    assert.equal(await s.get({ kind: 'Cluster', project: 'p1', name: 'nope' }), undefined);
    const input = cluster('p1', 'a', { size: 1 });
    const created = await s.create(input);
    (input.spec as { size: number }).size = 99;
    (created.spec as { size: number }).size = 98;
    const got = await s.get({ kind: 'Cluster', project: 'p1', name: 'a' });
    assert.deepEqual(got!.spec, { size: 1 });
    (got!.spec as { size: number }).size = 97;
    assert.deepEqual((await s.get({ kind: 'Cluster', project: 'p1', name: 'a' }))!.spec, { size: 1 });
    await s.close();
  });
});

describe('list', () => {
  async function seeded() {
    const s = openTestStore();
    for (const [p, n, labels] of [
      ['p2', 'b', { tier: 'web', env: 'prod' }],
      ['p1', 'c', { tier: 'db' }],
      ['p1', 'a', { tier: 'web' }],
      ['p2', 'a', {}],
      ['p1', 'b', { env: 'dev' }],
    ] as const) {
      await s.create(cluster(p, n, { size: 1 }, { labels: { ...labels } }));
    }
    await s.create(obj('Project', '', 'p1', { members: [] }));
    return s;
  }
  const names = (items: Resource[]) => items.map((i) => `${i.metadata.project ?? ''}/${i.metadata.name}`);

  test('orders by (project, name), filters by project, returns the current revision', async () => {
    const s = await seeded();
    const all = await s.list('Cluster');
    assert.deepEqual(names(all.items), ['p1/a', 'p1/b', 'p1/c', 'p2/a', 'p2/b']);
    assert.equal(all.resourceVersion, '7');
    assert.equal(all.continue, undefined);
    assert.deepEqual(names((await s.list('Cluster', { project: 'p2' })).items), ['p2/a', 'p2/b']);
    assert.deepEqual(names((await s.list('Project')).items), ['/p1']);
    assert.deepEqual((await s.list('Project', { project: 'p1' })).items, []);
    await rejectsApi(s.list('Gadget'), 400, 'kind');
    await s.close();
  });

  test('label selectors, equality- and set-based', async () => {
    const s = await seeded();
    const sel = async (labelSelector: string) => names((await s.list('Cluster', { labelSelector })).items);
    assert.deepEqual(await sel('tier=web'), ['p1/a', 'p2/b']);
    assert.deepEqual(await sel('tier==web'), ['p1/a', 'p2/b']);
    assert.deepEqual(await sel('tier!=web'), ['p1/b', 'p1/c', 'p2/a']);
    assert.deepEqual(await sel('env'), ['p1/b', 'p2/b']);
    assert.deepEqual(await sel('!env'), ['p1/a', 'p1/c', 'p2/a']);
    assert.deepEqual(await sel('tier in (web, db)'), ['p1/a', 'p1/c', 'p2/b']);
    assert.deepEqual(await sel('tier notin (web)'), ['p1/b', 'p1/c', 'p2/a']);
    assert.deepEqual(await sel('tier=web,env=prod'), ['p2/b']);
    assert.deepEqual(await sel(' tier = web , !env '), ['p1/a']);
    assert.deepEqual(await sel(''), ['p1/a', 'p1/b', 'p1/c', 'p2/a', 'p2/b']);
    for (const bad of ['tier=web,', '=web', 'tier in web', 'tier in ()', 'tier ~ web', 'a=b=c', '-x', 'tier in (a', 'x y', 'a/b/c']) {
      await rejectsApi(s.list('Cluster', { labelSelector: bad }), 400, 'labelSelector');
    }
    assert.deepEqual(await sel('tier='), [], 'tier= (valid Kubernetes syntax) matches an empty value only');
    await s.close();
  });

  test('an equality selector reads through the label index, which follows every label change', async () => {
    const s = await seeded();
    const sel = async (labelSelector: string, project?: string) => names((await s.list('Cluster', { labelSelector, ...(project ? { project } : {}) })).items);
    const a = (await s.get({ kind: 'Cluster', project: 'p1', name: 'a' }))!;
    await s.update({ ...a, metadata: { ...a.metadata, labels: { tier: 'db', env: 'dev' } } });
    assert.deepEqual(await sel('tier=web'), ['p2/b'], 'the old label no longer matches');
    assert.deepEqual(await sel('tier=db'), ['p1/a', 'p1/c']);
    assert.deepEqual(await sel('tier=db', 'p1'), ['p1/a', 'p1/c']);
    assert.deepEqual(await sel('tier=db,env=dev'), ['p1/a'], 'the rest of the selector still applies');
    const c = (await s.get({ kind: 'Cluster', project: 'p1', name: 'c' }))!;
    await s.updateStatus({ ...c, status: { phase: 'x' } });
    assert.deepEqual(await sel('tier=db'), ['p1/a', 'p1/c'], 'a status change keeps the labels');
    await s.delete({ kind: 'Cluster', project: 'p1', name: 'c' });
    assert.deepEqual(await sel('tier=db'), ['p1/a'], 'a deleted object leaves the index');
    await s.close();
  });

  test('a database of schema 1 gets its label index on open', async () => {
    const dir = tempDir();
    const path = join(dir, 'm.db');
    const s = openSqliteStore({ path, encryptionKey: TEST_KEY });
    await s.create(cluster('p1', 'a', {}, { labels: { tier: 'web' } }));
    await s.create(cluster('p1', 'b', {}, { labels: { tier: 'db' } }));
    await s.close();
    const db = new Database(path);
    db.exec("DELETE FROM labels; UPDATE meta SET value = 1 WHERE key = 'schema'");
    db.close();
    const again = openSqliteStore({ path, encryptionKey: TEST_KEY });
    assert.deepEqual(names((await again.list('Cluster', { labelSelector: 'tier=web' })).items), ['p1/a']);
    await again.close();
    const check = new Database(path);
    assert.equal((check.prepare("SELECT value FROM meta WHERE key = 'schema'").get() as { value: number }).value, 2);
    check.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('pagination with limit and continue, also combined with a selector', async () => {
    const s = await seeded();
    const p1 = await s.list('Cluster', { limit: 2 });
    assert.deepEqual(names(p1.items), ['p1/a', 'p1/b']);
    assert.ok(p1.continue);
    await s.create(cluster('p1', 'aa')); // before the cursor: not on later pages (a watch sees it)
    await s.create(cluster('p3', 'z')); // after the cursor: shows up
    const p2 = await s.list('Cluster', { limit: 2, continue: p1.continue });
    assert.deepEqual(names(p2.items), ['p1/c', 'p2/a']);
    assert.equal(p2.resourceVersion, p1.resourceVersion, 'every page carries the first page revision');
    const p3 = await s.list('Cluster', { limit: 2, continue: p2.continue });
    assert.deepEqual(names(p3.items), ['p2/b', 'p3/z']);
    assert.equal(p3.continue, undefined, 'no token on the last page');

    const w1 = await s.list('Cluster', { limit: 1, labelSelector: 'tier=web' });
    assert.deepEqual(names(w1.items), ['p1/a']);
    const w2 = await s.list('Cluster', { limit: 1, labelSelector: 'tier=web', continue: w1.continue });
    assert.deepEqual(names(w2.items), ['p2/b']);
    assert.equal(w2.continue, undefined);

    const exact = await s.list('Cluster', { project: 'p2', limit: 2 });
    assert.equal(exact.items.length, 2);
    assert.equal(exact.continue, undefined, 'a page that ends exactly at the end has no token');

    await rejectsApi(s.list('Cluster', { continue: 'garbage!' }), 400, 'continue');
    await rejectsApi(s.list('Cluster', { continue: Buffer.from('{"k":"Cluster"}').toString('base64url') }), 400, 'continue');
    await rejectsApi(s.list('Project', { continue: p1.continue }), 400, 'continue');
    await rejectsApi(s.list('Cluster', { limit: -1 }), 400, 'limit');
    await rejectsApi(s.list('Cluster', { limit: 1.5 }), 400, 'limit');
    await s.close();
  });

  test('an expired continue token is 410 Gone', async () => {
    const s = openTestStore({ historyLimit: 2 });
    for (const n of ['a', 'b', 'c']) await s.create(cluster('p', n));
    const page = await s.list('Cluster', { limit: 1 });
    for (let i = 0; i < 10; i++) await s.create(cluster('q', `x${i}`));
    await rejectsApi(s.list('Cluster', { limit: 1, continue: page.continue }), 410);
    await s.close();
  });
});

describe('update', () => {
  test('preconditions: 422 without resourceVersion, 409 when stale, 404 when missing, 409 on uid mismatch', async () => {
    const s = openTestStore();
    const c = await s.create(cluster('p', 'a'));
    const noRv = structuredClone(c);
    delete noRv.metadata.resourceVersion;
    await rejectsApi(s.update(noRv), 422, 'metadata.resourceVersion');
    const v2 = await s.update({ ...c, spec: { size: 2 } });
    await rejectsApi(s.update({ ...c, spec: { size: 3 } }), 409, 'metadata.resourceVersion');
    await rejectsApi(s.update(cluster('p', 'missing')), 422, 'metadata.resourceVersion');
    const missing = cluster('p', 'missing');
    missing.metadata.resourceVersion = '1';
    await rejectsApi(s.update(missing), 404);
    const wrongUid = structuredClone(v2);
    wrongUid.metadata.uid = 'other';
    wrongUid.spec = { size: 9 };
    await rejectsApi(s.update(wrongUid), 409);
    await s.close();
  });

  test('generation only on spec change; keeps uid, creationTimestamp, status; ignores argument status', async () => {
    const s = openTestStore();
    const c = await s.create(cluster('p', 'a', { size: 1, tags: ['x'] }));
    const st = await s.updateStatus({ ...c, status: { phase: 'Ready' } });
    const labelled = await s.update({ ...st, metadata: { ...st.metadata, labels: { a: 'b' } }, status: { phase: 'Hacked' } });
    assert.equal(labelled.metadata.generation, 1, 'labels do not bump generation');
    assert.deepEqual(labelled.status, { phase: 'Ready' }, 'status in the argument is ignored');
    assert.equal(labelled.metadata.uid, c.metadata.uid);
    assert.equal(labelled.metadata.creationTimestamp, c.metadata.creationTimestamp);
    const reordered = await s.update({ ...labelled, spec: { tags: ['x'], size: 1 } });
    assert.equal(reordered.metadata.resourceVersion, labelled.metadata.resourceVersion, 'key order is not a change');
    const bumped = await s.update({ ...labelled, spec: { size: 2, tags: ['x'] } });
    assert.equal(bumped.metadata.generation, 2);
    assert.equal(Number(bumped.metadata.resourceVersion), Number(labelled.metadata.resourceVersion) + 1);
    const removedLabels = structuredClone(bumped);
    delete removedLabels.metadata.labels;
    const r = await s.update(removedLabels);
    assert.equal(r.metadata.labels, undefined, 'labels are replaced, not merged');
    await s.close();
  });

  test('a no-op update keeps the revision and emits nothing', async () => {
    const s = openTestStore();
    const c = await s.create(cluster('p', 'a', { size: 1 }, { labels: { a: 'b' } }));
    const w = collect(s, {});
    const same = await s.update({ ...c, metadata: { ...c.metadata, annotations: {} } });
    assert.deepEqual(same, c);
    assert.equal(await s.currentRevision(), '2');
    const st = await s.updateStatus({ ...c }); // status absent == absent
    assert.equal(st.metadata.resourceVersion, '2');
    await flush();
    assert.deepEqual(w.events, []);
    await s.close();
  });

  test('updateStatus changes only status', async () => {
    const s = openTestStore();
    const c = await s.create(cluster('p', 'a', { size: 1 }));
    const st = await s.updateStatus({ ...c, spec: { size: 50 }, metadata: { ...c.metadata, labels: { x: 'y' } }, status: { phase: 'Ready' } });
    assert.deepEqual(st.spec, { size: 1 });
    assert.equal(st.metadata.labels, undefined);
    assert.equal(st.metadata.generation, 1);
    assert.deepEqual(st.status, { phase: 'Ready' });
    assert.equal(st.metadata.resourceVersion, '3');
    await rejectsApi(s.updateStatus({ ...c, status: { phase: 'Old' } }), 409);
    const noRv = structuredClone(st);
    delete noRv.metadata.resourceVersion;
    await rejectsApi(s.updateStatus(noRv), 422, 'metadata.resourceVersion');
    await s.close();
  });
});

describe('delete and finalizers', () => {
  test('without finalizers the object is removed with a DELETED event', async () => {
    const s = openTestStore();
    const c = await s.create(cluster('p', 'a'));
    const w = collect(s, { kind: 'Cluster' });
    const res = await s.delete({ kind: 'Cluster', project: 'p', name: 'a' });
    assert.equal(res.removed, true);
    assert.equal(res.object.metadata.resourceVersion, '3', 'DELETED carries the deletion revision');
    assert.equal(await s.get({ kind: 'Cluster', project: 'p', name: 'a' }), undefined);
    await flush();
    assert.deepEqual(w.summary(), ['DELETED a@3']);
    await rejectsApi(s.delete({ kind: 'Cluster', project: 'p', name: 'a' }), 404);
    const again = await s.create(cluster('p', 'a'));
    assert.notEqual(again.metadata.uid, c.metadata.uid, 'a re-created object is a new incarnation');
    await s.close();
  });

  test('finalizers: deletionTimestamp once, second delete is a no-op, last finalizer removal deletes', async () => {
    const s = openTestStore();
    const c = await s.create(cluster('p', 'a', { size: 1 }, { finalizers: ['f1', 'f2'] }));
    const w = collect(s, {});
    const d1 = await s.delete({ kind: 'Cluster', project: 'p', name: 'a' });
    assert.equal(d1.removed, false);
    assert.ok(d1.object.metadata.deletionTimestamp);
    assert.equal(d1.object.metadata.generation, 1);
    assert.equal(d1.object.metadata.resourceVersion, '3');
    const d2 = await s.delete({ kind: 'Cluster', project: 'p', name: 'a' });
    assert.deepEqual(d2, { object: d1.object, removed: false });
    assert.equal(await s.currentRevision(), '3');
    // Adding a finalizer while deleting is refused; removing one is fine; spec can still change.
    await rejectsApi(s.update({ ...d1.object, metadata: { ...d1.object.metadata, finalizers: ['f1', 'f2', 'f3'] } }), 422, 'metadata.finalizers');
    const one = await s.update({ ...d1.object, metadata: { ...d1.object.metadata, finalizers: ['f2'] }, spec: { size: 5 } });
    assert.equal(one.metadata.deletionTimestamp, d1.object.metadata.deletionTimestamp);
    assert.equal(one.metadata.generation, 2);
    // Creating while terminating: 409.
    await rejectsApi(s.create(cluster('p', 'a')), 409);
    const gone = await s.update({ ...one, metadata: { ...one.metadata, finalizers: [] } });
    assert.equal(gone.metadata.finalizers, undefined);
    assert.equal(await s.get({ kind: 'Cluster', project: 'p', name: 'a' }), undefined);
    await flush();
    assert.deepEqual(w.summary(), ['MODIFIED a@3', 'MODIFIED a@4', 'DELETED a@5']);
    assert.equal(c.metadata.uid, w.events[2]!.object.metadata.uid);
    await s.close();
  });

  test('resourceVersion precondition on delete', async () => {
    const s = openTestStore();
    const c = await s.create(cluster('p', 'a'));
    await s.update({ ...c, spec: { size: 2 } });
    await rejectsApi(s.delete({ kind: 'Cluster', project: 'p', name: 'a' }, { resourceVersion: c.metadata.resourceVersion }), 409);
    const res = await s.delete({ kind: 'Cluster', project: 'p', name: 'a' }, { resourceVersion: '3' });
    assert.equal(res.removed, true);
    await s.close();
  });
});

describe('watch', () => {
  test('from now, from a revision (replay then live, no gap or duplicate), stop', async () => {
    const s = openTestStore();
    const a = await s.create(cluster('p', 'a'));
    await s.update({ ...a, spec: { size: 2 } });
    await s.create(cluster('p', 'b'));
    const now = collect(s, {});
    const fromOne = collect(s, { resourceVersion: '2' });
    const fromZero = collect(s, { resourceVersion: '0' });
    assert.deepEqual(fromOne.events, [], 'replay is delivered after watch() returns');
    const writing = s.create(cluster('p', 'c'));
    assert.deepEqual(now.summary(), [], 'live events are delivered after the write returned, not inside it');
    await writing;
    await flush();
    assert.deepEqual(now.summary(), ['ADDED c@5']);
    assert.deepEqual(fromOne.summary(), ['MODIFIED a@3', 'ADDED b@4', 'ADDED c@5']);
    assert.deepEqual(fromZero.summary(), ['ADDED c@5']);
    fromOne.watch.stop();
    await s.delete({ kind: 'Cluster', project: 'p', name: 'c' });
    await flush();
    assert.equal(fromOne.events.length, 3);
    assert.deepEqual(now.summary(), ['ADDED c@5', 'DELETED c@6']);
    const replayOnly = collect(s, { resourceVersion: '4' });
    await flush();
    assert.deepEqual(replayOnly.summary(), ['ADDED c@5', 'DELETED c@6']);
    await s.close();
  });

  test('a fresh store lists at revision 1 (never "0"), so list-then-watch misses nothing', async () => {
    const s = openTestStore();
    const empty = await s.list('Cluster');
    assert.equal(empty.resourceVersion, '1');
    await s.create(cluster('p', 'a')); // between the list and the watch
    const w = collect(s, { resourceVersion: empty.resourceVersion });
    await flush();
    assert.deepEqual(w.summary(), ['ADDED a@2']);
    await s.close();
  });

  test('filters by kind, project and label selector; leaving the selector is a MODIFIED event', async () => {
    const s = openTestStore();
    const byKind = collect(s, { kind: 'Project' });
    const byProject = collect(s, { project: 'p2' });
    const web = collect(s, { kind: 'Cluster', labelSelector: 'tier=web' });
    await s.create(obj('Project', '', 'p2', { members: [] }));
    const a = await s.create(cluster('p1', 'a', {}, { labels: { tier: 'web' } }));
    await s.create(cluster('p2', 'b', {}, { labels: { tier: 'db' } }));
    const left = await s.update({ ...a, metadata: { ...a.metadata, labels: { tier: 'db' } } });
    await s.update({ ...left, spec: { size: 7 } }); // outside the selector: not delivered
    const back = await s.update({ ...left, metadata: { ...left.metadata, resourceVersion: '6', labels: { tier: 'web' } } });
    await s.delete({ kind: 'Cluster', project: 'p1', name: 'a' });
    await flush();
    assert.deepEqual(byKind.summary(), ['ADDED p2@2']);
    assert.deepEqual(byProject.summary(), ['ADDED b@4']);
    assert.deepEqual(web.summary(), ['ADDED a@3', 'MODIFIED a@5', 'MODIFIED a@7', 'DELETED a@8']);
    assert.deepEqual(web.events[1]!.object.metadata.labels, { tier: 'db' });
    assert.equal(back.metadata.resourceVersion, '7');
    // The same through replay.
    const replay = collect(s, { kind: 'Cluster', labelSelector: 'tier=web', resourceVersion: '1' });
    await flush();
    assert.deepEqual(replay.summary(), web.summary());
    assert.throws(() => s.watch({ labelSelector: 'a in (' }, () => {}), (e: unknown) => e instanceof ApiError && e.code === 400);
    assert.throws(() => s.watch({ kind: 'Gadget' }, () => {}), (e: unknown) => e instanceof ApiError && e.code === 400);
    await s.close();
  });

  test('a selector watch gets the DELETED of an update that changes labels and drops the last finalizer', async () => {
    const s = openTestStore();
    const a = await s.create(cluster('p', 'a', {}, { labels: { tier: 'web' }, finalizers: ['f'] }));
    const web = collect(s, { labelSelector: 'tier=web' });
    const { object } = await s.delete({ kind: 'Cluster', project: 'p', name: 'a' });
    await s.update({ ...object, metadata: { ...object.metadata, labels: { tier: 'db' }, finalizers: [] } });
    await flush();
    assert.deepEqual(web.summary(), ['MODIFIED a@3', 'DELETED a@4']);
    const replay = collect(s, { labelSelector: 'tier=web', resourceVersion: a.metadata.resourceVersion });
    await flush();
    assert.deepEqual(replay.summary(), web.summary());
    await s.close();
  });

  test('410 Gone below the retained history (and for revisions from the future); 400 when malformed', async () => {
    const s = openTestStore({ historyLimit: 5 });
    for (let i = 0; i < 20; i++) await s.create(cluster('p', `o${i}`));
    const err = await rejectsApi(() => s.watch({ resourceVersion: '1' }, () => {}), 410);
    assert.match(err.message, /too old/);
    await rejectsApi(() => s.watch({ resourceVersion: '22' }, () => {}), 410);
    await rejectsApi(() => s.watch({ resourceVersion: 'abc' }, () => {}), 400, 'resourceVersion');
    const ok = collect(s, { resourceVersion: '16' }); // the last historyLimit events are always kept
    await flush();
    assert.deepEqual(ok.events.map((e) => e.object.metadata.resourceVersion), ['17', '18', '19', '20', '21']);
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

  test('a throwing handler is logged and does not break the store or other watchers', async () => {
    const logger = countingLogger();
    const s = openTestStore({ logger });
    let calls = 0;
    s.watch({}, () => {
      calls++;
      throw new Error('boom');
    });
    const ok = collect(s, {});
    await s.create(cluster('p', 'a'));
    await s.create(cluster('p', 'b'));
    await flush();
    assert.equal(calls, 2, 'the throwing watcher keeps its subscription');
    assert.equal(ok.events.length, 2);
    assert.equal(logger.errors.length, 2);
    await s.close();
  });

  test('a handler may mutate the store: every watcher still sees events in revision order', async () => {
    const s = openTestStore();
    const seen: string[] = [];
    const before = collect(s, {});
    let active = false;
    s.watch({ kind: 'Cluster' }, (e) => {
      assert.equal(active, false, 'handler re-entered');
      active = true;
      seen.push(e.object.metadata.resourceVersion!);
      if (e.type === 'ADDED') void s.updateStatus({ ...e.object, status: { phase: 'Seen' } });
      active = false;
    });
    const after = collect(s, {});
    await s.create(cluster('p', 'a'));
    await s.create(cluster('p', 'b'));
    await flush();
    const revs = (w: typeof before) => w.events.map((e) => e.object.metadata.resourceVersion);
    assert.deepEqual(revs(before), ['2', '3', '4', '5']);
    assert.deepEqual(revs(after), ['2', '3', '4', '5']);
    assert.deepEqual(seen, ['2', '3', '4', '5'], 'the handler was called once per event, never re-entered');
    assert.deepEqual((await s.get({ kind: 'Cluster', project: 'p', name: 'b' }))!.status, { phase: 'Seen' });
    await s.close();
  });

  test('stop() from inside a handler; watch() from inside a handler; each watcher gets its own copy', async () => {
    const s = openTestStore();
    let inner: ReturnType<typeof collect> | undefined;
    const outer: string[] = [];
    const w = s.watch({}, (e) => {
      outer.push(e.object.metadata.name);
      (e.object.metadata as { name: string }).name = 'mutated';
      inner ??= collect(s, { resourceVersion: '0' });
      w.stop();
    });
    const other = collect(s, {});
    await s.create(cluster('p', 'a'));
    await flush();
    await s.create(cluster('p', 'b'));
    await flush();
    assert.deepEqual(outer, ['a']);
    assert.deepEqual(other.summary(), ['ADDED a@2', 'ADDED b@3']);
    assert.deepEqual(inner!.summary(), ['ADDED b@3']);
    await s.close();
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
      await flush();
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
      await flush();
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

describe('series', () => {
  test('append keeps samples by age and count, range reads them in time order, drop removes one series', async () => {
    const s = openTestStore();
    const t = (m: number) => new Date(Date.UTC(2026, 0, 1, 0, m)).toISOString();
    for (let m = 0; m < 10; m++) await s.series.append('a', t(m), { m }, { retainSince: t(m - 5), maxPoints: 100 });
    // age bound: only samples at or after t(4) (retainSince of the last append) remain
    assert.deepEqual((await s.series.range('a', t(-1))).map((x) => (x.sample as { m: number }).m), [4, 5, 6, 7, 8, 9]);
    // count bound
    await s.series.append('a', t(10), { m: 10 }, { retainSince: t(0), maxPoints: 3 });
    assert.deepEqual((await s.series.range('a', t(-1))).map((x) => x.time), [t(8), t(9), t(10)]);
    // range is exclusive of `since`; other series are untouched
    await s.series.append('b', t(1), { other: true }, { retainSince: t(0), maxPoints: 3 });
    assert.deepEqual((await s.series.range('a', t(9))).map((x) => x.time), [t(10)]);
    assert.equal(await s.series.drop('a'), 3);
    assert.deepEqual(await s.series.range('a', t(-1)), []);
    assert.equal((await s.series.range('b', t(-1))).length, 1);
    await s.close();
  });
});

describe('audit log', () => {
  test('append, list newest first with filters, sinceId, limit and prune', async () => {
    const s = openTestStore();
    const t = (m: number) => new Date(Date.UTC(2024, 0, 1, 0, m)).toISOString();
    const e1 = await s.audit.append({ time: t(1), user: 'alice', verb: 'create', kind: 'Cluster', project: 'p1', name: 'a', generation: 1, resourceVersion: '1', code: 201 });
    await s.audit.append({ time: t(2), user: 'bob', verb: 'update', kind: 'Cluster', project: 'p2', name: 'b', code: 409 });
    await s.audit.append({ time: t(3), user: 'alice', verb: 'delete', kind: 'Project', project: '', name: 'p1', code: 200 });
    assert.equal(e1.id, 1);
    assert.deepEqual(await s.audit.list({ limit: 1 }), [
      { id: 3, time: t(3), user: 'alice', verb: 'delete', kind: 'Project', project: '', name: 'p1', code: 200 },
    ]);
    assert.deepEqual((await s.audit.list()).map((e) => e.id), [3, 2, 1]);
    assert.deepEqual((await s.audit.list({ user: 'alice' })).map((e) => e.id), [3, 1]);
    assert.deepEqual((await s.audit.list({ project: 'p2' })).map((e) => e.verb), ['update']);
    assert.deepEqual((await s.audit.list({ kind: 'Cluster', user: 'alice' }))[0], { ...e1 });
    assert.deepEqual((await s.audit.list({ sinceId: 1 })).map((e) => e.id), [3, 2]);
    assert.equal(await s.audit.prune({ before: t(2) }), 1);
    assert.equal(await s.audit.prune({ keep: 1 }), 1);
    assert.deepEqual((await s.audit.list()).map((e) => e.id), [3]);
    const e4 = await s.audit.append({ time: t(4), user: 'c', verb: 'get', kind: 'Cluster', project: 'p', name: 'x' });
    assert.equal(e4.id, 4, 'ids are never reused');
    await s.close();
  });
});

describe('API tokens', () => {
  test('issue, verify, list without secrets, expiry, revoke', async () => {
    const dir = tempDir();
    try {
      const path = join(dir, 'marina.db');
      const s = openSqliteStore({ path, encryptionKey: TEST_KEY });
      const t1 = await s.tokens.issue({ user: 'alice', description: 'laptop' });
      const t2 = await s.tokens.issue({ user: 'alice', expiresAt: new Date(Date.now() - 1000).toISOString() });
      const t3 = await s.tokens.issue({ user: 'bob', expiresAt: new Date(Date.now() + 3_600_000).toISOString() });
      assert.match(t1.token, /^mrn_[A-Za-z0-9_-]{43}$/);
      assert.deepEqual(await s.tokens.verify(t1.token), { id: t1.id, user: 'alice' });
      assert.equal(await s.tokens.verify(t2.token), undefined, 'expired');
      assert.deepEqual(await s.tokens.verify(t3.token), { id: t3.id, user: 'bob' });
      assert.equal(await s.tokens.verify(t1.token + 'x'), undefined);
      assert.equal(await s.tokens.verify('mrn_'), undefined);
      assert.equal(await s.tokens.verify(''), undefined);
      const listed = await s.tokens.list('alice');
      assert.deepEqual(listed.map((t) => t.id).sort(), [t1.id, t2.id].sort());
      assert.equal(listed.find((t) => t.id === t1.id)!.description, 'laptop');
      const everything = JSON.stringify(await s.tokens.list());
      for (const t of [t1, t2, t3]) assert.ok(!everything.includes(t.token.slice(4)));
      assert.equal((await s.tokens.list()).length, 3);
      await rejectsApi(s.tokens.issue({ user: 'x', expiresAt: 'tomorrow' }), 422, 'expiresAt');
      assert.equal(await s.tokens.revoke(t1.id), true);
      assert.equal(await s.tokens.revoke(t1.id), false);
      assert.equal(await s.tokens.verify(t1.token), undefined);
      assert.equal(await s.tokens.revokeUser('bob'), 1);
      assert.equal(await s.tokens.verify(t3.token), undefined);
      await s.close();
      for (const f of readdirSync(dir)) {
        const bytes = readFileSync(join(dir, f));
        for (const t of [t1, t2, t3]) assert.equal(bytes.indexOf(t.token.slice(4)), -1, `token secret stored in ${f}`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
