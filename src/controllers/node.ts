// A machine's Kubernetes Node, as the Machine controller handles it through the cluster's API:
// kept in sync with the labels and taints Marina wants (observe), cordoned and drained through the
// eviction API before the machine goes (drain), and deleted after its kubelet is gone (remove).
import { getCondition, type ConditionInput } from '../api/conditions.js';
import { jsonEqual } from '../api/json.js';
import type { Cluster, Machine, Taint } from '../api/kinds.js';
import { ANNOTATION_MANAGED_LABELS, ANNOTATION_MANAGED_TAINTS, ANNOTATION_MIRROR_POD, MachineCondition, NodeReadyReason } from '../api/wellknown.js';
import { nodeLabels, nodeTaints } from '../bootstrap/machine.js';
import type { KubeApi } from '../clusteraccess/access.js';
import type { Node, Pod, Taint as NodeTaint } from '../kube/objects.js';
import type { Scope } from '../runtime/phases.js';
import { errorMessage, type Shared } from './common.js';

const taintId = (t: { key: string; effect: string }): string => `${t.key}:${t.effect}`;

/**
 * The merge patch that makes a Node carry `labels` and `taints`, removing what Marina set before
 * (per the managed-* annotations) and no longer wants, and keeping everything others set (e.g.
 * the node-lifecycle controller's not-ready taints). undefined when the Node is already in sync.
 */
export function nodeSyncPatch(node: Node, labels: Record<string, string>, taints: Taint[]): Record<string, unknown> | undefined {
  const ann = node.metadata.annotations ?? {};
  const have = node.metadata.labels ?? {};
  const prevLabels = (ann[ANNOTATION_MANAGED_LABELS] ?? '').split(',').filter(Boolean);
  const labelPatch: Record<string, string | null> = {};
  for (const [k, v] of Object.entries(labels)) if (have[k] !== v) labelPatch[k] = v;
  for (const k of prevLabels) if (!(k in labels) && k in have) labelPatch[k] = null;

  const current = node.spec?.taints ?? [];
  const next = syncedTaints(current, taints, managedTaintIds(ann[ANNOTATION_MANAGED_TAINTS]));
  const managedLabels = Object.keys(labels).sort().join(',');
  const managedTaints = JSON.stringify(taints.map(taintId).sort());
  const taintsChanged = !jsonEqual(next, current);
  const annChanged = ann[ANNOTATION_MANAGED_LABELS] !== managedLabels || ann[ANNOTATION_MANAGED_TAINTS] !== managedTaints;
  if (Object.keys(labelPatch).length === 0 && !taintsChanged && !annChanged) return undefined;
  const patch: Record<string, unknown> = {
    metadata: {
      resourceVersion: node.metadata.resourceVersion,
      labels: labelPatch,
      annotations: { [ANNOTATION_MANAGED_LABELS]: managedLabels, [ANNOTATION_MANAGED_TAINTS]: managedTaints },
    },
  };
  if (taintsChanged) patch.spec = { taints: next };
  return patch;
}

/** The taint ids Marina set before (its annotation; unreadable counts as none). */
function managedTaintIds(annotation: string | undefined): string[] {
  try {
    const ids: unknown = JSON.parse(annotation ?? '[]');
    return Array.isArray(ids) ? ids.filter((x): x is string => typeof x === 'string') : [];
  } catch {
    return [];
  }
}

/** `current` with Marina's `wanted` taints in place and the ones it set before but no longer wants gone. */
function syncedTaints(current: readonly NodeTaint[], wanted: readonly Taint[], previouslyManaged: readonly string[]): NodeTaint[] {
  const want = new Map(wanted.map((t) => [taintId(t), t]));
  const next: NodeTaint[] = [];
  for (const t of current) {
    const w = want.get(taintId(t));
    if (w) {
      const { value: _old, ...rest } = t;
      next.push(w.value !== undefined ? { ...rest, value: w.value } : rest);
      want.delete(taintId(t));
    } else if (!previouslyManaged.includes(taintId(t))) {
      next.push(t);
    }
  }
  for (const t of want.values()) next.push({ key: t.key, ...(t.value !== undefined ? { value: t.value } : {}), effect: t.effect });
  return next;
}

