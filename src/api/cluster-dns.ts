// Where a cluster's DNS Service lives. The kubelets hand this address to pods as their nameserver
// and the DNS add-on puts its `kube-dns` Service there, so both must compute it the same way:
// by convention (kubeadm, kops, k3s) the 10th address of the service CIDR.
import { nthAddress, parseCidr } from './cidr.js';

/** The DNS domain of every cluster (kubelet `clusterDomain`, CoreDNS `kubernetes` zone). */
export const CLUSTER_DOMAIN = 'cluster.local';

/** 10.96.0.0/16 → 10.96.0.10. Throws on a malformed CIDR (the API refuses those at the edge). */
export function clusterDnsIP(serviceCIDR: string): string {
  const cidr = parseCidr(serviceCIDR);
  if (typeof cidr === 'string') throw new Error(`service CIDR ${serviceCIDR}: ${cidr}`);
  if (cidr.prefix > 28) throw new Error(`service CIDR ${serviceCIDR} is too small for a cluster DNS address (the 10th)`);
  return nthAddress(cidr, 10);
}
