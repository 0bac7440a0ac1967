// Marina's own events as CloudEvents, built where they happen: the Cluster controller (created,
// deleted), healing in the NodePool controller (machine replaced), the Machine controller (an etcd
// member joined) and the AlertManager (fired, resolved) call these and publish the result on the
// EventBus. Ids are derived from the objects (uid and what happened), so a reconcile that runs
// again after a failed write publishes the same id, and the queue's idempotency key (subscription,
// source, id) keeps one delivery per subscriber — also with several Marina processes.
import type { Alert, Cluster, Machine, NodePool, Remediation } from '../api/kinds.js';
import type { CloudEvent } from '../api/functions.js';
import { platformEvent } from './events.js';

const projectOf = (o: { metadata: { project?: string } }) => o.metadata.project ?? '';

export function clusterCreated(c: Cluster): CloudEvent {
  return platformEvent({
    type: 'dev.marina.cluster.created',
    project: projectOf(c),
    plural: 'clusters',
    name: c.metadata.name,
    subject: c.metadata.name,
    id: `${c.metadata.uid}-created`,
    time: c.metadata.creationTimestamp,
    data: {
      cluster: c.metadata.name,
      kubernetesVersion: c.spec.kubernetesVersion ?? null,
      provider: c.spec.provider ?? 'local',
      nodePools: c.spec.nodePools.map((p) => ({ name: p.name, roles: p.roles, replicas: p.replicas })),
    },
  });
}

export function clusterDeleted(c: Cluster): CloudEvent {
  return platformEvent({
    type: 'dev.marina.cluster.deleted',
    project: projectOf(c),
    plural: 'clusters',
    name: c.metadata.name,
    subject: c.metadata.name,
    id: `${c.metadata.uid}-deleted`,
    data: { cluster: c.metadata.name },
  });
}

export function machineReplaced(pool: NodePool, machine: Machine, r: Remediation): CloudEvent {
  return platformEvent({
    type: 'dev.marina.machine.replaced',
    project: projectOf(pool),
    plural: 'nodepools',
    name: pool.metadata.name,
    subject: `${pool.spec.cluster}/${pool.metadata.name}/${r.machine}`,
    id: `${machine.metadata.uid}-replaced`,
    time: r.at,
    data: { cluster: pool.spec.cluster, pool: pool.metadata.name, machine: r.machine, reason: r.reason, message: r.message, at: r.at },
  });
}

/** An etcd member of a cluster became a voting member (the founding one included). */
export function etcdMemberAdded(cluster: Cluster, machine: Machine, member: { id: string; peerURL: string }): CloudEvent {
  return platformEvent({
    type: 'dev.marina.member.added',
    project: projectOf(cluster),
    plural: 'machines',
    name: machine.metadata.name,
    subject: `${cluster.metadata.name}/${machine.metadata.name}`,
    id: `${machine.metadata.uid}-etcd-member-${member.id}`,
    data: { cluster: cluster.metadata.name, machine: machine.metadata.name, member: member.id, peerURL: member.peerURL },
  });
}

/** An Alert as stored after its transition to firing or resolved. */
export function alertChanged(a: Alert): CloudEvent {
  const resolved = a.status?.state === 'resolved';
  return platformEvent({
    type: resolved ? 'dev.marina.alert.resolved' : 'dev.marina.alert.fired',
    project: projectOf(a),
    plural: 'alerts',
    name: a.metadata.name,
    subject: a.metadata.name,
    id: `${a.metadata.uid}-${a.metadata.resourceVersion}`,
    data: {
      alert: a.metadata.name,
      rule: a.spec.rule,
      severity: a.spec.severity,
      cluster: a.spec.cluster ?? null,
      labels: a.spec.labels ?? {},
      summary: a.spec.annotations.summary,
      startsAt: a.status?.startsAt ?? null,
      ...(resolved ? { endsAt: a.status?.endsAt ?? null } : {}),
    },
  });
}
