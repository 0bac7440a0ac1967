// What a machine is made of, and its hash: the `marina.dev/template-hash` label of a Machine, like
// a Deployment's pod-template-hash. A pool's machines whose hash differs from the pool's are
// rolled. Labels, taints and the drain timeout are not part of it: they are passed on to running
// machines in place (the pool's propagate phase). An etcd-only machine runs no Kubernetes binary:
// for it, the etcd version the Kubernetes version pins counts, so an upgrade that keeps etcd's
// version leaves the etcd members alone.
import { createHash } from 'node:crypto';
import type { MachineSpec, NodePoolSpec } from '../api/kinds.js';
import { getVersion } from '../toolchain/versions.js';

type TemplateSource = Pick<MachineSpec | NodePoolSpec, 'roles' | 'provider' | 'kubernetesVersion' | 'machine' | 'runtime' | 'certificates'>;

/** The etcd version pinned for a Kubernetes version (the Kubernetes version itself when it is not pinned). */
export function etcdVersionOf(kubernetesVersion: string): string {
  try {
    return getVersion(kubernetesVersion).etcd;
  } catch {
    return kubernetesVersion;
  }
}

/** Whether the machines of `spec` run only etcd (no Kubernetes binary, no kubelet). */
export function isEtcdOnly(spec: Pick<MachineSpec, 'roles'>): boolean {
  return spec.roles.length === 1 && spec.roles[0] === 'etcd';
}

/** Plain JSON with sorted keys, undefined and empty objects left out, so equal templates hash equal. */
function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => [k, canonical(v)] as const)
      .filter(([, v]) => !(v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return Object.fromEntries(entries);
  }
  return value;
}

/** What a machine of `spec` is made of. */
export function machineTemplate(spec: TemplateSource): Record<string, unknown> {
  return canonical({
    roles: [...spec.roles].sort(),
    provider: spec.provider,
    version: isEtcdOnly(spec) ? `etcd ${etcdVersionOf(spec.kubernetesVersion)}` : spec.kubernetesVersion,
    machine: spec.machine,
    runtime: spec.runtime,
    certificates: spec.certificates,
  }) as Record<string, unknown>;
}

/** 10 hex characters of the SHA-256 of the template: a label value. */
export function templateHash(spec: TemplateSource): string {
  return createHash('sha256').update(JSON.stringify(machineTemplate(spec))).digest('hex').slice(0, 10);
}
