// Prometheus metrics of the controller runtime, registered in a caller-supplied Registry (the
// server exposes it at /metrics). Names follow controller-runtime's, with a marina_ prefix.
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
