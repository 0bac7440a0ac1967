// Which Node labels a kubelet may set on itself under the NodeRestriction admission plugin
// (plugin/pkg/admission/noderestriction, getForbiddenLabels, Kubernetes 1.36). Labels in the
// kubernetes.io / k8s.io namespaces are reserved except the well-known kubelet labels and the
// kubelet.kubernetes.io / node.kubernetes.io namespaces; node-restriction.kubernetes.io is always
// reserved. Marina applies the reserved ones (e.g. node-role.kubernetes.io/*) with admin rights.

const KUBELET_LABELS = new Set([
  'kubernetes.io/hostname',
  'kubernetes.io/arch',
  'kubernetes.io/os',
  'beta.kubernetes.io/arch',
  'beta.kubernetes.io/os',
  'beta.kubernetes.io/instance-type',
  'node.kubernetes.io/instance-type',
  'failure-domain.beta.kubernetes.io/region',
  'failure-domain.beta.kubernetes.io/zone',
  'topology.kubernetes.io/region',
  'topology.kubernetes.io/zone',
]);

function inNamespace(ns: string, domain: string): boolean {
  return ns === domain || ns.endsWith(`.${domain}`);
}

export function kubeletMaySetLabel(key: string): boolean {
  const slash = key.indexOf('/');
  const ns = slash < 0 ? '' : key.slice(0, slash);
  if (inNamespace(ns, 'node-restriction.kubernetes.io')) return false;
  if (!inNamespace(ns, 'kubernetes.io') && !inNamespace(ns, 'k8s.io')) return true;
  if (KUBELET_LABELS.has(key)) return true;
  return inNamespace(ns, 'kubelet.kubernetes.io') || inNamespace(ns, 'node.kubernetes.io');
}
