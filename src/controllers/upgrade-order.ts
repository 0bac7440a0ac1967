// The order in which a cluster's pools take a new Kubernetes version or new certificates: etcd
// first, then the control planes, then everything else (the workers) — Kubernetes' upgrade order
// (etcd → apiservers → kubelets; a kubelet is never newer than the apiservers). The Cluster
// controller passes those fields on to a pool only once every pool of the earlier steps has rolled
// out; everything else (replicas, labels, machine spec...) goes to every pool at once. A pure
// decision over the pools' desired and current specs and statuses.
import { isTrue } from '../api/conditions.js';
import type { MachineRole, NodePool, NodePoolSpec } from '../api/kinds.js';
import { oldestVersion } from '../api/versions.js';
import { NodePoolCondition } from '../api/wellknown.js';

/** The fields that follow the upgrade order. */
export type OrderedFields = Pick<NodePoolSpec, 'kubernetesVersion' | 'certificates'>;

/** 0: etcd only; 1: with a control plane; 2: the rest. */
export function upgradeStep(roles: readonly MachineRole[]): 0 | 1 | 2 {
  if (roles.includes('controlplane')) return 1;
  if (roles.includes('etcd') && !roles.includes('worker')) return 0;
  return 2;
}

/** Whether `pool` runs every machine on its current spec: observed, up to date, all replicas updated. */
export function rolledOut(pool: NodePool): boolean {
  const st = pool.status;
  return (
    st !== undefined &&
    st.observedGeneration === pool.metadata.generation &&
    isTrue(st.conditions, NodePoolCondition.UpToDate) &&
    (st.updatedReplicas ?? 0) >= pool.spec.replicas &&
    (st.readyReplicas ?? 0) >= pool.spec.replicas
  );
}

const sameOrdered = (a: OrderedFields, b: OrderedFields) => a.kubernetesVersion === b.kubernetesVersion && (a.certificates ?? '') === (b.certificates ?? '');

export interface PoolPlan {
  /** The pool template's name. */
  name: string;
  roles: readonly MachineRole[];
  /** What the cluster's spec asks of the pool now. */
  desired: OrderedFields;
  /** The pool object, when it exists. */
  existing?: NodePool;
}

/**
 * The ordered fields each pool gets now, by template name, and the step that holds the rest back
 * (undefined when every pool may take its desired fields).
 */
export function orderedFields(pools: readonly PoolPlan[]): { fields: Map<string, OrderedFields>; heldBy?: string } {
  const fields = new Map<string, OrderedFields>();
  let heldBy: string | undefined;
  for (const step of [0, 1, 2] as const) {
    const earlier = pools.filter((p) => upgradeStep(p.roles) < step);
    const waiting = earlier.find((p) => !p.existing || !sameOrdered(p.existing.spec, p.desired) || !rolledOut(p.existing));
    for (const p of pools.filter((x) => upgradeStep(x.roles) === step)) {
      if (!waiting) {
        fields.set(p.name, p.desired);
        continue;
      }
      heldBy ??= waiting.name;
      // Held back: a pool keeps what it has; a new one starts where the earlier steps still are.
      const current = p.existing?.spec;
      const kubernetesVersion = current?.kubernetesVersion ?? oldestVersion(earlier.map((e) => e.existing?.spec.kubernetesVersion ?? e.desired.kubernetesVersion)) ?? p.desired.kubernetesVersion;
      const certificates = current ? current.certificates : p.desired.certificates;
      fields.set(p.name, { kubernetesVersion, ...(certificates ? { certificates } : {}) });
    }
  }
  return { fields, ...(heldBy ? { heldBy } : {}) };
}
