// The membership questions a NodePool asks before it changes an etcd pool or removes a control
// plane's etcd member (src/etcd/membership.ts decides): may one more member join, may this one
// leave. Shared by scaling, healing and rolling, so each asks the same way.
import type { Cluster, Machine } from '../api/kinds.js';
import { hasRole, isStarted } from '../api/machines.js';
import { isDeleting } from '../api/meta.js';
import { etcdClientURL, etcdPeerURL } from '../bootstrap/machine.js';
import { etcdMembership } from '../clusteraccess/etcd.js';
import { failureReason, type EtcdMembership } from '../etcd/membership.js';
import { clusterMachines } from '../store/typed.js';
import { errorMessage, type Shared } from './common.js';

export type Decision = { ok: true } | { ok: false; reason: string; message: string };

export async function etcdMachines(s: Shared, cluster: Cluster): Promise<Machine[]> {
  return (await clusterMachines(s.store, cluster.metadata.project ?? '', cluster.metadata.name)).filter((m) => hasRole(m, 'etcd'));
}

/** May one more etcd member be created now (`all`: every missing one, for a cluster whose etcd never started)? */
export async function etcdScaleOut(s: Shared, cluster: Cluster): Promise<Decision & { all?: boolean }> {
  const machines = await etcdMachines(s, cluster);
  // A new cluster: nothing started, so nothing to keep safe yet; the gates order the joins.
  if (machines.every((m) => !isStarted(m) && !isDeleting(m))) return { ok: true, all: true };
  const leaving = machines.find(isDeleting);
  if (leaving) return { ok: false, reason: 'EtcdMemberLeaving', message: `waiting for etcd machine ${leaving.metadata.name} to leave` };
  const pending = machines.find((m) => m.status?.phase !== 'Running');
  if (pending) {
    return { ok: false, reason: 'WaitingForEtcdMember', message: `waiting for etcd machine ${pending.metadata.name} to be Running (${pending.status?.phase ?? 'Pending'})` };
  }
  return etcdDecision(s, cluster, machines, (m) => m.mayGrow());
}

/** May `victim` (an etcd machine) be removed now? */
export async function etcdScaleIn(s: Shared, cluster: Cluster, victim: Machine): Promise<Decision> {
  const machines = await etcdMachines(s, cluster);
  const leaving = machines.find((m) => isDeleting(m) && m.metadata.name !== victim.metadata.name);
  if (leaving) return { ok: false, reason: 'EtcdMemberLeaving', message: `waiting for etcd machine ${leaving.metadata.name} to leave` };
  // A member that never started holds no data: removing it cannot hurt.
  const address = victim.status?.address;
  if (!isStarted(victim) || !address) return { ok: true };
  return etcdDecision(s, cluster, machines, (m) => m.mayRemove(etcdPeerURL(address)));
}

/**
 * May the etcd member of `victim` go without leaving a kube-apiserver with no live member it
 * knows (its etcd client never learns about members that joined after it started)? A control
 * plane that would be left so waits for its pool to refresh it first.
 */
export async function apiserversKeepAMember(s: Shared, cluster: Cluster, victim: Machine): Promise<Decision> {
  const machines = await clusterMachines(s.store, cluster.metadata.project ?? '', cluster.metadata.name);
  const live = new Set(
    machines.filter((m) => hasRole(m, 'etcd') && !isDeleting(m) && m.status?.phase === 'Running' && m.status.address && m.metadata.name !== victim.metadata.name).map((m) => etcdClientURL(m.status!.address!)),
  );
  const cut = machines.filter((m) => hasRole(m, 'controlplane') && !isDeleting(m) && m.metadata.name !== victim.metadata.name && m.status?.etcdServers && !m.status.etcdServers.some((u) => live.has(u)));
  if (cut.length === 0) return { ok: true };
  return {
    ok: false,
    reason: 'ControlPlanesStale',
    message: `waiting for control planes ${cut.map((m) => m.metadata.name).join(', ')} to be refreshed: their kube-apiserver would know no live etcd member without ${victim.metadata.name}`,
  };
}

/** Asks the cluster's etcd (through its started members) for a membership decision. */
async function etcdDecision(s: Shared, cluster: Cluster, machines: Machine[], decide: (m: EtcdMembership) => Promise<Decision>): Promise<Decision> {
  try {
    const membership = await etcdMembership(s.connections, cluster, machines);
    if (!membership) return { ok: false, reason: 'WaitingForPKI', message: 'the cluster has no PKI yet' };
    return await decide(membership);
  } catch (err) {
    return { ok: false, reason: failureReason(err), message: errorMessage(err) };
  }
}

/**
 * Control-plane machines whose kube-apiserver knows fewer than two live etcd members (it was
 * started before the others joined, and its etcd client never learns about new members): after
 * one more etcd replacement it would know none. Only while every etcd member is up and voting: a
 * membership change in progress settles first.
 */
export async function staleControlPlanes(s: Shared, cluster: Cluster, active: readonly Machine[]): Promise<Map<string, string>> {
  const stale = new Map<string, string>();
  const known = active.filter((m) => m.status?.phase === 'Running' && m.status.etcdServers);
  if (known.length === 0) return stale;
  const members = await etcdMachines(s, cluster);
  const addresses = members.map((m) => (!isDeleting(m) && m.status?.phase === 'Running' ? m.status.address : undefined));
  if (addresses.some((a) => a === undefined)) return stale;
  // A Running etcd machine is a voting member (its Machine turns Running only once promoted), so
  // the store tells the current members without asking etcd on every reconcile of the pool.
  const live = new Set(addresses.map((a) => etcdClientURL(a!)));
  const want = Math.min(2, live.size);
  for (const m of known) {
    const servers = m.status?.etcdServers ?? [];
    const reachable = servers.filter((u) => live.has(u));
    if (reachable.length < want) stale.set(m.metadata.name, `kube-apiserver knows ${reachable.length} of the ${live.size} current etcd members (${servers.join(', ')})`);
  }
  return stale;
}
