// Turns what the health checker saw (a report) and what the store holds (cluster, machines) into
// the complete set of alerts each evaluator currently sees. Pure functions: the caller hands the
// result to AlertManager.sync, which opens, keeps and resolves Alert objects level-based.
import type { ResolvedHealth } from '../api/healing-policy.js';
import type { Cluster, HealthSummary, Machine } from '../api/kinds.js';
import type { AlertInput } from '../alerts/manager.js';
import { RULES } from '../alerts/manager.js';
import { getCondition } from '../api/conditions.js';
import { hasComeUp } from '../api/machines.js';
import { ClusterCondition, MachineCondition } from '../api/wellknown.js';
import type { ComponentCheck, HealthReport, HealthSample } from './types.js';

const DAY_MS = 24 * 3600 * 1000;

/** The Cluster conditions whose loss makes the cluster itself unhealthy. */
const CORE_CONDITIONS = [ClusterCondition.PKIReady, ClusterCondition.EndpointReady, ClusterCondition.EtcdReady, ClusterCondition.ControlPlaneReady] as const;

/** Components without which the cluster's API stops: their failure is critical. */
const CRITICAL: ReadonlySet<ComponentCheck['component']> = new Set(['endpoint', 'etcd']);

function where(c: ComponentCheck): string {
  return c.machine ? `${c.component} on ${c.machine}` : c.component;
}

/** A cluster that was Ready at least once (phase Ready or Degraded); before that, failures are provisioning. */
export function hasBeenReady(cluster: Cluster): boolean {
  return cluster.status?.phase === 'Ready' || cluster.status?.phase === 'Degraded';
}

/** ComponentUnhealthy, NodeConditionUnhealthy, ClusterConditionUnhealthy and CertificateNearExpiry. */
export function healthAlerts(report: HealthReport, cluster: Cluster, policy: ResolvedHealth, nowMs: number): AlertInput[] {
  const out: AlertInput[] = [];
  for (const c of report.checks) {
    if (c.ok) continue;
    out.push({
      rule: RULES.ComponentUnhealthy,
      severity: CRITICAL.has(c.component) ? 'critical' : 'warning',
      labels: { component: c.component, ...(c.machine ? { machine: c.machine } : {}) },
      summary: `${where(c)} is unhealthy`,
      description: c.message,
    });
  }
  for (const n of report.nodes) {
    for (const p of n.problems) {
      out.push({
        rule: RULES.NodeConditionUnhealthy,
        severity: p.type === 'Ready' ? 'critical' : 'warning',
        labels: { node: n.name, condition: p.type },
        summary: p.type === 'Ready' ? `Node ${n.name} is not Ready (${p.status})` : `Node ${n.name} reports ${p.type}`,
        description: [p.reason, p.message].filter(Boolean).join(': ') || `${p.type}=${p.status}`,
      });
    }
  }
  // A cluster that was Ready and lost a core part. Pools that are scaling or replacing machines
  // (PoolsReady=False) are normal operation: the machines' own alerts speak for real trouble.
  if (cluster.status?.phase === 'Degraded') {
    for (const type of CORE_CONDITIONS) {
      const c = getCondition(cluster.status.conditions, type);
      if (!c || c.status === 'True') continue;
      out.push({
        rule: RULES.ClusterConditionUnhealthy,
        severity: 'critical',
        labels: { condition: type },
        summary: `cluster ${cluster.metadata.name} is degraded: ${type}=${c.status} (${c.reason ?? 'no reason'})`,
        description: c.message ?? '',
      });
    }
  }
  for (const cert of cluster.status?.certificates ?? []) {
    const left = Date.parse(cert.notAfter) - nowMs;
    if (!Number.isFinite(left) || left > policy.certificateExpiryAlertDays * DAY_MS) continue;
    const days = Math.max(0, Math.floor(left / DAY_MS));
    out.push({
      rule: RULES.CertificateNearExpiry,
      severity: left < 7 * DAY_MS ? 'critical' : 'warning',
      labels: { certificate: cert.name },
      summary: left <= 0 ? `certificate ${cert.name} has expired` : `certificate ${cert.name} expires in ${days} days`,
      description: `notAfter ${cert.notAfter}`,
    });
  }
  return out;
}

