// From a definition, an Addon's values and the cluster's facts to the objects to apply: values
// with defaults, placeholders replaced, Marina's labels set, the add-on's namespace added when it
// is not a built-in one, everything in install order, and a digest that changes exactly when the
// rendered result does.
import { createHash } from 'node:crypto';
import type { Cluster } from '../api/kinds.js';
import { CLUSTER_DOMAIN, clusterDnsIP } from '../api/cluster-dns.js';
import { DEFAULT_POD_CIDR, DEFAULT_SERVICE_CIDR } from '../api/cluster-validation.js';
import { LABEL_ADDON, LABEL_MANAGED_BY, MANAGED_BY_ADDONS } from '../api/wellknown.js';
import type { PreparedDefinition } from './definitions.js';
import { RenderError, renderDoc, type RenderContext } from './template.js';
import { resolveValues } from './values.js';

export { RenderError };

export type Manifest = Record<string, unknown> & {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
};

/** Namespaces every cluster has; an add-on never creates or deletes them. */
export const BUILTIN_NAMESPACES = new Set(['default', 'kube-system', 'kube-public', 'kube-node-lease']);

/** What the templates may know about a cluster (`${cluster.*}`). */
export function clusterContext(cluster: Pick<Cluster, 'metadata' | 'spec' | 'status'>, fallbackVersion = ''): RenderContext['cluster'] {
  const serviceCIDR = cluster.spec.network?.serviceCIDR ?? DEFAULT_SERVICE_CIDR;
  return {
    name: cluster.metadata.name,
    project: cluster.metadata.project ?? '',
    dnsIP: clusterDnsIP(serviceCIDR),
    domain: CLUSTER_DOMAIN,
    serviceCIDR,
    podCIDR: cluster.spec.network?.podCIDR ?? DEFAULT_POD_CIDR,
    kubernetesVersion: cluster.status?.kubernetesVersion ?? cluster.spec.kubernetesVersion ?? fallbackVersion,
  };
}

// Helm's install order (what others refer to comes first), except that CustomResourceDefinitions
// lead, as Helm's crds/ directory does: the pass waits for them to be established before it
// applies anything else, so the add-on's own custom resources find their kind served. Deletion
// runs in reverse: custom resources (kinds not listed) first, their definitions last.
export const CRD_KIND = 'CustomResourceDefinition';
const INSTALL_ORDER = [
  CRD_KIND, 'Namespace', 'NetworkPolicy', 'ResourceQuota', 'LimitRange', 'PodSecurityPolicy', 'PodDisruptionBudget', 'ServiceAccount', 'Secret',
  'SecretList', 'ConfigMap', 'StorageClass', 'PersistentVolume', 'PersistentVolumeClaim', 'ClusterRole',
  'ClusterRoleList', 'ClusterRoleBinding', 'ClusterRoleBindingList', 'Role', 'RoleList', 'RoleBinding', 'RoleBindingList', 'Service',
  'DaemonSet', 'Pod', 'ReplicationController', 'ReplicaSet', 'Deployment', 'HorizontalPodAutoscaler', 'StatefulSet', 'Job', 'CronJob',
  'IngressClass', 'Ingress', 'APIService', 'MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration',
];
export function installRank(kind: string): number {
  const i = INSTALL_ORDER.indexOf(kind);
  return i < 0 ? INSTALL_ORDER.length : i;
}

export interface Rendered {
  objects: Manifest[];
  /** SHA-256 over the version and the rendered objects. */
  digest: string;
}

/** Renders one add-on for one cluster. Throws RenderError (bad values, unset placeholders, bad objects). */
export function renderAddon(p: PreparedDefinition, values: Record<string, unknown> | undefined, cluster: RenderContext['cluster']): Rendered {
  const def = p.definition.spec;
  const resolved = resolveValues(p.validate, values);
  if (resolved.causes.length > 0) throw new RenderError(`values: ${resolved.causes.map((c) => `${c.field}: ${c.message}`).join('; ')}`);
  const ctx: RenderContext = { values: resolved.values, cluster, addon: { name: def.addon, version: def.version, namespace: def.namespace } };
  const objects: Manifest[] = [];
  for (const doc of p.template.docs) {
    const obj = renderDoc(doc, ctx);
    const where = `${doc.file} document ${doc.index + 1}`;
    const meta = obj.metadata as Manifest['metadata'] | undefined;
    if (!meta || typeof meta.name !== 'string' || meta.name === '') throw new RenderError(`${where}: metadata.name renders empty`);
    if (meta.namespace !== undefined && typeof meta.namespace !== 'string') throw new RenderError(`${where}: metadata.namespace must be a string`);
    objects.push(label(obj as Manifest, def.addon));
  }
  if (!BUILTIN_NAMESPACES.has(def.namespace) && !objects.some((o) => o.kind === 'Namespace' && o.metadata.name === def.namespace)) {
    objects.push(label({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: def.namespace } }, def.addon));
  }
  const seen = new Set<string>();
  for (const o of objects) {
    const id = `${o.apiVersion}/${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
    if (seen.has(id)) throw new RenderError(`${o.kind} ${o.metadata.name} is defined twice`);
    seen.add(id);
  }
  objects.sort((a, b) => installRank(a.kind) - installRank(b.kind));
  const digest = createHash('sha256').update(def.version).update(JSON.stringify(objects)).digest('hex');
  return { objects, digest };
}

/**
 * Marina's labels. Namespaces get only `managed-by`: several add-ons may share one namespace, and
 * each applying its own add-on label would take the field from the others on every pass.
 */
function label(obj: Manifest, addon: string): Manifest {
  const labels: Record<string, string> = { ...(obj.metadata.labels ?? {}), [LABEL_MANAGED_BY]: MANAGED_BY_ADDONS };
  if (obj.kind !== 'Namespace') labels[LABEL_ADDON] = addon;
  return { ...obj, metadata: { ...obj.metadata, labels } };
}