/** Pods a drain evicts: not DaemonSet-managed, not static (mirror) pods, not finished. */
export function podsToEvict(pods: Pod[]): Pod[] {
  return pods.filter(
    (p) =>
      !(p.metadata.ownerReferences ?? []).some((o) => o.kind === 'DaemonSet') &&
      !p.metadata.annotations?.[ANNOTATION_MIRROR_POD] &&
      p.status?.phase !== 'Succeeded' &&
      p.status?.phase !== 'Failed',
  );
}

export interface NodeObservation {
  /** Undefined when the API could not tell. */
  ready?: boolean;
  condition: ConditionInput;
}

/** Reads the machine's Node, brings its labels and taints in line, and reports whether it is Ready. */
export async function observeNode(s: Shared, sc: Scope<Machine>, cluster: Cluster, nodeName: string): Promise<NodeObservation> {
  const type = MachineCondition.NodeReady;
  const opts = { signal: sc.signal };
  try {
    const kube = await s.connections.kube(cluster);
    if (!kube) return { condition: { type, status: 'Unknown', reason: 'NoKubeconfig', message: 'the cluster has no admin kubeconfig yet' } };
    const node = await kube.getNode(nodeName, opts);
    if (!node) return { ready: false, condition: { type, status: 'False', reason: 'NodeNotRegistered', message: `Node ${nodeName} does not exist yet` } };
    const patch = nodeSyncPatch(node, nodeLabels(sc.obj), nodeTaints(sc.obj));
    if (patch) await kube.patchNode(nodeName, patch, opts);
    const ready = node.status?.conditions?.find((c) => c.type === 'Ready');
    return {
      ready: ready?.status === 'True',
      condition: {
        type,
        status: ready?.status === 'True' ? 'True' : ready?.status === 'False' ? 'False' : 'Unknown',
        reason: ready?.reason ?? 'NoReadyCondition',
        message: ready?.message ?? `Node ${nodeName} reports no Ready condition yet`,
      },
    };
  } catch (err) {
    return { condition: { type, status: 'Unknown', reason: NodeReadyReason.APIUnreachable, message: errorMessage(err) } };
  }
}

export type DrainState = 'drained' | 'timedOut' | 'draining';

/**
 * Cordons the Node and evicts its pods through the eviction API: `drained` when no pod is left,
 * `timedOut` when the drain timeout passed (both set Drained=True, with the reason saying which),
 * `draining` otherwise.
 */
export async function drainNode(s: Shared, sc: Scope<Machine>, cluster: Cluster): Promise<DrainState> {
  const machine = sc.obj;
  const nodeName = sc.status.nodeName ?? machine.metadata.name;
  const prev = getCondition(sc.status.conditions, MachineCondition.Drained);
  if (prev?.status === 'True') return 'drained';
  // lastTransitionTime of Drained=False marks the start of the drain (it only moves on a flip).
  const startedAt = prev?.lastTransitionTime ? Date.parse(prev.lastTransitionTime) : Date.now();
  const timeoutMs = machine.spec.drainTimeoutSeconds !== undefined ? machine.spec.drainTimeoutSeconds * 1000 : s.timing.drainTimeoutMs;
  const type = MachineCondition.Drained;

  const pass = await evictAll(s, sc, cluster, nodeName);
  if (pass === 'apiGone') {
    sc.set({ type, status: 'True', reason: 'APIUnavailable', message: `Node ${nodeName} not drained: the machine is dead and the cluster's API does not answer` });
    return 'drained';
  }
  const { remaining, problem } = pass;
  if (!problem && remaining.length === 0) {
    sc.set({ type, status: 'True', reason: 'Drained', message: `Node ${nodeName} cordoned and drained` });
    return 'drained';
  }
  if (Date.now() - startedAt >= timeoutMs) {
    const message = `gave up draining after ${Math.round(timeoutMs / 1000)} s: ${remaining.length} pods left${problem ? `; ${problem}` : ''}`;
    sc.set({ type, status: 'True', reason: 'DrainTimeout', message: message.slice(0, 32768) });
    sc.log.warn({ pods: remaining.length, problem }, 'drain timed out; deleting the machine anyway');
    return 'timedOut';
  }
  sc.set({ type, status: 'False', reason: 'Draining', message: `${remaining.length} pods left on ${nodeName}${problem ? `; ${problem}` : ''}`.slice(0, 32768) });
  return 'draining';
}

