// End to end: a Cluster controller that owns Machines, built from Controller + reconcileObject,
// is stopped half way and a fresh controller on the same store converges with no duplicates.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isApiError } from '../api/errors.js';
import type { ObjectKey, Resource } from '../api/meta.js';
import type { Cluster, ClusterStatus } from '../api/kinds.js';
import type { Store } from '../store/types.js';
import { setCondition } from '../api/conditions.js';
import { Controller, type ReconcileContext, type Reconciler, type Result } from './controller.js';
import { reconcileObject } from './reconcile.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { machine, memStore, recordEvents, waitFor, cluster } from './test-helpers.js';

const CLUSTER_LABEL = 'marina.dev/cluster';

/** Creates `<cluster>-<i>` for i < replicas and deletes the rest; idempotent. */
class ClusterReconciler implements Reconciler {
  constructor(
    private readonly store: Store,
    /** Called after each Machine create; may block or throw (to simulate a crash mid-way). */
    private readonly afterCreate: (ctx: ReconcileContext) => Promise<void> = async () => undefined,
  ) {}

  reconcile(key: ObjectKey, ctx: ReconcileContext): Promise<Result> {
    return reconcileObject<Cluster>(
      this.store,
      key,
      {
        finalizer: 'marina.dev/cluster',
        reconcile: async (c) => {
          const desired = c.spec.nodePools.reduce((n, p) => n + p.replicas, 0);
          const want = new Set(Array.from({ length: desired }, (_, i) => `${c.metadata.name}-${i}`));
          const have = await this.machines(c);
          for (const m of have) {
            if (!want.has(m.metadata.name)) await this.deleteMachine(m);
          }
          const haveNames = new Set(have.map((m) => m.metadata.name));
          for (const name of want) {
            if (haveNames.has(name)) continue;
            ctx.signal.throwIfAborted();
            try {
              await this.store.create(machine(name, c.metadata.name, c.metadata.project));
            } catch (err) {
              if (!(isApiError(err) && err.code === 409)) throw err;
            }
            await this.afterCreate(ctx);
          }
          const count = (await this.machines(c)).filter((m) => want.has(m.metadata.name)).length;
          const ready = count === desired;
          const status: ClusterStatus = {
            ...c.status,
            phase: ready ? 'Ready' : 'Provisioning',
            pools: [{ name: 'pool', replicas: desired, readyReplicas: count }],
            conditions: setCondition(
              c.status?.conditions,
              { type: 'Ready', status: ready ? 'True' : 'False', reason: ready ? 'MachinesReady' : 'ScalingUp' },
              c.metadata.generation,
            ),
          };
          return { status };
        },
        finalize: async (c) => {
          for (const m of await this.machines(c)) await this.deleteMachine(m);
          const left = (await this.machines(c)).length;
          return left === 0 ? { done: true } : { status: { ...c.status, phase: 'Deleting' }, requeueAfterMs: 20 };
        },
      },
      ctx,
    );
  }

  private async machines(c: Cluster): Promise<Resource[]> {
    const res = await this.store.list('Machine', { project: c.metadata.project, labelSelector: `${CLUSTER_LABEL}=${c.metadata.name}` });
    return res.items;
  }

  private async deleteMachine(m: Resource): Promise<void> {
    try {
      await this.store.delete({ kind: 'Machine', project: m.metadata.project ?? '', name: m.metadata.name });
    } catch (err) {
      if (!(isApiError(err) && err.code === 404)) throw err;
    }
  }
}

function clusterController(store: Store, reconciler: Reconciler, extra: Partial<ConstructorParameters<typeof Controller>[0]> = {}) {
  return new Controller({
    name: 'cluster',
    kind: 'Cluster',
    store,
    reconciler,
    resyncPeriodMs: 0,
    backoff: { baseDelayMs: 5, maxDelayMs: 200 },
    watches: [
      {
        kind: 'Machine',
        mapTo: (m) => {
          const owner = m.metadata.labels?.[CLUSTER_LABEL];
          return owner ? [{ kind: 'Cluster', project: m.metadata.project ?? '', name: owner }] : [];
        },
      },
    ],
    ...extra,
  });
}

