// Marina's own events as CloudEvents, built where they happen: the Cluster controller (created,
// deleted), healing in the NodePool controller (machine replaced), the Machine controller (an etcd
// member joined), the AlertManager (fired, resolved) and the Operation controller (phase changed,
// finished, backup failed) call these and publish the result on the EventBus. Ids are derived from the objects (uid and what happened), so a reconcile that runs
// again after a failed write publishes the same id, and the queue's idempotency key (subscription,
// source, id) keeps one delivery per subscriber — also with several Marina processes.
import type { Alert, Cluster, Machine, NodePool, Remediation } from '../api/kinds.js';
import type { CloudEvent } from '../api/functions.js';
import type { Operation } from '../api/operations.js';
import type { Logger } from 'pino';
import { platformEvent, type EventBus, type PlatformEventType } from './bus.js';

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

/** What an Operation event carries (docs/operations.md). */
export interface OperationEventData {
  project: string;
  cluster: string;
  operation: string;
  uid: string;
  type: string;
  phase: string;
  requestedBy?: string;
  approvedBy?: string;
  startTime?: string;
  completionTime?: string;
  message?: string;
  result?: Record<string, string>;
  steps: { name: string; state: string; message?: string }[];
}

export type OperationEventType = Extract<PlatformEventType, 'dev.marina.operation.phase-changed' | 'dev.marina.operation.finished' | 'dev.marina.backup.failed'>;

/** The event of `op` as it entered its current phase. */
export function operationEvent(op: Operation, type: OperationEventType): CloudEvent {
  const st = op.status ?? {};
  const project = projectOf(op);
  const data: OperationEventData = {
    project,
    cluster: op.spec.cluster,
    operation: op.metadata.name,
    uid: op.metadata.uid ?? '',
    type: op.spec.type,
    phase: st.phase ?? 'Pending',
    steps: (st.steps ?? []).map((s) => ({ name: s.name, state: s.state, ...(s.message ? { message: s.message } : {}) })),
  };
  if (st.requestedBy) data.requestedBy = st.requestedBy;
  if (st.approvedBy) data.approvedBy = st.approvedBy.user;
  if (st.startTime) data.startTime = st.startTime;
  if (st.completionTime) data.completionTime = st.completionTime;
  if (st.message) data.message = st.message;
  if (st.result) data.result = st.result;
  return platformEvent({
    type,
    project,
    plural: 'operations',
    name: op.metadata.name,
    subject: `${op.spec.cluster}/${op.metadata.name}`,
    // Stable per operation and phase: a re-delivery after a crash carries the same id.
    id: `${op.metadata.uid ?? op.metadata.name}-${data.phase}${type === 'dev.marina.backup.failed' ? '-backup' : ''}`,
    time: st.completionTime ?? new Date().toISOString(),
    data,
  });
}

/** A bus that writes events to the log: what a server without the function service publishes on. */
export function logEvents(log: Logger): EventBus {
  return { publish: async (event) => log.info({ event: { type: event.type, subject: event.subject, id: event.id } }, 'platform event') };
}
