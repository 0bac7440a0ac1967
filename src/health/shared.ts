// The newest health report of a cluster, for every replica. Only the replica that runs the health
// checker (the one server on SQLite; the Lease holder on the Kubernetes store) has it in memory
// (HealthRegistry). The checker also keeps it as the newest record of the cluster's series
// in the SeriesStore, which all replicas share, and the API answers from there when its own
// registry has nothing.
//
// Written when a reader would otherwise be misled, not on every pass: on a cluster's first report
// (after a start or a takeover), whenever its summary changes (healthy, what fails, Nodes Ready),
// and on every metrics pass (spec.health.metricsIntervalSeconds, 60 s by default). So another
// replica gives the same verdict as the checker's, and its `at`, latencies and metrics are at most
// one metrics interval old; the write rate of a steady cluster is that of its series samples
// (docs/ha.md, figures in docs/benchmarks.md).
import { jsonEqual } from '../api/json.js';
import type { SeriesStore } from '../store/types.js';
import { healthSummary } from './evaluate.js';
import type { HealthRegistry } from './registry.js';
import type { HealthReport } from './types.js';

export function seriesKey(project: string, cluster: string): string {
  return `health/${project}/${cluster}`;
}

/** Whether a pass's report is written to the shared store (see above). */
export function sharesReport(report: HealthReport, previous: HealthReport | undefined, scraped: boolean): boolean {
  return scraped || !previous || !jsonEqual(healthSummary(report), healthSummary(previous));
}

export async function shareReport(series: SeriesStore, report: HealthReport): Promise<void> {
  await series.setLatest(seriesKey(report.project, report.cluster), report.at, report);
}

/** This replica's own newest report of the cluster, else the one the checking replica shared. */
export async function newestReport(registry: HealthRegistry, series: SeriesStore | undefined, project: string, cluster: string): Promise<HealthReport | undefined> {
  const own = registry.get(project, cluster);
  if (own || !series) return own;
  return (await series.latest(seriesKey(project, cluster)))?.value as HealthReport | undefined;
}
