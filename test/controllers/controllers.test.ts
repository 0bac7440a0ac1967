// The Cluster, NodePool and Machine controllers together, on the real SQLite store, with an
// in-test provider and in-test cluster internals (see fakes.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { CloudEvent } from '../../src/api/functions.js';
import type { Cluster, Machine, NodePool, Secret } from '../../src/api/kinds.js';
import type { Operation } from '../../src/api/operations.js';
import { API_VERSION, type Resource } from '../../src/api/meta.js';
import { startControlLoops, type ControlLoopOptions, type RunningControlLoops } from '../../src/server/control-loops.js';
import { parseKubeconfig } from '../../src/kube/client.js';
import { getCondition } from '../../src/api/conditions.js';
import { waitFor, within } from '../../src/runtime/test-helpers.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import type { Store } from '../../src/store/types.js';
import { FakeWorld } from './fakes.js';
import { blackHole } from '../support/black-hole.js';
import { LiveConnections } from '../../src/clusteraccess/live.js';
import { ClusterSecrets } from '../../src/clusteraccess/secrets.js';
import { EtcdClient } from '../../src/etcd/client.js';
import { createCA } from '../../src/pki/index.js';
import { loadClusterPkiFromSecretData, pkiToSecretData, withGeneration } from '../../src/bootstrap/clusterPki.js';

const P = 'p1';
const FAST = {
  clusterPollMs: 40,
  clusterReadyPollMs: 400,
  poolPollMs: 40,
  machinePollMs: 25,
  machineReadyPollMs: 400,
  deletePollMs: 25,
  drainTimeoutMs: 400,
  remoteCallTimeoutMs: 500,
};

interface Env {
  store: Store;
  world: FakeWorld;
  /** Every Machine event as the store emitted it. */
  machineEvents: { type: string; machine: Machine }[];
  /** Every platform event the controllers published, in order. */
  published: CloudEvent[];
  start(overrides?: Partial<ControlLoopOptions>): Promise<RunningControlLoops>;
  close(): Promise<void>;
}

async function env(): Promise<Env> {
  const store = openSqliteStore({ path: ':memory:', encryptionKey: randomBytes(32) });
  const world = new FakeWorld(store);
  const machineEvents: Env['machineEvents'] = [];
  const running = new Set<string>();
  const watch = store.watch({ kind: 'Machine' }, (ev) => {
    const m = ev.object as Machine;
    machineEvents.push({ type: ev.type, machine: m });
    if (ev.type === 'ADDED') world.timeline.push(`added ${m.metadata.name}`);
    if (ev.type === 'DELETED') world.timeline.push(`removed ${m.metadata.name}`);
    if (m.status?.phase === 'Running' && !running.has(m.metadata.name)) {
      running.add(m.metadata.name);
      world.timeline.push(`running ${m.metadata.name}`);
    }
  });
  const controllers: RunningControlLoops[] = [];
  const published: CloudEvent[] = [];
  return {
    store,
    world,
    machineEvents,
    published,
    async start(overrides = {}) {
      const c = await startControlLoops({
        store,
        providers: world.registry,
        metrics: new Registry(),
        logger: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
        defaultKubernetesVersion: 'v1.36.3',
        timing: FAST,
        access: world.connections,
        resyncPeriodMs: 0,
        events: { publish: async (ev) => void published.push(ev) },
        ...overrides,
      });
      controllers.push(c);
      return c;
    },
    async close() {
      for (const c of controllers) await c.stop();
      watch.stop();
      await store.close();
    },
  };
}

