// Prometheus metrics of the controller runtime, registered in a caller-supplied Registry (the
// server exposes it at /metrics). Names follow controller-runtime's, with a marina_ prefix; the
// health checker's passes and auto-healing's remediations are counted here too.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { WorkQueueHooks } from './workqueue.js';

export type ReconcileResult = 'success' | 'error' | 'terminal' | 'requeue';

export class RuntimeMetrics {
  /** Ready keys per controller's queue. */
  readonly workqueueDepth: Gauge<'controller'>;
  /** Keys actually queued (duplicates of a waiting key are not counted). */
  readonly workqueueAdds: Counter<'controller'>;
  /** Rate-limited retries scheduled after a failed reconcile. */
  readonly workqueueRetries: Counter<'controller'>;
  readonly reconcileTotal: Counter<'controller' | 'result'>;
  readonly reconcileDuration: Histogram<'controller'>;
  /** One health pass over one cluster (`scrape`: whether it scraped Prometheus metrics too). */
  readonly healthPassDuration: Histogram<'scrape'>;
  /** Clusters whose newest health report Marina holds (all of them, once every cluster had a pass). */
  readonly healthReports: Gauge;
  /** Machines auto-healing replaced, by the reason and the role of their pool. */
  readonly remediations: Counter<'reason' | 'role'>;

  /**
   * Registers the metrics in `registry`. Constructing twice on one registry reuses the metrics
   * already registered there instead of failing on duplicate names.
   */
  constructor(readonly registry: Registry) {
    this.workqueueDepth = metric(registry, 'marina_workqueue_depth', () =>
      new Gauge({ name: 'marina_workqueue_depth', help: 'Current number of keys ready in the work queue', labelNames: ['controller'], registers: [registry] }),
    );
    this.workqueueAdds = metric(registry, 'marina_workqueue_adds_total', () =>
      new Counter({ name: 'marina_workqueue_adds_total', help: 'Total number of keys added to the work queue', labelNames: ['controller'], registers: [registry] }),
    );
    this.workqueueRetries = metric(registry, 'marina_workqueue_retries_total', () =>
      new Counter({ name: 'marina_workqueue_retries_total', help: 'Total number of rate-limited retries', labelNames: ['controller'], registers: [registry] }),
    );
    this.reconcileTotal = metric(registry, 'marina_reconcile_total', () =>
      new Counter({
        name: 'marina_reconcile_total',
        help: 'Total number of reconciles per controller and result (success, error, terminal, requeue)',
        labelNames: ['controller', 'result'],
        registers: [registry],
      }),
    );
    this.reconcileDuration = metric(registry, 'marina_reconcile_duration_seconds', () =>
      new Histogram({
        name: 'marina_reconcile_duration_seconds',
        help: 'Time spent in one reconcile',
        labelNames: ['controller'],
        buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
        registers: [registry],
      }),
    );
    this.healthPassDuration = metric(registry, 'marina_health_pass_duration_seconds', () =>
      new Histogram({
        name: 'marina_health_pass_duration_seconds',
        help: 'Time one health pass over one cluster took (scrape: whether it scraped metrics as well)',
        labelNames: ['scrape'],
        buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
        registers: [registry],
      }),
    );
    this.healthReports = metric(registry, 'marina_health_reports', () =>
      new Gauge({ name: 'marina_health_reports', help: 'Clusters with a health report (a pass since Marina started)', registers: [registry] }),
    );
    this.remediations = metric(registry, 'marina_remediations_total', () =>
      new Counter({
        name: 'marina_remediations_total',
        help: 'Machines replaced by auto-healing, by reason (MachineFailed, Unhealthy, StartupTimeout, EtcdEndpointsStale) and pool role',
        labelNames: ['reason', 'role'],
        registers: [registry],
      }),
    );
  }

  /** Hooks that feed one controller's work-queue metrics. */
  queueHooks(controller: string): WorkQueueHooks {
    return {
      onAdd: () => this.workqueueAdds.inc({ controller }),
      onDepth: (depth) => this.workqueueDepth.set({ controller }, depth),
      onRetry: () => this.workqueueRetries.inc({ controller }),
    };
  }

  observeReconcile(controller: string, result: ReconcileResult, seconds: number): void {
    this.reconcileTotal.inc({ controller, result });
    this.reconcileDuration.observe({ controller }, seconds);
  }
}

function metric<M>(registry: Registry, name: string, create: () => M): M {
  return (registry.getSingleMetric(name) as M | undefined) ?? create();
}
