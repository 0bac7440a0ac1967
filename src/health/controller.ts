// The health checker: a reconciler over Clusters that checks each cluster every
// spec.health.intervalSeconds, keeps the newest report in the HealthRegistry (and shares it with
// other replicas through the series store, ./shared.ts), appends a sample to the cluster's 24-hour
// series on every advanced (metrics) pass, and syncs the alerts of the `health` and `provisioning`
// evaluators (not while a restore holds the cluster out of service: the cluster's
// `marina.dev/paused-by` annotation). It writes no object status itself: `onReport` tells the
// wiring which objects to look at again, and their own reconcilers turn the report into conditions.
import type { Logger } from 'pino';
import { resolveHealth, type ResolvedHealth } from '../api/healing-policy.js';
import type { Cluster, Machine } from '../api/kinds.js';
import type { ObjectKey } from '../api/meta.js';
import { ANNOTATION_PAUSED_BY } from '../api/wellknown.js';
import type { AlertSink } from '../alerts/manager.js';
import type { ClusterConnections } from '../clusteraccess/access.js';
import { Controller, type ReconcileContext, type Reconciler, type Result } from '../runtime/controller.js';
import type { RuntimeMetrics } from '../runtime/metrics.js';
import { clusterMachines, typed } from '../store/typed.js';
import type { SeriesStore, Store } from '../store/types.js';
import { checkCluster, emptyScrapeState, type ScrapeState } from './checks.js';
import { hasBeenReady, healthAlerts, provisioningAlerts, sampleOf } from './evaluate.js';
import type { HealthRegistry } from './registry.js';
import { seriesKey, shareReport, sharesReport } from './shared.js';
import type { HealthReport } from './types.js';

/** Samples older than this leave the series. */
export const SERIES_RETENTION_MS = 24 * 3600 * 1000;

export interface HealthCheckerDeps {
  store: Store;
  series?: SeriesStore;
  connections: ClusterConnections;
  registry: HealthRegistry;
  alerts?: AlertSink;
  log: Logger;
  /** Per-probe timeout (default 2 s; never longer than the cluster's interval). */
  probeTimeoutMs?: number;
  /** Called after each pass with the new and the previous report. */
  onReport?: (report: HealthReport, previous: HealthReport | undefined, machines: Machine[]) => void;
  now?: () => number;
}

interface ClusterState {
  uid: string;
  lastAt: number;
  lastScrapeAt: number;
  scrape: ScrapeState;
}

export class HealthChecker implements Reconciler {
  private readonly state = new Map<string, ClusterState>();
  /** Deleting clusters (key/uid) already let go of; dropped when the object is gone. */
  private readonly forgotten = new Set<string>();
  private readonly now: () => number;
  private readonly clusters;

  constructor(private readonly d: HealthCheckerDeps) {
    this.now = d.now ?? Date.now;
    this.clusters = typed(d.store, 'Cluster');
  }

  async reconcile(key: ObjectKey, ctx: ReconcileContext): Promise<Result> {
    const cluster = await this.clusters.get(key.project, key.name);
    if (!cluster || cluster.metadata.deletionTimestamp) return this.letGo(key, cluster);
    const policy = resolveHealth(cluster.spec.health);
    const intervalMs = policy.intervalSeconds * 1000;
    const now = this.now();
    const pass = this.due(cluster, policy, now);
    // Cluster events arrive far more often than checks are due; a pass runs only on schedule.
    if ('requeueAfterMs' in pass) return pass;
    const project = cluster.metadata.project ?? '';
    const machines = await clusterMachines(this.d.store, project, cluster.metadata.name);
    const report = await checkCluster({
      cluster,
      machines,
      connections: this.d.connections,
      timeoutMs: Math.min(this.d.probeTimeoutMs ?? 2000, intervalMs),
      scrape: pass.scrape,
      state: pass.state.scrape,
      now: this.now,
      signal: ctx.signal,
    });
    // A pass cut short by a stop says nothing about the cluster.
    ctx.signal.throwIfAborted();
    // The cluster may have gone while the probes ran: do not resurrect its alerts or series.
    const current = await this.clusters.get(key.project, key.name);
    if (!current || current.metadata.deletionTimestamp || current.metadata.uid !== cluster.metadata.uid) {
      await this.forget(project, cluster.metadata.name);
      return;
    }
    await this.publish(report, current, machines, policy, pass.scrape, now);
    return { requeueAfterMs: Math.max(50, intervalMs - (this.now() - now)) };
  }

  /** A deleting cluster changes status every second or so: let go of it once, not each time. */
  private async letGo(key: ObjectKey, cluster: Cluster | undefined): Promise<Result> {
    const id = `${key.project}/${key.name}/${cluster?.metadata.uid ?? ''}`;
    if (this.forgotten.has(id)) return;
    await this.forget(key.project, key.name);
    if (cluster) this.forgotten.add(id);
  }

