// Is an applied object healthy, still rolling out, or failing? Built-in rules per kind follow
// `kubectl rollout status` and Gardener's resource health checks; a definition's health rules can
// skip objects or judge any kind by one of its status conditions.
import type { HealthRule } from '../api/addons.js';
import type { ClusterObject } from '../clusteraccess/access.js';

export interface Verdict {
  healthy: boolean;
  /** A rollout is under way (healthy later, probably). */
  progressing: boolean;
  /** Why not healthy, e.g. `1/2 replicas available`. */
  message?: string;
}

type Conditions = { type?: string; status?: string; reason?: string; message?: string }[];

const num = (v: unknown, fallback = 0): number => (typeof v === 'number' ? v : fallback);
const conditionOf = (obj: ClusterObject, type: string) => ((obj.status?.conditions as Conditions | undefined) ?? []).find((c) => c.type === type);

const HEALTHY: Verdict = { healthy: true, progressing: false };
const rolling = (message: string): Verdict => ({ healthy: false, progressing: true, message });
const failing = (message: string): Verdict => ({ healthy: false, progressing: false, message });

/** The controller has not seen the newest spec yet. */
function notObserved(obj: ClusterObject): Verdict | undefined {
  const gen = obj.metadata?.generation;
  const observed = obj.status?.observedGeneration;
  if (gen !== undefined && (typeof observed !== 'number' || observed < gen)) return rolling('waiting for the controller to observe the newest spec');
  return undefined;
}

function deployment(obj: ClusterObject): Verdict {
  const pending = notObserved(obj);
  if (pending) return pending;
  const s = obj.status ?? {};
  const want = num(obj.spec?.replicas, 1);
  const progressing = conditionOf(obj, 'Progressing');
  if (progressing?.reason === 'ProgressDeadlineExceeded') return failing(`rollout exceeded its progress deadline: ${progressing.message ?? ''}`.trim());
  const updated = num(s.updatedReplicas);
  const total = num(s.replicas);
  const available = num(s.availableReplicas);
  if (updated < want) return rolling(`${updated}/${want} replicas updated`);
  if (total > updated) return rolling(`${total - updated} old replicas pending termination`);
  if (available < updated) return rolling(`${available}/${want} replicas available`);
  if (conditionOf(obj, 'Available')?.status !== 'True') return failing('condition Available is not True');
  return HEALTHY;
}

function daemonSet(obj: ClusterObject): Verdict {
  const pending = notObserved(obj);
  if (pending) return pending;
  const s = obj.status ?? {};
  const desired = num(s.desiredNumberScheduled);
  const scheduled = num(s.currentNumberScheduled);
  const updated = num(s.updatedNumberScheduled);
  const ready = num(s.numberReady);
  const available = num(s.numberAvailable);
  if (num(s.numberMisscheduled) > 0) return failing(`${num(s.numberMisscheduled)} pods run where they should not`);
  if (scheduled < desired) return rolling(`${scheduled}/${desired} pods scheduled`);
  if (updated < desired) return rolling(`${updated}/${desired} pods updated`);
  if (ready < desired) return rolling(`${ready}/${desired} pods ready`);
  if (available < desired) return rolling(`${available}/${desired} pods available`);
  return HEALTHY;
}

function statefulSet(obj: ClusterObject): Verdict {
  const pending = notObserved(obj);
  if (pending) return pending;
  const s = obj.status ?? {};
  const want = num(obj.spec?.replicas, 1);
  const ready = num(s.readyReplicas);
  const strategy = (obj.spec?.updateStrategy as { type?: string } | undefined)?.type ?? 'RollingUpdate';
  if (ready < want) return rolling(`${ready}/${want} replicas ready`);
  if (strategy === 'RollingUpdate' && s.updateRevision && s.currentRevision !== s.updateRevision) return rolling(`${num(s.updatedReplicas)}/${want} replicas updated`);
  return HEALTHY;
}

function job(obj: ClusterObject): Verdict {
  if (conditionOf(obj, 'Failed')?.status === 'True') return failing(`failed: ${conditionOf(obj, 'Failed')?.message ?? conditionOf(obj, 'Failed')?.reason ?? ''}`.trim());
  if (conditionOf(obj, 'Complete')?.status === 'True') return HEALTHY;
  return rolling('not complete yet');
}

function conditionTrue(type: string) {
  return (obj: ClusterObject): Verdict => {
    const c = conditionOf(obj, type);
    if (c?.status === 'True') return HEALTHY;
    return failing(`condition ${type} is ${c?.status ?? 'missing'}${c?.reason ? ` (${c.reason}${c.message ? `: ${c.message}` : ''})` : ''}`);
  };
}

function crd(obj: ClusterObject): Verdict {
  for (const type of ['NamesAccepted', 'Established']) {
    const v = conditionTrue(type)(obj);
    if (!v.healthy) return { ...v, progressing: conditionOf(obj, type) === undefined };
  }
  return HEALTHY;
}

const BUILT_IN: Record<string, (obj: ClusterObject) => Verdict> = {
  Deployment: deployment,
  DaemonSet: daemonSet,
  StatefulSet: statefulSet,
  Job: job,
  CustomResourceDefinition: crd,
  APIService: conditionTrue('Available'),
};

/** The first matching rule: one naming the object, else one for the whole kind. */
export function ruleFor(rules: readonly HealthRule[] | undefined, kind: string, name: string): HealthRule | undefined {
  const forKind = (rules ?? []).filter((r) => r.kind === kind);
  return forKind.find((r) => r.name === name) ?? forKind.find((r) => r.name === undefined);
}

/** undefined: the object is not judged (ignored by a rule). Kinds without a rule are healthy when they exist. */
export function judge(obj: ClusterObject, rules?: readonly HealthRule[]): Verdict | undefined {
  const kind = obj.kind ?? '';
  const rule = ruleFor(rules, kind, obj.metadata?.name ?? '');
  if (rule?.ignore) return undefined;
  if (rule?.condition) return conditionTrue(rule.condition)(obj);
  return BUILT_IN[kind]?.(obj) ?? HEALTHY;
}
