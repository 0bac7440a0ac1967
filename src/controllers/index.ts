// Wires the Cluster, NodePool and Machine controllers with their secondary watches into one
// ControllerManager. The server's start-up wiring (src/server/control-loops.ts) gives them the
// cluster access and the health registry it shares with the health checker, and tells them about
// every new health report, so they can look again at what the report moved.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Cluster, Machine, NodePool } from '../api/kinds.js';
import { jsonEqual } from '../api/json.js';
import { hasRole } from '../api/machines.js';
import { isDeleting, type Condition, type ObjectKey, type Resource } from '../api/meta.js';
import { ClusterCondition, LABEL_CLUSTER, LABEL_NODEPOOL, MachineCondition } from '../api/wellknown.js';
import type { AlertSink } from '../alerts/manager.js';
import type { EventBus } from '../events/bus.js';
import type { ClusterConnections } from '../clusteraccess/access.js';
import type { ClusterSecrets } from '../clusteraccess/secrets.js';
import { healthSummary } from '../health/evaluate.js';
import type { HealthRegistry } from '../health/registry.js';
import type { HealthReport } from '../health/types.js';
import type { ProviderRegistry } from '../providers/contract.js';
import { Controller, type WatchSpec } from '../runtime/controller.js';
import { ControllerManager } from '../runtime/manager.js';
import { RuntimeMetrics } from '../runtime/metrics.js';
import { typed } from '../store/typed.js';
import type { Store } from '../store/types.js';
import { ClusterReconciler } from './cluster.js';
import { clusterKey, ClusterIndex, DEFAULT_TIMING, nodePoolName, type Shared, type Timing } from './common.js';
import { MachineReconciler } from './machine.js';
import { NodePoolReconciler } from './nodepool.js';
import { drainingMachines } from './pool-rollout.js';
import { OrphanSweep, orphanSweepSettingsFromEnv } from './orphans.js';

export interface ControllerDeps {
  store: Store;
  providers: ProviderRegistry;
  metrics: Registry;
  logger: Logger;
  /** Kubernetes version for clusters that name none (the toolchain's default). */
  defaultKubernetesVersion: string;
  /** How the controllers reach into clusters. */
  access: ClusterConnections;
  /** The clusters' PKI and admin kubeconfig, as the access reads them. */
  secrets: ClusterSecrets;
  /** Newest health report per cluster (none: machines and clusters get no health conditions). */
  health?: HealthRegistry;
  /** Poll intervals and timeouts (tests shrink them). */
  timing?: Partial<Timing>;
  /** Concurrent reconciles per controller (default cluster 4, nodepool 4, machine 16). */
  workers?: { cluster?: number; nodepool?: number; machine?: number };
  /** Full relist period of each controller (default 5 min). */
  resyncPeriodMs?: number;
  /** How long a stop lets reconciles finish before it aborts their calls (default 10 s). */
  stopGracePeriodMs?: number;
  /** Where healing reports HealingHeldBack (none: no alerts). */
  alerts?: AlertSink;
  /** Where the controllers publish platform events (cluster created/deleted, machine replaced, etcd member added). */
  events?: EventBus;
  /** Orphan sweep timing (default: orphanSweepSettingsFromEnv()); false: no sweep. */
  orphanSweep?: { intervalMs?: number; graceMs?: number } | false;
}

export interface RunningControllers {
  manager: ControllerManager;
  /** Reconcile an object (Cluster, NodePool or Machine) soon. */
  enqueue(key: ObjectKey): void;
  /** Wakes the Cluster whose health summary changed and each Machine whose agent or Node changed state. */
  onHealthReport(report: HealthReport, previous: HealthReport | undefined): void;
  stop(): Promise<void>;
}

export const DEFAULT_STOP_GRACE_MS = 10_000;

/** The Cluster a NodePool or Machine belongs to. */
function clusterOf(obj: NodePool | Machine): ObjectKey[] {
  return [clusterKey(obj.metadata.project ?? '', obj.spec.cluster)];
}

/**
 * Passes an object's change on only when what the watcher reads of it changed (a digest of
 * those fields), like controller-runtime's predicates: a Machine's status is written several times
 * while it boots, and each write would otherwise wake its pool, its cluster and, for etcd
 * machines, every machine of the cluster. An object's first event after a start always passes.
 */
class Changes<T extends Resource> {
  private readonly seen = new Map<string, string>();

  constructor(private readonly digest: (obj: T) => unknown) {}

