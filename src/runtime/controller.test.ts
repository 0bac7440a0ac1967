import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { Registry } from 'prom-client';
import { ApiError } from '../api/errors.js';
import { keyString, type ObjectKey, type Resource } from '../api/meta.js';
import type { Store } from '../store/types.js';
import { Controller, TerminalError, type ReconcileContext, type Reconciler, type Result } from './controller.js';
import { ControllerManager } from './manager.js';
import { RuntimeMetrics } from './metrics.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { cluster, gate, machine, memStore, waitFor, within, wrapStore } from './test-helpers.js';

type Handler = (key: ObjectKey, ctx: ReconcileContext, n: number) => Promise<Result>;

/** A reconciler that records every call and delegates to a per-test handler. */
class TestReconciler implements Reconciler {
  readonly calls: string[] = [];
  readonly log: string[] = [];
  private readonly counts = new Map<string, number>();
  constructor(private readonly handler: Handler = async () => undefined) {}
  async reconcile(key: ObjectKey, ctx: ReconcileContext): Promise<Result> {
    const k = keyString(key);
    const n = (this.counts.get(k) ?? 0) + 1;
    this.counts.set(k, n);
    this.calls.push(k);
    return this.handler(key, ctx, n);
  }
  count(k: string): number {
    return this.counts.get(k) ?? 0;
  }
}

async function metricValue(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const m = registry.getSingleMetric(name);
  if (!m) return 0;
  const data = await m.get();
  const v = data.values.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return v?.value ?? 0;
}

const K = (name: string): ObjectKey => ({ kind: 'Cluster', project: 'p1', name });

function newController(store: Store, reconciler: Reconciler, extra: Partial<ConstructorParameters<typeof Controller>[0]> = {}) {
  return new Controller({ name: 'test', kind: 'Cluster', store, reconciler, resyncPeriodMs: 0, ...extra });
}

test('many adds of one key while another is in flight yield one reconcile', async () => {
  const store = await memStore();
  const blocker = gate();
  const r = new TestReconciler(async (key) => {
    if (key.name === 'blocker') await blocker.promise;
  });
  const c = newController(store, r, { workers: 1 });
  await c.start();
  c.enqueue(K('blocker'));
  await waitFor(() => r.count('Cluster/p1/blocker') === 1, 'blocker running');
  for (let i = 0; i < 50; i++) c.enqueue(K('a'));
  assert.equal(c.queueStats().ready, 1);
  blocker.open();
  await waitFor(() => r.count('Cluster/p1/a') === 1, 'a reconciled');
  await sleep(50);
  assert.equal(r.count('Cluster/p1/a'), 1);
  await c.stop();
  await store.close();
});

test('never two concurrent reconciles of one key; different keys run in parallel', async () => {
  const store = await memStore();
  const active = new Map<string, number>();
  let maxSameKey = 0;
  let maxOverall = 0;
  let overall = 0;
  const bothStarted = { a: gate(), b: gate() };
  let c!: Controller;
  const r = new TestReconciler(async (key, _ctx, n) => {
    const k = key.name;
    active.set(k, (active.get(k) ?? 0) + 1);
    overall++;
    maxSameKey = Math.max(maxSameKey, active.get(k)!);
    maxOverall = Math.max(maxOverall, overall);
    try {
      if (n === 1) {
        // a and b each wait until the other has started: only possible if they run in parallel.
        (k === 'a' ? bothStarted.a : bothStarted.b).open();
        const other = k === 'a' ? bothStarted.b : bothStarted.a;
        assert.notEqual(await within(other.promise, 5000), 'pending', 'the other key did not start in parallel');
      }
      // Re-add the key being processed: it must wait until this reconcile ends.
      if (n < 5) c.enqueue(key);
      await sleep(2);
    } finally {
      active.set(k, active.get(k)! - 1);
      overall--;
    }
  });
  c = newController(store, r, { workers: 2 });
  await c.start();
  c.enqueue(K('a'));
  c.enqueue(K('b'));
  await waitFor(() => r.count('Cluster/p1/a') === 5 && r.count('Cluster/p1/b') === 5, 'five rounds each');
  await c.stop();
  assert.equal(maxSameKey, 1);
  assert.equal(maxOverall, 2);
  await store.close();
});

