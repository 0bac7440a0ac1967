import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isApiError } from '../api/errors.js';
import type { ObjectKey, Resource } from '../api/meta.js';
import type { Cluster, ClusterStatus } from '../api/kinds.js';
import { getCondition, setCondition } from '../api/conditions.js';
import { TerminalError } from './controller.js';
import { desiredStatus, reconcileObject, statusEqual, type ObjectHandlers, type Outcome } from './reconcile.js';
import { cluster, memStore, recordEvents } from './test-helpers.js';

const FIN = 'marina.dev/test';
const KEY: ObjectKey = { kind: 'Cluster', project: 'p1', name: 'c1' };

/** Handlers whose outcomes the test scripts; records which step ran. */
function scripted(steps: { reconcile?: (obj: Cluster) => Outcome<ClusterStatus>; finalize?: (obj: Cluster) => Outcome<ClusterStatus> }) {
  const ran: string[] = [];
  const handlers: ObjectHandlers<Cluster> = {
    finalizer: FIN,
    reconcile: async (obj) => {
      ran.push('reconcile');
      return steps.reconcile?.(obj) ?? {};
    },
    finalize: async (obj) => {
      ran.push('finalize');
      return steps.finalize?.(obj) ?? { done: true };
    },
  };
  return { ran, handlers };
}

test('a missing object is done without calling the handlers', async () => {
  const store = await memStore();
  const { ran, handlers } = scripted({});
  assert.equal(await reconcileObject(store, KEY, handlers), undefined);
  assert.deepEqual(ran, []);
  await store.close();
});

test('adds the finalizer, patches status once per reconcile, sets observedGeneration', async () => {
  const store = await memStore();
  await store.create(cluster('c1', 2));
  const rec = await recordEvents(store, 'Cluster');
  const now = new Date('2030-01-01T00:00:00Z');
  let phase: ClusterStatus['phase'] = 'Provisioning';
  const { ran, handlers } = scripted({
    reconcile: (obj) => ({
      status: {
        phase,
        conditions: setCondition(obj.status?.conditions, { type: 'Ready', status: phase === 'Ready' ? 'True' : 'False', reason: phase }, obj.metadata.generation, now),
      },
    }),
  });

  // First pass: finalizer (one update) + status (one updateStatus).
  assert.equal(await reconcileObject(store, KEY, handlers), undefined);
  assert.equal((await rec.delivered()).length, 2);
  let cur = (await store.get(KEY)) as Cluster;
  assert.deepEqual(cur.metadata.finalizers, [FIN]);
  assert.equal(cur.status?.phase, 'Provisioning');
  assert.equal(cur.status?.observedGeneration, 1);
  assert.equal(getCondition(cur.status?.conditions, 'Ready')?.observedGeneration, 1);

  // Same result again: no write at all.
  await reconcileObject(store, KEY, handlers);
  assert.equal((await rec.delivered()).length, 2, 'unchanged status is not written');

  // Status changes: exactly one write.
  phase = 'Ready';
  await reconcileObject(store, KEY, handlers);
  assert.equal((await rec.delivered()).length, 3);

  // Spec change bumps generation; the next pass records it in observedGeneration with one write.
  cur = (await store.get(KEY)) as Cluster;
  await store.update({ ...cur, spec: { ...cur.spec, nodePools: [{ name: 'pool', roles: ['worker'], replicas: 5 }] } });
  assert.equal((await rec.delivered()).length, 4);
  await reconcileObject(store, KEY, handlers);
  assert.equal((await rec.delivered()).length, 5);
  cur = (await store.get(KEY)) as Cluster;
  assert.equal(cur.metadata.generation, 2);
  assert.equal(cur.status?.observedGeneration, 2);
  assert.equal(getCondition(cur.status?.conditions, 'Ready')?.observedGeneration, 2);
  assert.deepEqual(ran, ['reconcile', 'reconcile', 'reconcile', 'reconcile']);
  assert.ok((await rec.delivered()).every((e) => e.type === 'MODIFIED'));
  rec.stop();
  await store.close();
});

test('a mutated status draft is written; draft changes to spec are ignored', async () => {
  const store = await memStore();
  await store.create(cluster('c1'));
  const handlers: ObjectHandlers<Cluster> = {
    finalizer: FIN,
    reconcile: async (obj) => {
      obj.status = { ...obj.status, phase: 'Provisioning', endpoint: 'https://10.0.0.1:6443' };
      obj.spec.nodePools = [];
      return {};
    },
    finalize: async () => ({ done: true }),
  };
  await reconcileObject(store, KEY, handlers);
  const cur = (await store.get(KEY)) as Cluster;
  assert.equal(cur.status?.endpoint, 'https://10.0.0.1:6443');
  assert.equal(cur.spec.nodePools.length, 1);
  await store.close();
});

