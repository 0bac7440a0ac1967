// Defaults and resolution of a pool's rollout policy, shared by validation at the API edge and the
// NodePool controller, so both agree on what an omitted field means.
import { isCriticalRole } from './healing-policy.js';
import type { MachineRole, RolloutPolicy } from './kinds.js';

/** A worker pool's default: one machine above the replicas while rolling, none missing (Cluster API's MachineDeployment default). */
export const ROLLOUT_DEFAULTS = { maxSurge: 1, maxUnavailable: 0 } as const;

export interface ResolvedRollout {
  maxSurge: number;
  maxUnavailable: number;
}

/**
 * etcd and control-plane pools roll one machine at a time, surge first: a new etcd member joins
 * as a learner before the old one leaves, a new apiserver serves before the old one stops.
 */
export function resolveRollout(roles: readonly MachineRole[], policy: RolloutPolicy | undefined): ResolvedRollout {
  if (isCriticalRole(roles)) return { ...ROLLOUT_DEFAULTS };
  return { maxSurge: policy?.maxSurge ?? ROLLOUT_DEFAULTS.maxSurge, maxUnavailable: policy?.maxUnavailable ?? ROLLOUT_DEFAULTS.maxUnavailable };
}

/** Why `policy` cannot work for a pool with `roles` (field relative to the pool, message), or undefined. */
export function rolloutProblem(roles: readonly MachineRole[], policy: RolloutPolicy | undefined): { field: string; message: string } | undefined {
  if (!policy) return undefined;
  if (isCriticalRole(roles)) {
    const critical = 'etcd and controlplane pools roll one machine at a time, surge first (maxSurge 1, maxUnavailable 0); omit rollout';
    if (policy.maxSurge !== undefined && policy.maxSurge !== 1) return { field: 'rollout.maxSurge', message: critical };
    if (policy.maxUnavailable !== undefined && policy.maxUnavailable !== 0) return { field: 'rollout.maxUnavailable', message: critical };
    return undefined;
  }
  const r = resolveRollout(roles, policy);
  if (r.maxSurge === 0 && r.maxUnavailable === 0) return { field: 'rollout', message: 'maxSurge and maxUnavailable cannot both be 0: a roll could never replace a machine' };
  return undefined;
}
