// Which machines of a pool auto-healing replaces now, and which it holds back. A pure decision
// over the pool's machines and its healing policy; the NodePool controller acts on it (deletes
// the victims, which its scale logic then replaces) and reports what was held back.
//
// A machine is a candidate when
//   - its provider reports it failed (Healthy=False/MachineFailed): at once, it cannot come back;
//   - it has been Healthy=False for unhealthyTimeoutSeconds (agent unreachable, Node not Ready);
//   - it was started startupTimeoutSeconds ago and has not been running since.
// The storm guard bounds replacements in flight: a pool that should have `desired` machines and
// has `healthy` healthy ones plus `candidates` known-bad ones is already busy with
// desired − healthy − candidates machines (being removed, or replacements still booting); only
// maxInFlight minus that many candidates are replaced now. So 3 failures in a pool of 5 with a 40 %
// guard replace 2 at first and the third once one of those is healthy, and a scale-out in progress
// holds healing back until its machines are up. More machines unreachable / NotReady at once than
// the guard allows are not replaced at all (a partition, not broken machines).
import { maxInFlight, resolveHealing, type ResolvedHealing } from '../api/healing-policy.js';
import type { Machine, NodePool } from '../api/kinds.js';
import { getCondition, isTrue } from '../api/conditions.js';
import { isMachineReady } from '../api/machines.js';
import { MachineCondition, MachineHealthyReason } from '../api/wellknown.js';
import type { HealthReport } from '../health/types.js';

export interface Candidate {
  machine: Machine;
  reason: 'MachineFailed' | 'Unhealthy' | 'StartupTimeout';
  message: string;
  /** Since when it is bad (ms); failed machines sort first, then the longest bad. */
  sinceMs: number;
}

export interface HealingPlan {
  policy: ResolvedHealing;
  /** Replace these now. */
  victims: Candidate[];
  /** Candidates the guard (or a disabled policy) keeps for later. */
  heldBack: Candidate[];
  /** Why heldBack is not empty: HealingDisabled, MaxInFlight (or, set by the pool, EtcdQuorumAtRisk). */
  heldReason?: string;
  heldMessage?: string;
  /** Healthy and ready machines. */
  healthy: number;
  inFlight: number;
  budget: number;
  /** The next moment a machine crosses a timeout (ms epoch), to look again then. */
  nextCheckAtMs?: number;
}

function ms(iso: string | undefined, fallback: number): number {
  const t = iso ? Date.parse(iso) : NaN;
  return Number.isFinite(t) ? t : fallback;
}

export function isHealthy(m: Machine): boolean {
  return isMachineReady(m) && getCondition(m.status?.conditions, MachineCondition.Healthy)?.status !== 'False';
}

/** What the pool's reconcile knows besides its machines' conditions. */
export interface HealingContext {
  /**
   * Machines the newest health pass found fine (agent answered, Node Ready). The pass sees the
   * whole cluster at one moment, while each machine's Healthy condition catches up at its own
   * reconcile: one still False for such a machine is out of date, and it is not replaced.
   */
  fineNow?: ReadonlySet<string>;
  /**
   * The newest health pass reached no machine of the cluster at all: Marina is cut off from it.
   * Then no machine is replaced for being unreachable, not even in a pool too small to show a
   * partition by itself (the single control plane).
   */
  clusterUnreachable?: boolean;
}

/** What the newest health report of the cluster says for healing: who is fine now, whether anything answers. */
export function observed(report: HealthReport | undefined): Pick<HealingContext, 'fineNow' | 'clusterUnreachable'> {
  if (!report) return {};
  const agents = report.checks.filter((c) => c.component === 'agent' && c.machine);
  const notReady = new Set(report.nodes.filter((n) => n.ready !== 'True').map((n) => n.machine ?? n.name));
  const fineNow = new Set(agents.filter((c) => c.reachable === true && !notReady.has(c.machine!)).map((c) => c.machine!));
  return { fineNow, clusterUnreachable: agents.length >= 2 && agents.every((c) => c.reachable === false) };
}

/**
 * `active`: the pool's machines that are not being deleted. Machines that work but must be
 * replaced anyway (out of date, a stale control plane) are the roll's business (./rollout.ts).
 */
