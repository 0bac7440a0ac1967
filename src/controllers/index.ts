// Wires the Cluster, NodePool and Machine controllers with their secondary watches into one
// ControllerManager. The server's start-up wiring (src/server/control-loops.ts) gives them the
// cluster access and the health registry it shares with the health checker, and tells them about
// every new health report, so they can look again at what the report moved.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Cluster, Machine, NodePool } from '../api/kinds.js';
import { jsonEqual } from '../api/json.js';
import { hasRole } from '../api/machines.js';
import type { ObjectKey, Resource } from '../api/meta.js';
import { LABEL_CLUSTER, LABEL_NODEPOOL } from '../api/wellknown.js';
import type { AlertSink } from '../alerts/manager.js';
import type { ClusterConnections } from '../clusteraccess/access.js';
import type { ClusterSecrets } from '../clusteraccess/secrets.js';
import { healthSummary } from '../health/evaluate.js';
import type { HealthRegistry } from '../health/registry.js';
import type { HealthReport } from '../health/types.js';
import type { ProviderRegistry } from '../providers/contract.js';
import { Controller } from '../runtime/controller.js';
import { ControllerManager } from '../runtime/manager.js';
import { RuntimeMetrics } from '../runtime/metrics.js';
import { typed } from '../store/typed.js';
import type { Store } from '../store/types.js';
import { ClusterReconciler } from './cluster.js';
import { clusterKey, ClusterIndex, DEFAULT_TIMING, nodePoolName, type Shared, type Timing } from './common.js';
import { MachineReconciler } from './machine.js';
import { NodePoolReconciler } from './nodepool.js';

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
  /** Concurrent reconciles per controller (default cluster 2, nodepool 2, machine 4). */
  workers?: { cluster?: number; nodepool?: number; machine?: number };
  /** Full relist period of each controller (default 5 min). */
  resyncPeriodMs?: number;
  /** How long a stop lets reconciles finish before it aborts their calls (default 10 s). */
  stopGracePeriodMs?: number;
  /** Where healing reports HealingHeldBack (none: no alerts). */
  alerts?: AlertSink;
}

export interface RunningControllers {
  manager: ControllerManager;
  /** Reconcile an object (Cluster, NodePool or Machine) soon. */
  enqueue(key: ObjectKey): void;
  /** Wakes the Cluster whose health summary changed and each Machine whose agent became (un)reachable. */
  onHealthReport(report: HealthReport, previous: HealthReport | undefined): void;
  stop(): Promise<void>;
}

export const DEFAULT_STOP_GRACE_MS = 10_000;

function clusterOf(obj: Resource): ObjectKey[] {
  const spec = obj.spec as { cluster?: string } | undefined;
  return spec?.cluster ? [clusterKey(obj.metadata.project ?? '', spec.cluster)] : [];
}

export async function startControllers(deps: ControllerDeps): Promise<RunningControllers> {
  const log = deps.logger;
  const timing: Timing = { ...DEFAULT_TIMING, ...deps.timing };
  const shared = (name: string): Shared => ({
    store: deps.store,
    providers: deps.providers,
    connections: deps.access,
    secrets: deps.secrets,
    timing,
    defaultKubernetesVersion: deps.defaultKubernetesVersion,
    ...(deps.health ? { health: deps.health } : {}),
    ...(deps.alerts ? { alerts: deps.alerts } : {}),
    log: log.child({ controller: name }),
  });
  const machines = new ClusterIndex();
  const pools = new ClusterIndex();
  // Seed the indexes; watch events keep them current from here on.
  for (const m of await typed(deps.store, 'Machine').list()) machines.note(m);
  for (const p of await typed(deps.store, 'NodePool').list()) pools.note(p);
  const common = {
    store: deps.store,
    logger: log,
    metrics: new RuntimeMetrics(deps.metrics),
    resyncPeriodMs: deps.resyncPeriodMs,
    stopGracePeriodMs: deps.stopGracePeriodMs ?? DEFAULT_STOP_GRACE_MS,
  };

  const clusterController = new Controller({
    ...common,
    name: 'cluster',
    kind: 'Cluster',
    reconciler: new ClusterReconciler(shared('cluster')),
    workers: deps.workers?.cluster ?? 2,
    watches: [
      { kind: 'NodePool', mapTo: clusterOf },
      { kind: 'Machine', mapTo: clusterOf },
      {
        kind: 'Secret',
        mapTo: (s) => {
          const c = s.metadata.labels?.[LABEL_CLUSTER];
          return c ? [clusterKey(s.metadata.project ?? '', c)] : [];
        },
      },
    ],
  });

  const nodePoolController = new Controller({
    ...common,
    name: 'nodepool',
    kind: 'NodePool',
    reconciler: new NodePoolReconciler(shared('nodepool')),
    workers: deps.workers?.nodepool ?? 2,
    watches: [
      // Remember every pool's cluster (primary events come through the primary stream).
      { kind: 'NodePool', mapTo: (p) => (pools.note(p as NodePool), []) },
      {
        kind: 'Machine',
        mapTo: (obj) => {
          const m = obj as Machine;
          const own = m.metadata.labels?.[LABEL_NODEPOOL];
          const keys: ObjectKey[] = own ? [{ kind: 'NodePool', project: m.metadata.project ?? '', name: own }] : [];
          // An etcd member's progress may unblock the etcd pools of the whole cluster.
          if (hasRole(m, 'etcd')) keys.push(...pools.keys(m.metadata.project ?? '', m.spec.cluster));
          return keys;
        },
      },
      {
        kind: 'Cluster',
        mapTo: (obj) => {
          const c = obj as Cluster;
          const project = c.metadata.project ?? '';
          const named = c.spec.nodePools.map((t) => ({ kind: 'NodePool', project, name: nodePoolName(c.metadata.name, t.name) }));
          return [...named, ...pools.keys(project, c.metadata.name)];
        },
      },
    ],
  });

  const machineController = new Controller({
    ...common,
    name: 'machine',
    kind: 'Machine',
    reconciler: new MachineReconciler(shared('machine')),
    workers: deps.workers?.machine ?? 4,
    watches: [
      { kind: 'Machine', mapTo: (m) => (machines.note(m as Machine), []) },
      // Cluster status changes (endpoint, ControlPlaneReady...) re-open the gates of its machines.
      { kind: 'Cluster', mapTo: (c) => machines.keys(c.metadata.project ?? '', c.metadata.name) },
    ],
  });

  const manager = new ControllerManager([clusterController, nodePoolController, machineController]);
  await manager.start();
  log.info({ timing }, 'cluster controllers started');
  const byKind: Record<string, Controller> = { Cluster: clusterController, NodePool: nodePoolController, Machine: machineController };
  return {
    manager,
    enqueue: (key) => byKind[key.kind]?.enqueue(key),
    onHealthReport(report, previous) {
      if (!previous || !jsonEqual(healthSummary(report), healthSummary(previous))) {
        clusterController.enqueue(clusterKey(report.project, report.cluster));
      }
      for (const c of report.checks) {
        if (c.component !== 'agent' || !c.machine) continue;
        const before = previous?.checks.find((p) => p.component === 'agent' && p.machine === c.machine);
        if (!before || before.reachable !== c.reachable) machineController.enqueue({ kind: 'Machine', project: report.project, name: c.machine });
      }
    },
    stop: () => manager.stop(),
  };
}
