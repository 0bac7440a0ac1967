// The Cluster, NodePool and Machine controllers and the health checker, unchanged, on the real
// SQLite store with the `sim` provider: its machines and clusters (etcd with real membership
// rules, an API with Nodes and Leases, agents) are simulated, and reached through the same
// cluster-access seam as real ones. Faults break them the way real clusters break; the tests
// check what Marina does about it: provisioning in order, healing under the storm guard, holding
// back on a partition, and a restart that adopts everything as it was.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { Cluster, Machine, NodePool, NodePoolTemplate } from '../../src/api/kinds.js';
import { API_VERSION, type Resource } from '../../src/api/meta.js';
import { getCondition } from '../../src/api/conditions.js';
import { SimProvider } from '../../src/providers/sim/index.js';
import type { ProviderRegistry } from '../../src/providers/contract.js';
import { waitFor } from '../../src/runtime/test-helpers.js';
import { startControlLoops, type RunningControlLoops } from '../../src/server/control-loops.js';
import { applyFaults, type SimFault } from '../../src/sim/faults.js';
import { sqlitePersistence } from '../../src/sim/persist.js';
import { SimWorld } from '../../src/sim/world.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import type { Store } from '../../src/store/types.js';

const P = 'p1';
const FAST = {
  clusterPollMs: 40,
  clusterReadyPollMs: 400,
  poolPollMs: 40,
  machinePollMs: 25,
  machineReadyPollMs: 400,
  deletePollMs: 25,
  drainTimeoutMs: 400,
  remoteCallTimeoutMs: 300,
};
/** Start-up times a few times shorter than real machines', so the order of things still shows. */
const SIM_TIMING = { etcdMs: 40, controlPlaneMs: 120, workerMs: 40, learnerSyncMs: 20, nodeMonitorGraceMs: 500, startTimeoutMs: 5000, etcdHealthIntervalMs: 100 };

interface Env {
  store: Store;
  world: SimWorld;
  /** Every Machine event, in order, with when it came. */
  machineEvents: { type: string; machine: Machine; at: number }[];
  start(): Promise<RunningControlLoops>;
  /** Stops the control loops and the world, and opens the world again from its file (a Marina restart). */
  restart(): Promise<void>;
  close(): Promise<void>;
}

