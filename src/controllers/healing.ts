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

/**
 * `active`: the pool's machines that are not being deleted. Machines that work but must be
 * replaced anyway (out of date, a stale control plane) are the roll's business (./rollout.ts).
 */
export function planHealing(pool: NodePool, active: Machine[], nowMs: number): HealingPlan {
  const policy = resolveHealing(pool.spec.healing);
  const desired = pool.spec.replicas;
  const candidates: Candidate[] = [];
  let nextCheckAtMs: number | undefined;
  const later = (t: number) => (nextCheckAtMs = nextCheckAtMs === undefined ? t : Math.min(nextCheckAtMs, t));

  for (const m of active) {
    const healthy = getCondition(m.status?.conditions, MachineCondition.Healthy);
    if (healthy?.status === 'False') {
      const since = ms(healthy.lastTransitionTime, nowMs);
      if (healthy.reason === MachineHealthyReason.MachineFailed) {
        candidates.push({ machine: m, reason: 'MachineFailed', message: healthy.message ?? 'failed', sinceMs: since });
        continue;
      }
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

  const healthy = active.filter(isHealthy).length;
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
  // incident). Those wait for a person; failures the provider confirms are still replaced.
  const unconfirmed = candidates.filter((c) => c.reason === 'Unhealthy');
  const partitioned = unconfirmed.length > budget;
  const eligible = partitioned ? candidates.filter((c) => c.reason !== 'Unhealthy') : candidates;
  const allowed = Math.max(0, budget - inFlight);
  plan.victims = eligible.slice(0, allowed);
  plan.heldBack = candidates.filter((c) => !plan.victims.includes(c));
  if (partitioned) {
    plan.heldReason = 'TooManyUnhealthy';
    plan.heldMessage = `${unconfirmed.length} machines are unreachable or NotReady at once, more than the storm guard allows (${budget}): this looks like a network partition, not broken machines; replace them by hand (delete the Machines) if they are really gone`;
  } else if (plan.heldBack.length > 0) {
    plan.heldReason = 'MaxInFlight';
    plan.heldMessage = `storm guard: at most ${budget} of ${desired} machines are replaced at once (healing.maxInFlight ${policy.maxInFlight}); ${inFlight + plan.victims.length} in flight`;
  }
  return plan;
}
