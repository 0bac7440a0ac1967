// The console's view of a cluster's Operations: newest first, what each row shows (progress, the
// step at hand), which actions the signed-in user may take on it (approve/reject: another user's
// operation waiting at its checkpoint; cancel: before its first disruptive step), and the
// operations as timeline entries. Pure: the page renders, this decides.
import type { TimelineEntry } from './timeline.js';
import type { Condition, Resource } from './types.js';

export interface OperationStepView {
  name: string;
  state: string;
  disruptive?: boolean;
  startedAt?: string;
  finishedAt?: string;
  message?: string;
}

export type OperationView = Resource<
  { cluster: string; type: string; restore?: { snapshot: string }; replaceMachine?: { machine: string }; snapshot?: { target?: string } },
  {
    phase?: string;
    requestedBy?: string;
    approvedBy?: { user: string; at: string; comment?: string };
    rejectedBy?: { user: string; at: string; comment?: string };
    cancelledBy?: { user: string; at: string };
    approvalRequired?: boolean;
    steps?: OperationStepView[];
    progress?: number;
    startTime?: string;
    completionTime?: string;
    message?: string;
    result?: Record<string, string>;
    conditions?: Condition[];
  }
>;

const RANK: Record<string, number> = { viewer: 1, member: 2, operator: 3, admin: 4 };
const FINISHED = new Set(['Succeeded', 'Failed', 'Cancelled']);

export function isFinished(op: OperationView): boolean {
  return FINISHED.has(op.status?.phase ?? '');
}

/** The cluster's operations, unfinished first, then newest first. */
export function clusterOperations(ops: readonly OperationView[], cluster: string): OperationView[] {
  const t = (o: OperationView) => Date.parse(o.metadata.creationTimestamp ?? '') || 0;
  return ops.filter((o) => o.spec?.cluster === cluster).sort((a, b) => Number(isFinished(a)) - Number(isFinished(b)) || t(b) - t(a));
}

/** What one row says: `Restore from demo-2026…`, the phase, progress, and the step at hand. */
export function operationSummary(op: OperationView): { title: string; phase: string; progress: number; current?: string; tone: 'ok' | 'warn' | 'bad' | 'neutral' } {
  const st = op.status ?? {};
  const phase = st.phase ?? 'Pending';
  const spec = op.spec;
  const detail = spec?.restore ? ` from ${spec.restore.snapshot}` : spec?.replaceMachine ? ` of ${spec.replaceMachine.machine}` : spec?.snapshot?.target ? ` to ${spec.snapshot.target}` : '';
  const running = (st.steps ?? []).find((s) => s.state === 'Running');
  const current = running ? `${running.name}${running.message ? `: ${running.message}` : ''}` : st.message;
  const tone = phase === 'Succeeded' ? 'ok' : phase === 'Failed' ? 'bad' : phase === 'AwaitingApproval' || phase === 'Cancelled' ? 'warn' : 'neutral';
  return { title: `${spec?.type ?? '?'}${detail}`, phase, progress: phase === 'Succeeded' ? 100 : st.progress ?? 0, ...(current ? { current } : {}), tone };
}

export interface OperationActions {
  approve: boolean;
  reject: boolean;
  cancel: boolean;
  /** Why approve/reject are not offered although the operation waits (shown to the user). */
  note?: string;
}

/** What `user` (with `role` in the project, or a platform admin) may do with `op` now. */
export function operationActions(op: OperationView, user: string, role: string | undefined, platformAdmin = false): OperationActions {
  const st = op.status ?? {};
  const operator = platformAdmin || (RANK[role ?? ''] ?? 0) >= RANK.operator!;
  const none: OperationActions = { approve: false, reject: false, cancel: false };
  if (!operator || isFinished(op) || op.metadata.deletionTimestamp) return none;
  const disruptiveStarted = (st.steps ?? []).some((s) => s.disruptive && s.state !== 'Pending');
  const cancel = !disruptiveStarted && !st.cancelledBy;
  if (st.phase !== 'AwaitingApproval' || st.approvedBy || st.rejectedBy) return { ...none, cancel };
  if (st.requestedBy === user) return { approve: false, reject: false, cancel, note: 'you requested it: another operator must approve it (four-eyes rule)' };
  return { approve: true, reject: true, cancel };
}

/** Timeline entries: each operation's request, decision and end. */
export function operationEntries(ops: readonly OperationView[]): TimelineEntry[] {
  const out: TimelineEntry[] = [];
  for (const op of ops) {
    const st = op.status ?? {};
    const name = op.metadata.name;
    const what = operationSummary(op).title;
    if (op.metadata.creationTimestamp) out.push({ id: `op/${name}/requested`, time: op.metadata.creationTimestamp, source: 'operation', title: `${st.requestedBy ?? 'someone'} requested ${what} (${name})`, tone: 'neutral' });
    if (st.approvedBy) out.push({ id: `op/${name}/approved`, time: st.approvedBy.at, source: 'operation', title: `${st.approvedBy.user} approved ${name}`, ...(st.approvedBy.comment ? { detail: st.approvedBy.comment } : {}), tone: 'ok' });
    if (st.rejectedBy) out.push({ id: `op/${name}/rejected`, time: st.rejectedBy.at, source: 'operation', title: `${st.rejectedBy.user} rejected ${name}`, ...(st.rejectedBy.comment ? { detail: st.rejectedBy.comment } : {}), tone: 'warn' });
    if (st.completionTime && isFinished(op)) {
      out.push({
        id: `op/${name}/${st.phase}`,
        time: st.completionTime,
        source: 'operation',
        title: `${what} ${st.phase} (${name})`,
        ...(st.message ? { detail: st.message } : {}),
        tone: st.phase === 'Succeeded' ? 'ok' : st.phase === 'Failed' ? 'bad' : 'warn',
      });
    }
  }
  return out;
}
