// The control loops `marina server` runs, wired together: the cluster access they share (one set
// of clients per cluster), the Cluster / NodePool / Machine controllers, the health checker with
// the registry of its newest reports, which the controllers and the API read, and the add-on
// starter with its per-cluster add-on controllers.
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { AddonStarter, Addons } from '../addons/index.js';
import type { AlertSink } from '../alerts/manager.js';
import type { ClusterConnections } from '../clusteraccess/access.js';
import { LiveConnections } from '../clusteraccess/live.js';
import { ClusterSecrets } from '../clusteraccess/secrets.js';
import { DEFAULT_TIMING, type Timing } from '../controllers/common.js';
import { DEFAULT_STOP_GRACE_MS, startControllers, type RunningControllers } from '../controllers/index.js';
import { startHealthChecks } from '../health/controller.js';
import { HealthRegistry } from '../health/registry.js';
import type { ProviderRegistry } from '../providers/contract.js';
import { RuntimeMetrics } from '../runtime/metrics.js';
import type { SeriesStore, Store } from '../store/types.js';
import type { EventBus } from '../events/bus.js';
import { logEvents } from '../events/platform.js';
import { startOperationControllers } from '../operations/index.js';

export interface ControlLoopOptions {
  store: Store;
  providers: ProviderRegistry;
  metrics: Registry;
  logger: Logger;
  /** Kubernetes version for clusters that name none (the toolchain's default). */
  defaultKubernetesVersion: string;
  /** Poll intervals and timeouts (tests shrink them). */
  timing?: Partial<Timing>;
  /** How the loops reach into clusters; default: the real etcd / Kubernetes / agent clients. */
  access?: ClusterConnections;
  /** Concurrent reconciles per controller (default cluster 2, nodepool 2, machine 4, health 4). */
  workers?: { cluster?: number; nodepool?: number; machine?: number; health?: number };
  /** Full relist period of each controller (default 5 min). */
  resyncPeriodMs?: number;
  /** How long a stop lets reconciles finish before it aborts their calls (default 10 s). */
  stopGracePeriodMs?: number;
  /** Where the health checker keeps the newest report of each cluster (default: a new one). */
  health?: HealthRegistry;
  /** Where the health checker keeps each cluster's 24-hour series (none: no series). */
  series?: SeriesStore;
  /** Where health, provisioning and healing alerts go (none: no alerts). */
  alerts?: AlertSink;
  /** Per-probe timeout of the health checker (default 2 s). */
  healthProbeTimeoutMs?: number;
  /** Where platform events go (the function service): clusters, healing, etcd members, operations, backups. None: the controllers publish nothing and operation events go to the log. */
  events?: EventBus;
  /** Day-2 operations (snapshots, restores, replacements); none: they are not run. */
  operations?: {
    /** Marina's data-encryption key (snapshots are encrypted with it). */
    encryptionKey: Buffer;
    /** Marina's data directory: the default backup target and work files. */
    dataDir: string;
    /** How long a step may wait before its operation fails (default 15 min). */
    stepTimeoutMs?: number;
  };
  /** Add-on management (openAddons): its starter runs with the other loops (none: no add-on controllers). */
  addons?: Addons;
}

export interface RunningControlLoops {
  controllers: RunningControllers;
  /** The add-on starter, when add-on management was given. */
  addons?: AddonStarter;
  /** The newest health report of every cluster. */
  health: HealthRegistry;
  /** Stops the health checker, the controllers and the add-on controllers (aborting calls that outlive the grace period), then closes the cluster access. */
  stop(): Promise<void>;
}

export async function startControlLoops(opts: ControlLoopOptions): Promise<RunningControlLoops> {
  const log = opts.logger;
  const timing: Timing = { ...DEFAULT_TIMING, ...opts.timing };
  const secrets = new ClusterSecrets(opts.store);
  let controllers: RunningControllers | undefined;
  const access =
    opts.access ??
    new LiveConnections({
      secrets,
      timeoutMs: timing.remoteCallTimeoutMs,
      log: log.child({ component: 'cluster-access' }),
      // A Node's change wakes its Machine (the Node is named after it).
      onNodeEvent: (project, _cluster, node) => controllers?.enqueue({ kind: 'Machine', project, name: node }),
    });
  const health = opts.health ?? new HealthRegistry();
  const stopGracePeriodMs = opts.stopGracePeriodMs ?? DEFAULT_STOP_GRACE_MS;
  const optional = {
    ...(opts.alerts ? { alerts: opts.alerts } : {}),
    ...(opts.resyncPeriodMs !== undefined ? { resyncPeriodMs: opts.resyncPeriodMs } : {}),
  };
  controllers = await startControllers({
    store: opts.store,
    providers: opts.providers,
    metrics: opts.metrics,
    logger: log,
    defaultKubernetesVersion: opts.defaultKubernetesVersion,
    access,
    secrets,
    health,
    timing,
    stopGracePeriodMs,
    ...(opts.workers ? { workers: opts.workers } : {}),
    ...(opts.events ? { events: opts.events } : {}),
    ...optional,
  });
  const running = controllers;
  // The health checker writes no status: it wakes the objects whose conditions its report moves.
  const checker = await startHealthChecks({
    store: opts.store,
    connections: access,
    registry: health,
    logger: log,
    metrics: new RuntimeMetrics(opts.metrics),
    workers: opts.workers?.health ?? 4,
    stopGracePeriodMs,
    onReport: (report, previous) => running.onHealthReport(report, previous),
    ...(opts.series ? { series: opts.series } : {}),
    ...(opts.healthProbeTimeoutMs !== undefined ? { probeTimeoutMs: opts.healthProbeTimeoutMs } : {}),
    ...optional,
  }).catch(async (err: unknown) => {
    await running.stop();
    throw err;
  });
  const operations = opts.operations
    ? await startOperationControllers({
        deps: {
          store: opts.store,
          providers: opts.providers,
          connections: access,
          secrets,
          encryptionKey: opts.operations.encryptionKey,
          dataDir: opts.operations.dataDir,
          events: opts.events ?? logEvents(log.child({ component: 'operation-events' })),
          defaultKubernetesVersion: opts.defaultKubernetesVersion,
          ...(opts.alerts ? { alerts: opts.alerts } : {}),
          ...(opts.operations.stepTimeoutMs !== undefined ? { stepTimeoutMs: opts.operations.stepTimeoutMs } : {}),
        },
        logger: log,
        metrics: opts.metrics,
        stopGracePeriodMs,
        ...(opts.resyncPeriodMs !== undefined ? { resyncPeriodMs: opts.resyncPeriodMs } : {}),
      }).catch(async (err: unknown) => {
        await Promise.all([checker.stop(), running.stop()]);
        throw err;
      })
    : undefined;
  const addonStarter = await opts.addons
    ?.startControllers({ access, metrics: opts.metrics, stopGracePeriodMs, ...(opts.alerts ? { alerts: opts.alerts } : {}) })
    .catch(async (err: unknown) => {
      await Promise.all([checker.stop(), running.stop(), operations?.stop()]);
      throw err;
    });
  let stopping: Promise<void> | undefined;
  return {
    controllers: running,
    health,
    ...(addonStarter ? { addons: addonStarter } : {}),
    stop() {
      stopping ??= (async () => {
        await Promise.all([checker.stop(), running.stop(), operations?.stop(), addonStarter ? opts.addons?.stopControllers() : undefined]);
        await access.close();
      })();
      return stopping;
    },
  };
}
