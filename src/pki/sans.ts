// Subject alternative names: what every kube-apiserver certificate must name, and how a mixed
// list of host names and addresses becomes the two SAN kinds.

/** The in-cluster names of the `kubernetes` Service that clients use to reach the apiserver. */
export const KUBERNETES_SERVICE_NAMES = [
  'kubernetes',
  'kubernetes.default',
  'kubernetes.default.svc',
  'kubernetes.default.svc.cluster.local',
] as const;

/** Deduplicates `values` and splits them into DNS names and IP addresses (IPv4 or IPv6). */
export function sanList(values: string[]): { dnsNames: string[]; ipAddresses: string[] } {
  const unique = [...new Set(values)];
  const isIp = (v: string) => /^[0-9.]+$/.test(v) || v.includes(':');
  return { dnsNames: unique.filter((v) => !isIp(v)), ipAddresses: unique.filter(isIp) };
}
