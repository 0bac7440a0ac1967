// Rules for a Cluster that span fields: role counts, networks, versions, what may change.
import type { FieldCause } from './errors.js';
import type { ClusterSpec } from './kinds.js';
import type { Resource } from './meta.js';
import type { ValidationContext } from './registry.js';
import { cidrsOverlap, parseCidr, type Cidr } from './cidr.js';
import { isCriticalRole, resolveHealth } from './healing-policy.js';
import { scheduleProblem } from './backup-policy.js';
import { rolloutProblem } from './rollout-policy.js';

export const DEFAULT_POD_CIDR = '10.244.0.0/16';
export const DEFAULT_SERVICE_CIDR = '10.96.0.0/16';

export function validateCluster(obj: Resource, old: Resource | undefined, ctx: ValidationContext): FieldCause[] {
  const spec = obj.spec as ClusterSpec;
  const causes: FieldCause[] = [];
  const add = (field: string, message: string) => causes.push({ field, message });

  const names = new Set<string>();
  let etcd = 0;
  let controlplane = 0;
  spec.nodePools.forEach((pool, i) => {
    if (names.has(pool.name)) add(`spec.nodePools[${i}].name`, `duplicate pool name ${JSON.stringify(pool.name)}`);
    names.add(pool.name);
    const rollout = rolloutProblem(pool.roles, pool.rollout);
    if (rollout) add(`spec.nodePools[${i}].${rollout.field}`, rollout.message);
    if (pool.roles.includes('etcd')) etcd += pool.replicas;
    if (pool.roles.includes('controlplane')) controlplane += pool.replicas;
    causes.push(...validatePoolRuntime(spec, i));
  });
  const etcdPool = spec.nodePools.findIndex((p) => p.roles.includes('etcd'));
  const cpPool = spec.nodePools.findIndex((p) => p.roles.includes('controlplane'));
  if (etcd === 0) {
    add(etcdPool >= 0 ? `spec.nodePools[${etcdPool}].replicas` : 'spec.nodePools', 'the cluster needs at least one etcd member');
  } else if (etcd % 2 === 0) {
    add(`spec.nodePools[${etcdPool}].replicas`, `etcd needs an odd member count for a clear quorum; got ${etcd}`);
  }
  if (controlplane === 0) {
    add(cpPool >= 0 ? `spec.nodePools[${cpPool}].replicas` : 'spec.nodePools', 'the cluster needs at least one controlplane machine');
  }

  causes.push(...validateHealing(spec));
  const schedule = spec.backup?.schedule;
  const problem = schedule === undefined ? undefined : scheduleProblem(schedule);
  if (problem) add('spec.backup.schedule', problem);

  if (spec.kubernetesVersion !== undefined && !ctx.kubernetesVersions.includes(spec.kubernetesVersion)) {
    add('spec.kubernetesVersion', `unsupported version ${spec.kubernetesVersion}; supported: ${ctx.kubernetesVersions.join(', ')}`);
  }

  const pod = checkCidr(spec.network?.podCIDR, 'spec.network.podCIDR', add);
  const svc = checkCidr(spec.network?.serviceCIDR, 'spec.network.serviceCIDR', add);
  if (pod && svc && cidrsOverlap(pod, svc)) {
    add('spec.network.serviceCIDR', `${spec.network?.serviceCIDR} overlaps the pod CIDR ${spec.network?.podCIDR}`);
  }

  causes.push(...validateOpenStack(spec));

  if (old) {
    const oldSpec = old.spec as ClusterSpec;
    if ((oldSpec.provider ?? 'local') !== (spec.provider ?? 'local')) add('spec.provider', 'is immutable');
    if (oldSpec.cloud !== spec.cloud) add('spec.cloud', 'is immutable: the machines and the endpoint live in that cloud');
    if (JSON.stringify(oldSpec.network ?? {}) !== JSON.stringify(spec.network ?? {})) add('spec.network', 'is immutable');
    oldSpec.nodePools.forEach((oldPool) => {
      const i = spec.nodePools.findIndex((p) => p.name === oldPool.name);
      const pool = spec.nodePools[i];
      if (pool && JSON.stringify([...pool.roles].sort()) !== JSON.stringify([...oldPool.roles].sort())) {
        add(`spec.nodePools[${i}].roles`, 'roles of an existing pool are immutable; add a new pool instead');
      }
      if (pool && (pool.provider ?? '') !== (oldPool.provider ?? '')) add(`spec.nodePools[${i}].provider`, 'is immutable; add a new pool instead');
    });
  }
  return causes;
}