test('a failing key retries with growing per-key backoff while other keys are not delayed', async () => {
  const store = await memStore();
  const registry = new Registry();
  const metrics = new RuntimeMetrics(registry);
  const events: string[] = [];
  const attempts: number[] = [];
  let c!: Controller;
  const r = new TestReconciler(async (key, _ctx, n) => {
    events.push(`${key.name}#${n}`);
    if (key.name === 'bad') {
      attempts.push(Date.now());
      if (n <= 4) {
        c.enqueue(K(`good${n}`));
        throw new Error(`boom ${n}`);
      }
    }
    return undefined;
  });
  c = newController(store, r, { backoff: { baseDelayMs: 40, maxDelayMs: 10_000 }, metrics });
  await c.start();
  c.enqueue(K('bad'));
  await waitFor(() => r.count('Cluster/p1/bad') === 5, 'bad succeeds on the fifth attempt', 20_000);
  await c.stop();

  const gaps = attempts.slice(1).map((t, i) => t - attempts[i]!);
  const expected = [40, 80, 160, 320];
  gaps.forEach((g, i) => assert.ok(g >= expected[i]! - 5, `gap ${i} was ${g} ms, expected ≥ ${expected[i]} ms`));
  // Each good key, enqueued during a failure, ran before the failing key's next attempt.
  for (let i = 1; i <= 4; i++) {
    assert.ok(events.indexOf(`good${i}#1`) < events.indexOf(`bad#${i + 1}`), `good${i} waited for bad's backoff: ${events}`);
  }
  assert.equal(await metricValue(registry, 'marina_reconcile_total', { controller: 'test', result: 'error' }), 4);
  assert.equal(await metricValue(registry, 'marina_workqueue_retries_total', { controller: 'test' }), 4);
  assert.equal(await metricValue(registry, 'marina_reconcile_total', { controller: 'test', result: 'success' }), 5);
  await store.close();
});

test('requeueAfter reconciles again after the delay, and stops when no longer asked', async () => {
  const store = await memStore();
  const registry = new Registry();
  const r = new TestReconciler(async (_key, _ctx, n) => (n <= 3 ? { requeueAfterMs: 20 } : undefined));
  const c = newController(store, r, { metrics: new RuntimeMetrics(registry) });
  await c.start();
  c.enqueue(K('poll'));
  await waitFor(() => r.count('Cluster/p1/poll') === 4, 'four reconciles');
  await sleep(150);
  assert.equal(r.count('Cluster/p1/poll'), 4);
  assert.equal(c.queueStats().delayed, 0);
  await c.stop();
  assert.equal(await metricValue(registry, 'marina_reconcile_total', { controller: 'test', result: 'requeue' }), 3);
  assert.equal(await metricValue(registry, 'marina_reconcile_total', { controller: 'test', result: 'success' }), 1);
  const text = await registry.metrics();
  for (const name of ['marina_workqueue_depth', 'marina_workqueue_adds_total', 'marina_reconcile_duration_seconds_bucket', 'marina_workqueue_retries_total']) {
    assert.ok(text.includes(name), `${name} exposed`);
  }
  await store.close();
});

test('a terminal error is not retried until the object changes', async () => {
  const store = await memStore();
  const registry = new Registry();
  await store.create(cluster('broken'));
  const r = new TestReconciler(async (_key, _ctx, n) => {
    if (n === 1) throw new TerminalError('spec cannot work');
  });
  const c = newController(store, r, { backoff: { baseDelayMs: 5 }, metrics: new RuntimeMetrics(registry) });
  await c.start();
  await waitFor(() => r.count('Cluster/p1/broken') === 1, 'first reconcile');
  await sleep(150);
  assert.equal(r.count('Cluster/p1/broken'), 1, 'not retried');
  assert.deepEqual(c.terminalFailures().map((f) => [f.key, f.message]), [['Cluster/p1/broken', 'spec cannot work']]);
  assert.equal(await metricValue(registry, 'marina_reconcile_total', { controller: 'test', result: 'terminal' }), 1);

  const cur = (await store.get(K('broken')))!;
  await store.update({ ...cur, metadata: { ...cur.metadata, labels: { fixed: 'yes' } } });
  await waitFor(() => r.count('Cluster/p1/broken') === 2, 'reconciled after the change');
  await waitFor(() => c.terminalFailures().length === 0, 'failure cleared by success');
  await c.stop();
  await store.close();
});