async function env(): Promise<Env> {
  const dir = mkdtempSync(join(tmpdir(), 'marina-sim-controllers-'));
  const store = openSqliteStore({ path: join(dir, 'marina.db'), encryptionKey: randomBytes(32) });
  const openWorld = () => new SimWorld({ timing: SIM_TIMING, persistence: sqlitePersistence(join(dir, 'sim.db')) });
  const machineEvents: Env['machineEvents'] = [];
  const watch = store.watch({ kind: 'Machine' }, (ev) => machineEvents.push({ type: ev.type, machine: ev.object as Machine, at: Date.now() }));
  let loops: RunningControlLoops | undefined;
  const e: Env = {
    store,
    world: openWorld(),
    machineEvents,
    async start() {
      const provider = new SimProvider(e.world);
      const providers: ProviderRegistry = {
        get: (name) => {
          if (name !== 'sim') throw new Error(`provider ${name} is not available`);
          return provider;
        },
        list: () => [provider],
      };
      loops = await startControlLoops({
        store,
        providers,
        sim: e.world,
        metrics: new Registry(),
        logger: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
        defaultKubernetesVersion: 'v1.36.3',
        timing: FAST,
        resyncPeriodMs: 0,
        healthProbeTimeoutMs: 300,
      });
      return loops;
    },
    async restart() {
      await loops?.stop();
      e.world.close();
      e.world = openWorld();
      await e.start();
    },
    async close() {
      await loops?.stop();
      watch.stop();
      e.world.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return e;
}

function clusterObj(name: string, opts: { workers?: number; etcd?: number; workerHealing?: NodePoolTemplate['healing'] } = {}): Cluster {
  return {
    apiVersion: API_VERSION,
    kind: 'Cluster',
    metadata: { name, project: P },
    spec: {
      provider: 'sim',
      health: { intervalSeconds: 1 },
      nodePools: [
        { name: 'etcd', roles: ['etcd'], replicas: opts.etcd ?? 3, healing: { unhealthyTimeoutSeconds: 1 } },
        { name: 'cp', roles: ['controlplane'], replicas: 1, healing: { unhealthyTimeoutSeconds: 1 } },
        {
          name: 'workers',
          roles: ['worker'],
          replicas: opts.workers ?? 2,
          labels: { tier: 'web' },
          taints: [{ key: 'dedicated', value: 'web', effect: 'NoSchedule' }],
          healing: opts.workerHealing ?? { unhealthyTimeoutSeconds: 1 },
        },
      ],
    },
  };
}

/** The store delivers watch events after the write: lets those of the state just observed arrive. */
const delivered = () => new Promise((resolve) => setImmediate(resolve));

async function get<T extends Resource>(store: Store, kind: string, name: string): Promise<T | undefined> {
  return (await store.get({ kind, project: P, name })) as T | undefined;
}

async function machines(store: Store, cluster: string, pool?: string): Promise<Machine[]> {
  const items = (await store.list('Machine', { project: P, labelSelector: `marina.dev/cluster=${cluster}` })).items as Machine[];
  return items.filter((m) => pool === undefined || m.spec.pool === pool);
}

async function waitReady(store: Store, name: string, timeoutMs = 20_000): Promise<Cluster> {
  let last: Cluster | undefined;
  await waitFor(
    async () => {
      last = await get<Cluster>(store, 'Cluster', name);
      const pools = (await store.list('NodePool', { project: P, labelSelector: `marina.dev/cluster=${name}` })).items as NodePool[];
      return last?.status?.phase === 'Ready' && pools.every((p) => p.status?.healthyReplicas === p.spec.replicas);
    },
    `cluster ${name} Ready with every machine healthy`,
    timeoutMs,
  ).catch((err: Error) => {
    throw new Error(`${err.message}; last status: ${JSON.stringify(last?.status?.conditions?.map((c) => `${c.type}=${c.status} ${c.reason}: ${c.message}`))}`);
  });
  await delivered();
  return last!;
}

const inject = (e: Env, cluster: string, faults: Omit<SimFault, 'project' | 'cluster'>[]) => applyFaults(e.world, faults.map((f) => ({ project: P, cluster, ...f })));

async function remediations(store: Store, pool: string) {
  return (await get<NodePool>(store, 'NodePool', pool))?.status?.remediations ?? [];
}

test('a sim cluster provisions etcd one member at a time, carries labels and taints to its Nodes, scales, and deletes completely', async () => {
  const e = await env();
  try {
    await e.start();
    await e.store.create(clusterObj('demo'));
    const cluster = await waitReady(e.store, 'demo');
    assert.match(cluster.status?.endpoint ?? '', /^https:\/\/198\.(18|19)\.\d+\.\d+:6443$/);
    const sim = e.world.findCluster(P, 'demo')!;
    // etcd: three voting members, joined one by one (a member added while another still joined
    // would have been refused by the world's etcd rules and recorded as a violation).
    assert.equal(sim.state.members.length, 3);
    assert.ok(sim.state.members.every((m) => !m.isLearner && m.name));
    assert.deepEqual(e.world.violations, []);
    const etcd = (await machines(e.store, 'demo', 'etcd')).sort((a, b) => a.metadata.creationTimestamp!.localeCompare(b.metadata.creationTimestamp!));
    const started = etcd.map((m) => e.world.machine({ project: P, cluster: 'demo', name: m.metadata.name })!.startedAt!);
    const order = etcd.map((m, i) => ({ m, at: started[i]! })).sort((a, b) => a.at - b.at);
    assert.equal(e.world.machine({ project: P, cluster: 'demo', name: order[0]!.m.metadata.name })!.spec!.etcd!.state, 'new', 'the first to start founds etcd');
    for (let i = 1; i < order.length; i++) {
      assert.ok(order[i]!.at >= order[0]!.at + SIM_TIMING.etcdMs, 'the others join once the founder serves');
      assert.equal(e.world.machine({ project: P, cluster: 'demo', name: order[i]!.m.metadata.name })!.spec!.etcd!.state, 'existing');
    }
    // The control plane starts with a quorum and is told about every etcd machine.
    const [cpMachine] = await machines(e.store, 'demo', 'cp');
    const servers = e.world.machine({ project: P, cluster: 'demo', name: cpMachine!.metadata.name })!.spec!.apiserver!.etcdServers;
    assert.deepEqual([...servers].sort(), etcd.map((m) => `https://${m.status!.address}:2379`).sort());
    // Nodes: the kubelet registered what NodeRestriction allows, Marina added the rest.
    const [worker] = await machines(e.store, 'demo', 'workers');
    const node = sim.nodes.get(worker!.metadata.name)!;
    assert.equal(node.labels.tier, 'web');
    assert.equal(node.labels['node-role.kubernetes.io/worker'], '');
    assert.deepEqual(node.taints, [{ key: 'dedicated', value: 'web', effect: 'NoSchedule' }]);
    assert.equal(worker!.status?.nodeReady, true);
    // Health: a pass sees every component healthy.
    await waitFor(async () => getCondition((await get<Cluster>(e.store, 'Cluster', 'demo'))?.status?.conditions, 'Healthy')?.status === 'True', 'cluster Healthy');

    // Scale out and in.
    const setWorkers = async (n: number) => {
      const c = (await get<Cluster>(e.store, 'Cluster', 'demo'))!;
      await e.store.update({ ...c, spec: { ...c.spec, nodePools: c.spec.nodePools.map((p) => (p.name === 'workers' ? { ...p, replicas: n } : p)) } });
    };
    await setWorkers(4);
    await waitFor(async () => (await get<NodePool>(e.store, 'NodePool', 'demo-workers'))?.status?.readyReplicas === 4, 'four workers');
    await setWorkers(1);
    await waitFor(async () => (await machines(e.store, 'demo', 'workers')).length === 1 && sim.nodes.size === 4 + 1 - 3, 'one worker left, its Nodes deleted');
    await waitReady(e.store, 'demo');

    await e.store.delete({ kind: 'Cluster', project: P, name: 'demo' });
    await waitFor(async () => (await get(e.store, 'Cluster', 'demo')) === undefined, 'cluster gone', 15_000);
    assert.deepEqual(e.world.allMachines(), [], 'no simulated machine left');
    assert.equal(e.world.findCluster(P, 'demo'), undefined, 'no endpoint, etcd or Node left');
    assert.deepEqual(e.world.violations, []);
  } finally {
    await e.close();
  }
});

test('auto-healing on the sim: killed worker, etcd member and control plane are replaced; a NotReady Node after its timeout', async () => {
  const e = await env();
  try {
    await e.start();
    await e.store.create(clusterObj('heal'));
    await waitReady(e.store, 'heal');
    for (const pool of ['workers', 'etcd', 'cp']) {
      const [victim] = await machines(e.store, 'heal', pool);
      inject(e, 'heal', [{ type: 'KillMachine', machine: victim!.metadata.name }]);
      await waitFor(async () => (await remediations(e.store, `heal-${pool}`)).some((r) => r.machine === victim!.metadata.name), `${pool} victim replaced`, 15_000);
      await waitReady(e.store, 'heal');
      const [r] = (await remediations(e.store, `heal-${pool}`)).filter((x) => x.machine === victim!.metadata.name);
      assert.equal(r?.reason, 'MachineFailed');
      assert.equal((await machines(e.store, 'heal', pool)).length, pool === 'workers' ? 2 : pool === 'etcd' ? 3 : 1);
    }
    const sim = e.world.findCluster(P, 'heal')!;
    assert.equal(sim.state.members.length, 3, 'the dead member left etcd, its replacement joined');
    assert.ok(e.world.quorum(sim));

    // A Node NotReady for longer than unhealthyTimeoutSeconds (1 s) is replaced too.
    const [sick] = await machines(e.store, 'heal', 'workers');
    inject(e, 'heal', [{ type: 'NodeNotReady', machine: sick!.metadata.name }]);
    await waitFor(async () => (await remediations(e.store, 'heal-workers')).some((r) => r.machine === sick!.metadata.name), 'NotReady worker replaced', 15_000);
    assert.equal((await remediations(e.store, 'heal-workers')).find((r) => r.machine === sick!.metadata.name)?.reason, 'Unhealthy');
    await waitReady(e.store, 'heal');
    assert.deepEqual(e.world.violations, []);
  } finally {
    await e.close();
  }
});

test('the storm guard holds: unreachable agents beyond maxInFlight and a partitioned cluster are not replaced', async () => {
  const e = await env();
  try {
    await e.start();
    await e.store.create(clusterObj('storm', { workers: 4, workerHealing: { unhealthyTimeoutSeconds: 1, maxInFlight: 1 } }));
    await waitReady(e.store, 'storm');
    const workers = await machines(e.store, 'storm', 'workers');
    // Two of four agents stop answering: more than the guard allows looks like a partition.
    inject(e, 'storm', workers.slice(0, 2).map((m) => ({ type: 'AgentUnreachable' as const, machine: m.metadata.name })));
    await waitFor(async () => {
      const held = getCondition((await get<NodePool>(e.store, 'NodePool', 'storm-workers'))?.status?.conditions, 'HealingHeldBack');
      return held?.status === 'True' && held.reason === 'TooManyUnhealthy';
    }, 'HealingHeldBack=True (TooManyUnhealthy)', 15_000);
    assert.deepEqual(await remediations(e.store, 'storm-workers'), [], 'nothing replaced');
    inject(e, 'storm', workers.slice(0, 2).map((m) => ({ type: 'AgentUnreachable' as const, machine: m.metadata.name, clear: true })));
    await waitReady(e.store, 'storm');

    // A whole cluster cut off from Marina: every machine unreachable, nothing replaced.
    inject(e, 'storm', [{ type: 'PartitionCluster' }]);
    await waitFor(async () => (await get<Cluster>(e.store, 'Cluster', 'storm'))?.status?.phase === 'Degraded', 'cluster Degraded', 15_000);
    await waitFor(async () => {
      const ms = await machines(e.store, 'storm');
      return ms.every((m) => getCondition(m.status?.conditions, 'Healthy')?.status === 'False');
    }, 'every machine unhealthy', 15_000);
    await new Promise((r) => setTimeout(r, 1500)); // past the unhealthy timeout
    for (const pool of ['storm-workers', 'storm-etcd', 'storm-cp']) assert.deepEqual(await remediations(e.store, pool), [], `${pool}: nothing replaced during the partition`);
    inject(e, 'storm', [{ type: 'PartitionCluster', clear: true }]);
    await waitReady(e.store, 'storm');
    assert.equal((await machines(e.store, 'storm')).length, 3 + 1 + 4, 'the same machines');
  } finally {
    await e.close();
  }
});

test('an etcd member down shows in EtcdReady and the health report, and comes back when cleared', async () => {
  const e = await env();
  try {
    const loops = await e.start();
    await e.store.create(clusterObj('quorum', { workers: 1 }));
    await waitReady(e.store, 'quorum');
    const [member] = await machines(e.store, 'quorum', 'etcd');
    inject(e, 'quorum', [{ type: 'EtcdMemberDown', machine: member!.metadata.name }]);
    await waitFor(async () => {
      const report = loops.health.get(P, 'quorum');
      return report?.checks.some((c) => c.component === 'etcd' && c.machine === member!.metadata.name && !c.ok) === true;
    }, 'the health pass sees the member down', 10_000);
    await waitFor(async () => getCondition((await get<Cluster>(e.store, 'Cluster', 'quorum'))?.status?.conditions, 'EtcdReady')?.reason === 'QuorumHealthy', 'EtcdReady: quorum, not all healthy', 10_000);
    inject(e, 'quorum', [{ type: 'EtcdMemberDown', machine: member!.metadata.name, clear: true }]);
    await waitFor(async () => getCondition((await get<Cluster>(e.store, 'Cluster', 'quorum'))?.status?.conditions, 'EtcdReady')?.reason === 'Healthy', 'EtcdReady Healthy again', 10_000);
    await waitReady(e.store, 'quorum');
  } finally {
    await e.close();
  }
});

test('a restarted Marina finds its sim machines as it left them and replaces nothing', async () => {
  const e = await env();
  try {
    await e.start();
    await e.store.create(clusterObj('phoenix', { workers: 1 }));
    await waitReady(e.store, 'phoenix');
    const before = (await machines(e.store, 'phoenix')).map((m) => m.metadata.name).sort();
    await e.restart();
    // A few health passes and reconciles later: the same machines, all healthy, nothing replaced.
    await new Promise((r) => setTimeout(r, 2500));
    await waitReady(e.store, 'phoenix');
    assert.deepEqual((await machines(e.store, 'phoenix')).map((m) => m.metadata.name).sort(), before);
    for (const pool of ['phoenix-etcd', 'phoenix-cp', 'phoenix-workers']) assert.deepEqual(await remediations(e.store, pool), []);
    assert.equal(e.world.findCluster(P, 'phoenix')!.state.members.length, 3);
  } finally {
    await e.close();
  }
});
