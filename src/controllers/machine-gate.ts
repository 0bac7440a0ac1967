// Whether a machine may start now, and with which etcd membership. Checked before the machine is
// started (status.phase Pending, condition Bootstrapped=False with the reason it waits for):
//   every machine   the cluster's PKI Secret and API endpoint exist; a server that joined with a
//                   token asking for approval is approved by an operator (marina cluster approve)
//   etcd            the oldest etcd machine of a cluster in which no etcd member ever started
//                   founds a new etcd cluster alone; every later one joins as a learner (see
//                   src/etcd/membership.ts) and starts as `existing` with the member list
//   controlplane    (without etcd on the same machine) a healthy etcd quorum with every etcd
//                   member the spec asks for, so --etcd-servers names them all
//   worker          kube-apiserver answers /readyz through the endpoint
import type { Cluster, Machine } from '../api/kinds.js';
import { hasKubelet, hasRole, isStarted } from '../api/machines.js';
import { byAge, isDeleting } from '../api/meta.js';
import { ANNOTATION_APPROVAL, ANNOTATION_APPROVED } from '../api/wellknown.js';
import type { ClusterPki } from '../bootstrap/clusterPki.js';
import { etcdClientURL, etcdPeerURL } from '../bootstrap/machine.js';
import { etcdMembership, startedEtcdMachines } from '../clusteraccess/etcd.js';
import { failureReason, foundingPlan, type JoinPlan } from '../etcd/membership.js';
import type { EndpointDescription } from '../providers/contract.js';
import type { Scope } from '../runtime/phases.js';
import { clusterMachines } from '../store/typed.js';
import { errorMessage, type Shared } from './common.js';

export type Gate = { open: true; pki: ClusterPki; endpoint: EndpointDescription; etcd?: JoinPlan } | Closed;
type Closed = { open: false; reason: string; message: string };

const closed = (reason: string, message: string): Closed => ({ open: false, reason, message });

function endpointFromUrl(url: string): EndpointDescription {
  const u = new URL(url);
  return { url, host: u.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(u.port || 443) };
}

/** Desired etcd member count from the cluster spec. */
function desiredEtcdMembers(cluster: Cluster): number {
  return cluster.spec.nodePools.filter((p) => p.roles.includes('etcd')).reduce((n, p) => n + p.replicas, 0);
}

/** Whether the machine of `sc` (prepared: it has an address) may start now. */
export async function machineGate(s: Shared, sc: Scope<Machine>, cluster: Cluster, address: string): Promise<Gate> {
  if (isDeleting(cluster)) return closed('ClusterDeleting', 'the cluster is being deleted');
  const annotations = sc.obj.metadata.annotations ?? {};
  if (annotations[ANNOTATION_APPROVAL] === 'required' && annotations[ANNOTATION_APPROVED] !== 'true') {
    return closed('WaitingForApproval', `an operator admits it with \`marina cluster approve ${cluster.metadata.name} ${sc.obj.metadata.name}\``);
  }
  const pki = await s.secrets.pki(cluster);
  if (!pki) return closed('WaitingForPKI', 'the cluster PKI does not exist yet');
  if (!cluster.status?.endpoint) return closed('WaitingForEndpoint', 'the cluster API endpoint does not exist yet');
  const machine = sc.obj;
  let etcd: JoinPlan | Closed | undefined;
  if (hasRole(machine, 'etcd')) etcd = await etcdGate(s, sc, cluster, address);
  else if (hasRole(machine, 'controlplane')) etcd = await apiserverGate(s, sc, cluster);
  if (etcd && 'open' in etcd) return etcd;
  if (hasKubelet(machine) && !hasRole(machine, 'controlplane')) {
    const api = await apiGate(s, sc, cluster);
    if (api) return api;
  }
  return { open: true, pki, endpoint: endpointFromUrl(cluster.status.endpoint), ...(etcd ? { etcd } : {}) };
}

/**
 * Founds or joins etcd. Joining goes one member at a time, into a fully healthy cluster, as a
 * learner: it does not count for the quorum until it caught up and is promoted, so the cluster
 * never waits for a member that is still starting.
 */
async function etcdGate(s: Shared, sc: Scope<Machine>, cluster: Cluster, address: string): Promise<JoinPlan | Closed> {
  const self = { name: sc.obj.metadata.name, peerURL: etcdPeerURL(address), clientURL: etcdClientURL(address) };
  const machines = await clusterMachines(s.store, cluster.metadata.project ?? '', cluster.metadata.name);
  const started = startedEtcdMachines(machines, self.name);
  if (started.length === 0) {
    // Nobody started yet: the oldest waiting etcd machine founds the cluster, alone.
    const first = machines.filter((m) => hasRole(m, 'etcd') && !isDeleting(m) && !isStarted(m)).sort(byAge)[0];
    if (first && first.metadata.name !== self.name) return closed('WaitingForFirstEtcdMember', `etcd machine ${first.metadata.name} founds the etcd cluster`);
    return foundingPlan(self);
  }
  try {
    const membership = await etcdMembership(s.connections, cluster, started, { signal: sc.signal });
    if (!membership) return closed('WaitingForPKI', 'the cluster PKI does not exist yet');
    // A member added before it started has no name in etcd yet: its machine's name fills it in.
    const names = new Map(machines.flatMap((m) => (m.status?.address ? [[etcdPeerURL(m.status.address), m.metadata.name] as const] : [])));
    const plan = await membership.join(self, names);
    if (!plan.ok) return closed(plan.reason, plan.message);
    if (plan.added) sc.log.info({ peerURL: self.peerURL }, 'added etcd learner');
    return { initialCluster: plan.initialCluster, state: plan.state, clientURLs: plan.clientURLs };
  } catch (err) {
    return closed(failureReason(err), errorMessage(err));
  }
}

/** A control plane without etcd of its own starts once every etcd member the spec asks for is up. */
async function apiserverGate(s: Shared, sc: Scope<Machine>, cluster: Cluster): Promise<JoinPlan | Closed> {
  const machines = await clusterMachines(s.store, cluster.metadata.project ?? '', cluster.metadata.name);
  const started = startedEtcdMachines(machines, sc.obj.metadata.name);
  if (started.length === 0) return closed('WaitingForEtcd', 'no etcd member has started yet');
  try {
    const membership = await etcdMembership(s.connections, cluster, started, { signal: sc.signal });
    if (!membership) return closed('WaitingForPKI', 'the cluster PKI does not exist yet');
    const members = await membership.apiserverMembers(desiredEtcdMembers(cluster));
    if (!members.ok) return closed(members.reason, members.message);
    return { initialCluster: [], state: 'existing', clientURLs: members.clientURLs };
  } catch (err) {
    return closed(failureReason(err), errorMessage(err));
  }
}

/** A worker starts once kube-apiserver answers through the endpoint (its kubelet registers there). */
async function apiGate(s: Shared, sc: Scope<Machine>, cluster: Cluster): Promise<Closed | undefined> {
  try {
    const kube = await s.connections.kube(cluster);
    if (!kube) return closed('WaitingForControlPlane', 'the cluster has no admin kubeconfig yet');
    const r = await kube.readyz({ signal: sc.signal });
    return r.ok ? undefined : closed('WaitingForControlPlane', `kube-apiserver is not ready: ${r.message}`.slice(0, 32768));
  } catch (err) {
    return closed('WaitingForControlPlane', errorMessage(err));
  }
}