test('start lists existing objects; watch delivers creates, updates and deletes', async () => {
  const store = await memStore();
  for (const n of ['one', 'two', 'three']) await store.create(cluster(n));
  await store.create(machine('m-unrelated', 'one'));
  const r = new TestReconciler();
  const c = newController(store, r);
  await c.start();
  await waitFor(() => r.calls.length === 3, 'initial list reconciled');
  assert.deepEqual([...r.calls].sort(), ['Cluster/p1/one', 'Cluster/p1/three', 'Cluster/p1/two']);
  await store.create(cluster('four'));
  await waitFor(() => r.count('Cluster/p1/four') === 1, 'created object reconciled');
  await store.delete(K('two'));
  await waitFor(() => r.count('Cluster/p1/two') === 2, 'deleted object reconciled');
  assert.ok(!r.calls.some((k) => k.includes('m-unrelated')), 'other kinds are not enqueued without a watch');
  await c.stop();
  await store.close();
});

test('secondary watches enqueue the mapped owners', async () => {
  const store = await memStore();
  await store.create(cluster('c1'));
  await store.create(cluster('c2'));
  const r = new TestReconciler();
  const c = newController(store, r, {
    watches: [
      {
        kind: 'Machine',
        mapTo: (m: Resource) => [{ kind: 'Cluster', project: m.metadata.project ?? '', name: (m.spec as { cluster: string }).cluster }],
      },
    ],
  });
  await c.start();
  await waitFor(() => r.count('Cluster/p1/c1') === 1 && r.count('Cluster/p1/c2') === 1, 'initial');
  await store.create(machine('c2-a', 'c2'));
  await waitFor(() => r.count('Cluster/p1/c2') === 2, 'machine create maps to its cluster');
  await store.delete({ kind: 'Machine', project: 'p1', name: 'c2-a' });
  await waitFor(() => r.count('Cluster/p1/c2') === 3, 'machine delete maps to its cluster');
  await sleep(30);
  assert.equal(r.count('Cluster/p1/c1'), 1, 'unrelated owner not enqueued');
  assert.ok(!r.calls.some((k) => k.startsWith('Machine/')), 'secondary objects are not reconciled themselves');
  await c.stop();
  await store.close();
});

test('periodic resync enqueues every object without changes', async () => {
  const store = await memStore();
  await store.create(cluster('steady'));
  const r = new TestReconciler();
  const c = newController(store, r, { resyncPeriodMs: 30 });
  await c.start();
  await waitFor(() => r.count('Cluster/p1/steady') >= 3, 'resynced repeatedly');
  await c.stop();
  await store.close();
});

test('a watch that fails with 410 Gone is re-established after a relist', async () => {
  const real = await memStore();
  await real.create(cluster('before'));
  let failures = 0;
  // A thin wrapper over the real store whose first watch of the primary kind fails as expired.
  const store = wrapStore(real, {
    watch: (opts, handler) => {
      if (opts.kind === 'Cluster' && failures++ === 0) throw ApiError.gone('resourceVersion too old');
      return real.watch(opts, handler);
    },
  });
  const r = new TestReconciler();
  const c = newController(store, r, { rewatchBackoff: { baseDelayMs: 10 } });
  await c.start();
  await waitFor(() => r.count('Cluster/p1/before') >= 1, 'listed');
  await real.create(cluster('created-while-broken'));
  await waitFor(() => r.count('Cluster/p1/created-while-broken') >= 1, 'relist or rewatch picks it up');
  await waitFor(() => failures >= 2, 'rewatched');
  await real.create(cluster('after'));
  await waitFor(() => r.count('Cluster/p1/after') === 1, 'the new watch delivers');
  await c.stop();
  await real.close();
});

