// Defaults and resolution of the per-pool healing policy and the per-cluster health policy, shared
// by validation (at the API edge), the health checker and the NodePool controller, so all three
// agree on what an omitted field means.
import type { HealingPolicy, HealthPolicy, MachineRole } from './kinds.js';

export const HEALTH_DEFAULTS = {
  intervalSeconds: 10,
  metricsIntervalSeconds: 60,
  nodeProvisioningAlertSeconds: 600,
  clusterProvisioningAlertSeconds: 1200,
  certificateExpiryAlertDays: 30,
} as const;

export const HEALING_DEFAULTS = {
  enabled: true,
  startupTimeoutSeconds: 600,
  unhealthyTimeoutSeconds: 60,
  maxInFlight: '40%',
  drainTimeoutSeconds: 60,
} as const;

export type ResolvedHealth = Required<HealthPolicy>;
export interface ResolvedHealing {
  enabled: boolean;
  startupTimeoutSeconds: number;
  unhealthyTimeoutSeconds: number;
  drainTimeoutSeconds: number;
  maxInFlight: number | string;
}

export function resolveHealth(policy: HealthPolicy | undefined): ResolvedHealth {
  return { ...HEALTH_DEFAULTS, ...(policy ?? {}) };
}

export function resolveHealing(policy: HealingPolicy | undefined): ResolvedHealing {
  return { ...HEALING_DEFAULTS, ...(policy ?? {}) };
}

/** etcd members and apiservers hold the cluster together: they are replaced strictly one at a time. */
export function isCriticalRole(roles: readonly MachineRole[]): boolean {
  return roles.includes('etcd') || roles.includes('controlplane');
}

/**
 * How many machines of a pool of `replicas` may be under replacement at once: a count, or a
 * percentage of the pool rounded down, never less than 1 (a guard of 0 would switch healing off,
 * which `enabled: false` says more clearly). Critical pools: always 1.
 */
export function maxInFlight(healing: ResolvedHealing, replicas: number, roles: readonly MachineRole[]): number {
  if (isCriticalRole(roles)) return 1;
  const v = healing.maxInFlight;
  if (typeof v === 'number') return Math.max(1, v);
  const pct = Number(v.slice(0, -1));
  return Math.max(1, Math.floor((pct * replicas) / 100));
}