function clusterObj(name: string, workers = 2, etcd = 3): Cluster {
  return {
    apiVersion: API_VERSION,
    kind: 'Cluster',
    metadata: { name, project: P },
    spec: {
      provider: 'local',
      nodePools: [
        { name: 'etcd', roles: ['etcd'], replicas: etcd },
        { name: 'cp', roles: ['controlplane'], replicas: 1 },
        {
          name: 'workers',
          roles: ['worker'],
          replicas: workers,
          labels: { tier: 'web' },
          taints: [{ key: 'dedicated', value: 'web', effect: 'NoSchedule' }],
          machine: { cpu: 8 },
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

async function list<T extends Resource>(store: Store, kind: string, cluster?: string): Promise<T[]> {
  const r = await store.list(kind, { project: P, ...(cluster ? { labelSelector: `marina.dev/cluster=${cluster}` } : {}) });
  return r.items as T[];
}

async function waitReady(store: Store, name: string, timeoutMs = 15_000): Promise<Cluster> {
  let last: Cluster | undefined;
  await waitFor(
    async () => {
      last = await get<Cluster>(store, 'Cluster', name);
      return last?.status?.phase === 'Ready';
    },
    `cluster ${name} Ready`,
    timeoutMs,
  ).catch((err: Error) => {
    throw new Error(`${err.message}; last status: ${JSON.stringify(last?.status)}`);
  });
  await delivered();
  return last!;
}

async function setWorkers(store: Store, name: string, replicas: number, labels?: Record<string, string>): Promise<void> {
  for (;;) {
    const c = (await get<Cluster>(store, 'Cluster', name))!;
    const pools = c.spec.nodePools.map((p) => (p.name === 'workers' ? { ...p, replicas, ...(labels ? { labels } : {}) } : p));
    try {
      await store.update({ ...c, spec: { ...c.spec, nodePools: pools } });
      return;
    } catch (err) {
      if ((err as { code?: number }).code !== 409) throw err;
    }
  }
}

async function waitPool(store: Store, name: string, replicas: number): Promise<NodePool> {
  let pool: NodePool | undefined;
  await waitFor(
    async () => {
      pool = await get<NodePool>(store, 'NodePool', name);
      const machines = (await list<Machine>(store, 'Machine')).filter((m) => m.metadata.labels?.['marina.dev/nodepool'] === name);
      return pool?.status?.readyReplicas === replicas && pool.status.replicas === replicas && machines.length === replicas;
    },
    `pool ${name} at ${replicas} ready replicas`,
    15_000,
  );
  await delivered();
  return pool!;
}

const idx = (timeline: string[], entry: string): number => {
  const i = timeline.findIndex((t) => t === entry || t.startsWith(`${entry} `));
  assert.ok(i >= 0, `timeline has ${entry}: ${timeline.join(' | ')}`);
  return i;
};

test('a cluster provisions in order, scales 2→4→1 with drains, follows label changes, and deletes completely', async () => {
  const e = await env();
  try {
    await e.start();
    await e.store.create(clusterObj('demo'));
    const cluster = await waitReady(e.store, 'demo');

    // ----- finalizers, status, secrets -----
    assert.deepEqual(cluster.metadata.finalizers, ['marina.dev/cluster']);
    for (const t of ['PKIReady', 'EndpointReady', 'EtcdReady', 'ControlPlaneReady', 'PoolsReady', 'Ready']) {
      const c = getCondition(cluster.status?.conditions, t);
      assert.equal(c?.status, 'True', `${t}: ${JSON.stringify(c)}`);
      assert.equal(c?.observedGeneration, cluster.metadata.generation);
      assert.ok(c?.reason);
    }
    assert.equal(cluster.status?.kubernetesVersion, 'v1.36.3');
    assert.match(cluster.status?.endpoint ?? '', /^https:\/\/127\.2\.0\.\d+:6443$/);
    assert.deepEqual(cluster.status?.certificates?.map((c) => c.name), ['ca', 'etcd-ca', 'front-proxy-ca', 'admin', 'pool/cp', 'pool/etcd', 'pool/workers']);
    assert.deepEqual(cluster.status?.pools, [
      { name: 'etcd', replicas: 3, readyReplicas: 3, updatedReplicas: 3, availableReplicas: 3, kubernetesVersion: 'v1.36.3' },
      { name: 'cp', replicas: 1, readyReplicas: 1, updatedReplicas: 1, availableReplicas: 1, kubernetesVersion: 'v1.36.3' },
      { name: 'workers', replicas: 2, readyReplicas: 2, updatedReplicas: 2, availableReplicas: 2, kubernetesVersion: 'v1.36.3' },
    ]);
    const pki = await get<Secret>(e.store, 'Secret', 'demo-pki');
    assert.equal(pki?.spec.type, 'marina.dev/pki');
    assert.match(pki?.spec.data['ca.crt'] ?? '', /BEGIN CERTIFICATE/);
    const admin = await get<Secret>(e.store, 'Secret', 'demo-admin-kubeconfig');
    assert.equal(parseKubeconfig(admin!.spec.data.kubeconfig!).server, cluster.status?.endpoint);

    // ----- NodePools and Machines -----
    const pools = await list<NodePool>(e.store, 'NodePool', 'demo');
    assert.deepEqual(pools.map((p) => p.metadata.name).sort(), ['demo-cp', 'demo-etcd', 'demo-workers']);
    for (const p of pools) {
      assert.deepEqual(p.metadata.finalizers, ['marina.dev/nodepool']);
      assert.equal(p.spec.kubernetesVersion, 'v1.36.3');
      assert.equal(p.spec.provider, 'local');
      assert.equal(p.metadata.labels?.['marina.dev/cluster'], 'demo');
    }
    const machines = await list<Machine>(e.store, 'Machine', 'demo');
    assert.equal(machines.length, 6);
    for (const m of machines) {
      assert.match(m.metadata.name, new RegExp(`^demo-${m.spec.pool}-[a-z0-9]{5}$`));
      assert.equal(m.metadata.labels?.['marina.dev/pool'], m.spec.pool);
      assert.equal(m.metadata.labels?.['marina.dev/cluster'], 'demo');
      assert.deepEqual(m.metadata.finalizers, ['marina.dev/machine']);
      assert.equal(m.status?.phase, 'Running');
      assert.match(m.status?.providerID ?? '', /^test:\/\/\//);
      assert.equal(getCondition(m.status?.conditions, 'InfrastructureReady')?.status, 'True');
    }
    const workers = machines.filter((m) => m.spec.pool === 'workers');
    for (const w of workers) {
      assert.equal(w.status?.nodeReady, true);
      assert.equal(w.status?.nodeName, w.metadata.name);
      assert.deepEqual(w.spec.labels, { tier: 'web' });
    }
    assert.ok(!machines.some((m) => m.spec.pool === 'etcd' && m.status?.nodeName), 'etcd-only machines have no Node');

    // ----- the order of things -----
    const tl = e.world.timeline;
    const etcd = machines.filter((m) => m.spec.pool === 'etcd');
    // A new cluster's etcd machines are created together; the founder starts first, the others
    // join (two may at once), each added as a learner before it starts and promoted before it runs.
    const founder = e.world.callsOf('start').find((c) => c.detail === 'etcd:new')!.name;
    const joiners = etcd.map((m) => m.metadata.name).filter((n) => n !== founder).sort((a, b) => idx(tl, `start ${a}`) - idx(tl, `start ${b}`));
    const [j1, j2] = joiners as [string, string];
    assert.ok(idx(tl, `start ${founder}`) < idx(tl, `etcd add https://${etcd.find((m) => m.metadata.name === j1)!.status!.address!}:2380`), 'the joiners are added once the founder serves');
    for (const next of [j1, j2]) {
      const nextAddr = etcd.find((m) => m.metadata.name === next)!.status!.address!;
      assert.ok(idx(tl, `etcd add https://${nextAddr}:2380`) < idx(tl, `start ${next}`), `${next} is added before it starts`);
      assert.ok(idx(tl, `etcd promote ${next}`) < idx(tl, `running ${next}`), `${next} is promoted from learner before it counts as Running`);
      assert.equal(e.world.callsOf('start').find((c) => c.name === next)?.detail, 'etcd:existing');
    }
    assert.deepEqual(e.world.etcdOps.filter((o) => o.startsWith('add')).map((o) => o.split(' ').slice(0, 2).join(' ')), ['add learner', 'add learner']);
    assert.deepEqual(e.world.etcdOps.filter((o) => o.startsWith('promote')).sort(), [`promote ${j1}`, `promote ${j2}`].sort());
    const cp = machines.find((m) => m.spec.pool === 'cp')!.metadata.name;
    assert.ok(idx(tl, `start ${cp}`) > idx(tl, `start ${founder}`), 'the control plane waits for an etcd quorum');
    const cpServers = e.world.machines.get(cp)!.bootstrap!.services.find((svc) => svc.name === 'kube-apiserver')!.args.find((a) => a.startsWith('--etcd-servers='))!;
    for (const m of etcd) assert.ok(cpServers.includes(`https://${m.status!.address}:2379`), `kube-apiserver is told about ${m.metadata.name}`);
    for (const w of workers) assert.ok(idx(tl, `start ${w.metadata.name}`) > idx(tl, `start ${cp}`), 'workers wait for the control plane');
    assert.deepEqual(e.world.errors, []);

    // ----- Nodes carry labels and taints -----
    const sim = e.world.sim('demo');
    assert.deepEqual(sim.violations, [], 'kubelets registered only with labels NodeRestriction allows');
    const wnode = sim.nodes.get(workers[0]!.metadata.name)!;
    assert.equal(wnode.metadata.labels?.tier, 'web');
    assert.equal(wnode.metadata.labels?.['node-role.kubernetes.io/worker'], '');
    assert.equal(wnode.metadata.labels?.['marina.dev/pool'], 'workers');
    assert.deepEqual(wnode.spec?.taints, [{ key: 'dedicated', value: 'web', effect: 'NoSchedule' }]);
    const cpnode = sim.nodes.get(cp)!;
    assert.equal(cpnode.metadata.labels?.['node-role.kubernetes.io/control-plane'], '');
    assert.deepEqual(cpnode.spec?.taints, [{ key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule' }]);
    const boot = e.world.machines.get(workers[0]!.metadata.name)!.bootstrap!;
    assert.equal(boot.kubelet?.capacity.cpu, '8');

    // ----- scale out 2 → 4 -----
    await setWorkers(e.store, 'demo', 4);
    await waitPool(e.store, 'demo-workers', 4);
    const four = (await list<Machine>(e.store, 'Machine', 'demo')).filter((m) => m.spec.pool === 'workers');
    assert.equal(four.length, 4);
    await waitReady(e.store, 'demo');

    // Pods on every worker; one is protected by a PodDisruptionBudget that never allows eviction.
    const byAge = [...four].sort((a, b) => (a.metadata.creationTimestamp! < b.metadata.creationTimestamp! ? -1 : a.metadata.creationTimestamp! > b.metadata.creationTimestamp! ? 1 : a.metadata.name < b.metadata.name ? -1 : 1));
    for (const m of four) {
      sim.pods.push({ metadata: { name: `web-${m.metadata.name}`, namespace: 'default' }, spec: { nodeName: m.metadata.name }, status: { phase: 'Running' } });
      sim.pods.push({
        metadata: { name: `ds-${m.metadata.name}`, namespace: 'kube-system', ownerReferences: [{ apiVersion: 'apps/v1', kind: 'DaemonSet', name: 'ds', uid: 'u' }] },
        spec: { nodeName: m.metadata.name },
        status: { phase: 'Running' },
      });
    }
    const newest = byAge[3]!.metadata.name;
    sim.pods.push({ metadata: { name: 'guarded', namespace: 'default', annotations: { 'test/pdb': 'block' } }, spec: { nodeName: newest }, status: { phase: 'Running' } });

    // ----- scale in 4 → 1: the newest go, drained -----
    // The cluster counts as scaled (PoolsReady at the new generation) only once the removed
    // machines are gone, not as soon as they are marked for deletion.
    const poolsReady = e.store.watch({ kind: 'Cluster' }, (ev) => {
      const c = ev.object as Cluster;
      const gen = c.metadata.generation ?? 0;
      if (ev.type !== 'DELETED' && c.status?.observedGeneration === gen && getCondition(c.status?.conditions, 'PoolsReady')?.status === 'True') {
        tl.push(`pools ready ${c.metadata.name} gen ${gen}`);
      }
    });
    await setWorkers(e.store, 'demo', 1);
    const scaledGen = (await get<Cluster>(e.store, 'Cluster', 'demo'))!.metadata.generation!;
    await waitPool(e.store, 'demo-workers', 1);
    await waitReady(e.store, 'demo');
    poolsReady.stop();
    const left = (await list<Machine>(e.store, 'Machine', 'demo')).filter((m) => m.spec.pool === 'workers');
    assert.deepEqual(left.map((m) => m.metadata.name), [byAge[0]!.metadata.name], 'the oldest worker stays');
    for (const gone of byAge.slice(1)) {
      const n = gone.metadata.name;
      assert.ok(tl.includes(`evict default/web-${n}`), `pod on ${n} evicted`);
      assert.ok(!tl.includes(`evict kube-system/ds-${n}`), 'DaemonSet pods are not evicted');
      assert.ok(idx(tl, `node delete ${n}`) > idx(tl, `delete ${n}`), `Node ${n} is deleted once its machine (and kubelet) is gone`);
      assert.ok(idx(tl, `pools ready demo gen ${scaledGen}`) > idx(tl, `removed ${n}`), `the cluster is not scaled while ${n} is still being removed`);
      assert.ok(!sim.nodes.has(n));
    }
    const lastDrain = e.machineEvents
      .filter((ev) => ev.machine.metadata.name === newest)
      .map((ev) => getCondition(ev.machine.status?.conditions, 'Drained'))
      .filter((c) => c !== undefined)
      .at(-1);
    assert.equal(lastDrain?.reason, 'DrainTimeout', 'a PDB-blocked drain gives up after the drain timeout');
    assert.match(lastDrain?.message ?? '', /PodDisruptionBudget blocks eviction of default\/guarded/);

    // ----- label change reaches the machine and its Node -----
    await setWorkers(e.store, 'demo', 1, { tier: 'api' });
    await waitFor(() => sim.nodes.get(left[0]!.metadata.name)?.metadata.labels?.tier === 'api', 'node label follows the pool');
    assert.equal((await get<Machine>(e.store, 'Machine', left[0]!.metadata.name))?.spec.labels?.tier, 'api');

    // ----- delete: nothing left, every machine deleted through the provider -----
    const created = new Set(e.machineEvents.filter((ev) => ev.type === 'ADDED').map((ev) => ev.machine.metadata.name));
    await e.store.delete({ kind: 'Cluster', project: P, name: 'demo' });
    await waitFor(async () => (await get(e.store, 'Cluster', 'demo')) === undefined, 'cluster gone', 15_000);
    assert.deepEqual(await list(e.store, 'NodePool'), []);
    assert.deepEqual(await list(e.store, 'Machine'), []);
    assert.deepEqual(await list(e.store, 'Secret'), []);
    assert.deepEqual(new Set(e.world.callsOf('delete').map((c) => c.name)), created);
    assert.deepEqual(e.world.callsOf('deleteEndpoint').map((c) => c.name), ['demo']);
    assert.equal(e.world.machines.size, 0);
    assert.ok(tl.includes('forget demo'), 'cached cluster clients are released');
    assert.deepEqual(e.world.errors, []);

    // ----- platform events: created first, each etcd member once, deleted last -----
    const types = e.published.map((ev) => ev.type);
    assert.equal(types[0], 'dev.marina.cluster.created');
    assert.equal(types.at(-1), 'dev.marina.cluster.deleted');
    const createdEvents = e.published.filter((ev) => ev.type === 'dev.marina.cluster.created');
    assert.equal(new Set(createdEvents.map((ev) => ev.id)).size, 1, 'a repeated first reconcile publishes the same id');
    assert.equal((createdEvents[0]!.data as { nodePools: unknown[] }).nodePools.length, 3);
    assert.equal(createdEvents[0]!.marinaproject, P);
    const members = e.published.filter((ev) => ev.type === 'dev.marina.member.added');
    assert.equal(new Set(members.map((ev) => ev.id)).size, 3, 'three etcd members joined');
    assert.ok(members.every((ev) => ev.subject?.startsWith('demo/demo-etcd-')), JSON.stringify(members.map((ev) => ev.subject)));
  } finally {
    await e.close();
  }
});

test('a cluster deleted while provisioning goes away cleanly', async () => {
  const e = await env();
  try {
    await e.start();
    await e.store.create(clusterObj('early'));
    // Wait until the first etcd member started, then delete.
    await waitFor(() => e.world.started().length >= 1, 'first machine started');
    await e.store.delete({ kind: 'Cluster', project: P, name: 'early' });
    await waitFor(async () => (await get(e.store, 'Cluster', 'early')) === undefined, 'cluster gone', 10_000);
    const created = new Set(e.machineEvents.filter((ev) => ev.type === 'ADDED').map((ev) => ev.machine.metadata.name));
    assert.ok(created.size >= 1);
    assert.deepEqual(await list(e.store, 'Machine'), []);
    assert.deepEqual(await list(e.store, 'NodePool'), []);
    assert.deepEqual(await list(e.store, 'Secret'), []);
    assert.deepEqual(new Set(e.world.callsOf('delete').map((c) => c.name)), created);
    assert.deepEqual(e.world.callsOf('deleteEndpoint').map((c) => c.name), ['early']);
    assert.equal(e.world.machines.size, 0);

    // Deleting before anything was created at all also works.
    await e.store.create(clusterObj('instant'));
    await e.store.delete({ kind: 'Cluster', project: P, name: 'instant' });
    await waitFor(async () => (await get(e.store, 'Cluster', 'instant')) === undefined, 'instant cluster gone', 10_000);
    assert.deepEqual(await list(e.store, 'Machine'), []);
    assert.deepEqual(e.world.errors, []);
  } finally {
    await e.close();
  }
});

test('restarting the controllers mid-provisioning converges without duplicate machines', async () => {
  const e = await env();
  try {
    e.world.bootDescribes = 3;
    const first = await e.start();
    await e.store.create(clusterObj('phoenix'));
    await waitFor(async () => (await list<Machine>(e.store, 'Machine', 'phoenix')).filter((m) => m.spec.pool === 'etcd').length >= 2, 'second etcd machine');
    await first.stop();
    const before = (await list<Machine>(e.store, 'Machine', 'phoenix')).map((m) => m.metadata.name);

    await e.start();
    await waitReady(e.store, 'phoenix');
    const after = await list<Machine>(e.store, 'Machine', 'phoenix');
    assert.equal(after.length, 6);
    for (const n of before) assert.ok(after.some((m) => m.metadata.name === n), `${n} survived the restart`);
    const added = e.machineEvents.filter((ev) => ev.type === 'ADDED').map((ev) => ev.machine.metadata.name);
    assert.equal(added.length, 6, `no duplicate machines: ${added.join(', ')}`);
    const starts = e.world.started();
    assert.equal(new Set(starts).size, starts.length, 'each machine started once');
    assert.equal(e.world.etcdOps.filter((o) => o.startsWith('add')).length, 2, 'each joining member added once');
    assert.equal(e.world.etcdOps.filter((o) => o.startsWith('promote')).length, 2, 'each joining member promoted once');
    assert.deepEqual(e.world.errors, []);
  } finally {
    await e.close();
  }
});

test('etcd scales in one member at a time and keeps quorum', async () => {
  const e = await env();
  try {
    await e.start();
    await e.store.create(clusterObj('quorum', 0, 3));
    await waitReady(e.store, 'quorum');
    const from = e.machineEvents.length;
    const c = (await get<Cluster>(e.store, 'Cluster', 'quorum'))!;
    await e.store.update({ ...c, spec: { ...c.spec, nodePools: c.spec.nodePools.map((p) => (p.name === 'etcd' ? { ...p, replicas: 1 } : p)) } });
    await waitPool(e.store, 'quorum-etcd', 1);
    // Replay the Machine events: how many etcd machines were terminating at the same time?
    const leaving = new Set<string>();
    let maxLeaving = 0;
    for (const ev of e.machineEvents.slice(from)) {
      if (ev.machine.spec.pool !== 'etcd') continue;
      if (ev.type === 'DELETED') leaving.delete(ev.machine.metadata.name);
      else if (ev.machine.metadata.deletionTimestamp) leaving.add(ev.machine.metadata.name);
      maxLeaving = Math.max(maxLeaving, leaving.size);
    }
    assert.equal(maxLeaving, 1, 'never two etcd members leaving at once');
    assert.equal(e.world.sim('quorum').members.length, 1);
    assert.deepEqual(e.world.etcdOps.filter((o) => o.startsWith('remove')).length, 2);
    assert.ok(e.world.etcdQuorum('quorum'));
    await waitReady(e.store, 'quorum');
    assert.deepEqual(e.world.errors, []);
  } finally {
    await e.close();
  }
});

test('a terminal provider error fails the machine with its reason', async () => {
  const e = await env();
  try {
    await e.start();
    const obj = clusterObj('broken', 1);
    obj.spec.nodePools[2]!.healing = { enabled: false };
    await e.store.create(obj);
    let worker: Machine | undefined;
    await waitFor(async () => {
      worker = (await list<Machine>(e.store, 'Machine', 'broken')).find((m) => m.spec.pool === 'workers');
      return worker !== undefined;
    }, 'worker machine');
    e.world.failStart.add(worker!.metadata.name);
    await waitFor(async () => (await get<Machine>(e.store, 'Machine', worker!.metadata.name))?.status?.phase === 'Failed', 'machine Failed', 15_000);
    const m = (await get<Machine>(e.store, 'Machine', worker!.metadata.name))!;
    assert.equal(m.status?.failureReason, 'BadFlavor');
    assert.match(m.status?.failureMessage ?? '', /flavor/);
    const c = (await get<Cluster>(e.store, 'Cluster', 'broken'))!;
    assert.notEqual(c.status?.phase, 'Ready');
    assert.equal(getCondition(c.status?.conditions, 'PoolsReady')?.status, 'False');
    // The pool's condition names the provider's reason and message too.
    await waitFor(async () => {
      const ready = getCondition((await get<NodePool>(e.store, 'NodePool', 'broken-workers'))?.status?.conditions, 'Ready');
      return ready?.message?.includes(`${worker!.metadata.name} (Failed: BadFlavor: flavor of ${worker!.metadata.name} does not exist)`) === true;
    }, "the pool's Ready condition naming BadFlavor");
    // Healing is off for the pool: the failure is held back, visibly.
    await waitFor(async () => {
      const pool = await get<NodePool>(e.store, 'NodePool', 'broken-workers');
      const held = getCondition(pool?.status?.conditions, 'HealingHeldBack');
      return held?.status === 'True' && held.reason === 'HealingDisabled';
    }, 'HealingHeldBack=True (HealingDisabled)');
    assert.equal((await get<Machine>(e.store, 'Machine', worker!.metadata.name))?.status?.phase, 'Failed');
  } finally {
    await e.close();
  }
});

test('auto-healing replaces a failed machine once, keeping labels and taints', async () => {
  const e = await env();
  try {
    await e.start();
    await e.store.create(clusterObj('heal', 2));
    let victim: Machine | undefined;
    await waitFor(async () => {
      victim = (await list<Machine>(e.store, 'Machine', 'heal')).find((m) => m.spec.pool === 'workers');
      return victim !== undefined;
    }, 'worker machine');
    e.world.failStart.add(victim!.metadata.name);
    await waitFor(async () => {
      const pool = await get<NodePool>(e.store, 'NodePool', 'heal-workers');
      return (pool?.status?.remediations ?? []).some((r) => r.machine === victim!.metadata.name);
    }, 'remediation recorded', 15_000);
    await waitFor(async () => (await get<Cluster>(e.store, 'Cluster', 'heal'))?.status?.phase === 'Ready', 'cluster Ready after healing', 20_000);
    const pool = (await get<NodePool>(e.store, 'NodePool', 'heal-workers'))!;
    assert.equal(pool.status?.remediations?.length, 1, 'one failure, one replacement');
    assert.equal(pool.status?.remediations?.[0]?.reason, 'MachineFailed');
    const workers = (await list<Machine>(e.store, 'Machine', 'heal')).filter((m) => m.spec.pool === 'workers');
    assert.equal(workers.length, 2);
    assert.ok(!workers.some((m) => m.metadata.name === victim!.metadata.name));
    for (const w of workers) {
      assert.deepEqual(w.spec.labels, { tier: 'web' });
      assert.deepEqual(w.spec.taints, [{ key: 'dedicated', value: 'web', effect: 'NoSchedule' }]);
    }
    assert.equal(getCondition(pool.status?.conditions, 'HealingHeldBack')?.status, 'False');
    const replaced = e.published.filter((ev) => ev.type === 'dev.marina.machine.replaced');
    assert.equal(replaced.length, 1);
    assert.equal(replaced[0]!.subject, `heal/heal-workers/${victim!.metadata.name}`);
    assert.equal((replaced[0]!.data as { reason: string }).reason, 'MachineFailed');
  } finally {
    await e.close();
  }
});

// The first remote call a cluster's reconciles make to each: the Cluster asks its API for /readyz
// as soon as it has an endpoint; the etcd machine asks etcd to promote its member once it runs.
for (const hanging of ['kube', 'etcd'] as const) {
  test(`stopping aborts a hanging ${hanging} call after the grace period and records nothing it saw`, { timeout: 60_000 }, async () => {
    const e = await env();
    // Accepts connections and never answers: only an abort ends a call to it (the call timeout is 10 minutes).
    const hole = await blackHole();
    const ca = await createCA({ commonName: 'unused' }); // the TLS handshake never happens
    const etcd = new EtcdClient({ endpoints: [hole.url], ca: ca.certPem, cert: ca.certPem, key: ca.keyPem, timeoutMs: 600_000 });
    const live = new LiveConnections({ secrets: new ClusterSecrets(e.store), timeoutMs: 600_000 });
    const fake = e.world.connections;
    if (hanging === 'kube') e.world.endpointURL = hole.url;
    try {
      const loops = await e.start({
        // The real clients, talking to the black hole: etcd (once the fake says the cluster has a
        // PKI), or the cluster's API through its admin kubeconfig.
        access:
          hanging === 'etcd'
            ? { ...fake, etcd: async (c, endpoints) => ((await fake.etcd(c, endpoints)) ? etcd : undefined) }
            : { ...fake, kube: (c) => live.kube(c) },
        stopGracePeriodMs: 200,
      });
      await e.store.create(clusterObj('hang', 0, 1));
      await hole.connected();
      // Resolves only once every reconcile ended: the hanging calls were aborted after the grace
      // period. (Bounded far below the calls' own timeout, so a missing abort fails here.)
      assert.notEqual(await within(loops.stop(), 20_000), 'pending', 'the stop waited for a hanging call');
      await hole.allClosed();
      const machines = await list<Machine>(e.store, 'Machine', 'hang');
      const cluster = await get<Cluster>(e.store, 'Cluster', 'hang');
      const seen = [...machines.flatMap((m) => m.status?.conditions ?? []), ...(cluster?.status?.conditions ?? [])].map((c) => `${c.type}: ${c.message ?? ''}`);
      assert.deepEqual(seen.filter((c) => /abort/i.test(c)), [], 'an aborted call is not recorded as what the cluster said');
    } finally {
      // Unblocks whatever still hangs when the test failed.
      etcd.close();
      await live.close();
      await hole.close();
      await e.close();
    }
  });
}

// ---------- rolling updates ----------

/** Replays Machine events: the most machines of `pool` not being deleted at once, from event `from` on. */
function maxAtOnce(events: Env['machineEvents'], pool: string, from: number): number {
  const alive = new Set<string>();
  let max = 0;
  events.forEach((ev, i) => {
    if (ev.machine.spec.pool !== pool) return;
    if (ev.type === 'DELETED' || ev.machine.metadata.deletionTimestamp) alive.delete(ev.machine.metadata.name);
    else alive.add(ev.machine.metadata.name);
    if (i >= from) max = Math.max(max, alive.size);
  });
  return max;
}

async function updateCluster(store: Store, name: string, change: (c: Cluster) => Cluster): Promise<void> {
  for (;;) {
    const c = (await get<Cluster>(store, 'Cluster', name))!;
    try {
      await store.update(change(c));
      return;
    } catch (err) {
      if ((err as { code?: number }).code !== 409) throw err;
    }
  }
}

/** Every machine of `cluster` satisfies `ok`, every pool is up to date and the cluster Ready. */
async function waitRolled(e: Env, cluster: string, ok: (m: Machine) => boolean, what: string, timeoutMs = 30_000): Promise<Machine[]> {
  let machines: Machine[] = [];
  await waitFor(
    async () => {
      machines = await list<Machine>(e.store, 'Machine', cluster);
      const pools = await list<NodePool>(e.store, 'NodePool', cluster);
      const c = await get<Cluster>(e.store, 'Cluster', cluster);
      return (
        machines.every((m) => ok(m) && !m.metadata.deletionTimestamp) &&
        pools.every((p) => getCondition(p.status?.conditions, 'UpToDate')?.status === 'True' && p.status?.observedGeneration === p.metadata.generation) &&
        machines.length === c!.spec.nodePools.reduce((n, p) => n + p.replicas, 0) &&
        c?.status?.phase === 'Ready'
      );
    },
    what,
    timeoutMs,
  ).catch(async (err: Error) => {
    const pools = await list<NodePool>(e.store, 'NodePool', cluster);
    throw new Error(`${err.message}; pools: ${pools.map((p) => `${p.metadata.name}: ${JSON.stringify(getCondition(p.status?.conditions, 'UpToDate'))}`).join(' | ')}`);
  });
  return machines;
}

test('an upgrade leaves etcd alone (same etcd version), rolls the control planes one at a time surge first, then the workers', async () => {
  const e = await env();
  try {
    await e.start();
    const obj = clusterObj('up', 3);
    obj.spec.kubernetesVersion = 'v1.35.4';
    obj.spec.nodePools[1]!.replicas = 2;
    await e.store.create(obj);
    await waitReady(e.store, 'up');
    const before = await list<Machine>(e.store, 'Machine', 'up');
    const from = e.machineEvents.length;
    await updateCluster(e.store, 'up', (c) => ({ ...c, spec: { ...c.spec, kubernetesVersion: 'v1.36.3' } }));
    const after = await waitRolled(e, 'up', (m) => m.spec.pool === 'etcd' || m.spec.kubernetesVersion === 'v1.36.3', 'every control plane and worker at v1.36.3');
    const events = e.machineEvents.slice(from);

    const names = (ms: Machine[], pool: string) => ms.filter((m) => m.spec.pool === pool).map((m) => m.metadata.name).sort();
    assert.deepEqual(names(after, 'etcd'), names(before, 'etcd'), 'etcd keeps its version, so its members stay');
    assert.equal(maxAtOnce(e.machineEvents, 'cp', from), 3, 'control planes: one surge machine at a time');
    assert.equal(maxAtOnce(e.machineEvents, 'workers', from), 4, 'workers: maxSurge 1');
    const added = events.filter((ev) => ev.type === 'ADDED');
    const successors = added.map((ev) => ev.machine.metadata.annotations?.['marina.dev/replaces']);
    assert.ok(successors.every(Boolean), 'every new machine replaces one');
    assert.equal(new Set(successors).size, successors.length, 'no machine was replaced twice');
    // Kubelets are never newer than the apiservers: the first new worker comes after the last new control plane ran.
    const lastCp = Math.max(...events.flatMap((ev, i) => (ev.machine.spec.pool === 'cp' && ev.machine.status?.phase === 'Running' && ev.machine.spec.kubernetesVersion === 'v1.36.3' ? [i] : [])));
    const firstWorker = added.findIndex((ev) => ev.machine.spec.pool === 'workers');
    assert.ok(events.indexOf(added[firstWorker]!) > lastCp, 'the workers roll after the control planes');
    // Surge first: each old control plane was removed only after its successor ran.
    for (const old of names(before, 'cp')) {
      const successor = added.find((ev) => ev.machine.metadata.annotations?.['marina.dev/replaces'] === old)!.machine.metadata.name;
      assert.ok(idx(e.world.timeline, `running ${successor}`) < idx(e.world.timeline, `removed ${old}`), `${successor} ran before ${old} was removed`);
    }
    const pool = (await get<NodePool>(e.store, 'NodePool', 'up-workers'))!;
    assert.equal(pool.status?.updatedReplicas, 3);
    assert.equal(pool.status?.availableReplicas, 3);
    assert.match(pool.status?.rollout?.templateHash ?? '', /^[0-9a-f]{10}$/);
    assert.ok(after.every((m) => m.metadata.labels?.['marina.dev/template-hash']), 'every machine is labelled with its template hash');
    assert.deepEqual(e.world.errors, []);
  } finally {
    await e.close();
  }
});

test('new certificates roll every machine: etcd one member at a time, stale control planes refreshed on the way, the admin kubeconfig re-issued', async () => {
  const e = await env();
  try {
    await e.start();
    await e.store.create(clusterObj('certs', 1));
    await waitReady(e.store, 'certs');
    const opsBefore = e.world.etcdOps.length;
    const secret = (await get<Secret>(e.store, 'Secret', 'certs-pki'))!;
    const rotated = withGeneration(await loadClusterPkiFromSecretData(secret.spec.data), 'rotate-1');
    await e.store.update({ ...secret, spec: { ...secret.spec, data: pkiToSecretData(rotated) } });
    await waitRolled(e, 'certs', (m) => m.spec.certificates === 'rotate-1', 'every machine on certificate generation rotate-1', 45_000);
    // learner added, promoted, old member removed: three times, one member at a time.
    const ops = e.world.etcdOps.slice(opsBefore).map((o) => o.split(' ')[0]);
    assert.deepEqual(ops, ['add', 'promote', 'remove', 'add', 'promote', 'remove', 'add', 'promote', 'remove']);
    assert.ok(e.world.etcdQuorum('certs'));
    const cp = (await get<NodePool>(e.store, 'NodePool', 'certs-cp'))!;
    assert.ok((cp.status?.remediations ?? []).some((r) => r.reason === 'EtcdEndpointsStale'), 'the control plane was refreshed when its apiserver knew too few live members');
    const admin = (await get<Secret>(e.store, 'Secret', 'certs-admin-kubeconfig'))!;
    assert.equal(admin.metadata.annotations?.['marina.dev/certificates-generation'], 'rotate-1');
    assert.deepEqual(e.world.errors, []);
  } finally {
    await e.close();
  }
});

test('a drain a PodDisruptionBudget blocks ends at the drain timeout: the machine stays, the budget named, its Node schedulable again', async () => {
  const e = await env();
  try {
    await e.start();
    const obj = clusterObj('pdb', 1);
    obj.spec.nodePools[2]!.healing = { drainTimeoutSeconds: 1 };
    await e.store.create(obj);
    await waitReady(e.store, 'pdb');
    const [old] = (await list<Machine>(e.store, 'Machine', 'pdb')).filter((m) => m.spec.pool === 'workers');
    e.world.sim('pdb').pods.push({ apiVersion: 'v1', kind: 'Pod', metadata: { namespace: 'default', name: 'web-0', annotations: { 'test/pdb': 'default/never' } }, spec: { nodeName: old!.metadata.name }, status: { phase: 'Running' } });
    await updateCluster(e.store, 'pdb', (c) => ({ ...c, spec: { ...c.spec, nodePools: c.spec.nodePools.map((p) => (p.name === 'workers' ? { ...p, machine: { cpu: 16 } } : p)) } }));
    let pool: NodePool | undefined;
    await waitFor(async () => {
      pool = await get<NodePool>(e.store, 'NodePool', 'pdb-workers');
      return getCondition(pool?.status?.conditions, 'UpToDate')?.reason === 'DrainTimeout';
    }, 'the drain timed out', 15_000);
    assert.equal(pool!.status?.rollout?.lastDrainTimeout?.machine, old!.metadata.name);
    assert.match(pool!.status?.rollout?.lastDrainTimeout?.message ?? '', /timed out after 1 s: 1 pods left .*PodDisruptionBudget default\/never/);
    assert.match(getCondition(pool!.status?.conditions, 'UpToDate')?.message ?? '', /default\/never/);
    assert.ok(await get<Machine>(e.store, 'Machine', old!.metadata.name), 'the old machine stays');
    assert.ok(!e.world.sim('pdb').nodes.get(old!.metadata.name)?.spec?.unschedulable, 'its Node is schedulable again');
    assert.ok(!(pool!.status?.rollout?.draining ?? []).length, 'nothing is being drained');
  } finally {
    await e.close();
  }
});

test('a worker killed mid-roll: healing replaces it, the roll goes on, no machine is replaced twice, the pool stays within its surge', async () => {
  const e = await env();
  try {
    await e.start();
    await e.store.create(clusterObj('kill', 3));
    await waitReady(e.store, 'kill');
    const from = e.machineEvents.length;
    e.world.bootDescribes = 20; // successors take a while: time to kill one mid-roll
    await updateCluster(e.store, 'kill', (c) => ({ ...c, spec: { ...c.spec, nodePools: c.spec.nodePools.map((p) => (p.name === 'workers' ? { ...p, machine: { cpu: 16 } } : p)) } }));
    let victim: string | undefined;
    await waitFor(async () => {
      const ms = (await list<Machine>(e.store, 'Machine', 'kill')).filter((m) => m.spec.pool === 'workers');
      const successor = ms.find((m) => m.metadata.annotations?.['marina.dev/replaces']);
      // An old worker that is not the one being replaced.
      victim = successor && ms.find((m) => m.spec.machine?.cpu === 8 && m.metadata.name !== successor.metadata.annotations?.['marina.dev/replaces'])?.metadata.name;
      return victim !== undefined;
    }, 'a successor in flight');
    e.world.kill(victim!);
    e.world.bootDescribes = 1;
    await waitRolled(e, 'kill', (m) => m.spec.pool !== 'workers' || m.spec.machine?.cpu === 16, 'every worker on the new template', 45_000);
    const events = e.machineEvents.slice(from);
    const most = maxAtOnce(e.machineEvents, 'workers', from);
    assert.ok(most <= 4, `at most replicas + maxSurge workers at once (saw ${most})`);
    const replaces = events.filter((ev) => ev.type === 'ADDED').flatMap((ev) => ev.machine.metadata.annotations?.['marina.dev/replaces'] ?? []);
    assert.equal(new Set(replaces).size, replaces.length, 'no machine got two successors');
    const pool = (await get<NodePool>(e.store, 'NodePool', 'kill-workers'))!;
    assert.deepEqual(pool.status?.remediations?.map((r) => [r.machine, r.reason]), [[victim, 'MachineFailed']], 'healing replaced the killed machine, once');
    assert.deepEqual(e.world.errors, []);
  } finally {
    await e.close();
  }
});

// ---------- certificate rotation as an operation ----------

async function runOperation(e: Env, cluster: string, name: string, spec: Partial<Operation['spec']>, timeoutMs = 60_000): Promise<Operation> {
  await e.store.create({
    apiVersion: API_VERSION,
    kind: 'Operation',
    metadata: { name, project: P, labels: { 'marina.dev/cluster': cluster, 'marina.dev/operation-type': spec.type ?? '' } },
    spec: { cluster, ...spec },
    status: { phase: 'Pending', requestedBy: 'tester' },
  } as Operation);
  let op: Operation | undefined;
  await waitFor(async () => {
    op = await get<Operation>(e.store, 'Operation', name);
    return ['Succeeded', 'Failed', 'Cancelled'].includes(op?.status?.phase ?? '');
  }, `operation ${name} ends`, timeoutMs).catch((err: Error) => {
    throw new Error(`${err.message}; ${JSON.stringify(op?.status?.steps?.map((s) => [s.name, s.state, s.message]))}`);
  });
  return op!;
}

test('RotateCertificates --ca: phase 1 rolls every machine onto the new CAs trusting both, phase 2 drops the old ones and rolls again', async () => {
  const e = await env();
  const dataDir = mkdtempSync(join(tmpdir(), 'marina-rotate-'));
  try {
    await e.start({ operations: { encryptionKey: randomBytes(32), dataDir } });
    await e.store.create(clusterObj('rot', 1, 1));
    await waitReady(e.store, 'rot');
    const before = await loadClusterPkiFromSecretData((await get<Secret>(e.store, 'Secret', 'rot-pki'))!.spec.data);
    const generations: string[] = [];
    const watch = e.store.watch({ kind: 'Secret' }, (ev) => {
      const g = (ev.object as Secret).spec.data.generation;
      if (ev.object.metadata.name === 'rot-pki' && g && generations.at(-1) !== g) generations.push(g);
    });
    const op = await runOperation(e, 'rot', 'rot-ca', { type: 'RotateCertificates', rotateCertificates: { ca: true } }, 90_000);
    watch.stop();
    assert.equal(op.status?.phase, 'Succeeded', op.status?.message);
    assert.deepEqual(generations, ['rot-ca.1', 'rot-ca.2'], 'phase 1, then phase 2');
    assert.match(op.status?.result?.note ?? '', /keep working until phase 2/);
    const after = await loadClusterPkiFromSecretData((await get<Secret>(e.store, 'Secret', 'rot-pki'))!.spec.data);
    assert.notEqual(after.ca.certPem, before.ca.certPem, 'new CAs');
    assert.equal(after.rotation, undefined, 'the old CAs are no longer trusted');
    assert.equal(after.serviceAccount.privateKeyPem, before.serviceAccount.privateKeyPem, 'service-account tokens stay valid');
    const machines = await list<Machine>(e.store, 'Machine', 'rot');
    assert.ok(machines.every((m) => m.spec.certificates === 'rot-ca.2'), 'every machine rolled twice');
    const admin = parseKubeconfig((await get<Secret>(e.store, 'Secret', 'rot-admin-kubeconfig'))!.spec.data.kubeconfig!);
    assert.equal(admin.ca?.toString('utf8'), after.ca.certPem, 'the admin kubeconfig trusts only the new CA');
    assert.deepEqual(op.status?.steps?.map((s) => s.state), Array(10).fill('Succeeded'));
    assert.deepEqual(e.world.errors, []);
  } finally {
    await e.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('RotateCertificates (leaves): one roll, the phase-2 steps skipped, the new expiries in the cluster status', async () => {
  const e = await env();
  const dataDir = mkdtempSync(join(tmpdir(), 'marina-rotate-'));
  try {
    await e.start({ operations: { encryptionKey: randomBytes(32), dataDir } });
    await e.store.create(clusterObj('leaf', 1, 1));
    const before = await waitReady(e.store, 'leaf');
    const adminBefore = (await get<Secret>(e.store, 'Secret', 'leaf-admin-kubeconfig'))!.spec.data.kubeconfig!;
    const machinesBefore = (await list<Machine>(e.store, 'Machine', 'leaf')).map((m) => m.metadata.name);
    const op = await runOperation(e, 'leaf', 'leaf-rotate', { type: 'RotateCertificates' });
    assert.equal(op.status?.phase, 'Succeeded', op.status?.message);
    assert.deepEqual(op.status?.steps?.filter((s) => s.state === 'Skipped').map((s) => s.name), ['dropOldCAs', 'finalEtcd', 'finalControlPlanes', 'finalWorkers']);
    const after = (await get<Cluster>(e.store, 'Cluster', 'leaf'))!;
    const machines = await list<Machine>(e.store, 'Machine', 'leaf');
    assert.ok(machines.every((m) => m.spec.certificates === 'leaf-rotate' && !machinesBefore.includes(m.metadata.name)), 'every machine replaced by one with new certificates');
    assert.notEqual((await get<Secret>(e.store, 'Secret', 'leaf-admin-kubeconfig'))!.spec.data.kubeconfig, adminBefore, 'the admin kubeconfig re-issued');
    // X.509 times have one-second precision: a rotation within the second of the cluster's creation
    // re-issues with the same notAfter, so "not earlier" plus "what the new machines report".
    for (const name of ['admin', 'pool/etcd', 'pool/cp', 'pool/workers']) {
      const was = before.status?.certificates?.find((c) => c.name === name)?.notAfter ?? '';
      const now = after.status?.certificates?.find((c) => c.name === name)?.notAfter ?? '';
      assert.ok(now !== '' && now >= was, `${name}: ${was} → ${now}`);
    }
    for (const m of machines) assert.equal(after.status?.certificates?.find((c) => c.name === `pool/${m.spec.pool}`)?.notAfter, m.status?.certificatesNotAfter, `pool/${m.spec.pool} recorded`);
    assert.equal(after.status?.certificates?.find((c) => c.name === 'ca')?.notAfter, before.status?.certificates?.find((c) => c.name === 'ca')?.notAfter, 'the CAs stay');
  } finally {
    await e.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
