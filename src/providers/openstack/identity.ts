// How Marina marks what it creates in OpenStack, so it can find it again (after a restart, for a
// machine whose record is lost) and clean it up:
//
//   tags (Nova servers, Neutron ports and security groups, Octavia load balancers and members)
//     marina-cloud-<OpenStackCloud uid>    everything Marina made through that cloud object
//     marina-cluster-<Cluster uid>         everything of one cluster
//     marina-machine-<Machine uid>         a machine's server and port
//   Nova metadata (keys may not contain "/"): marina:project, marina:cluster, marina:machine,
//     marina:machine-uid, marina:pool
//   descriptions (Neutron takes no tags in a POST, so a port or group is found by its exact
//     description until the tags are on): "Marina machine <project>/<cluster>/<name> uid <uid>",
//     "Marina cluster <project>/<cluster> uid <uid>"
//   server groups (no tags, no description): named marina-<Cluster uid>-<pool>
//
// Nova tags are at most 60 characters and Neutron filters split on commas: a tag is a fixed prefix
// and a UUID, nothing else.
import type { ClusterRef, MachineRef } from '../contract.js';

export const cloudTag = (cloudUid: string): string => `marina-cloud-${cloudUid}`;
export const clusterTag = (clusterUid: string): string => `marina-cluster-${clusterUid}`;
export const machineTag = (machineUid: string): string => `marina-machine-${machineUid}`;

export const META = {
  project: 'marina:project',
  cluster: 'marina:cluster',
  machine: 'marina:machine',
  machineUid: 'marina:machine-uid',
  pool: 'marina:pool',
} as const;

export function portDescription(m: MachineRef): string {
  return `Marina machine ${m.project}/${m.cluster}/${m.name} uid ${m.uid}`;
}

const PORT_DESCRIPTION = /^Marina machine ([a-z0-9-]+)\/([a-z0-9-]+)\/([a-z0-9-]+) uid ([0-9a-f-]{36})$/;

/** The machine a port was made for, from its description (undefined: not a machine port of Marina's). */
export function machineOfPort(description: string): MachineRef | undefined {
  const m = PORT_DESCRIPTION.exec(description);
  return m ? { project: m[1]!, cluster: m[2]!, name: m[3]!, uid: m[4]! } : undefined;
}

/** The machine a server was booted for, from its metadata. */
export function machineOfServer(metadata: Record<string, string> | undefined): MachineRef | undefined {
  const md = metadata ?? {};
  const [project, cluster, name, uid] = [md[META.project], md[META.cluster], md[META.machine], md[META.machineUid]];
  return project && cluster && name && uid ? { project, cluster, name, uid } : undefined;
}

export function clusterDescription(c: ClusterRef): string {
  return `Marina cluster ${c.project}/${c.name} uid ${c.uid}`;
}

const CLUSTER_DESCRIPTION = /^Marina cluster ([a-z0-9-]+)\/([a-z0-9-]+) uid ([0-9a-f-]{36})$/;

/** The cluster a load balancer or security group was made for, from its description. */
export function clusterOfDescription(description: string): ClusterRef | undefined {
  const m = CLUSTER_DESCRIPTION.exec(description);
  return m ? { project: m[1]!, name: m[2]!, uid: m[3]! } : undefined;
}

/** The cluster uid among a resource's tags. */
export function clusterUidOfTags(tags: readonly string[]): string | undefined {
  const prefix = clusterTag('');
  return tags.find((t) => t.startsWith(prefix))?.slice(prefix.length) || undefined;
}

/** Name of a cluster's security group and load balancer, as people see it in the dashboard. */
export function clusterResourceName(c: { project: string; name: string }): string {
  return `marina-${c.project}-${c.name}`;
}

export function serverGroupName(clusterUid: string, pool: string): string {
  return `marina-${clusterUid}-${pool}`;
}

export function isServerGroupOf(name: string, clusterUid: string): boolean {
  return name.startsWith(`marina-${clusterUid}-`);
}

const SERVER_GROUP_NAME = /^marina-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})-[a-z0-9-]+$/;

/** The uid of the cluster a server group was made for, from its name (undefined: not Marina's). */
export function clusterUidOfServerGroup(name: string): string | undefined {
  return SERVER_GROUP_NAME.exec(name)?.[1];
}

/**
 * The machine's provider id: its port, made first and kept for the machine's life, so
 * prepareMachine, describeMachine and listMachines give the same answer before and after the
 * server exists. Only a server whose port is gone is named by the server.
 */
export function providerIdOf(portId: string | undefined, serverId: string | undefined): string {
  return portId ? `openstack:///ports/${portId}` : `openstack:///servers/${serverId ?? ''}`;
}
