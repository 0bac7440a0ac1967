// Neutron: the machines' network and subnet, a cluster's security group with the rules its roles
// need, and a machine's port (made before its server, so the address exists before certificates
// naming it are issued).
import { ProviderError } from '../contract.js';
import type { OpenStackApi, Network, Port, SecurityGroup, SecurityGroupRule, Subnet } from './api.js';
import { looksLikeId } from './api.js';
import { cloudTag, clusterDescription, clusterResourceName, clusterTag, machineTag, portDescription } from './identity.js';
import type { ClusterRef, MachineRef } from '../contract.js';

/** The port the machine agent of a server listens on (as on an imported server). */
export const VM_AGENT_PORT = 10270;
export const APISERVER_PORT = 6443;

export async function resolveNetwork(api: OpenStackApi, ref: string, signal?: AbortSignal): Promise<Network> {
  const found = await api.networks(ref, signal);
  if (found.length === 0) throw new ProviderError('NetworkNotFound', `network ${JSON.stringify(ref)} not found in Neutron`, true);
  if (found.length > 1) throw new ProviderError('NetworkAmbiguous', `${found.length} networks are named ${JSON.stringify(ref)}: name it by id`, true);
  return found[0]!;
}

/** The named subnet of `network`, or its first IPv4 subnet. */
export async function resolveSubnet(api: OpenStackApi, network: Network, ref: string | undefined, signal?: AbortSignal): Promise<Subnet> {
  const subnets = await api.subnets(ref ? { network_id: network.id, [looksLikeId(ref) ? 'id' : 'name']: ref } : { network_id: network.id, ip_version: '4' }, signal);
  const subnet = subnets[0];
  if (!subnet) {
    throw new ProviderError('SubnetNotFound', ref ? `subnet ${JSON.stringify(ref)} not found on network ${network.name}` : `network ${network.name} has no IPv4 subnet`, true);
  }
  return subnet;
}

/**
 * The rules of a cluster's group (IPv4, ingress; egress stays open as Neutron creates it):
 *   6443 from anywhere      kube-apiserver, reached through the load balancer (its amphorae) and by clients
 *   2379-2380 from the group etcd clients (kube-apiservers) and peers
 *   10250 from the group    kubelets (the apiserver's logs, exec, port-forward)
 *   2379 from Marina        etcd membership, health and snapshots
 *   10270 from Marina       the machine agent (health, metrics, day-2 actions)
 *   any from the pod CIDR   pods talking to pods on other nodes (the ports allow the CIDR as an address pair)
 */
export function securityGroupRules(groupId: string, podCIDR: string, managementCIDR: string): Omit<SecurityGroupRule, 'id'>[] {
  const tcp = (min: number, max: number, from: { group?: string; cidr?: string }, description: string): Omit<SecurityGroupRule, 'id'> => ({
    direction: 'ingress',
    ethertype: 'IPv4',
    protocol: 'tcp',
    port_range_min: min,
    port_range_max: max,
    remote_group_id: from.group ?? null,
    remote_ip_prefix: from.cidr ?? null,
    description,
  });
  return [
    tcp(APISERVER_PORT, APISERVER_PORT, { cidr: '0.0.0.0/0' }, 'kube-apiserver (load balancer, clients)'),
    tcp(2379, 2380, { group: groupId }, 'etcd clients and peers'),
    tcp(10250, 10250, { group: groupId }, 'kubelet'),
    tcp(2379, 2379, { cidr: managementCIDR }, 'etcd from Marina'),
    tcp(VM_AGENT_PORT, VM_AGENT_PORT, { cidr: managementCIDR }, 'machine agent from Marina'),
    { direction: 'ingress', ethertype: 'IPv4', protocol: null, port_range_min: null, port_range_max: null, remote_group_id: null, remote_ip_prefix: podCIDR, description: 'pods on other nodes' },
  ];
}

