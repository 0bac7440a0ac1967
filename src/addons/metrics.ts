// Prometheus metrics of the add-on controllers: passes (one add-on reconciled once) by outcome and
// duration, and drift corrections. No per-cluster labels: 100+ clusters would multiply the series;
// per-add-on details are in each Addon's status and alerts.
import { Counter, Histogram, type Registry } from 'prom-client';

export class AddonMetrics {
  private readonly passes: Counter<'outcome'>;
  private readonly seconds: Histogram;
  private readonly drift: Counter;

  constructor(registry: Registry) {
    this.passes = new Counter({ name: 'marina_addon_passes_total', help: 'add-on reconcile passes by outcome', labelNames: ['outcome'], registers: [registry] });
    this.seconds = new Histogram({
      name: 'marina_addon_pass_seconds',
      help: 'duration of one add-on pass (render, read, apply, prune, health)',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    });
    this.drift = new Counter({ name: 'marina_addon_drift_corrections_total', help: 'managed objects put back after someone changed or deleted them', registers: [registry] });
  }

  observePass(outcome: string, seconds: number): void {
    this.passes.inc({ outcome });
    this.seconds.observe(seconds);
  }

  countDrift(n: number): void {
    this.drift.inc(n);
  }
}
