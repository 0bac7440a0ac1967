// The store contract's conformance suite: every backend runs it (src/store/sqlite.test.ts for
// SQLite, test/ha/store-conformance.test.ts for the Kubernetes API). It asserts what the contract
// promises and nothing a backend may choose: revisions are compared by order, never by value
// (Kubernetes' are etcd revisions, bumped by writes Marina does not make), and watch assertions wait
// for a barrier (a marker write whose event, once seen, proves every earlier event of that kind
// was delivered) instead of assuming synchronous delivery. The objects are schema-valid, as the
// Kubernetes backend's CRDs require.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ApiError } from '../api/errors.js';
import { API_VERSION, type ObjectKey, type Resource } from '../api/meta.js';
import type { AuditLog, SeriesStore, Store, TokenStore, WatchEvent, WatchOptions } from './types.js';

export interface StoreUnderTest extends Store {
  readonly audit: AuditLog;
  readonly tokens: TokenStore;
  readonly series: SeriesStore;
}

export interface TestLogger {
  errors: { obj: object; msg?: string }[];
  error(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export function testLogger(): TestLogger {
  const errors: { obj: object; msg?: string }[] = [];
  return { errors, error: (obj, msg) => void errors.push({ obj, msg }), warn: () => undefined };
}

export interface OpenOptions {
  /** Watch history to keep (SQLite: events in all; Kubernetes: events per kind). */
  historyLimit?: number;
  logger?: TestLogger;
}

export interface ConformanceTarget {
  /** A fresh, empty store. */
  open(opts?: OpenOptions): Promise<StoreUnderTest>;
  /** The object exactly as the backend keeps it (to prove a Secret's plaintext is not there). */
  raw(store: StoreUnderTest, key: ObjectKey): Promise<string>;
  /** Starts and stops what the backend needs (a control plane); optional. */
  setup?(): Promise<void>;
  teardown?(): Promise<void>;
  /**
   * A watch from a revision the store has not reached: SQLite answers 410 (it knows every
   * revision); a Kubernetes replica cannot tell it from one it has not seen yet and waits for it.
   */
  futureRevisionIsGone: boolean;
}

// ----- fixtures --------------------------------------------------------------------------------

type Extra = { labels?: Record<string, string>; finalizers?: string[]; status?: unknown; annotations?: Record<string, string> };

export function object(kind: string, project: string, name: string, spec: unknown, extra: Extra = {}): Resource {
  const r: Resource = { apiVersion: API_VERSION, kind, metadata: { name }, spec };
  if (project) r.metadata.project = project;
  if (extra.labels) r.metadata.labels = extra.labels;
  if (extra.annotations) r.metadata.annotations = extra.annotations;
  if (extra.finalizers) r.metadata.finalizers = extra.finalizers;
  if (extra.status !== undefined) r.status = extra.status;
  return r;
}

/** A schema-valid Cluster spec; `replicas` varies it. */
export const clusterSpec = (replicas = 1, provider?: 'local' | 'sim') => ({
  ...(provider ? { provider } : {}),
  nodePools: [{ name: 'pool', roles: ['worker'], replicas }],
});
export const cluster = (project: string, name: string, replicas = 1, extra: Extra = {}) => object('Cluster', project, name, clusterSpec(replicas), extra);
export const project = (name: string, extra: Extra = {}) => object('Project', '', name, { members: [] }, extra);
export const secret = (p: string, name: string, data: Record<string, string>, extra: Extra = {}) =>
  object('Secret', p, name, { type: 'opaque', data }, extra);

const BARRIER = 'zz-barrier-';
let barriers = 0;

// ----- helpers ---------------------------------------------------------------------------------

export async function rejectsApi(p: Promise<unknown> | (() => unknown), code: number, field?: string): Promise<ApiError> {
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

export async function waitFor(what: string, ok: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

export const rv = (o: Resource | WatchEvent): number => Number(('object' in o ? o.object : o).metadata.resourceVersion);

export interface Collector {
  events: WatchEvent[];
  watch: { stop(): void };
  /** `TYPE name` of every event except barriers. */
  summary(): string[];
  /** Events except barriers. */
  real(): WatchEvent[];
}

export function collect(store: Store, opts: WatchOptions = {}): Collector {
  const events: WatchEvent[] = [];
  const watch = store.watch(opts, (e) => void events.push(e));
  const real = () => events.filter((e) => !e.object.metadata.name.startsWith(BARRIER));
  return { events, watch, real, summary: () => real().map((e) => `${e.type} ${e.object.metadata.name}`) };
}

/**
 * Returns once every watcher of `kind` has been handed every event of that kind committed before
 * this call: writes a marker object and waits until a watch of the kind sees it.
 */
export async function barrier(store: Store, kind: 'Cluster' | 'Project' | 'Secret', p = 'p', labels?: Record<string, string>): Promise<void> {
  const name = `${BARRIER}${++barriers}`;
  let seen = false;
  const w = store.watch({ kind }, (e) => {
    if (e.object.metadata.name === name) seen = true;
  });
  try {
    const extra = labels ? { labels } : {};
    const marker = kind === 'Project' ? project(name, extra) : kind === 'Secret' ? secret(p, name, { x: '1' }, extra) : cluster(p, name, 1, extra);
    await store.create(marker);
    await waitFor(`barrier ${name}`, () => seen);
  } finally {
    w.stop();
  }
}

async function flush(): Promise<void> {
  await new Promise((r) => setImmediate(r));
}

// ----- the suite -------------------------------------------------------------------------------

export function storeConformance(name: string, target: ConformanceTarget): void {
  describe(`store conformance: ${name}`, () => {
    if (target.setup) before(() => target.setup!());
    if (target.teardown) after(() => target.teardown!());
    const open = (opts?: OpenOptions) => target.open(opts);

    describe('create and get', () => {
      test('assigns uid, resourceVersion, generation and creationTimestamp; keeps a given status', async () => {
        const s = await open();
        try {
          const before = Number(await s.currentRevision());
          const input = cluster('p1', 'a', 3, { labels: { tier: 'web' }, status: { phase: 'Provisioning' } });
          input.metadata.uid = 'client-uid';
          input.metadata.resourceVersion = '999999999';
          input.metadata.generation = 42;
          input.metadata.creationTimestamp = '2000-01-01T00:00:00Z';
          input.metadata.deletionTimestamp = '2000-01-01T00:00:00Z';
          const c = await s.create(input);
          assert.match(c.metadata.uid!, /^[0-9a-f-]{36}$/);
          assert.notEqual(c.metadata.uid, 'client-uid');
          assert.ok(rv(c) > before, 'a create moves the revision forward');
          assert.equal(c.metadata.generation, 1);
          assert.ok(Math.abs(Date.now() - Date.parse(c.metadata.creationTimestamp!)) < 60_000);
          assert.equal(c.metadata.deletionTimestamp, undefined);
          assert.deepEqual(c.status, { phase: 'Provisioning' }, 'status supplied on create is kept');
          assert.deepEqual(await s.get({ kind: 'Cluster', project: 'p1', name: 'a' }), c);
          assert.ok(Number(await s.currentRevision()) >= rv(c));
        } finally {
          await s.close();
        }
      });

      test('409 when it exists; scope rules for metadata.project; unknown kind', async () => {
        const s = await open();
        try {
          await s.create(cluster('p1', 'a'));
          await rejectsApi(s.create(cluster('p1', 'a')), 409, 'metadata.name');
          await s.create(cluster('p2', 'a')); // same name, other project
          await rejectsApi(s.create(cluster('', 'b')), 422, 'metadata.project');
          await rejectsApi(s.create(object('Project', 'p1', 'x', { members: [] })), 422, 'metadata.project');
          await s.create(project('p1'));
          await rejectsApi(s.create(object('Gadget', 'p1', 'x', {})), 400, 'kind');
          await rejectsApi(s.create(object('Cluster', 'p1', '', clusterSpec())), 422, 'metadata.name');
          assert.deepEqual((await s.list('Cluster')).items.map((i) => `${i.metadata.project}/${i.metadata.name}`), ['p1/a', 'p2/a']);
        } finally {
          await s.close();
        }
      });

      test('get returns undefined when missing, and private copies', async () => {
        const s = await open();
        try {
          assert.equal(await s.get({ kind: 'Cluster', project: 'p1', name: 'nope' }), undefined);
          const input = cluster('p1', 'a', 1);
          const created = await s.create(input);
          (input.spec as { nodePools: { replicas: number }[] }).nodePools[0]!.replicas = 99;
          (created.spec as { nodePools: { replicas: number }[] }).nodePools[0]!.replicas = 98;
          const got = await s.get({ kind: 'Cluster', project: 'p1', name: 'a' });
          assert.deepEqual(got!.spec, clusterSpec(1));
          (got!.spec as { nodePools: { replicas: number }[] }).nodePools[0]!.replicas = 97;
          assert.deepEqual((await s.get({ kind: 'Cluster', project: 'p1', name: 'a' }))!.spec, clusterSpec(1));
        } finally {
          await s.close();
        }
      });
    });

    describe('list', () => {
      async function seeded(): Promise<StoreUnderTest> {
        const s = await open();
        for (const [p, n, labels] of [
          ['p2', 'b', { tier: 'web', env: 'prod' }],
          ['p1', 'c', { tier: 'db' }],
          ['p1', 'a', { tier: 'web' }],
          ['p2', 'a', {}],
          ['p1', 'b', { env: 'dev' }],
          // A project whose name extends another's: (project, name) order, not string order.
          ['p1-x', 'a', {}],
        ] as const) {
          await s.create(cluster(p, n, 1, { labels: { ...labels } }));
        }
        await s.create(project('p1'));
        return s;
      }
      const names = (items: Resource[]) => items.map((i) => `${i.metadata.project ?? ''}/${i.metadata.name}`);

      test('orders by (project, name), filters by project, returns a revision to watch from', async () => {
        const s = await seeded();
        try {
          const all = await s.list('Cluster');
          assert.deepEqual(names(all.items), ['p1/a', 'p1/b', 'p1/c', 'p1-x/a', 'p2/a', 'p2/b']);
          assert.ok(Number(all.resourceVersion) >= Math.max(...all.items.map(rv)));
          assert.equal(all.continue, undefined);
          assert.deepEqual(names((await s.list('Cluster', { project: 'p2' })).items), ['p2/a', 'p2/b']);
          assert.deepEqual(names((await s.list('Project')).items), ['/p1']);
          assert.deepEqual((await s.list('Project', { project: 'p1' })).items, []);
          assert.deepEqual((await s.list('Cluster', { project: '' })).items, []);
          await rejectsApi(s.list('Gadget'), 400, 'kind');
        } finally {
          await s.close();
        }
      });

      test('label selectors, equality- and set-based', async () => {
        const s = await seeded();
        try {
          const sel = async (labelSelector: string) => names((await s.list('Cluster', { labelSelector })).items);
          assert.deepEqual(await sel('tier=web'), ['p1/a', 'p2/b']);
          assert.deepEqual(await sel('tier==web'), ['p1/a', 'p2/b']);
          assert.deepEqual(await sel('tier!=web'), ['p1/b', 'p1/c', 'p1-x/a', 'p2/a']);
          assert.deepEqual(await sel('env'), ['p1/b', 'p2/b']);
          assert.deepEqual(await sel('!env'), ['p1/a', 'p1/c', 'p1-x/a', 'p2/a']);
          assert.deepEqual(await sel('tier in (web, db)'), ['p1/a', 'p1/c', 'p2/b']);
          assert.deepEqual(await sel('tier notin (web)'), ['p1/b', 'p1/c', 'p1-x/a', 'p2/a']);
          assert.deepEqual(await sel('tier=web,env=prod'), ['p2/b']);
          assert.deepEqual(await sel(' tier = web , !env '), ['p1/a']);
          assert.deepEqual(await sel(''), ['p1/a', 'p1/b', 'p1/c', 'p1-x/a', 'p2/a', 'p2/b']);
          for (const bad of ['tier=web,', '=web', 'tier in web', 'tier in ()', 'tier ~ web', 'a=b=c', '-x', 'tier in (a', 'x y', 'a/b/c']) {
            await rejectsApi(s.list('Cluster', { labelSelector: bad }), 400, 'labelSelector');
          }
          assert.deepEqual(await sel('tier='), [], 'tier= matches an empty value only');
        } finally {
          await s.close();
        }
      });

      test('pagination with limit and continue, also combined with a selector and a project', async () => {
        const s = await seeded();
        try {
          const p1 = await s.list('Cluster', { limit: 2 });
          assert.deepEqual(names(p1.items), ['p1/a', 'p1/b']);
          assert.ok(p1.continue);
          const p2 = await s.list('Cluster', { limit: 2, continue: p1.continue });
          assert.deepEqual(names(p2.items), ['p1/c', 'p1-x/a']);
          assert.equal(p2.resourceVersion, p1.resourceVersion, 'every page carries the first page revision');
          const p3 = await s.list('Cluster', { limit: 2, continue: p2.continue });
          assert.deepEqual(names(p3.items), ['p2/a', 'p2/b']);
          assert.equal(p3.continue, undefined, 'no token on the last page');

          const w1 = await s.list('Cluster', { limit: 1, labelSelector: 'tier=web' });
          assert.deepEqual(names(w1.items), ['p1/a']);
          const w2 = await s.list('Cluster', { limit: 1, labelSelector: 'tier=web', continue: w1.continue });
          assert.deepEqual(names(w2.items), ['p2/b']);
          assert.equal(w2.continue, undefined);

          const exact = await s.list('Cluster', { project: 'p2', limit: 2 });
          assert.equal(exact.items.length, 2);
          assert.equal(exact.continue, undefined, 'a page that ends exactly at the end has no token');

          // Pages are read at (or after) the first page's revision: nothing is listed twice or skipped.
          const first = await s.list('Cluster', { limit: 3 });
          await s.create(cluster('p1', 'aa')); // before the cursor: a watch from the list revision sees it
          const rest = await s.list('Cluster', { limit: 10, continue: first.continue });
          const seen = [...names(first.items), ...names(rest.items)];
          assert.equal(new Set(seen).size, seen.length, `duplicates in ${seen}`);
          for (const n of ['p1/a', 'p1/b', 'p1/c', 'p1-x/a', 'p2/a', 'p2/b']) assert.ok(seen.includes(n), `${n} missing from ${seen}`);

          await rejectsApi(s.list('Cluster', { continue: 'garbage!' }), 400, 'continue');
          await rejectsApi(s.list('Cluster', { continue: Buffer.from('{"k":"Cluster"}').toString('base64url') }), 400, 'continue');
          await rejectsApi(s.list('Project', { continue: p1.continue }), 400, 'continue');
          await rejectsApi(s.list('Cluster', { limit: -1 }), 400, 'limit');
          await rejectsApi(s.list('Cluster', { limit: 1.5 }), 400, 'limit');
        } finally {
          await s.close();
        }
      });
    });

    describe('update', () => {
      test('preconditions: 422 without resourceVersion, 409 when stale, 404 when missing, 409 on uid mismatch', async () => {
        const s = await open();
        try {
          const c = await s.create(cluster('p', 'a'));
          const noRv = structuredClone(c);
          delete noRv.metadata.resourceVersion;
          await rejectsApi(s.update(noRv), 422, 'metadata.resourceVersion');
          const v2 = await s.update({ ...c, spec: clusterSpec(2) });
          await rejectsApi(s.update({ ...c, spec: clusterSpec(3) }), 409, 'metadata.resourceVersion');
          await rejectsApi(s.update(cluster('p', 'missing')), 422, 'metadata.resourceVersion');
          const missing = cluster('p', 'missing');
          missing.metadata.resourceVersion = c.metadata.resourceVersion;
          await rejectsApi(s.update(missing), 404);
          const wrongUid = structuredClone(v2);
          wrongUid.metadata.uid = 'other';
          wrongUid.spec = clusterSpec(9);
          await rejectsApi(s.update(wrongUid), 409);
        } finally {
          await s.close();
        }
      });

      test('generation only on spec change; keeps uid, creationTimestamp, status; ignores argument status', async () => {
        const s = await open();
        try {
          const c = await s.create(object('Cluster', 'p', 'a', { provider: 'sim', nodePools: [{ name: 'pool', roles: ['worker'], replicas: 1 }] }));
          const st = await s.updateStatus({ ...c, status: { phase: 'Ready' } });
          assert.equal(st.metadata.generation, 1, 'status does not bump generation');
          const labelled = await s.update({ ...st, metadata: { ...st.metadata, labels: { a: 'b' } }, status: { phase: 'Failed' } });
          assert.equal(labelled.metadata.generation, 1, 'labels do not bump generation');
          assert.deepEqual(labelled.status, { phase: 'Ready' }, 'status in the argument is ignored');
          assert.equal(labelled.metadata.uid, c.metadata.uid);
          assert.equal(labelled.metadata.creationTimestamp, c.metadata.creationTimestamp);
          const reordered = await s.update({ ...labelled, spec: { nodePools: [{ replicas: 1, roles: ['worker'], name: 'pool' }], provider: 'sim' } });
          assert.equal(reordered.metadata.resourceVersion, labelled.metadata.resourceVersion, 'key order is not a change');
          const bumped = await s.update({ ...labelled, spec: clusterSpec(2, 'sim') });
          assert.equal(bumped.metadata.generation, 2);
          assert.ok(rv(bumped) > rv(labelled));
          const removedLabels = structuredClone(bumped);
          delete removedLabels.metadata.labels;
          const r = await s.update(removedLabels);
          assert.equal(r.metadata.labels, undefined, 'labels are replaced, not merged');
          assert.equal(r.metadata.generation, 2);
        } finally {
          await s.close();
        }
      });

      test('a no-op update keeps the revision and emits nothing', async () => {
        const s = await open();
        try {
          const c = await s.create(cluster('p', 'a', 1, { labels: { a: 'b' } }));
          const w = collect(s, { kind: 'Cluster' });
          const same = await s.update({ ...c, metadata: { ...c.metadata, annotations: {} } });
          assert.deepEqual(same, c);
          const st = await s.updateStatus({ ...c }); // status absent == absent
          assert.equal(st.metadata.resourceVersion, c.metadata.resourceVersion);
          await barrier(s, 'Cluster');
          assert.deepEqual(w.summary(), []);
        } finally {
          await s.close();
        }
      });

      test('updateStatus changes only status', async () => {
        const s = await open();
        try {
          const c = await s.create(cluster('p', 'a', 1));
          const st = await s.updateStatus({ ...c, spec: clusterSpec(50), metadata: { ...c.metadata, labels: { x: 'y' } }, status: { phase: 'Ready' } });
          assert.deepEqual(st.spec, clusterSpec(1));
          assert.equal(st.metadata.labels, undefined);
          assert.equal(st.metadata.generation, 1);
          assert.deepEqual(st.status, { phase: 'Ready' });
          assert.ok(rv(st) > rv(c));
          await rejectsApi(s.updateStatus({ ...c, status: { phase: 'Failed' } }), 409);
          const noRv = structuredClone(st);
          delete noRv.metadata.resourceVersion;
          await rejectsApi(s.updateStatus(noRv), 422, 'metadata.resourceVersion');
        } finally {
          await s.close();
        }
      });

      test('concurrent writers: of updates from one revision exactly one wins; of creates of one name exactly one', async () => {
        const s = await open();
        try {
          const c = await s.create(cluster('p', 'a', 1));
          const outcomes = await Promise.allSettled(
            [2, 3, 4, 5, 6].map((n) => (n % 2 ? s.update({ ...c, spec: clusterSpec(n) }) : s.updateStatus({ ...c, status: { phase: n === 2 ? 'Ready' : 'Degraded' } }))),
          );
          const won = outcomes.filter((o) => o.status === 'fulfilled');
          assert.equal(won.length, 1, JSON.stringify(outcomes.map((o) => o.status)));
          for (const o of outcomes) if (o.status === 'rejected') assert.equal((o.reason as ApiError).code, 409);
          const creates = await Promise.allSettled([1, 2, 3, 4].map((n) => s.create(cluster('p', 'race', n))));
          assert.equal(creates.filter((o) => o.status === 'fulfilled').length, 1);
          for (const o of creates) if (o.status === 'rejected') assert.equal((o.reason as ApiError).code, 409);
          // Increments from many writers with read-modify-write retries: none is lost.
          const counter = await s.create(cluster('p', 'counter', 0));
          const bump = async () => {
            for (;;) {
              const cur = (await s.get({ kind: 'Cluster', project: 'p', name: 'counter' }))!;
              const n = (cur.spec as { nodePools: { replicas: number }[] }).nodePools[0]!.replicas;
              try {
                return await s.update({ ...cur, spec: clusterSpec(n + 1) });
              } catch (err) {
                if (!(err instanceof ApiError && err.code === 409)) throw err;
              }
            }
          };
          await Promise.all(Array.from({ length: 8 }, bump));
          const final = (await s.get({ kind: 'Cluster', project: 'p', name: 'counter' }))!;
          assert.deepEqual(final.spec, clusterSpec(8));
          assert.equal(final.metadata.generation, counter.metadata.generation! + 8);
        } finally {
          await s.close();
        }
      });
    });

    describe('delete and finalizers', () => {
      test('without finalizers the object is removed with a DELETED event at the removal revision', async () => {
        const s = await open();
        try {
          const c = await s.create(cluster('p', 'a'));
          const w = collect(s, { kind: 'Cluster' });
          const res = await s.delete({ kind: 'Cluster', project: 'p', name: 'a' });
          assert.equal(res.removed, true);
          assert.ok(rv(res.object) > rv(c), 'the result carries the removal revision');
          assert.equal(await s.get({ kind: 'Cluster', project: 'p', name: 'a' }), undefined);
          await barrier(s, 'Cluster');
          assert.deepEqual(w.summary(), ['DELETED a']);
          assert.equal(rv(w.real()[0]!), rv(res.object));
          await rejectsApi(s.delete({ kind: 'Cluster', project: 'p', name: 'a' }), 404);
          const again = await s.create(cluster('p', 'a'));
          assert.notEqual(again.metadata.uid, c.metadata.uid, 'a re-created object is a new incarnation');
        } finally {
          await s.close();
        }
      });

      test('finalizers: deletionTimestamp once, second delete is a no-op, last finalizer removal deletes', async () => {
        const s = await open();
        try {
          const c = await s.create(cluster('p', 'a', 1, { finalizers: ['example.com/f1', 'example.com/f2'] }));
          const w = collect(s, { kind: 'Cluster' });
          const d1 = await s.delete({ kind: 'Cluster', project: 'p', name: 'a' });
          assert.equal(d1.removed, false);
          assert.ok(d1.object.metadata.deletionTimestamp);
          assert.equal(d1.object.metadata.generation, 1);
          assert.ok(rv(d1.object) > rv(c));
          const d2 = await s.delete({ kind: 'Cluster', project: 'p', name: 'a' });
          assert.deepEqual(d2, { object: d1.object, removed: false });
          // Adding a finalizer while deleting is refused; removing one is fine; spec can still change.
          await rejectsApi(
            s.update({ ...d1.object, metadata: { ...d1.object.metadata, finalizers: ['example.com/f1', 'example.com/f2', 'example.com/f3'] } }),
            422,
            'metadata.finalizers',
          );
          const one = await s.update({ ...d1.object, metadata: { ...d1.object.metadata, finalizers: ['example.com/f2'] }, spec: clusterSpec(5) });
          assert.equal(one.metadata.deletionTimestamp, d1.object.metadata.deletionTimestamp);
          assert.equal(one.metadata.generation, 2);
          await rejectsApi(s.create(cluster('p', 'a')), 409); // creating while terminating
          const gone = await s.update({ ...one, metadata: { ...one.metadata, finalizers: [] } });
          assert.equal(gone.metadata.finalizers, undefined);
          assert.ok(rv(gone) > rv(one));
          assert.equal(await s.get({ kind: 'Cluster', project: 'p', name: 'a' }), undefined);
          await barrier(s, 'Cluster');
          assert.deepEqual(w.summary(), ['MODIFIED a', 'MODIFIED a', 'DELETED a']);
          assert.deepEqual(w.real().map(rv), [rv(d1.object), rv(one), rv(gone)]);
          assert.equal(w.real()[2]!.object.metadata.uid, c.metadata.uid);
        } finally {
          await s.close();
        }
      });

      test('resourceVersion precondition on delete', async () => {
        const s = await open();
        try {
          const c = await s.create(cluster('p', 'a'));
          const c2 = await s.update({ ...c, spec: clusterSpec(2) });
          await rejectsApi(s.delete({ kind: 'Cluster', project: 'p', name: 'a' }, { resourceVersion: c.metadata.resourceVersion }), 409);
          const res = await s.delete({ kind: 'Cluster', project: 'p', name: 'a' }, { resourceVersion: c2.metadata.resourceVersion });
          assert.equal(res.removed, true);
        } finally {
          await s.close();
        }
      });
    });

    describe('watch', () => {
      test('from now, from a revision (replay then live, no gap or duplicate), stop', async () => {
        const s = await open();
        try {
          const a = await s.create(cluster('p', 'a'));
          const a2 = await s.update({ ...a, spec: clusterSpec(2) });
          await s.create(cluster('p', 'b'));
          await barrier(s, 'Cluster');
          const now = collect(s, { kind: 'Cluster' });
          const fromA = collect(s, { kind: 'Cluster', resourceVersion: a.metadata.resourceVersion });
          const fromZero = collect(s, { kind: 'Cluster', resourceVersion: '0' });
          assert.deepEqual(fromA.events, [], 'replay is delivered after watch() returns');
          const c = await s.create(cluster('p', 'c'));
          await barrier(s, 'Cluster');
          assert.deepEqual(now.summary(), ['ADDED c']);
          assert.deepEqual(fromA.summary(), ['MODIFIED a', 'ADDED b', 'ADDED c']);
          assert.equal(rv(fromA.real()[0]!), rv(a2));
          assert.deepEqual(fromZero.summary(), ['ADDED c']);
          const revs = fromA.events.map(rv);
          assert.deepEqual(revs, [...revs].sort((x, y) => x - y), 'in revision order');
          assert.equal(new Set(revs).size, revs.length, 'no duplicates');
          fromA.watch.stop();
          const stoppedAt = fromA.events.length;
          await s.delete({ kind: 'Cluster', project: 'p', name: 'c' });
          await barrier(s, 'Cluster');
          assert.equal(fromA.events.length, stoppedAt, 'nothing after stop()');
          assert.deepEqual(now.summary(), ['ADDED c', 'DELETED c']);
          const replayOnly = collect(s, { kind: 'Cluster', resourceVersion: c.metadata.resourceVersion });
          await barrier(s, 'Cluster');
          assert.deepEqual(replayOnly.summary(), ['DELETED c']);
        } finally {
          await s.close();
        }
      });

      test('list then watch from the list revision misses nothing', async () => {
        const s = await open();
        try {
          const empty = await s.list('Cluster');
          assert.ok(Number(empty.resourceVersion) >= 1, 'a list never returns "0"');
          await s.create(cluster('p', 'a')); // between the list and the watch
          const w = collect(s, { kind: 'Cluster', resourceVersion: empty.resourceVersion });
          await barrier(s, 'Cluster');
          assert.deepEqual(w.summary(), ['ADDED a']);
        } finally {
          await s.close();
        }
      });

      test('filters by kind, project and label selector; leaving the selector is a MODIFIED event', async () => {
        const s = await open();
        try {
          const start = await s.currentRevision();
          const byKind = collect(s, { kind: 'Project' });
          const byProject = collect(s, { kind: 'Cluster', project: 'p2' });
          const web = collect(s, { kind: 'Cluster', labelSelector: 'tier=web' });
          await s.create(project('p2'));
          const a = await s.create(cluster('p1', 'a', 1, { labels: { tier: 'web' } }));
          await s.create(cluster('p2', 'b', 1, { labels: { tier: 'db' } }));
          const left = await s.update({ ...a, metadata: { ...a.metadata, labels: { tier: 'db' } } });
          const outside = await s.update({ ...left, spec: clusterSpec(7) }); // outside the selector: not delivered
          const back = await s.update({ ...outside, metadata: { ...outside.metadata, labels: { tier: 'web' } } });
          await s.delete({ kind: 'Cluster', project: 'p1', name: 'a' });
          await barrier(s, 'Project');
          await barrier(s, 'Cluster', 'p9', { tier: 'web' });
          assert.deepEqual(byKind.summary(), ['ADDED p2']);
          assert.deepEqual(byProject.summary(), ['ADDED b']);
          assert.deepEqual(web.summary(), ['ADDED a', 'MODIFIED a', 'MODIFIED a', 'DELETED a']);
          assert.deepEqual(web.real()[1]!.object.metadata.labels, { tier: 'db' });
          assert.equal(rv(web.real()[2]!), rv(back));
          // The same through replay.
          const replay = collect(s, { kind: 'Cluster', labelSelector: 'tier=web', resourceVersion: start });
          await barrier(s, 'Cluster', 'p9', { tier: 'web' });
          assert.deepEqual(replay.summary(), web.summary());
          assert.throws(() => s.watch({ labelSelector: 'a in (' }, () => {}), (e: unknown) => e instanceof ApiError && e.code === 400);
          assert.throws(() => s.watch({ kind: 'Gadget' }, () => {}), (e: unknown) => e instanceof ApiError && e.code === 400);
        } finally {
          await s.close();
        }
      });

      test('a selector watch gets the DELETED of an update that changes labels and drops the last finalizer', async () => {
        const s = await open();
        try {
          const a = await s.create(cluster('p', 'a', 1, { labels: { tier: 'web' }, finalizers: ['example.com/f'] }));
          const web = collect(s, { kind: 'Cluster', labelSelector: 'tier=web' });
          const { object: deleting } = await s.delete({ kind: 'Cluster', project: 'p', name: 'a' });
          await s.update({ ...deleting, metadata: { ...deleting.metadata, labels: { tier: 'db' }, finalizers: [] } });
          await barrier(s, 'Cluster', 'p', { tier: 'web' });
          assert.deepEqual(web.summary(), ['MODIFIED a', 'DELETED a']);
          const replay = collect(s, { kind: 'Cluster', labelSelector: 'tier=web', resourceVersion: a.metadata.resourceVersion });
          await barrier(s, 'Cluster', 'p', { tier: 'web' });
          assert.deepEqual(replay.summary(), web.summary());
        } finally {
          await s.close();
        }
      });

      test('410 Gone below the retained history; 400 when malformed; a future revision is 410 or waits', async () => {
        const s = await open({ historyLimit: 5 });
        try {
          const first = await s.create(cluster('p', 'o0'));
          for (let i = 1; i < 20; i++) await s.create(cluster('p', `o${i}`));
          await barrier(s, 'Cluster');
          const err = await rejectsApi(() => s.watch({ kind: 'Cluster', resourceVersion: first.metadata.resourceVersion }, () => {}), 410);
          assert.match(err.message, /too old/);
          await rejectsApi(() => s.watch({ resourceVersion: 'abc' }, () => {}), 400, 'resourceVersion');
          const future = String(Number(await s.currentRevision()) + 1_000_000);
          if (target.futureRevisionIsGone) {
            await rejectsApi(() => s.watch({ kind: 'Cluster', resourceVersion: future }, () => {}), 410);
          } else {
            const w = collect(s, { kind: 'Cluster', resourceVersion: future });
            await barrier(s, 'Cluster');
            assert.deepEqual(w.events, [], 'nothing at or below the revision it waits for');
          }
          // The newest events are always kept: resuming from the revision before them is exact.
          const objs = (await s.list('Cluster')).items.filter((o) => !o.metadata.name.startsWith(BARRIER)).sort((x, y) => rv(x) - rv(y));
          const from = objs[objs.length - 3]!.metadata.resourceVersion;
          const ok = collect(s, { kind: 'Cluster', resourceVersion: from });
          await barrier(s, 'Cluster');
          assert.deepEqual(ok.summary(), ['ADDED o18', 'ADDED o19']);
        } finally {
          await s.close();
        }
      });

      test('a throwing handler is logged and does not break the store or other watchers', async () => {
        const logger = testLogger();
        const s = await open({ logger });
        try {
          let calls = 0;
          s.watch({ kind: 'Cluster' }, (e) => {
            if (e.object.metadata.name.startsWith(BARRIER)) return;
            calls++;
            throw new Error('boom');
          });
          const ok = collect(s, { kind: 'Cluster' });
          await s.create(cluster('p', 'a'));
          await s.create(cluster('p', 'b'));
          await barrier(s, 'Cluster');
          assert.equal(calls, 2, 'the throwing watcher keeps its subscription');
          assert.equal(ok.real().length, 2);
          assert.equal(logger.errors.length, 2);
        } finally {
          await s.close();
        }
      });

      test('a handler may call the store: every watcher still sees each event once, in revision order', async () => {
        const s = await open();
        try {
          const seen: number[] = [];
          const before = collect(s, { kind: 'Cluster' });
          let active = false;
          const pending: Promise<unknown>[] = [];
          s.watch({ kind: 'Cluster' }, (e) => {
            assert.equal(active, false, 'handler re-entered');
            active = true;
            if (!e.object.metadata.name.startsWith(BARRIER)) seen.push(rv(e));
            if (e.type === 'ADDED' && !e.object.metadata.name.startsWith(BARRIER)) pending.push(s.updateStatus({ ...e.object, status: { phase: 'Ready' } }));
            active = false;
          });
          const after = collect(s, { kind: 'Cluster' });
          await s.create(cluster('p', 'a'));
          await s.create(cluster('p', 'b'));
          await waitFor('two status writes', () => pending.length === 2);
          await Promise.all(pending);
          await barrier(s, 'Cluster');
          const revs = (w: Collector) => w.real().map(rv);
          assert.equal(revs(before).length, 4);
          assert.deepEqual(revs(before), [...revs(before)].sort((x, y) => x - y));
          assert.deepEqual(revs(after), revs(before));
          assert.deepEqual(seen, revs(before), 'the handler was called once per event, never re-entered');
          assert.deepEqual((await s.get({ kind: 'Cluster', project: 'p', name: 'b' }))!.status, { phase: 'Ready' });
        } finally {
          await s.close();
        }
      });

      test('stop() from inside a handler; watch() from inside a handler; each watcher gets its own copy', async () => {
        const s = await open();
        try {
          let inner: Collector | undefined;
          const outer: string[] = [];
          const w = s.watch({ kind: 'Cluster' }, (e) => {
            outer.push(e.object.metadata.name);
            (e.object.metadata as { name: string }).name = 'mutated';
            inner ??= collect(s, { kind: 'Cluster', resourceVersion: '0' });
            w.stop();
          });
          const other = collect(s, { kind: 'Cluster' });
          await s.create(cluster('p', 'a'));
          await waitFor('the first event', () => outer.length > 0);
          await s.create(cluster('p', 'b'));
          await barrier(s, 'Cluster');
          assert.deepEqual(outer, ['a']);
          assert.deepEqual(other.summary(), ['ADDED a', 'ADDED b']);
          assert.deepEqual(inner!.summary(), ['ADDED b']);
        } finally {
          await s.close();
        }
      });

      test('a watch of every kind sees each kind in revision order', async () => {
        const s = await open();
        try {
          const all = collect(s, {});
          await s.create(project('p'));
          const a = await s.create(cluster('p', 'a'));
          await s.create(secret('p', 's', { k: 'v' }));
          await s.update({ ...a, spec: clusterSpec(2) });
          for (const k of ['Project', 'Cluster', 'Secret'] as const) await barrier(s, k);
          const byKind = (kind: string) => all.real().filter((e) => e.object.kind === kind);
          assert.deepEqual(byKind('Cluster').map((e) => e.type), ['ADDED', 'MODIFIED']);
          assert.deepEqual(byKind('Project').map((e) => e.type), ['ADDED']);
          assert.deepEqual(byKind('Secret')[0]!.object.spec, { type: 'opaque', data: { k: 'v' } });
          const revs = byKind('Cluster').map(rv);
          assert.ok(revs[1]! > revs[0]!);
        } finally {
          await s.close();
        }
      });
    });

    describe('encryption at rest', () => {
      test('Secret spec is stored encrypted and read, listed and watched in plaintext', async () => {
        const s = await open();
        try {
          const plaintext = 'hunter2-very-secret-value';
          const w = collect(s, { kind: 'Secret' });
          const sec = await s.create(secret('p', 'db-password', { password: plaintext }, { labels: { visible: 'label-value' } }));
          const sec2 = await s.update({ ...sec, spec: { type: 'opaque', data: { password: plaintext + '-rotated' } } });
          assert.equal(sec2.metadata.generation, 2);
          assert.deepEqual((await s.get({ kind: 'Secret', project: 'p', name: 'db-password' }))!.spec, { type: 'opaque', data: { password: plaintext + '-rotated' } });
          assert.deepEqual((await s.list('Secret')).items[0]!.spec, sec2.spec);
          await barrier(s, 'Secret');
          assert.deepEqual(w.real().map((e) => e.object.spec), [sec.spec, sec2.spec]);
          const replay = collect(s, { kind: 'Secret', resourceVersion: sec.metadata.resourceVersion });
          await barrier(s, 'Secret');
          assert.deepEqual(replay.real().map((e) => e.object.spec), [sec2.spec]);
          const raw = await target.raw(s, { kind: 'Secret', project: 'p', name: 'db-password' });
          assert.ok(!raw.includes(plaintext), 'plaintext in the stored object');
          assert.ok(raw.includes('$encrypted') && raw.includes('label-value'), `sanity: the stored object: ${raw.slice(0, 300)}`);
        } finally {
          await s.close();
        }
      });
    });

    describe('series, audit log and tokens', () => {
      test('series: append keeps samples by age and count, range reads them in time order, drop removes one series', async () => {
        const s = await open();
        try {
          const t = (m: number) => new Date(Date.UTC(2026, 0, 1, 0, m)).toISOString();
          for (let m = 0; m < 10; m++) await s.series.append('health/p/a', t(m), { m }, { retainSince: t(m - 5), maxPoints: 100 });
          assert.deepEqual((await s.series.range('health/p/a', t(-1))).map((x) => (x.sample as { m: number }).m), [4, 5, 6, 7, 8, 9]);
          await s.series.append('health/p/a', t(10), { m: 10 }, { retainSince: t(0), maxPoints: 3 });
          assert.deepEqual((await s.series.range('health/p/a', t(-1))).map((x) => x.time), [t(8), t(9), t(10)]);
          await s.series.append('health/p/b', t(1), { other: true }, { retainSince: t(0), maxPoints: 3 });
          assert.deepEqual((await s.series.range('health/p/a', t(9))).map((x) => x.time), [t(10)]);
          assert.equal(await s.series.drop('health/p/a'), 3);
          assert.deepEqual(await s.series.range('health/p/a', t(-1)), []);
          assert.equal((await s.series.range('health/p/b', t(-1))).length, 1);
        } finally {
          await s.close();
        }
      });

      test("series: the newest record is one per series, replaced on each write, kept apart from the samples and dropped with them", async () => {
        const s = await open();
        try {
          const t = (m: number) => new Date(Date.UTC(2026, 0, 1, 0, m)).toISOString();
          const key = 'health/p/with-a-latest-record';
          assert.equal(await s.series.latest(key), undefined);
          const report = { cluster: 'c', healthy: false, checks: [{ component: 'endpoint', ok: false, message: 'timeout after 2000 ms', latencyMs: 2001 }], nodes: [] };
          await s.series.setLatest(key, t(1), report);
          assert.deepEqual(await s.series.latest(key), { time: t(1), value: report });
          await s.series.setLatest(key, t(2), { cluster: 'c', healthy: true, checks: [], nodes: [] });
          assert.deepEqual(await s.series.latest(key), { time: t(2), value: { cluster: 'c', healthy: true, checks: [], nodes: [] } }, 'replaced, nothing of the first left');
          await s.series.setLatest('health/p/other', t(3), { other: true });
          assert.deepEqual(await s.series.range(key, t(-1)), [], 'not a sample');
          await s.series.append(key, t(2), { m: 2 }, { retainSince: t(0), maxPoints: 10 });
          assert.equal(await s.series.drop(key), 1, 'drop counts samples');
          assert.equal(await s.series.latest(key), undefined);
          assert.deepEqual((await s.series.latest('health/p/other'))?.value, { other: true });
        } finally {
          await s.close();
        }
      });

      test('audit log: append, list newest first with filters, sinceId, limit and prune', async () => {
        const s = await open();
        try {
          const t = (m: number) => new Date(Date.UTC(2024, 0, 1, 0, m)).toISOString();
          const e1 = await s.audit.append({ time: t(1), user: 'alice', verb: 'create', kind: 'Cluster', project: 'p1', name: 'a', generation: 1, resourceVersion: '1', code: 201 });
          const e2 = await s.audit.append({ time: t(2), user: 'bob', verb: 'update', kind: 'Cluster', project: 'p2', name: 'b', code: 409 });
          const e3 = await s.audit.append({ time: t(3), user: 'alice', verb: 'delete', kind: 'Project', project: '', name: 'p1', code: 200 });
          assert.ok(e1.id < e2.id && e2.id < e3.id, 'ids increase');
          assert.deepEqual(await s.audit.list({ limit: 1 }), [{ id: e3.id, time: t(3), user: 'alice', verb: 'delete', kind: 'Project', project: '', name: 'p1', code: 200 }]);
          assert.deepEqual((await s.audit.list()).map((e) => e.id), [e3.id, e2.id, e1.id]);
          assert.deepEqual((await s.audit.list({ user: 'alice' })).map((e) => e.id), [e3.id, e1.id]);
          assert.deepEqual((await s.audit.list({ project: 'p2' })).map((e) => e.verb), ['update']);
          assert.deepEqual((await s.audit.list({ kind: 'Cluster', user: 'alice' }))[0], { ...e1 });
          assert.deepEqual((await s.audit.list({ sinceId: e1.id })).map((e) => e.id), [e3.id, e2.id]);
          await rejectsApi(s.audit.list({ limit: 0 }), 400, 'limit');
          assert.equal(await s.audit.prune({ before: t(2) }), 1);
          assert.equal(await s.audit.prune({ keep: 1 }), 1);
          assert.deepEqual((await s.audit.list()).map((e) => e.id), [e3.id]);
          const e4 = await s.audit.append({ time: t(4), user: 'c', verb: 'get', kind: 'Cluster', project: 'p', name: 'x' });
          assert.ok(e4.id > e3.id, 'ids are never reused');
        } finally {
          await s.close();
        }
      });

      test('tokens: issue, verify, list without secrets, expiry, revoke', async () => {
        const s = await open();
        try {
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
        } finally {
          await s.close();
        }
      });
    });

    test('a closed store refuses calls', async () => {
      const s = await open();
      await s.close();
      await assert.rejects(s.get({ kind: 'Cluster', project: 'p', name: 'a' }), /closed/);
      await s.close(); // idempotent
      await flush();
    });
  });
}
