// Marina's platform events: the bus the controllers, the AlertManager and the operations publish
// on (the function service is its subscriber), the catalogue of event types with their shapes, and
// the CloudEvents 1.0 envelope every one of them has. Builders for each event are in platform.ts.
import type { CloudEvent } from '../api/functions.js';

/** What publishers call: one method, so they depend on nothing of the function service. */
export interface EventBus {
  publish(event: CloudEvent): Promise<void>;
}

/** CloudEvents extension attribute carrying the project an event belongs to. */
export const PROJECT_ATTRIBUTE = 'marinaproject';

/**
 * Marina's platform events: type → when, source, subject and the shape of `data`.
 * Every event has `marinaproject` (the project), `source` /marina/projects/<project>/<plural>/<name>,
 * `datacontenttype` application/json.
 */
export const PLATFORM_EVENTS = {
  'dev.marina.cluster.created': { when: 'a Cluster object was created', subject: '<cluster>', data: '{ cluster, kubernetesVersion, provider, nodePools: [{ name, roles, replicas }] }' },
  'dev.marina.cluster.deleted': { when: 'a Cluster object is gone (after its machines were deleted)', subject: '<cluster>', data: '{ cluster }' },
  'dev.marina.machine.replaced': {
    when: 'healing replaced a machine of a node pool',
    subject: '<cluster>/<pool>/<machine>',
    data: '{ cluster, pool, machine, reason, message, at }',
  },
  'dev.marina.operation.phase-changed': {
    when: 'a day-2 Operation started running (docs/operations.md)',
    subject: '<cluster>/<operation>',
    data: '{ project, cluster, operation, uid, type, phase, requestedBy?, approvedBy?, startTime?, completionTime?, message?, result?, steps: [{ name, state, message? }] }',
  },
  'dev.marina.operation.finished': {
    when: 'a day-2 Operation ended (data.phase Succeeded, Failed or Cancelled)',
    subject: '<cluster>/<operation>',
    data: 'as dev.marina.operation.phase-changed',
  },
  'dev.marina.alert.fired': { when: 'an Alert started firing', subject: '<alert>', data: '{ alert, rule, severity, cluster?, labels, summary, startsAt }' },
  'dev.marina.alert.resolved': { when: 'an Alert resolved', subject: '<alert>', data: '{ alert, rule, severity, cluster?, labels, summary, startsAt, endsAt }' },
  'dev.marina.backup.failed': { when: 'a Snapshot operation (an etcd backup) ended Failed', subject: '<cluster>/<operation>', data: 'as dev.marina.operation.phase-changed' },
  'dev.marina.member.added': {
    when: "an etcd member joined a cluster's etcd as a voting member (the founding one included)",
    subject: '<cluster>/<machine>',
    data: '{ cluster, machine, member, peerURL }',
  },
} as const;
export type PlatformEventType = keyof typeof PLATFORM_EVENTS;

export function platformEvent(o: { type: PlatformEventType; project: string; plural: string; name: string; subject: string; data: unknown; id: string; time?: string }): CloudEvent {
  return {
    specversion: '1.0',
    id: o.id,
    source: `/marina/projects/${o.project}/${o.plural}/${o.name}`,
    type: o.type,
    subject: o.subject,
    time: o.time ?? new Date().toISOString(),
    datacontenttype: 'application/json',
    data: o.data,
    [PROJECT_ATTRIBUTE]: o.project,
  };
}