  /** Whether `obj` differs from its last digest (and remembers the new one). */
  changed(obj: T): boolean {
    const key = `${obj.metadata.project ?? ''}/${obj.metadata.name}`;
    const d = JSON.stringify(this.digest(obj));
    const gone = isDeleting(obj) && (obj.metadata.finalizers ?? []).length === 0;
    const before = this.seen.get(key);
    if (gone) this.seen.delete(key);
    else this.seen.set(key, d);
    return gone || before !== d;
  }
}

const condition = (obj: { status?: { conditions?: Condition[] } }, type: string) => {
  const c = obj.status?.conditions?.find((x) => x.type === type);
  return c && [c.status, c.reason];
};

/** What the Cluster reads of its machines and pools: who started where, who leaves, the pools' counts. */
const machineForCluster = (m: Machine) => [m.status?.phase, m.status?.address, isDeleting(m), condition(m, MachineCondition.Bootstrapped)];
// The draining machines too: the Cluster takes them out of the endpoint's backends, and a drain waits for that.
const poolForCluster = (p: NodePool) => [p.status?.replicas, p.status?.readyReplicas, p.status?.updatedReplicas, p.status?.availableReplicas, drainingMachines(p), p.metadata.generation, isDeleting(p)];

/** A Cluster looks again when its pools, machines or Secrets change. */
function clusterWatches(): WatchSpec[] {
  const machines = new Changes(machineForCluster);
  const pools = new Changes(poolForCluster);
  return [
    { kind: 'NodePool', mapTo: (p) => (pools.changed(p) ? clusterOf(p) : []) },
    { kind: 'Machine', mapTo: (m) => (machines.changed(m) ? clusterOf(m) : []) },
    { kind: 'Secret', mapTo: (s) => (s.metadata.labels?.[LABEL_CLUSTER] ? [clusterKey(s.metadata.project ?? '', s.metadata.labels[LABEL_CLUSTER])] : []) },
  ];
}

/** What a NodePool reads of its machines: readiness, health (and since when), deletion, labels and taints. */
const machineForPool = (m: Machine) => [
  m.status?.phase,
  m.status?.nodeReady,
  isDeleting(m),
  m.metadata.annotations,
  m.spec.labels,
  m.spec.taints,
  m.status?.conditions?.filter((c) => c.type === MachineCondition.Healthy || c.type === MachineCondition.Bootstrapped).map((c) => [c.type, c.status, c.reason, c.lastTransitionTime]),
];

/** A NodePool looks again when its machines change, and when its cluster's spec does. */
function nodePoolWatches(pools: ClusterIndex): WatchSpec[] {
  const machines = new Changes(machineForPool);
  const clusters = new Changes((c: Cluster) => [c.metadata.generation, isDeleting(c)]);
  return [
    // Remember every pool's cluster (primary events come through the primary stream).
    { kind: 'NodePool', mapTo: (p) => (pools.note(p), []) },
    {
      kind: 'Machine',
      mapTo: (m) => {
        if (!machines.changed(m)) return [];
        const own = m.metadata.labels?.[LABEL_NODEPOOL];
        const keys: ObjectKey[] = own ? [{ kind: 'NodePool', project: m.metadata.project ?? '', name: own }] : [];
        // An etcd member's progress may unblock the etcd pools of the whole cluster.
        if (hasRole(m, 'etcd')) keys.push(...pools.keys(m.metadata.project ?? '', m.spec.cluster));
        return keys;
      },
    },
    {
      kind: 'Cluster',
      mapTo: (c) => {
        if (!clusters.changed(c)) return [];
        const project = c.metadata.project ?? '';
        const named = c.spec.nodePools.map((t) => ({ kind: 'NodePool', project, name: nodePoolName(c.metadata.name, t.name) }));
        return [...named, ...pools.keys(project, c.metadata.name)];
      },
    },
  ];
}

/** What the gates of a cluster's machines read of the cluster. */
const clusterForGates = (c: Cluster) => [
  c.metadata.generation,
  isDeleting(c),
  c.status?.endpoint,
  ...[ClusterCondition.PKIReady, ClusterCondition.EtcdReady, ClusterCondition.ControlPlaneReady, ClusterCondition.PoolsReady].map((t) => condition(c, t)),
];

/** What the gates read of the cluster's etcd machines: running, started, leaving, voting. */
const etcdMachineForGates = (m: Machine) => [m.status?.phase, isDeleting(m), condition(m, MachineCondition.Bootstrapped), condition(m, MachineCondition.EtcdMember)];

