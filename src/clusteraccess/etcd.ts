// Reaching a cluster's etcd: through the client URLs of its etcd machines that were started (their
// members exist), with the membership rules of src/etcd on top.
import type { Cluster, Machine } from '../api/kinds.js';
import { hasRole, isStarted } from '../api/machines.js';
import { etcdClientURL } from '../bootstrap/machine.js';
import { EtcdMembership } from '../etcd/membership.js';
import type { ClusterConnections } from './access.js';

type Addressed = Machine & { status: { address: string } };

const hasAddress = (m: Machine): m is Addressed => !!m.status?.address;

/** The started etcd machines that have an address, except the one named `except`. */
export function startedEtcdMachines(machines: readonly Machine[], except?: string): Addressed[] {
  return machines.filter(hasAddress).filter((m) => m.metadata.name !== except && hasRole(m, 'etcd') && isStarted(m));
}

/**
 * etcd client URLs to ask: every started etcd machine, and `last` after them whether started or
 * not (a member that is leaving, or a learner that serves no membership calls, is asked last).
 */
export function etcdEndpoints(machines: readonly Machine[], last?: Machine): string[] {
  const urls = startedEtcdMachines(machines, last?.metadata.name).map((m) => etcdClientURL(m.status.address));
  if (last?.status?.address) urls.push(etcdClientURL(last.status.address));
  return urls;
}

/**
 * The membership of the cluster's etcd, asked through its started etcd machines (`last` after the
 * others); undefined while the cluster has no PKI. `signal` goes with every call.
 */
export async function etcdMembership(
  access: ClusterConnections,
  cluster: Cluster,
  machines: readonly Machine[],
  opts: { last?: Machine; signal?: AbortSignal } = {},
): Promise<EtcdMembership | undefined> {
  const api = await access.etcd(cluster, etcdEndpoints(machines, opts.last));
  return api && new EtcdMembership(api, opts.signal ? { signal: opts.signal } : {});
}
