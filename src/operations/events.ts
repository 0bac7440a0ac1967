// Operations are platform events: every phase change of an Operation and every failed backup is
// published in the CloudEvents 1.0 shape documented in docs/operations.md. The sink is a seam:
// the server wires the function service's EventBus (`publish(event)`) here once it exists; until
// then events go to the log.
import type { Logger } from 'pino';
import type { Operation } from '../api/operations.js';

export const EVENT_SOURCE = 'marina.dev/operations';

/** Event types (stable: functions subscribe to them). */
export const EventTypes = {
  OperationPhaseChanged: 'dev.marina.operation.phase-changed',
  OperationFinished: 'dev.marina.operation.finished',
  BackupFailed: 'dev.marina.backup.failed',
} as const;

/** A CloudEvent (spec 1.0, structured mode) with an Operation summary as data. */
export interface CloudEvent {
  specversion: '1.0';
  id: string;
  source: string;
  type: string;
  /** `projects/<project>/operations/<name>` */
  subject: string;
  time: string;
  datacontenttype: 'application/json';
  data: OperationEventData;
}

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

/** Where events go; the function service's EventBus fits (`publish(event)`). */
export interface OperationEvents {
  publish(event: CloudEvent): void | Promise<void>;
}

/** The event for `op` entering its current phase. */
export function operationEvent(op: Operation, type: string): CloudEvent {
  const st = op.status ?? {};
  const project = op.metadata.project ?? '';
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
  return {
    specversion: '1.0',
    // Stable per operation and phase: a re-delivery after a crash carries the same id.
    id: `${op.metadata.uid ?? op.metadata.name}/${data.phase}${type === EventTypes.BackupFailed ? '/backup' : ''}`,
    source: EVENT_SOURCE,
    type,
    subject: `projects/${project}/operations/${op.metadata.name}`,
    time: st.completionTime ?? new Date().toISOString(),
    datacontenttype: 'application/json',
    data,
  };
}

/** Events to the log, until a bus is wired. */
export function logEvents(log: Logger): OperationEvents {
  return { publish: (event) => log.info({ event: { type: event.type, subject: event.subject, phase: event.data.phase } }, 'operation event') };
}