test('stop waits for in-flight reconciles, then aborts those outliving the grace period', async () => {
  const store = await memStore();
  const release = gate();
  let sawAbort: boolean | undefined;
  const r = new TestReconciler(async (_key, ctx) => {
    await release.promise;
    sawAbort = ctx.signal.aborted;
  });
  const c = newController(store, r);
  await c.start();
  c.enqueue(K('slow'));
  await waitFor(() => r.calls.length === 1, 'in flight');
  const stopped = c.stop();
  assert.equal(await within(stopped, 100), 'pending', 'stop waits for the in-flight reconcile');
  c.enqueue(K('after-stop'));
  release.open();
  await stopped;
  assert.equal(sawAbort, false, 'finished within the grace period: not aborted');
  assert.deepEqual(r.calls, ['Cluster/p1/slow'], 'nothing is handed out after stop');

  let aborted = false;
  const r2 = new TestReconciler(
    (_key, ctx) =>
      new Promise((_resolve, reject) => {
        ctx.signal.addEventListener('abort', () => {
          aborted = true;
          reject(ctx.signal.reason as Error);
        });
      }),
  );
  const c2 = newController(store, r2, { stopGracePeriodMs: 30 });
  await c2.start();
  c2.enqueue(K('stuck'));
  await waitFor(() => r2.calls.length === 1, 'in flight');
  await c2.stop();
  assert.equal(aborted, true);
  assert.equal(c2.queueStats().processing, 0);
  await store.close();
});

test('ControllerManager starts and stops all controllers; a failed start stops the others', async () => {
  const store = await memStore();
  await store.create(cluster('c1'));
  await store.create(machine('m1', 'c1'));
  const rc = new TestReconciler();
  const rm = new TestReconciler();
  const mgr = new ControllerManager([
    new Controller({ name: 'clusters', kind: 'Cluster', store, reconciler: rc, resyncPeriodMs: 0 }),
    new Controller({ name: 'machines', kind: 'Machine', store, reconciler: rm, resyncPeriodMs: 0 }),
  ]);
  assert.throws(() => mgr.add(new Controller({ name: 'clusters', kind: 'Cluster', store, reconciler: rc })), /duplicate/);
  await mgr.start();
  await waitFor(() => rc.calls.length === 1 && rm.calls.length === 1, 'both reconciled');
  assert.ok(mgr.controllers.every((c) => c.isRunning()));
  await mgr.stop();
  assert.ok(mgr.controllers.every((c) => !c.isRunning()));

  const broken = wrapStore(store, {
    list: async (kind, opts) => {
      if (kind === 'Machine') throw new Error('disk on fire');
      return store.list(kind, opts);
    },
  });
  const ok = new Controller({ name: 'clusters', kind: 'Cluster', store: broken, reconciler: new TestReconciler(), resyncPeriodMs: 0 });
  const bad = new Controller({ name: 'machines', kind: 'Machine', store: broken, reconciler: new TestReconciler(), resyncPeriodMs: 0 });
  const mgr2 = new ControllerManager([ok, bad]);
  await assert.rejects(mgr2.start(), /disk on fire/);
  assert.ok(!ok.isRunning() && !bad.isRunning());
  await store.close();
});

test('many calls of several workers listening on the reconcile signal at once raise no MaxListenersExceededWarning', async () => {
  const warnings: string[] = [];
  const onWarning = (w: Error) => {
    if (w.name === 'MaxListenersExceededWarning') warnings.push(w.message);
  };
  process.on('warning', onWarning);
  const store = await memStore();
  const release = gate();
  let signal: AbortSignal | undefined;
  // Like a health pass: several probes at once, each listening on ctx.signal until it ends.
  const probe = (s: AbortSignal) =>
    new Promise<void>((resolve) => {
      const done = () => {
        s.removeEventListener('abort', done);
        resolve();
      };
      s.addEventListener('abort', done);
      void release.promise.then(done);
    });
  const r = new TestReconciler(async (_key, ctx) => {
    signal = ctx.signal;
    await Promise.all(Array.from({ length: 6 }, () => probe(ctx.signal)));
  });
  const c = newController(store, r, { workers: 4 });
  try {
    await c.start();
    for (const name of ['a', 'b', 'c', 'd']) c.enqueue(K(name));
    await waitFor(() => signal !== undefined && getEventListeners(signal, 'abort').length >= 24, '24 probes listening');
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(warnings, []);
    release.open();
    await waitFor(() => getEventListeners(signal!, 'abort').length === 0, 'every probe removed its listener');
  } finally {
    release.open();
    process.off('warning', onWarning);
    await c.stop();
    await store.close();
  }
});
