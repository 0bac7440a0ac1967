// Prometheus metrics of the function service, on the server's registry (served at /metrics).
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Activation } from '../api/functions.js';

type FnLabels = 'project' | 'function';

export class FunctionMetrics {
  readonly invocations: Counter<FnLabels | 'trigger' | 'outcome'>;
  readonly errors: Counter<FnLabels | 'outcome'>;
  readonly duration: Histogram<FnLabels>;
  readonly coldStarts: Counter<FnLabels>;
  readonly coldStartDuration: Histogram<FnLabels>;
  readonly deadLettered: Counter<FnLabels | 'target'>;

  /**
   * `instances` and `queue` are read at scrape time: instance counts per function and warm spares
   * from the pools, queue depth by state from the database (so every process reports the same).
   */
  constructor(
    registry: Registry,
    sources: { instances: () => Map<string, number>; spares: () => number; queue: () => { queued: number; running: number; dead: number } },
  ) {
    const registers = [registry];
    this.invocations = new Counter({
      name: 'marina_function_invocations_total',
      help: 'Function invocations by trigger type and outcome (success, error, timeout, oom, crashed, canceled)',
      labelNames: ['project', 'function', 'trigger', 'outcome'],
      registers,
    });
    this.errors = new Counter({ name: 'marina_function_errors_total', help: 'Invocations that did not succeed', labelNames: ['project', 'function', 'outcome'], registers });
    this.duration = new Histogram({
      name: 'marina_function_duration_seconds',
      help: 'Invocation time from the request to the result, cold start included',
      labelNames: ['project', 'function'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    });
    this.coldStarts = new Counter({ name: 'marina_function_cold_starts_total', help: 'Invocations that waited for an instance to start', labelNames: ['project', 'function'], registers });
    this.coldStartDuration = new Histogram({
      name: 'marina_function_cold_start_seconds',
      help: 'How long a cold invocation waited for its instance',
      labelNames: ['project', 'function'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.deadLettered = new Counter({ name: 'marina_function_dead_letters_total', help: 'Deliveries moved to the dead-letter list', labelNames: ['project', 'function', 'target'], registers });
    new Gauge({
      name: 'marina_function_instances',
      help: 'Running instances per function (and warm spares under function="")',
      labelNames: ['project', 'function'],
      registers,
      collect() {
        this.reset();
        for (const [key, n] of sources.instances()) {
          const [project, fn] = key.split('/') as [string, string];
          this.set({ project, function: fn }, n);
        }
        this.set({ project: '', function: '' }, sources.spares());
      },
    });
    new Gauge({
      name: 'marina_function_queue_depth',
      help: 'Asynchronous deliveries by state (queued, running, dead)',
      labelNames: ['state'],
      registers,
      collect() {
        const d = sources.queue();
        for (const [state, n] of Object.entries(d)) this.set({ state }, n);
      },
    });
  }

  observe(a: Activation): void {
    const fn = { project: a.project, function: a.function };
    this.invocations.inc({ ...fn, trigger: a.trigger.type, outcome: a.outcome });
    if (a.outcome !== 'success') this.errors.inc({ ...fn, outcome: a.outcome });
    this.duration.observe(fn, a.durationMs / 1000);
    if (a.coldStart) {
      this.coldStarts.inc(fn);
      if (a.coldStartMs !== undefined) this.coldStartDuration.observe(fn, a.coldStartMs / 1000);
    }
  }
}
