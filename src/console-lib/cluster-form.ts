// The create-cluster form's model: what the inputs hold (strings, as typed), the Cluster object
// sent to the API, and the field paths of the inputs (for the API's errors). The form does not
// validate by itself: the API is the one judge, and its messages are shown as they are.
import type { Resource } from '../api/meta.js';
import { API_VERSION } from '../client/index.js';

export const ROLES = ['etcd', 'controlplane', 'worker'] as const;
export type PoolRole = (typeof ROLES)[number];

export interface PoolForm {
  name: string;
  roles: Record<PoolRole, boolean>;
  /** As typed; sent as a number when it is an integer, as typed otherwise (the API says why not). */
  replicas: string;
}

export interface ClusterForm {
  name: string;
  /** Empty: the server's default version. */
  kubernetesVersion: string;
  /** Empty: the server's default. */
  podCIDR: string;
  serviceCIDR: string;
  pools: PoolForm[];
}

export function newPool(name: string, roles: PoolRole[], replicas: number): PoolForm {
  return { name, roles: { etcd: roles.includes('etcd'), controlplane: roles.includes('controlplane'), worker: roles.includes('worker') }, replicas: String(replicas) };
}

/** A small cluster: one machine that is etcd and control plane, and two workers. */
export function defaultClusterForm(): ClusterForm {
  return {
    name: '',
    kubernetesVersion: '',
    podCIDR: '',
    serviceCIDR: '',
    pools: [newPool('controlplane', ['etcd', 'controlplane'], 1), newPool('workers', ['worker'], 2)],
  };
}

export function parseReplicas(raw: string): number | string {
  const t = raw.trim();
  return /^[+-]?[0-9]+$/.test(t) ? Number(t) : t;
}

export interface ClusterObject extends Resource {
  spec: {
    kubernetesVersion?: string;
    network?: { podCIDR?: string; serviceCIDR?: string };
    nodePools: { name: string; roles: string[]; replicas: number | string }[];
  };
}

export function buildCluster(form: ClusterForm, project: string): ClusterObject {
  const spec: ClusterObject['spec'] = {
    nodePools: form.pools.map((p) => ({
      name: p.name.trim(),
      roles: ROLES.filter((r) => p.roles[r]),
      replicas: parseReplicas(p.replicas),
    })),
  };
  const version = form.kubernetesVersion.trim();
  if (version) spec.kubernetesVersion = version;
  const pod = form.podCIDR.trim();
  const svc = form.serviceCIDR.trim();
  if (pod || svc) spec.network = { ...(pod ? { podCIDR: pod } : {}), ...(svc ? { serviceCIDR: svc } : {}) };
  return { apiVersion: API_VERSION, kind: 'Cluster', metadata: { name: form.name.trim(), project }, spec };
}

/** Paths of the form's inputs, as the API names fields. `spec.nodePools` holds pool-level errors. */
export function clusterFormFields(form: ClusterForm): string[] {
  const fields = ['metadata.name', 'spec.kubernetesVersion', 'spec.network.podCIDR', 'spec.network.serviceCIDR', 'spec.nodePools'];
  form.pools.forEach((_, i) => fields.push(`spec.nodePools[${i}].name`, `spec.nodePools[${i}].roles`, `spec.nodePools[${i}].replicas`));
  return fields;
}

// ---------- scaling ----------

interface PoolTemplate {
  name: string;
  replicas: number;
}

/** The cluster with one pool's replicas changed; everything else (resourceVersion too) as it was. */
export function withPoolReplicas<C extends Resource>(cluster: C, pool: string, replicas: number | string): C {
  const spec = cluster.spec as { nodePools?: PoolTemplate[] } | undefined;
  const pools = spec?.nodePools ?? [];
  if (!pools.some((p) => p.name === pool)) throw new Error(`cluster ${cluster.metadata.name} has no pool ${JSON.stringify(pool)}`);
  return {
    ...cluster,
    spec: { ...spec, nodePools: pools.map((p) => (p.name === pool ? { ...p, replicas } : p)) },
  };
}

/** What scalePool needs of the API client (MarinaClient has it). */
export interface ScaleApi {
  get<T extends Resource>(kind: 'Cluster', name: string, project?: string): Promise<T>;
  replace<T extends Resource>(obj: Resource, project?: string): Promise<T>;
}

/**
 * Sets one pool's replicas the way `marina cluster scale` does: GET, change `spec.nodePools`, PUT
 * with the resourceVersion read (a merge patch would replace the whole array), again on 409.
 */
export async function scalePool(api: ScaleApi, project: string, cluster: string, pool: string, replicas: number | string, attempts = 5): Promise<Resource> {
  for (let i = 1; ; i++) {
    const current = await api.get<Resource>('Cluster', cluster, project);
    try {
      return await api.replace(withPoolReplicas(current, pool, replicas), project);
    } catch (err) {
      const e = err as { code?: number; reason?: string };
      if (e.code === 409 && e.reason === 'Conflict' && i < attempts) continue;
      throw err;
    }
  }
}

/** The index of a pool in spec.nodePools (for mapping `spec.nodePools[i].replicas` errors). */
export function poolIndex(cluster: Resource, pool: string): number {
  return ((cluster.spec as { nodePools?: PoolTemplate[] } | undefined)?.nodePools ?? []).findIndex((p) => p.name === pool);
}