/**
 * One drain pass: cordon, then evict every pod that should go. A machine known to be dead (failed,
 * or unhealthy when it was removed) has no kubelet to confirm its pods' deletion: once evicted
 * (their controllers then create replacements elsewhere) they count as gone, the way `kubectl
 * drain` treats an unreachable node. And when the cluster's API is down as well (the only
 * control-plane machine died) there is nothing to drain through (`apiGone`): waiting would only
 * delay the replacement that brings the API back.
 */
async function evictAll(s: Shared, sc: Scope<Machine>, cluster: Cluster, nodeName: string): Promise<'apiGone' | EvictionPass> {
  const machine = sc.obj;
  const dead = machine.status?.phase === 'Failed' || getCondition(machine.status?.conditions, MachineCondition.Healthy)?.status === 'False';
  try {
    const kube = await s.connections.kube(cluster);
    if (!kube) return { remaining: [], problem: 'the cluster has no admin kubeconfig' };
    return await cordonAndEvict(kube, nodeName, { dead, signal: sc.signal });
  } catch (err) {
    return { remaining: [], problem: errorMessage(err) };
  }
}

export interface EvictionPass {
  /** Pods still on the Node (evicted ones stay until their kubelet confirms the deletion). */
  remaining: Pod[];
  /** What holds the drain up, e.g. the PodDisruptionBudget that refused an eviction (namespace/name). */
  problem: string;
}

/**
 * Cordons `nodeName` and asks the eviction API to evict each of its pods once (PodDisruptionBudgets
 * decide). `dead`: the machine is known gone (see evictAll). Shared by a Machine's deletion and a
 * pool's roll, which drains an old machine before it removes it.
 */
export async function cordonAndEvict(kube: KubeApi, nodeName: string, o: { dead: boolean; signal: AbortSignal }): Promise<'apiGone' | EvictionPass> {
  const opts = { signal: o.signal };
  if (o.dead && !(await kube.readyz(opts)).ok) return 'apiGone';
  const node = await kube.getNode(nodeName, opts);
  if (!node) return { remaining: [], problem: '' };
  if (!node.spec?.unschedulable) await kube.patchNode(nodeName, { spec: { unschedulable: true } }, opts);
  let remaining = podsToEvict(await kube.podsOnNode(nodeName, opts));
  if (o.dead) remaining = remaining.filter((p) => !p.metadata.deletionTimestamp);
  const blocked: string[] = [];
  const budgets = new Set<string>();
  for (const p of remaining) {
    if (p.metadata.deletionTimestamp) continue;
    const r = await kube.evictPod(p.metadata.namespace, p.metadata.name, opts);
    if (r === 'blocked' || typeof r === 'object') blocked.push(`${p.metadata.namespace}/${p.metadata.name}`);
    if (typeof r === 'object') budgets.add(r.blockedBy);
  }
  // Evicted pods are gone once their kubelet confirms the deletion: the next pass tells.
  const by = budgets.size > 0 ? ` (PodDisruptionBudget ${[...budgets].sort().join(', ')})` : '';
  return { remaining, problem: blocked.length > 0 ? `PodDisruptionBudget blocks eviction of ${blocked.join(', ')}${by}` : '' };
}

/** Makes `nodeName` schedulable again (a roll that stopped draining it); a Node that is gone is fine. */
export async function uncordon(kube: KubeApi, nodeName: string, signal: AbortSignal): Promise<void> {
  const node = await kube.getNode(nodeName, { signal });
  if (node?.spec?.unschedulable) await kube.patchNode(nodeName, { spec: { unschedulable: false } }, { signal });
}

/** Deletes the machine's Node; gives up (recorded) after the drain timeout when the API is unreachable. True when done. */
export async function removeNode(s: Shared, sc: Scope<Machine>, cluster: Cluster): Promise<boolean> {
  const nodeName = sc.status.nodeName ?? sc.obj.metadata.name;
  try {
    const kube = await s.connections.kube(cluster);
    if (kube) await kube.deleteNode(nodeName, { signal: sc.signal });
    return true;
  } catch (err) {
    const prev = getCondition(sc.status.conditions, MachineCondition.NodeDeleted);
    const since = prev?.lastTransitionTime ? Date.parse(prev.lastTransitionTime) : Date.now();
    if (Date.now() - since >= s.timing.drainTimeoutMs) {
      sc.log.warn({ err }, 'giving up deleting the Node');
      return true;
    }
    sc.set({ type: MachineCondition.NodeDeleted, status: 'False', reason: 'APIUnreachable', message: errorMessage(err) });
    return false;
  }
}
