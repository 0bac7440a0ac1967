// Events: the bus controllers publish Marina's own events on, the CloudEvents 1.0 form of those
// events (built in platform-events.ts), and the matching of subscriptions (Function and Pipeline
// event triggers) to events.
import type { CloudEvent, EventFilter } from '../api/functions.js';

/** What controllers call: one method, so they depend on nothing of the function service. */
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
  'dev.marina.operation.finished': { when: 'a long-running operation (upgrade, restore, scale) ended', subject: '<cluster>', data: '{ cluster, operation, outcome: "succeeded" | "failed", message? }' },
  'dev.marina.alert.fired': { when: 'an Alert started firing', subject: '<alert>', data: '{ alert, rule, severity, cluster?, labels, summary, startsAt }' },
  'dev.marina.alert.resolved': { when: 'an Alert resolved', subject: '<alert>', data: '{ alert, rule, severity, cluster?, labels, summary, startsAt, endsAt }' },
  'dev.marina.backup.failed': { when: 'a backup (etcd snapshot) failed', subject: '<cluster>', data: '{ cluster, backup, message }' },
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

const prefixMatch = (pattern: string, value: string | undefined) =>
  value !== undefined && (pattern.endsWith('*') ? value.startsWith(pattern.slice(0, -1)) : value === pattern);

/** Does `event` pass `filter`? Every given criterion must hold; an empty filter matches everything. */
export function matchesFilter(filter: EventFilter, event: CloudEvent): boolean {
  if (filter.types && !filter.types.some((t) => prefixMatch(t, event.type))) return false;
  if (filter.source !== undefined && !event.source.startsWith(filter.source)) return false;
  if (filter.subject !== undefined && !prefixMatch(filter.subject, event.subject)) return false;
  for (const [k, v] of Object.entries(filter.extensions ?? {})) if (String(event[k]) !== v) return false;
  return true;
}