/** provider openstack: a cloud to run in, and an image and a flavor for every pool's servers. */
function validateOpenStack(spec: ClusterSpec): FieldCause[] {
  const causes: FieldCause[] = [];
  if ((spec.provider ?? 'local') !== 'openstack') {
    if (spec.cloud !== undefined) causes.push({ field: 'spec.cloud', message: 'only for provider openstack' });
    return causes;
  }
  if (spec.cloud === undefined) causes.push({ field: 'spec.cloud', message: 'provider openstack needs the OpenStackCloud (of this project) to run in' });
  spec.nodePools.forEach((pool, i) => {
    if ((pool.provider ?? 'openstack') !== 'openstack') return; // e.g. imported servers beside the VMs
    for (const field of ['image', 'flavor'] as const) {
      if (!pool.machine?.[field]) causes.push({ field: `spec.nodePools[${i}].machine.${field}`, message: `provider openstack needs the ${field === 'image' ? 'Glance image' : 'Nova flavor'} (name or id) of the pool's servers` });
    }
  });
  return causes;
}

/**
 * Real kubelets (runtime containerd) and imported servers are workers only: Marina's control-plane
 * and etcd machines are its own, and an imported server never runs them. A simulated cluster is
 * simulated whole: Marina reaches a cluster through one access chosen by the cluster's provider,
 * so a `sim` pool in a real cluster (or a real pool in a `sim` cluster) could never be reached, and
 * a simulated machine runs no real kubelet.
 */
function validatePoolRuntime(spec: ClusterSpec, i: number): FieldCause[] {
  const pool = spec.nodePools[i]!;
  const provider = pool.provider ?? spec.provider ?? 'local';
  const workerOnly = pool.roles.length === 1 && pool.roles[0] === 'worker';
  const at = `spec.nodePools[${i}]`;
  if ((provider === 'sim') !== ((spec.provider ?? 'local') === 'sim')) {
    return [{ field: `${at}.provider`, message: 'the sim provider simulates whole clusters: set spec.provider to sim and no other provider on a pool' }];
  }
  if (provider === 'sim' && pool.runtime?.type === 'containerd') {
    return [{ field: `${at}.runtime.type`, message: 'simulated machines run virtual kubelets only: omit runtime.type or set it to virtual' }];
  }
  if (provider === 'import') {
    if (!workerOnly) return [{ field: `${at}.roles`, message: 'imported servers join as workers only: roles must be [worker]' }];
    if (pool.runtime?.type === 'virtual') return [{ field: `${at}.runtime.type`, message: 'imported servers run a real kubelet: omit runtime.type or set it to containerd' }];
  } else if (pool.runtime?.type === 'containerd' && !workerOnly) {
    return [{ field: `${at}.runtime.type`, message: 'real kubelets (containerd) run on worker-only pools; roles must be [worker]' }];
  }
  return [];
}

function checkCidr(value: string | undefined, field: string, add: (f: string, m: string) => void): Cidr | undefined {
  if (value === undefined) return parseCidr(field.endsWith('podCIDR') ? DEFAULT_POD_CIDR : DEFAULT_SERVICE_CIDR) as Cidr;
  const parsed = parseCidr(value);
  if (typeof parsed === 'string') {
    add(field, parsed);
    return undefined;
  }
  return parsed;
}

/** Healing thresholds that cannot work: percentages over 100, timeouts no check could ever observe. */
function validateHealing(spec: ClusterSpec): FieldCause[] {
  const causes: FieldCause[] = [];
  const health = resolveHealth(spec.health);
  const interval = health.intervalSeconds;
  if (health.metricsIntervalSeconds < interval) {
    causes.push({ field: 'spec.health.metricsIntervalSeconds', message: `must be at least spec.health.intervalSeconds (${interval})` });
  }
  spec.nodePools.forEach((pool, i) => {
    const h = pool.healing;
    if (!h) return;
    const at = `spec.nodePools[${i}].healing`;
    if (typeof h.maxInFlight === 'string') {
      const pct = Number(h.maxInFlight.slice(0, -1));
      if (pct < 1 || pct > 100) causes.push({ field: `${at}.maxInFlight`, message: `must be between 1% and 100%; got ${h.maxInFlight}` });
    }
    if (isCriticalRole(pool.roles) && h.maxInFlight !== undefined && h.maxInFlight !== 1) {
      // Anything else would let two etcd members or apiservers be replaced at once.
      causes.push({ field: `${at}.maxInFlight`, message: 'etcd and controlplane machines are replaced one at a time; omit maxInFlight or set it to 1' });
    }
    for (const f of ['unhealthyTimeoutSeconds', 'startupTimeoutSeconds'] as const) {
      const v = h[f];
      if (v !== undefined && v < interval) {
        causes.push({ field: `${at}.${f}`, message: `${v} s is shorter than the health check interval spec.health.intervalSeconds (${interval} s)` });
      }
    }
  });
  return causes;
}
