// The newest health report of every cluster, in memory. The health controller writes it; the
// Cluster, NodePool and Machine reconcilers read it when they compute their conditions, so each
// object keeps a single status writer. After a Marina restart it is empty until the first pass of
// each cluster (a few seconds): readers then keep their previous conditions.
import type { ComponentCheck, HealthReport } from './types.js';

const key = (project: string, cluster: string): string => `${project}/${cluster}`;

export class HealthRegistry {
  private readonly reports = new Map<string, HealthReport>();

  set(report: HealthReport): void {
    this.reports.set(key(report.project, report.cluster), report);
  }

  get(project: string, cluster: string): HealthReport | undefined {
    return this.reports.get(key(project, cluster));
  }

  forget(project: string, cluster: string): void {
    this.reports.delete(key(project, cluster));
  }

  /** Forgets every report (a replica that stops checking must not answer with its last ones). */
  clear(): void {
    this.reports.clear();
  }

  /** The agent check of one machine in the newest report, if the machine was checked. */
  agentCheck(project: string, cluster: string, machine: string): (ComponentCheck & { at: string }) | undefined {
    const r = this.get(project, cluster);
    const c = r?.checks.find((x) => x.component === 'agent' && x.machine === machine);
    return r && c ? { ...c, at: r.at } : undefined;
  }
}
