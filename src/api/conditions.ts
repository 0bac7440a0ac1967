// Kubernetes-style status conditions (metav1.Condition semantics): one entry per type;
// lastTransitionTime moves only when the status flips, so rewriting the same condition on every
// reconcile is stable and produces no status patch.
import type { Condition, ConditionStatus } from './meta.js';

export interface ConditionInput {
  type: string;
  status: ConditionStatus;
  reason?: string;
  message?: string;
}

/** RFC 3339 with second precision, like Kubernetes' metav1.Time. */
export function formatTime(t: Date): string {
  return t.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * Returns a new conditions array with `input` set: an existing condition of the same type is
 * replaced in place (keeping its lastTransitionTime unless the status changed), a new one is
 * appended. `observedGeneration` is stamped when `generation` is given. The input array is not
 * modified.
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  input: ConditionInput,
  generation?: number,
  now: Date = new Date(),
): Condition[] {
  const list = [...(conditions ?? [])];
  const idx = list.findIndex((c) => c.type === input.type);
  const prev = idx >= 0 ? list[idx] : undefined;
  const next: Condition = { type: input.type, status: input.status };
  if (input.reason !== undefined) next.reason = input.reason;
  if (input.message !== undefined) next.message = input.message;
  next.lastTransitionTime =
    prev && prev.status === input.status && prev.lastTransitionTime ? prev.lastTransitionTime : formatTime(now);
  if (generation !== undefined) next.observedGeneration = generation;
  else if (prev?.observedGeneration !== undefined) next.observedGeneration = prev.observedGeneration;
  if (idx >= 0) list[idx] = next;
  else list.push(next);
  return list;
}

/** Returns a new array without the condition of `type`. */
export function removeCondition(conditions: readonly Condition[] | undefined, type: string): Condition[] {
  return (conditions ?? []).filter((c) => c.type !== type);
}

export function getCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

export function isTrue(conditions: readonly Condition[] | undefined, type: string): boolean {
  return getCondition(conditions, type)?.status === 'True';
}

export function isFalse(conditions: readonly Condition[] | undefined, type: string): boolean {
  return getCondition(conditions, type)?.status === 'False';
}

/** Missing counts as Unknown. */
export function isUnknown(conditions: readonly Condition[] | undefined, type: string): boolean {
  const c = getCondition(conditions, type);
  return c === undefined || c.status === 'Unknown';
}