  /** Whether a pass is due now (and whether it scrapes metrics), or when to look again. */
  private due(cluster: Cluster, policy: ResolvedHealth, now: number): { requeueAfterMs: number } | { state: ClusterState; scrape: boolean } {
    const k = `${cluster.metadata.project ?? ''}/${cluster.metadata.name}`;
    const intervalMs = policy.intervalSeconds * 1000;
    let st = this.state.get(k);
    if (st && st.uid !== cluster.metadata.uid) st = undefined;
    if (st && now - st.lastAt < intervalMs - 20) return { requeueAfterMs: intervalMs - (now - st.lastAt) };
    if (!st) {
      st = { uid: cluster.metadata.uid ?? '', lastAt: 0, lastScrapeAt: 0, scrape: emptyScrapeState() };
      this.state.set(k, st);
    }
    const scrape = now - st.lastScrapeAt >= policy.metricsIntervalSeconds * 1000 - 20;
    st.lastAt = now;
    if (scrape) st.lastScrapeAt = now;
    return { state: st, scrape };
  }

  /** The report goes to the registry, the series (on a scrape) and the alerts; onReport tells who to wake. */
  private async publish(report: HealthReport, cluster: Cluster, machines: Machine[], policy: ResolvedHealth, scraped: boolean, now: number): Promise<void> {
    const scope = { project: cluster.metadata.project ?? '', cluster: cluster.metadata.name };
    const previous = this.d.registry.get(scope.project, scope.cluster);
    // Between scrapes the newest metrics stay in the report, so readers always see them.
    if (!report.metrics && previous?.metrics) report.metrics = previous.metrics;
    this.d.registry.set(report);
    if (this.d.series && sharesReport(report, previous, scraped)) await shareReport(this.d.series, report);
    if (scraped && this.d.series) {
      await this.d.series.append(seriesKey(scope.project, scope.cluster), report.at, sampleOf(report), {
        retainSince: new Date(now - SERIES_RETENTION_MS).toISOString(),
        maxPoints: Math.ceil(SERIES_RETENTION_MS / (policy.metricsIntervalSeconds * 1000)) + 10,
      });
    }
    // A restore stops the cluster's services on purpose: no health alerts for what it does.
    const paused = cluster.metadata.annotations?.[ANNOTATION_PAUSED_BY] !== undefined;
    if (this.d.alerts && !paused) {
      // Before the cluster was first Ready, failing components are provisioning, not incidents:
      // the provisioning watchdog speaks for that phase.
      await this.d.alerts.sync({ ...scope, source: 'health' }, hasBeenReady(cluster) ? healthAlerts(report, cluster, policy, now) : []);
      await this.d.alerts.sync({ ...scope, source: 'provisioning' }, provisioningAlerts(cluster, machines, policy, now));
    }
    this.d.onReport?.(report, previous, machines);
  }

  private async forget(project: string, cluster: string): Promise<void> {
    const k = `${project}/${cluster}`;
    this.state.delete(k);
    for (const f of this.forgotten) if (f.startsWith(`${k}/`)) this.forgotten.delete(f);
    this.d.registry.forget(project, cluster);
    await this.d.series?.drop(seriesKey(project, cluster));
    if (this.d.alerts) {
      await this.d.alerts.sync({ project, cluster, source: 'health' }, []);
      await this.d.alerts.sync({ project, cluster, source: 'provisioning' }, []);
    }
  }
}

export interface HealthChecksOptions extends Omit<HealthCheckerDeps, 'log'> {
  logger: Logger;
  metrics?: RuntimeMetrics;
  /** Clusters checked at once (default 4). */
  workers?: number;
  resyncPeriodMs?: number;
  stopGracePeriodMs?: number;
}

/** Runs the health checker as a controller over Clusters, started; stop() it on shutdown. */
export async function startHealthChecks(opts: HealthChecksOptions): Promise<Controller> {
  const controller = new Controller({
    name: 'health',
    kind: 'Cluster',
    store: opts.store,
    reconciler: new HealthChecker({ ...opts, log: opts.logger.child({ controller: 'health' }) }),
    workers: opts.workers ?? 4,
    logger: opts.logger,
    ...(opts.metrics ? { metrics: opts.metrics } : {}),
    ...(opts.resyncPeriodMs !== undefined ? { resyncPeriodMs: opts.resyncPeriodMs } : {}),
    ...(opts.stopGracePeriodMs !== undefined ? { stopGracePeriodMs: opts.stopGracePeriodMs } : {}),
  });
  await controller.start();
  return controller;
}
