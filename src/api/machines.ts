// What a Machine's (or NodePool's) spec and status say about it, read the same way by every module:
// its roles, whether it was started, came up once, is ready.
import { getCondition, isTrue } from './conditions.js';
import type { Machine, MachineRole, RuntimeType } from './kinds.js';
import { MachineCondition, MachineHealthyReason } from './wellknown.js';

export function hasRole(obj: { spec: { roles: readonly MachineRole[] } }, role: MachineRole): boolean {
  return obj.spec.roles.includes(role);
}

/** Machines with a control plane or worker role run a kubelet and become Nodes; etcd-only ones do not. */
export function hasKubelet(machine: Pick<Machine, 'spec'>): boolean {
  return hasRole(machine, 'controlplane') || hasRole(machine, 'worker');
}

/** A real kubelet with containerd instead of the virtual one: pools with runtime containerd, and every imported server. */
export function usesRealKubelet(obj: { spec: { runtime?: { type?: RuntimeType } | undefined; provider: string } }): boolean {
  return obj.spec.runtime?.type === 'containerd' || obj.spec.provider === 'import';
}

/** The provider was asked to boot this machine (its processes / server may exist). */
export function isStarted(m: Pick<Machine, 'status'>): boolean {
  return isTrue(m.status?.conditions, MachineCondition.Bootstrapped) || m.status?.phase === 'Running';
}

/** Has been up once: Running, or its Healthy condition left the Provisioning state. */
export function hasComeUp(m: Pick<Machine, 'status'>): boolean {
  const h = getCondition(m.status?.conditions, MachineCondition.Healthy);
  return m.status?.phase === 'Running' || (h !== undefined && h.reason !== MachineHealthyReason.Provisioning);
}

/** Counted as ready by its pool: Running, and its Node (if it has one) Ready. */
export function isMachineReady(m: Pick<Machine, 'status'>): boolean {
  return m.status?.phase === 'Running' && m.status.nodeReady !== false;
}