async function machineNames(store: Store): Promise<string[]> {
  return (await store.list('Machine')).items.map((m) => m.metadata.name).sort();
}

async function converged(store: Store, name: string, replicas: number): Promise<boolean> {
  const c = (await store.get({ kind: 'Cluster', project: 'p1', name })) as Cluster | undefined;
  return (
    c?.status?.phase === 'Ready' &&
    c.status.observedGeneration === c.metadata.generation &&
    c.status.pools?.[0]?.readyReplicas === replicas
  );
}

test('convergence after a restart: exactly the desired children, none duplicated', async () => {
  const store = await memStore();
  const machineEvents = await recordEvents(store, 'Machine');
  await store.create(cluster('alpha', 6));
  await store.create(cluster('beta', 4));

  // Controller A crashes (is stopped) after three machine creates: its reconciles hang until
  // the stop grace period aborts them.
  let creates = 0;
  const a = clusterController(
    store,
    new ClusterReconciler(store, async (ctx) => {
      if (++creates >= 3) {
        await new Promise<void>((_, reject) => {
          if (ctx.signal.aborted) reject(ctx.signal.reason as Error);
          ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error));
        });
      }
    }),
    { stopGracePeriodMs: 50 },
  );
  await a.start();
  await waitFor(() => creates >= 3, 'controller A created some machines');
  await a.stop();
  const partial = await machineNames(store);
  assert.ok(partial.length >= 3 && partial.length < 10, `stopped mid-way with ${partial.length} machines`);

  // Controller B, a new instance on the same store, finishes the job.
  const b = clusterController(store, new ClusterReconciler(store));
  await b.start();
  await waitFor(async () => (await converged(store, 'alpha', 6)) && (await converged(store, 'beta', 4)), 'both clusters Ready');
  const expected = [...['alpha-0', 'alpha-1', 'alpha-2', 'alpha-3', 'alpha-4', 'alpha-5'], ...['beta-0', 'beta-1', 'beta-2', 'beta-3']].sort();
  assert.deepEqual(await machineNames(store), expected);
  const added = machineEvents.events.filter((e) => e.type === 'ADDED').map((e) => e.object.metadata.name).sort();
  assert.deepEqual(added, expected, 'every machine created exactly once');
  assert.equal(machineEvents.events.filter((e) => e.type === 'DELETED').length, 0);

  // Scale alpha down and delete beta: still converges, through the finalizer for beta.
  const alpha = (await store.get({ kind: 'Cluster', project: 'p1', name: 'alpha' })) as Cluster;
  await store.update({ ...alpha, spec: { ...alpha.spec, nodePools: [{ name: 'pool', roles: ['worker'], replicas: 2 }] } });
  await store.delete({ kind: 'Cluster', project: 'p1', name: 'beta' });
  await waitFor(async () => (await converged(store, 'alpha', 2)) && !(await store.get({ kind: 'Cluster', project: 'p1', name: 'beta' })), 'scaled down and beta gone');
  assert.deepEqual(await machineNames(store), ['alpha-0', 'alpha-1']);

  // Quiescent: level-based reconciles of an unchanged world write nothing.
  await waitFor(() => b.queueStats().ready === 0 && b.queueStats().processing === 0, 'queue idle');
  // The store delivers watch events on the next turn of the event loop after a write: let the
  // events of the last writes arrive before counting.
  await new Promise((resolve) => setImmediate(resolve));
  const clusterEvents = await recordEvents(store, 'Cluster');
  const before = machineEvents.events.length;
  b.enqueue({ kind: 'Cluster', project: 'p1', name: 'alpha' });
  await sleep(100);
  assert.equal(clusterEvents.events.length, 0, 'no cluster writes');
  assert.equal(machineEvents.events.length, before, 'no machine writes');

  await b.stop();
  machineEvents.stop();
  clusterEvents.stop();
  await store.close();
});