/**
 * Cluster status changes (endpoint, ControlPlaneReady...) re-open the gates of its machines, and
 * so do changes of its etcd machines (a member running or leaving lets the next one join, and the
 * control plane start).
 */
function machineWatches(machines: ClusterIndex): WatchSpec[] {
  const etcd = new Changes(etcdMachineForGates);
  const clusters = new Changes(clusterForGates);
  return [
    {
      kind: 'Machine',
      mapTo: (m) => {
        machines.note(m);
        if (!hasRole(m, 'etcd') || !etcd.changed(m)) return [];
        return machines.keys(m.metadata.project ?? '', m.spec.cluster).filter((k) => k.name !== m.metadata.name);
      },
    },
    { kind: 'Cluster', mapTo: (c) => (clusters.changed(c) ? machines.keys(c.metadata.project ?? '', c.metadata.name) : []) },
  ];
}

export async function startControllers(deps: ControllerDeps): Promise<RunningControllers> {
  const log = deps.logger;
  const timing: Timing = { ...DEFAULT_TIMING, ...deps.timing };
  const metrics = new RuntimeMetrics(deps.metrics);
  const shared: Shared = {
    metrics,
    store: deps.store,
    providers: deps.providers,
    connections: deps.access,
    secrets: deps.secrets,
    timing,
    defaultKubernetesVersion: deps.defaultKubernetesVersion,
    ...(deps.health ? { health: deps.health } : {}),
    ...(deps.alerts ? { alerts: deps.alerts } : {}),
    ...(deps.events ? { events: deps.events } : {}),
  };
  const machines = new ClusterIndex();
  const pools = new ClusterIndex();
  // Seed the indexes; watch events keep them current from here on.
  for (const m of await typed(deps.store, 'Machine').list()) machines.note(m);
  for (const p of await typed(deps.store, 'NodePool').list()) pools.note(p);
  const common = {
    store: deps.store,
    logger: log,
    metrics,
    resyncPeriodMs: deps.resyncPeriodMs,
    stopGracePeriodMs: deps.stopGracePeriodMs ?? DEFAULT_STOP_GRACE_MS,
  };
  // Reconciles mostly wait on remote calls (providers, etcd, Kubernetes APIs): more run at once
  // than there are cores, so that one slow cluster does not hold up the others.
  const workers = { cluster: 4, nodepool: 4, machine: 16, ...deps.workers };
  const cluster = new Controller({ ...common, name: 'cluster', kind: 'Cluster', reconciler: new ClusterReconciler(shared), workers: workers.cluster, watches: clusterWatches() });
  const nodePool = new Controller({ ...common, name: 'nodepool', kind: 'NodePool', reconciler: new NodePoolReconciler(shared), workers: workers.nodepool, watches: nodePoolWatches(pools) });
  const machine = new Controller({ ...common, name: 'machine', kind: 'Machine', reconciler: new MachineReconciler(shared), workers: workers.machine, watches: machineWatches(machines) });
  const manager = new ControllerManager([cluster, nodePool, machine]);
  await manager.start();
  const sweep =
    deps.orphanSweep === false
      ? undefined
      : new OrphanSweep({ store: deps.store, providers: deps.providers, log: log.child({ controller: 'orphans' }), ...(deps.alerts ? { alerts: deps.alerts } : {}), ...orphanSweepSettingsFromEnv(), ...deps.orphanSweep });
  sweep?.start();
  log.info({ timing }, 'cluster controllers started');
  const byKind: Record<string, Controller> = { Cluster: cluster, NodePool: nodePool, Machine: machine };
  return {
    manager,
    enqueue: (key) => byKind[key.kind]?.enqueue(key),
    onHealthReport(report, previous) {
      if (!previous || !jsonEqual(healthSummary(report), healthSummary(previous))) cluster.enqueue(clusterKey(report.project, report.cluster));
      const wake = (name: string) => machine.enqueue({ kind: 'Machine', project: report.project, name });
      for (const c of report.checks) {
        if (c.component !== 'agent' || !c.machine) continue;
        const before = previous?.checks.find((p) => p.component === 'agent' && p.machine === c.machine);
        if (!before || before.reachable !== c.reachable) wake(c.machine);
      }
      // A Node whose readiness changed (the Machine reads it through the API; this is the backstop
      // for a Node watch that missed it).
      for (const n of report.nodes) {
        const before = previous?.nodes.find((p) => p.name === n.name);
        if (before && before.ready !== n.ready && n.machine) wake(n.machine);
      }
    },
    stop: async () => {
      await sweep?.stop();
      await manager.stop();
    },
  };
}