/** NodeProvisioningSlow per machine and ClusterProvisioningSlow. */
export function provisioningAlerts(cluster: Cluster, machines: Machine[], policy: ResolvedHealth, nowMs: number): AlertInput[] {
  const out: AlertInput[] = [];
  const age = (iso: string | undefined) => (iso ? nowMs - Date.parse(iso) : 0);
  for (const m of machines) {
    if (m.metadata.deletionTimestamp || hasComeUp(m) || m.status?.phase === 'Failed') continue;
    const ms = age(m.metadata.creationTimestamp);
    if (ms < policy.nodeProvisioningAlertSeconds * 1000) continue;
    const waiting = getCondition(m.status?.conditions, MachineCondition.Bootstrapped);
    const node = getCondition(m.status?.conditions, MachineCondition.NodeReady);
    const why = waiting?.status === 'False' ? `${waiting.reason}: ${waiting.message}` : node && node.status !== 'True' ? `${node.reason}: ${node.message}` : (m.status?.phase ?? 'Pending');
    out.push({
      rule: RULES.NodeProvisioningSlow,
      severity: 'warning',
      labels: { machine: m.metadata.name, pool: m.spec.pool },
      summary: `machine ${m.metadata.name} is not running after ${Math.round(ms / 60000)} min`,
      description: why.slice(0, 4096),
    });
  }
  if (!cluster.metadata.deletionTimestamp && !hasBeenReady(cluster) && cluster.status?.phase !== 'Failed') {
    const ms = age(cluster.metadata.creationTimestamp);
    if (ms >= policy.clusterProvisioningAlertSeconds * 1000) {
      const ready = getCondition(cluster.status?.conditions, ClusterCondition.Ready);
      out.push({
        rule: RULES.ClusterProvisioningSlow,
        severity: 'warning',
        labels: {},
        summary: `cluster ${cluster.metadata.name} is not Ready after ${Math.round(ms / 60000)} min`,
        description: ready ? `${ready.reason}: ${ready.message}` : 'no Ready condition yet',
      });
    }
  }
  return out;
}

/** The compact sample of a report kept in the 24-hour series. */
export function sampleOf(report: HealthReport): HealthSample {
  const endpoint = report.checks.find((c) => c.component === 'endpoint');
  const sample: HealthSample = {
    t: report.at,
    healthy: report.healthy,
    failedChecks: report.checks.filter((c) => !c.ok).length,
    nodesReady: report.nodes.filter((n) => n.ready === 'True').length,
    nodesTotal: report.nodes.length,
  };
  if (endpoint?.ok && endpoint.latencyMs !== undefined) sample.endpointLatencyMs = endpoint.latencyMs;
  const m = report.metrics;
  if (m) {
    const p99s = m.apiservers.map((a) => a.requestP99Seconds).filter((x): x is number => x !== undefined);
    if (p99s.length) sample.apiserverP99Ms = round(Math.max(...p99s) * 1000);
    if (m.apiservers.length) sample.apiserverInflight = m.apiservers.reduce((n, a) => n + a.inflightRequests, 0);
    if (m.etcd.length) {
      sample.etcdDbBytes = Math.max(...m.etcd.map((e) => e.dbSizeBytes));
      sample.etcdLeaderChanges = m.etcd.reduce((n, e) => Math.max(n, e.leaderChangesTotal), 0);
      const fsync = m.etcd.map((e) => e.walFsyncP99Seconds).filter((x): x is number => x !== undefined);
      if (fsync.length) sample.etcdFsyncP99Ms = round(Math.max(...fsync) * 1000);
    }
    if (m.machines.length) {
      sample.machines = Object.fromEntries(
        m.machines.map((u) => [u.machine, { ...(u.cpuCores !== undefined ? { cpuCores: round(u.cpuCores) } : {}), rssBytes: u.rssBytes, diskUsedBytes: u.diskUsedBytes }]),
      );
    }
  }
  return sample;
}

const round = (x: number): number => Math.round(x * 1000) / 1000;

/** The summary of a health report kept in Cluster.status.health. */
export function healthSummary(report: HealthReport): HealthSummary {
  const failing = [
    ...report.checks.filter((c) => !c.ok).map((c) => `${c.component}${c.machine ? `/${c.machine}` : ''}: ${c.message}`),
    ...report.nodes.flatMap((n) => n.problems.map((p) => `node/${n.name}: ${p.type}=${p.status}${p.reason ? ` (${p.reason})` : ''}`)),
  ];
  return {
    healthy: report.healthy,
    failing: failing.slice(0, 20).map((f) => f.slice(0, 256)),
    nodesReady: report.nodes.filter((n) => n.ready === 'True').length,
    nodesTotal: report.nodes.length,
  };
}
