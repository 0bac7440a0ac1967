// Which machines of a pool a roll replaces now: a pure decision over the pool's machines, its
// rollout policy and the health gate; the NodePool controller acts on it (creates successors,
// drains and removes old machines) and reports it.
//
// A machine is replaced when
//   - its template hash differs from the pool's (machine spec, runtime, Kubernetes version,
//     certificates changed): TemplateChanged;
//   - it is a control plane whose kube-apiserver knows too few live etcd members (its etcd client
//     never learns about members that joined after it started): EtcdEndpointsStale;
//   - a ReplaceMachine operation asked for it (`marina.dev/replace-requested`): ReplaceRequested —
//     the pool only surges its successor; the operation removes it.
//
// Like a Deployment's RollingUpdate: at most `maxSurge` successors above the replicas (each
// annotated `marina.dev/replaces: <old>`, so no machine gets two), and an old machine is drained
// only while at least `replicas - maxUnavailable` machines stay available. etcd and control-plane
// pools roll one machine at a time, surge first (maxSurge 1, maxUnavailable 0): the successor is
// Running and healthy — an etcd learner promoted, an apiserver serving — before the old one is
// drained and goes. The health gate (the cluster's API answers through its endpoint; every other
// machine of the pool healthy) must be open to start the next replacement, so a roll stops where
// something broke, with the cluster serving on the machines that work.
import type { Machine } from '../api/kinds.js';
import type { ResolvedRollout } from '../api/rollout-policy.js';
import { ANNOTATION_REPLACE_REQUESTED, ANNOTATION_REPLACES } from '../api/wellknown.js';

export type RollReason = 'TemplateChanged' | 'EtcdEndpointsStale' | 'ReplaceRequested';

export interface RollCandidate {
  machine: Machine;
  reason: RollReason;
  message: string;
}

export interface RolloutInput {
  replicas: number;
  policy: ResolvedRollout;
  /** etcd or control-plane pool: one replacement in flight at a time. */
  critical: boolean;
  /** The pool's machines not being deleted, oldest first. */
  active: readonly Machine[];
  /** The pool's machines being deleted (removals in flight). */
  removing: number;
  /** The pool's current template hash, and each machine's. */
  hash: string;
  hashOf: (m: Machine) => string;
  /** Working control planes whose apiserver must be refreshed, with why. */
  stale: ReadonlyMap<string, string>;
  /** Machines the pool drains now. */
  draining: ReadonlySet<string>;
  /** Machines whose last drain timed out a short while ago: not tried again yet. */
  blocked: ReadonlySet<string>;
  healthy: (m: Machine) => boolean;
  /** The cluster-level health gate, when closed: why (the API does not answer, etcd is not healthy...). */
  gateClosed?: string;
  /** The cluster's rollouts are paused (why); only a person's ReplaceMachine still surges. */
  paused?: string;
}

export interface RolloutPlan {
  candidates: RollCandidate[];
  /** Machines made of the current template (successors included). */
  updated: number;
  /** Active machines that stand in for another active one (counted on top of the replicas). */
  surging: number;
  /** Ready, healthy and not being drained. */
  available: number;
  /** Create a successor for each of these now. */
  surgeFor: RollCandidate[];
  /** Start draining (or, without a Node, removing) these now. */
  drain: RollCandidate[];
  /** Why nothing more is started, when something waits. */
  waiting?: string;
}

export const successorOf = (active: readonly Machine[], m: Machine): Machine | undefined =>
  active.find((s) => s.metadata.annotations?.[ANNOTATION_REPLACES] === m.metadata.name);

/** The machines of `active` to replace, with why. */
export function rollCandidates(active: readonly Machine[], hash: string, hashOf: (m: Machine) => string, stale: ReadonlyMap<string, string>): RollCandidate[] {
  const names = new Set(active.map((m) => m.metadata.name));
  const out: RollCandidate[] = [];
  for (const m of active) {
    // A successor stands in for an old machine: it was made from the template of its time and
    // is replaced in its own right only after the one it replaces is gone.
    const replaces = m.metadata.annotations?.[ANNOTATION_REPLACES];
    const requested = m.metadata.annotations?.[ANNOTATION_REPLACE_REQUESTED];
    if (requested) out.push({ machine: m, reason: 'ReplaceRequested', message: `operation ${requested} asked to replace it` });
    else if (hashOf(m) !== hash && !(replaces && names.has(replaces))) out.push({ machine: m, reason: 'TemplateChanged', message: `made of template ${hashOf(m)}, the pool's is ${hash}` });
    else if (stale.has(m.metadata.name)) out.push({ machine: m, reason: 'EtcdEndpointsStale', message: stale.get(m.metadata.name)! });
  }
  return out;
}