test('requeueAfterMs is returned; Outcome.error is thrown after the status is persisted', async () => {
  const store = await memStore();
  await store.create(cluster('c1'));
  const poll = scripted({ reconcile: () => ({ status: { phase: 'Provisioning' }, requeueAfterMs: 250 }) });
  assert.deepEqual(await reconcileObject(store, KEY, poll.handlers), { requeueAfterMs: 250 });

  const failing = scripted({
    reconcile: (obj) => ({
      status: { phase: 'Failed', conditions: setCondition(obj.status?.conditions, { type: 'Ready', status: 'False', reason: 'InvalidSpec' }, obj.metadata.generation) },
      requeueAfterMs: 250,
      error: new TerminalError('provider "sim" cannot do that'),
    }),
  });
  await assert.rejects(reconcileObject(store, KEY, failing.handlers), TerminalError);
  const cur = (await store.get(KEY)) as Cluster;
  assert.equal(cur.status?.phase, 'Failed');
  assert.equal(getCondition(cur.status?.conditions, 'Ready')?.reason, 'InvalidSpec');

  // A thrown error skips the status write.
  const throwing: ObjectHandlers<Cluster> = {
    finalizer: FIN,
    reconcile: async () => {
      throw new Error('network down');
    },
    finalize: async () => ({ done: true }),
  };
  const before = cur.metadata.resourceVersion;
  await assert.rejects(reconcileObject(store, KEY, throwing), /network down/);
  assert.equal((await store.get(KEY))!.metadata.resourceVersion, before);
  await store.close();
});

test('a concurrent write makes the status patch fail with a retryable 409', async () => {
  const store = await memStore();
  await store.create(cluster('c1'));
  const handlers: ObjectHandlers<Cluster> = {
    finalizer: FIN,
    reconcile: async (obj) => {
      // Someone else changes the object while we compute.
      const cur = (await store.get(KEY))!;
      await store.update({ ...cur, metadata: { ...cur.metadata, labels: { touched: 'yes' } } });
      return { status: { phase: 'Ready' } };
    },
    finalize: async () => ({ done: true }),
  };
  await assert.rejects(reconcileObject(store, KEY, handlers), (err) => isApiError(err) && err.code === 409);
  assert.equal(((await store.get(KEY)) as Cluster).status?.phase, undefined);
  await store.close();
});

test('deletion: finalize until done, then the finalizer is removed and the object goes', async () => {
  const store = await memStore();
  await store.create(cluster('c1'));
  let remaining = 2;
  const { ran, handlers } = scripted({
    reconcile: () => ({ status: { phase: 'Ready' } }),
    finalize: () => (--remaining > 0 ? { status: { phase: 'Deleting' }, requeueAfterMs: 10 } : { done: true }),
  });
  await reconcileObject(store, KEY, handlers);
  const del = await store.delete(KEY);
  assert.equal(del.removed, false, 'the finalizer holds the object');

  const rec = await recordEvents(store, 'Cluster');
  assert.deepEqual(await reconcileObject(store, KEY, handlers), { requeueAfterMs: 10 });
  let cur = (await store.get(KEY)) as Cluster;
  assert.equal(cur.status?.phase, 'Deleting');
  assert.deepEqual(cur.metadata.finalizers, [FIN]);
  assert.equal((await rec.delivered()).length, 1);

  assert.equal(await reconcileObject(store, KEY, handlers), undefined);
  assert.equal(await store.get(KEY), undefined);
  assert.deepEqual((await rec.delivered()).map((e) => e.type), ['MODIFIED', 'DELETED']);
  assert.deepEqual(ran, ['reconcile', 'finalize', 'finalize']);

  // Once gone, nothing runs.
  await reconcileObject(store, KEY, handlers);
  assert.equal(ran.length, 3);
  rec.stop();

  // Another party's finalizer keeps the object; ours is removed and finalize is not called again.
  const other = cluster('c2');
  other.metadata.finalizers = ['someone.else/keep'];
  await store.create(other);
  const k2: ObjectKey = { ...KEY, name: 'c2' };
  await reconcileObject(store, k2, handlers);
  assert.deepEqual((await store.get(k2))!.metadata.finalizers, ['someone.else/keep', FIN]);
  await store.delete(k2);
  remaining = 1;
  await reconcileObject(store, k2, handlers);
  cur = (await store.get(k2)) as Cluster;
  assert.deepEqual(cur.metadata.finalizers, ['someone.else/keep']);
  assert.ok(cur.metadata.deletionTimestamp);
  const calls = ran.length;
  await reconcileObject(store, k2, handlers);
  assert.equal(ran.length, calls, 'without our finalizer a deleting object is left alone');
  await store.close();
});

test('without a finalizer option no finalizer is managed', async () => {
  const store = await memStore();
  await store.create(cluster('c1'));
  const handlers: ObjectHandlers<Resource> = { reconcile: async () => ({ status: { phase: 'Ready' } }) };
  await reconcileObject(store, KEY, handlers);
  const cur = (await store.get(KEY))!;
  assert.equal(cur.metadata.finalizers, undefined);
  assert.deepEqual(cur.status, { phase: 'Ready', observedGeneration: 1 });
  await store.close();
});

test('desiredStatus stamps observedGeneration; statusEqual ignores key order and undefined members', () => {
  const obj = { apiVersion: 'v', kind: 'K', metadata: { name: 'n', generation: 7 } };
  assert.deepEqual(desiredStatus(obj, undefined), { observedGeneration: 7 });
  assert.deepEqual(desiredStatus(obj, { phase: 'Ready', observedGeneration: 1 }), { phase: 'Ready', observedGeneration: 7 });
  assert.ok(statusEqual({ a: 1, b: { c: [1, 2] }, d: undefined }, { b: { c: [1, 2] }, a: 1 }));
  assert.ok(!statusEqual({ a: 1 }, { a: 2 }));
  assert.ok(!statusEqual({ b: { c: [1, 2] } }, { b: { c: [2, 1] } }));
  assert.ok(statusEqual(undefined, {}));
});