const sameRule = (a: Omit<SecurityGroupRule, 'id'>, b: SecurityGroupRule): boolean =>
  a.direction === b.direction &&
  a.ethertype === b.ethertype &&
  (a.protocol ?? null) === (b.protocol ?? null) &&
  (a.port_range_min ?? null) === (b.port_range_min ?? null) &&
  (a.port_range_max ?? null) === (b.port_range_max ?? null) &&
  (a.remote_group_id ?? null) === (b.remote_group_id ?? null) &&
  (a.remote_ip_prefix ?? null) === (b.remote_ip_prefix ?? null);

/** The cluster's groups: by exact description (an untagged one a crash left, too) and by tag. */
export async function clusterSecurityGroups(api: OpenStackApi, cloudUid: string, cluster: ClusterRef, signal?: AbortSignal): Promise<SecurityGroup[]> {
  const [described, tagged] = await Promise.all([
    api.securityGroups({ description: clusterDescription(cluster) }, signal),
    api.securityGroups({ tags: `${cloudTag(cloudUid)},${clusterTag(cluster.uid)}` }, signal),
  ]);
  const byId = new Map([...described, ...tagged].map((g) => [g.id, g]));
  return [...byId.values()];
}

export async function ensureSecurityGroup(api: OpenStackApi, cloudUid: string, cluster: ClusterRef, podCIDR: string, managementCIDR: string, signal?: AbortSignal): Promise<SecurityGroup> {
  const existing = await clusterSecurityGroups(api, cloudUid, cluster, signal);
  const group = existing[0] ?? (await api.createSecurityGroup(clusterResourceName(cluster), clusterDescription(cluster), signal));
  const tags = [cloudTag(cloudUid), clusterTag(cluster.uid)];
  if (!tags.every((t) => group.tags.includes(t))) await api.setTags('security-groups', group.id, tags, signal);
  for (const rule of securityGroupRules(group.id, podCIDR, managementCIDR)) {
    if (!group.security_group_rules.some((r) => sameRule(rule, r))) await api.addRule(group.id, rule, signal);
  }
  return group;
}

/** The machine's ports: by exact description (made, maybe not yet tagged) and by its uid's tag. */
export async function machinePorts(api: OpenStackApi, m: MachineRef, signal?: AbortSignal): Promise<Port[]> {
  const [described, tagged] = await Promise.all([api.ports({ description: portDescription(m) }, signal), api.ports({ tags: machineTag(m.uid) }, signal)]);
  const byId = new Map([...described, ...tagged].map((p) => [p.id, p]));
  return [...byId.values()];
}

export interface PortRequest {
  network: Network;
  subnet: Subnet;
  securityGroup: SecurityGroup;
  podCIDR: string;
}

export async function createMachinePort(api: OpenStackApi, m: MachineRef, r: PortRequest, signal?: AbortSignal): Promise<Port> {
  return api.createPort(
    {
      network_id: r.network.id,
      name: m.name,
      description: portDescription(m),
      fixed_ips: [{ subnet_id: r.subnet.id }],
      security_groups: [r.securityGroup.id],
      // Pods send with their own addresses; port security drops that unless it is allowed.
      allowed_address_pairs: [{ ip_address: r.podCIDR }],
    },
    signal,
  );
}

export async function tagMachinePort(api: OpenStackApi, port: Port, m: MachineRef, cloudUid: string, clusterUid: string, signal?: AbortSignal): Promise<void> {
  const tags = [cloudTag(cloudUid), clusterTag(clusterUid), machineTag(m.uid)];
  if (!tags.every((t) => port.tags.includes(t))) await api.setTags('ports', port.id, tags, signal);
}

/** The port's IPv4 address. */
export function portAddress(port: Port): string {
  const ip = port.fixed_ips.find((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f.ip_address))?.ip_address;
  if (!ip) throw new ProviderError('NoAddress', `port ${port.id} has no IPv4 address`);
  return ip;
}