export function planRollout(o: RolloutInput): RolloutPlan {
  const { active } = o;
  const names = new Set(active.map((m) => m.metadata.name));
  const candidates = rollCandidates(active, o.hash, o.hashOf, o.stale);
  const isCandidate = new Set(candidates.map((c) => c.machine.metadata.name));
  const successors = active.filter((m) => names.has(m.metadata.annotations?.[ANNOTATION_REPLACES] ?? ''));
  const updated = active.filter((m) => o.hashOf(m) === o.hash && !isCandidate.has(m.metadata.name)).length;
  let available = active.filter((m) => o.healthy(m) && !o.draining.has(m.metadata.name)).length;
  const plan: RolloutPlan = { candidates, updated, surging: successors.length, available, surgeFor: [], drain: [] };
  if (candidates.length === 0) return plan;

  const wait = (why: string) => (plan.waiting ??= why);
  // The gate: the cluster serves and every machine the roll does not replace is healthy.
  const sick = active.filter((m) => !isCandidate.has(m.metadata.name) && !o.healthy(m) && !successors.includes(m));
  const gate = o.gateClosed ?? (sick.length > 0 ? `${sick.map((m) => m.metadata.name).join(', ')} not healthy` : undefined);
  const inFlight = o.draining.size + o.removing;

  // Drains: a machine whose healthy successor stands ready first, then one that is not serving
  // anyway, then the oldest; each only while enough machines stay available.
  const rank = (c: RollCandidate) => {
    const s = successorOf(active, c.machine);
    return s && o.healthy(s) ? 0 : !o.healthy(c.machine) ? 1 : 2;
  };
  const drainable = candidates
    .filter((c) => c.reason !== 'ReplaceRequested' && !o.draining.has(c.machine.metadata.name) && !o.blocked.has(c.machine.metadata.name))
    .sort((a, b) => rank(a) - rank(b));
  if (o.paused) wait(`paused: ${o.paused}`);
  else if (gate) wait(`health gate: ${gate}`);
  else {
    let started = 0;
    for (const c of drainable) {
      if (o.critical && inFlight + started > 0) break;
      const cost = o.healthy(c.machine) ? 1 : 0;
      if (available - cost < o.replicas - o.policy.maxUnavailable) {
        const s = successorOf(active, c.machine);
        wait(s ? `successor ${s.metadata.name} of ${c.machine.metadata.name} is not healthy yet` : `${available}/${o.replicas} machines available; maxUnavailable ${o.policy.maxUnavailable}`);
        continue;
      }
      available -= cost;
      started++;
      plan.drain.push(c);
    }
  }

  // Successors: up to maxSurge above the replicas, a person's request first, never two for one machine.
  const withoutSuccessor = candidates
    .filter((c) => !successorOf(active, c.machine) && !o.draining.has(c.machine.metadata.name) && !plan.drain.includes(c))
    .sort((a, b) => (a.reason === 'ReplaceRequested' ? 0 : 1) - (b.reason === 'ReplaceRequested' ? 0 : 1));
  const room = Math.min(o.policy.maxSurge - successors.length, o.replicas + o.policy.maxSurge - active.length);
  for (const c of withoutSuccessor) {
    if (plan.surgeFor.length >= room) break;
    if (c.reason !== 'ReplaceRequested') {
      if (o.paused || gate) break;
      if (o.critical && (inFlight > 0 || plan.drain.length > 0 || successors.length > 0)) break;
    }
    plan.surgeFor.push(c);
  }
  if (withoutSuccessor.length > plan.surgeFor.length && room <= 0 && plan.drain.length === 0) wait(plan.waiting ?? `${successors.length} successors in flight (maxSurge ${o.policy.maxSurge})`);
  return plan;
}
