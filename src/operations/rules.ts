// The rules of operations, as pure functions the API edge and the Operation controller share: one
// disruptive operation per cluster, when a cancel is still allowed, who may approve.
import { byAge } from '../api/meta.js';
import { DISRUPTIVE_TYPES, TERMINAL_PHASES, type Operation } from '../api/operations.js';

export function isTerminal(op: Operation): boolean {
  return TERMINAL_PHASES.has(op.status?.phase ?? '');
}

export function isDisruptive(op: Operation): boolean {
  return DISRUPTIVE_TYPES.has(op.spec.type);
}

/**
 * The disruptive operation of `cluster` that holds the cluster, if any besides `self`: the oldest
 * unfinished one. Two creates that raced past the API's check are settled here: the older runs,
 * the younger fails naming it.
 */
export function holderOf(ops: readonly Operation[], cluster: string, self?: Operation): Operation | undefined {
  const active = ops.filter((o) => o.spec.cluster === cluster && isDisruptive(o) && !isTerminal(o) && !o.metadata.deletionTimestamp).sort(byAge);
  const holder = active[0];
  if (!holder || (self && holder.metadata.name === self.metadata.name)) return undefined;
  return holder;
}

export type Verdict = { ok: true } | { ok: false; reason: string };

/** Whether `op` may still be cancelled: before its first disruptive step started. */
export function cancelVerdict(op: Operation): Verdict {
  if (isTerminal(op)) return { ok: false, reason: `operation ${op.metadata.name} already ended (${op.status?.phase})` };
  if (op.status?.cancelledBy) return { ok: true };
  const started = (op.status?.steps ?? []).find((s) => s.disruptive && s.state !== 'Pending');
  if (started) {
    return {
      ok: false,
      reason: `operation ${op.metadata.name} passed its first disruptive step (${started.name}, ${started.state}): stopping now would leave the cluster half-changed; wait for it to finish`,
    };
  }
  return { ok: true };
}

/** Whether `user` may approve or reject `op` (the role is checked by the API's access rules). */
export function decisionVerdict(op: Operation, user: string, decision: 'approve' | 'reject'): Verdict {
  const phase = op.status?.phase ?? 'Pending';
  if (phase !== 'AwaitingApproval' && phase !== 'Pending') return { ok: false, reason: `operation ${op.metadata.name} is ${phase}, not awaiting approval` };
  if (!op.status?.approvalRequired && phase !== 'AwaitingApproval') return { ok: false, reason: `operation ${op.metadata.name} needs no approval` };
  if (op.status?.approvedBy || op.status?.rejectedBy) return { ok: false, reason: `operation ${op.metadata.name} was already decided` };
  if (op.status?.requestedBy === user) {
    return { ok: false, reason: `four-eyes rule: ${user} requested operation ${op.metadata.name} and may not ${decision} it; another operator must` };
  }
  return { ok: true };
}