export function planHealing(pool: NodePool, active: Machine[], nowMs: number, ctx: HealingContext = {}): HealingPlan {
  const policy = resolveHealing(pool.spec.healing);
  const desired = pool.spec.replicas;
  const candidates: Candidate[] = [];
  /** Unreachable or NotReady now, whether or not past the timeout (what a partition looks like). */
  let unconfirmedNow = 0;
  let nextCheckAtMs: number | undefined;
  const later = (t: number) => (nextCheckAtMs = nextCheckAtMs === undefined ? t : Math.min(nextCheckAtMs, t));

  /** Machines whose False condition the newest pass contradicts: they count as healthy. */
  const caughtUp = new Set<Machine>();
  for (const m of active) {
    const healthy = getCondition(m.status?.conditions, MachineCondition.Healthy);
    if (healthy?.status === 'False' && healthy.reason !== MachineHealthyReason.MachineFailed && ctx.fineNow?.has(m.metadata.name)) {
      caughtUp.add(m);
      continue;
    }
    if (healthy?.status === 'False') {
      const since = ms(healthy.lastTransitionTime, nowMs);
      if (healthy.reason === MachineHealthyReason.MachineFailed) {
        candidates.push({ machine: m, reason: 'MachineFailed', message: healthy.message ?? 'failed', sinceMs: since });
        continue;
      }
      unconfirmedNow++;
      const due = since + policy.unhealthyTimeoutSeconds * 1000;
      if (nowMs >= due) {
        candidates.push({
          machine: m,
          reason: 'Unhealthy',
          message: `${healthy.reason}: ${healthy.message ?? ''} (for ${Math.round((nowMs - since) / 1000)} s)`,
          sinceMs: since,
        });
      } else later(due);
      continue;
    }
    const started = getCondition(m.status?.conditions, MachineCondition.Bootstrapped);
    if (healthy?.reason === MachineHealthyReason.Provisioning || (!healthy && isTrue(m.status?.conditions, MachineCondition.Bootstrapped))) {
      if (!started || started.status !== 'True' || m.status?.phase === 'Running') continue;
      const since = ms(started.lastTransitionTime, nowMs);
      const due = since + policy.startupTimeoutSeconds * 1000;
      if (nowMs >= due) {
        candidates.push({ machine: m, reason: 'StartupTimeout', message: `not running ${policy.startupTimeoutSeconds} s after it was started`, sinceMs: since });
      } else later(due);
    }
  }
  const rank = (c: Candidate) => (c.reason === 'MachineFailed' ? 0 : 1);
  candidates.sort((a, b) => rank(a) - rank(b) || a.sinceMs - b.sinceMs);

  const healthy = active.filter((m) => isHealthy(m) || caughtUp.has(m)).length;
  const budget = maxInFlight(policy, desired, pool.spec.roles);
  const inFlight = Math.max(0, desired - healthy - candidates.length);
  const plan: HealingPlan = { policy, victims: [], heldBack: [], healthy, inFlight, budget };
  if (nextCheckAtMs !== undefined) plan.nextCheckAtMs = nextCheckAtMs;
  if (candidates.length === 0) return plan;
  if (!policy.enabled) {
    plan.heldBack = candidates;
    plan.heldReason = 'HealingDisabled';
    plan.heldMessage = 'auto-healing is disabled for this pool (healing.enabled: false)';
    return plan;
  }
  // More machines unreachable or NotReady at once than the guard allows looks like a network
  // partition (between Marina and the machines, or inside the cluster), not like that many broken
  // machines: replacing them would not help and could take the whole pool down (Gardener's
  // incident). Those wait for a person; failures the provider confirms are still replaced. Every
  // machine unhealthy now counts, not only those past the timeout: the machines of a partition
  // are marked one reconcile after another, and the first past its timeout must not go alone.
  const partitioned = unconfirmedNow > budget || (unconfirmedNow > 0 && ctx.clusterUnreachable === true);
  const eligible = partitioned ? candidates.filter((c) => c.reason !== 'Unhealthy') : candidates;
  const allowed = Math.max(0, budget - inFlight);
  plan.victims = eligible.slice(0, allowed);
  plan.heldBack = candidates.filter((c) => !plan.victims.includes(c));
  if (partitioned) {
    plan.heldReason = 'TooManyUnhealthy';
    plan.heldMessage = ctx.clusterUnreachable
      ? 'no machine of the cluster answers Marina: this looks like a network partition between Marina and the cluster, not broken machines; replace them by hand (delete the Machines) if they are really gone'
      : `${unconfirmedNow} machines are unreachable or NotReady at once, more than the storm guard allows (${budget}): this looks like a network partition, not broken machines; replace them by hand (delete the Machines) if they are really gone`;
  } else if (plan.heldBack.length > 0) {
    plan.heldReason = 'MaxInFlight';
    plan.heldMessage = `storm guard: at most ${budget} of ${desired} machines are replaced at once (healing.maxInFlight ${policy.maxInFlight}); ${inFlight + plan.victims.length} in flight`;
  }
  return plan;
}
