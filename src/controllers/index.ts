// Wires the Cluster, NodePool and Machine controllers with their secondary watches into one
// ControllerManager. The server calls startControllers once the store is open and the provider
// registry is built, and stop() on shutdown (before closing the store).
import { pino, type Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Cluster, Machine, NodePool } from '../api/kinds.js';
import type { ObjectKey, Resource } from '../api/meta.js';
import type { ProviderRegistry } from '../providers/contract.js';
import { Controller } from '../runtime/controller.js';
import { ControllerManager } from '../runtime/manager.js';
import { RuntimeMetrics } from '../runtime/metrics.js';
import type { Store } from '../store/types.js';
import { isDeepStrictEqual } from 'node:util';
import type { AlertSink } from '../alerts/manager.js';
import type { EventBus } from '../functions/events.js';
import { HealthChecker } from '../health/controller.js';
import { HealthRegistry } from '../health/registry.js';
import type { SeriesStore } from '../store/types.js';
import { ClusterReconciler, healthSummary } from './cluster.js';
import {
  clusterKey,
  ClusterIndex,
  DEFAULT_TIMING,
  hasRole,
  LABEL_CLUSTER,
  LABEL_NODEPOOL,
  listAll,
  nodePoolName,
  type Shared,
  type Timing,
} from './common.js';
import { ClusterSecrets, LiveConnections, type ClusterConnections } from './connections.js';
import { MachineReconciler } from './machine.js';
import { NodePoolReconciler } from './nodepool.js';

export * from './common.js';
export * from './connections.js';
export { ClusterReconciler, healthSummary } from './cluster.js';
export { planHealing, isHealthy, type HealingPlan, type Candidate } from './healing.js';
export { machineHealth } from './machine.js';
export { NodePoolReconciler, poolTemplateName, scaleInOrder } from './nodepool.js';
export { MachineReconciler, nodeSyncPatch, podsToEvict } from './machine.js';

export interface ControllerDeps {
  store: Store;
  providers: ProviderRegistry;
  metrics: Registry;
  logger: Logger;
  /** Kubernetes version for clusters that name none (the toolchain's default). */
  defaultKubernetesVersion: string;
  /** Poll intervals and timeouts (tests shrink them). */
  timing?: Partial<Timing>;
  /** How controllers reach into clusters; default: real etcd / Kubernetes clients. */
  connections?: ClusterConnections;
  /** Concurrent reconciles per controller (default cluster 2, nodepool 2, machine 4, health 4). */
  workers?: { cluster?: number; nodepool?: number; machine?: number; health?: number };
  /** Full relist period of each controller (default 5 min). */
  resyncPeriodMs?: number;
  /** Where the health checker keeps each cluster's 24-hour series (none: no series). */
  series?: SeriesStore;
  /** Where health, provisioning and healing alerts go (none: no alerts). */
  alerts?: AlertSink;
  /** Per-probe timeout of the health checker (default 2 s). */
  healthProbeTimeoutMs?: number;
  /** Where the controllers publish platform events (cluster created/deleted, machine replaced, etcd member added). */
  events?: EventBus;
}

export interface RunningControllers {
  manager: ControllerManager;
  /** The newest health report of every cluster. */
  health: HealthRegistry;
  stop(): Promise<void>;
}

function clusterOf(obj: Resource): ObjectKey[] {
  const spec = obj.spec as { cluster?: string } | undefined;
  return spec?.cluster ? [clusterKey(obj.metadata.project ?? '', spec.cluster)] : [];
}

export async function startControllers(deps: ControllerDeps): Promise<RunningControllers> {
  const log = deps.logger ?? pino({ level: 'silent' });
  const timing: Timing = { ...DEFAULT_TIMING, ...deps.timing };
  const secrets = new ClusterSecrets(deps.store);
  const metrics = new RuntimeMetrics(deps.metrics);
  let machineController: Controller | undefined;
  const connections =
    deps.connections ??
    new LiveConnections({
      secrets,
      timeoutMs: timing.remoteCallTimeoutMs,
      log: log.child({ component: 'cluster-connections' }),
      onNodeEvent: (project, _cluster, nodeName) => machineController?.enqueue({ kind: 'Machine', project, name: nodeName }),
    });
  const health = new HealthRegistry();
  const shared = (name: string): Shared => ({
    store: deps.store,
    providers: deps.providers,
    connections,
    secrets,
    timing,
    defaultKubernetesVersion: deps.defaultKubernetesVersion,
    log: log.child({ controller: name }),
    health,
    ...(deps.alerts ? { alerts: deps.alerts } : {}),
    ...(deps.events ? { events: deps.events } : {}),
  });
  const machines = new ClusterIndex();
  const pools = new ClusterIndex();
  // Seed the indexes; watch events keep them current from here on.
  for (const m of await listAll<Machine>(deps.store, 'Machine', {})) machines.note(m);
  for (const p of await listAll<NodePool>(deps.store, 'NodePool', {})) pools.note(p);
  const common = { store: deps.store, logger: log, metrics, resyncPeriodMs: deps.resyncPeriodMs, stopGracePeriodMs: 10_000 };

  const clusterController = new Controller({
    ...common,
    name: 'cluster',
    kind: 'Cluster',
    reconciler: new ClusterReconciler(shared('cluster')),
    workers: deps.workers?.cluster ?? 2,
    watches: [
      { kind: 'NodePool', mapTo: clusterOf },
      { kind: 'Machine', mapTo: clusterOf },
      { kind: 'Secret', mapTo: (s) => {
        const c = s.metadata.labels?.[LABEL_CLUSTER];
        return c ? [clusterKey(s.metadata.project ?? '', c)] : [];
      } },
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

  machineController = new Controller({
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

  // The health checker writes no status: it wakes the objects whose conditions its report moves.
  const healthController = new Controller({
    ...common,
    name: 'health',
    kind: 'Cluster',
    reconciler: new HealthChecker({
      store: deps.store,
      ...(deps.series ? { series: deps.series } : {}),
      connections,
      registry: health,
      ...(deps.alerts ? { alerts: deps.alerts } : {}),
      log: log.child({ controller: 'health' }),
      ...(deps.healthProbeTimeoutMs !== undefined ? { probeTimeoutMs: deps.healthProbeTimeoutMs } : {}),
      onReport: (report, previous) => {
        const ck = clusterKey(report.project, report.cluster);
        if (!previous || !isDeepStrictEqual(healthSummary(report), healthSummary(previous))) clusterController.enqueue(ck);
        for (const c of report.checks) {
          if (c.component !== 'agent' || !c.machine) continue;
          const before = previous?.checks.find((p) => p.component === 'agent' && p.machine === c.machine);
          if (!before || before.reachable !== c.reachable) machineController!.enqueue({ kind: 'Machine', project: report.project, name: c.machine });
        }
      },
    }),
    workers: deps.workers?.health ?? 4,
  });

  const manager = new ControllerManager([clusterController, nodePoolController, machineController, healthController]);
  await manager.start();
  log.info({ timing }, 'cluster controllers started');
  let stopping: Promise<void> | undefined;
  return {
    manager,
    health,
    stop() {
      stopping ??= (async () => {
        await manager.stop();
        await connections.close();
      })();
      return stopping;
    },
  };
}
