// One-line summaries of a cluster's state for lists, and the conditions of a cluster's objects as
// rows for the detail page.
import type { AlertView, ClusterView, Condition, MachineView, NodePoolView, Resource } from './types.js';

export type Tone = 'ok' | 'warn' | 'bad' | 'neutral';

export interface ClusterSummary {
  phase: string;
  tone: Tone;
  /** `Ready`, `Not ready`, or `Unknown` from the Ready condition. */
  ready: string;
  /** Ready machines over desired, summed over the pools (`3/4`). */
  pools: string;
  /** `healthy`, `2 failing checks`, or undefined when Marina has no health data for it. */
  health?: string;
  healthTone?: Tone;
  /** The first condition that is not as it should be, as `Type: Reason — message`. */
  problem?: string;
}

export function phaseTone(phase: string | undefined): Tone {
  switch (phase) {
    case 'Ready':
    case 'Running':
      return 'ok';
    case 'Provisioning':
    case 'Pending':
    case 'Deleting':
    case 'Degraded':
      return 'warn';
    case 'Failed':
      return 'bad';
    default:
      return 'neutral';
  }
}

export function condition(obj: Resource | undefined, type: string): Condition | undefined {
  return ((obj?.status as { conditions?: Condition[] } | undefined)?.conditions ?? []).find((c) => c.type === type);
}

export function clusterSummary(c: ClusterView): ClusterSummary {
  const st = c.status ?? {};
  const phase = c.metadata.deletionTimestamp ? 'Deleting' : st.phase ?? 'Pending';
  const ready = condition(c, 'Ready');
  const desired = (c.spec?.nodePools ?? []).reduce((n, p) => n + (typeof p.replicas === 'number' ? p.replicas : 0), 0);
  const readyMachines = (st.pools ?? []).reduce((n, p) => n + (p.readyReplicas ?? 0), 0);
  const problems = (st.conditions ?? []).filter((x) => x.status !== 'True');
  const first = problems[0];
  const out: ClusterSummary = {
    phase,
    tone: phaseTone(phase),
    ready: ready?.status === 'True' ? 'Ready' : ready?.status === 'False' ? 'Not ready' : 'Unknown',
    pools: `${readyMachines}/${desired}`,
  };
  if (first) out.problem = `${first.type}: ${first.reason ?? first.status}${first.message ? ` — ${first.message}` : ''}`;
  if (st.health) {
    const failing = st.health.failing?.length ?? 0;
    out.health = st.health.healthy ? 'healthy' : failing > 0 ? `${failing} failing check${failing === 1 ? '' : 's'}` : 'unhealthy';
    out.healthTone = st.health.healthy ? 'ok' : 'bad';
  }
  return out;
}

export interface ConditionRow {
  kind: string;
  name: string;
  type: string;
  status: string;
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
  /** False when the condition is not as it should be (Ready False, a problem True...). */
  good: boolean;
}

/** Condition types where True is bad news. */
const NEGATIVE = /(Pressure|Unavailable|Failed|Degraded|Stalled|HeldBack)$/;

export function conditionGood(c: Condition): boolean {
  if (c.status === 'Unknown') return false;
  return NEGATIVE.test(c.type) ? c.status === 'False' : c.status === 'True';
}

/** Conditions of the cluster, then of its pools, then of its machines. */
export function conditionRows(cluster: ClusterView | undefined, pools: readonly NodePoolView[], machines: readonly MachineView[]): ConditionRow[] {
  const rows: ConditionRow[] = [];
  const add = (obj: Resource) => {
    for (const c of (obj.status as { conditions?: Condition[] } | undefined)?.conditions ?? []) {
      rows.push({
        kind: obj.kind,
        name: obj.metadata.name,
        type: c.type,
        status: c.status,
        ...(c.reason ? { reason: c.reason } : {}),
        ...(c.message ? { message: c.message } : {}),
        ...(c.lastTransitionTime ? { lastTransitionTime: c.lastTransitionTime } : {}),
        good: conditionGood(c),
      });
    }
  };
  if (cluster) add(cluster);
  for (const p of pools) add(p);
  for (const m of machines) add(m);
  return rows;
}

/** Pools, NodePools and Machines of one cluster out of the project's lists. */
export function ofCluster<T extends Resource<{ cluster?: string }>>(items: readonly T[], cluster: string): T[] {
  return items.filter((o) => o.spec?.cluster === cluster);
}

/** Firing first, each group newest first. */
export function sortAlerts(alerts: readonly AlertView[]): AlertView[] {
  const firing = (a: AlertView) => (a.status?.state === 'resolved' ? 1 : 0);
  const time = (a: AlertView) => Date.parse(a.status?.state === 'resolved' ? a.status?.endsAt ?? a.status?.startsAt ?? '' : a.status?.startsAt ?? '') || 0;
  return [...alerts].sort((a, b) => firing(a) - firing(b) || time(b) - time(a) || a.metadata.name.localeCompare(b.metadata.name));
}

export function alertCounts(alerts: readonly AlertView[]): { firing: number; resolved: number } {
  let firing = 0;
  let resolved = 0;
  for (const a of alerts) {
    if (a.status?.state === 'resolved') resolved++;
    else firing++;
  }
  return { firing, resolved };
}
