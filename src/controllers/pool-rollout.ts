// The roll phase of a NodePool: replaces the machines whose template is out of date (and stale
// control planes, and those a ReplaceMachine asked for) as ./rollout.ts plans it:
//
//   1. drains in progress move on: an old machine whose Node is drained is removed (an etcd
//      member only while the others keep quorum and every apiserver keeps a live member it
//      knows); one whose drain hit the pool's drain timeout is left in place, made schedulable
//      again and recorded (status.rollout.lastDrainTimeout, the UpToDate condition naming the
//      PodDisruptionBudget that blocked it) — the timeout ends the wait, never an endless drain;
//      a drain that is no longer wanted (the roll paused, the template reverted, the machine's
//      successor lost) is undone;
//   2. new drains and successors within maxSurge / maxUnavailable, behind the health gate.
//
// A drain cordons the old machine's Node and evicts its pods through the eviction API each pass
// (PodDisruptionBudgets hold); the Cluster controller takes a draining control plane out of the
// API endpoint's backends at once, so its apiserver gets no new connections before it stops.
// What the pool drains is in its status (status.rollout.draining), so a restarted Marina carries on.
import { getCondition } from '../api/conditions.js';
import type { Cluster, DrainRecord, Machine, NodePool, RolloutStatus } from '../api/kinds.js';
import { hasKubelet, hasRole } from '../api/machines.js';
import { isCriticalRole } from '../api/healing-policy.js';
import { resolveRollout } from '../api/rollout-policy.js';
import { ANNOTATION_PAUSED_BY, ANNOTATION_REPLACES, ANNOTATION_ROLLOUT_PAUSED_BY, NodePoolCondition, UpToDateReason } from '../api/wellknown.js';
import type { Scope } from '../runtime/phases.js';
import { typed } from '../store/typed.js';
import { errorMessage, publishEvent, type Shared } from './common.js';
import { machineReplaced } from '../events/platform.js';
import { isHealthy } from './healing.js';
import { cordonAndEvict, uncordon } from './node.js';
import { apiserversKeepAMember, etcdScaleIn, etcdScaleOut, staleControlPlanes, type Decision } from './pool-etcd.js';
import { planRollout, rollCandidates, type RollCandidate, type RolloutPlan } from './rollout.js';
import { templateHash } from './template.js';

type Status = NonNullable<NodePool['status']>;

/** What the roll phase reads and changes of the pool's scope. */
export interface RollScope extends Scope<NodePool> {
  cluster?: Cluster;
  /** The machines that count; the roll removes the ones it deletes and adds the ones it creates. */
  active: Machine[];
  /** Every machine of the pool, those being deleted included. */
  machines: Machine[];
}

/** A drain that timed out is not tried again on the same machine for this long (at least a minute). */
const MIN_DRAIN_RETRY_MS = 60_000;

export const machineHash = (m: Machine): string => templateHash(m.spec);

export class PoolRoller {
  private readonly machineObjects;

  constructor(
    private readonly s: Shared,
    /** Creates a machine of the pool's current template with these annotations. */
    private readonly createMachine: (sc: RollScope, annotations: Record<string, string>) => Promise<Machine>,
  ) {
    this.machineObjects = typed(s.store, 'Machine');
  }

  /** The roll phase of a pool whose cluster lives; returns what it planned (for the pool's summary). */
  async roll(sc: RollScope, cluster: Cluster): Promise<RolloutPlan> {
    const pool = sc.obj;
    const hash = templateHash(pool.spec);
    const previous = sc.status.rollout;
    const paused = pausedBy(cluster);
    // A drain timeout holds the machine back from the next attempt for a while — unless the roll
    // was paused since (the operation that hit it failed): running it again resumes at once. While
    // paused it stays on record, so the pool's condition still names what held the drain up.
    const resumed = !paused && getCondition(sc.status.conditions, NodePoolCondition.UpToDate)?.reason === UpToDateReason.Paused;
    const rollout: RolloutStatus = { templateHash: hash, ...(previous?.lastDrainTimeout && !resumed ? { lastDrainTimeout: previous.lastDrainTimeout } : {}) };
    const stale = hasRole(pool, 'controlplane') && !hasRole(pool, 'etcd') ? await staleControlPlanes(this.s, cluster, sc.active) : new Map<string, string>();
    const candidates = rollCandidates(sc.active, hash, machineHash, stale);
    const policy = resolveRollout(pool.spec.roles, pool.spec.rollout);
    const notes: string[] = [];
    let removed = 0;

    // 1. Drains in progress.
    const draining: DrainRecord[] = [];
    for (const d of previous?.draining ?? []) {
      const m = sc.active.find((x) => x.metadata.name === d.machine);
      if (!m) continue; // gone (healing removed it, or its removal went through): its Node goes with it
      const c = candidates.find((x) => x.machine === m);
      const others = sc.active.filter((x) => x !== m && isHealthy(x) && !draining.some((y) => y.machine === x.metadata.name)).length;
      const why = paused ? `the roll is paused (${paused})` : !c ? 'it no longer needs replacing' : others < pool.spec.replicas - policy.maxUnavailable ? 'too few other machines are available now' : undefined;
      if (why) {
        await this.undrain(sc, cluster, m, why);
        continue;
      }
      const pass = await this.drainPass(sc, cluster, m, d);
      if (pass.state === 'draining') {
        draining.push({ ...d, message: pass.message.slice(0, 4096) });
        notes.push(`draining ${m.metadata.name}: ${pass.message}`);
      } else if (pass.state === 'timedOut') {
        rollout.lastDrainTimeout = { machine: m.metadata.name, at: new Date().toISOString(), message: pass.message.slice(0, 4096) };
        sc.log.warn({ machine: m.metadata.name, message: pass.message }, 'rolling update: drain timed out; the machine stays');
        await this.undrain(sc, cluster, m, 'its drain timed out');
      } else {
        const gone = await this.remove(sc, cluster, c!);
        if (gone === true) removed++;
        else {
          draining.push({ ...d, message: gone.slice(0, 4096) });
          notes.push(`${m.metadata.name} drained; ${gone}`);
        }
      }
    }

    // 2. What to start now.
    const blocked = new Set<string>();
    const timeout = rollout.lastDrainTimeout;
    if (timeout && Date.now() - Date.parse(timeout.at) < Math.max(MIN_DRAIN_RETRY_MS, this.drainTimeoutMs(pool))) blocked.add(timeout.machine);
    const gateClosed = candidates.length > 0 && !paused ? await this.gate(sc, cluster) : undefined;
    const plan = planRollout({
      replicas: pool.spec.replicas,
      policy,
      critical: isCriticalRole(pool.spec.roles),
      active: sc.active,
      removing: sc.machines.filter((m) => m.metadata.deletionTimestamp).length + removed,
      hash,
      hashOf: machineHash,
      stale,
      draining: new Set(draining.map((d) => d.machine)),
      blocked,
      healthy: isHealthy,
      ...(gateClosed ? { gateClosed } : {}),
      ...(paused ? { paused } : {}),
    });
    for (const c of plan.drain) {
      if (!hasKubelet(c.machine)) {
        // No Node to drain (an etcd member): straight to its removal, which checks the quorum.
        const gone = await this.remove(sc, cluster, c);
        if (gone !== true) notes.push(`${c.machine.metadata.name}: ${gone}`);
        continue;
      }
      const d: DrainRecord = { machine: c.machine.metadata.name, since: new Date().toISOString() };
      sc.log.info({ machine: d.machine, reason: c.reason, message: c.message }, 'rolling update: draining an old machine');
      const pass = await this.drainPass(sc, cluster, c.machine, d);
      draining.push({ ...d, message: pass.message.slice(0, 4096) });
      notes.push(`draining ${d.machine}: ${pass.message}`);
    }
    for (const c of plan.surgeFor) {
      if (hasRole(pool, 'etcd')) {
        // A learner joins only into a fully healthy etcd, one member at a time: quorum checked before.
        const ok = await etcdScaleOut(this.s, cluster);
        if (!ok.ok) {
          notes.push(`successor for ${c.machine.metadata.name} waits: ${ok.message}`);
          break;
        }
      }
      sc.log.info({ machine: c.machine.metadata.name, reason: c.reason, message: c.message }, 'rolling update: surging a successor');
      const created = await this.createMachine(sc, { [ANNOTATION_REPLACES]: c.machine.metadata.name });
      sc.active.push(created);
      notes.push(`${created.metadata.name} replaces ${c.machine.metadata.name}`);
    }

    if (draining.length > 0) rollout.draining = draining;
    sc.status.rollout = rollout;
    this.report(sc, plan, rollout, paused, blocked, notes);
    return plan;
  }

  /** The UpToDate condition: up to date, or what the roll does and waits for. */
  private report(sc: RollScope, plan: RolloutPlan, rollout: RolloutStatus, paused: string | undefined, blocked: ReadonlySet<string>, notes: string[]): void {
    const type = NodePoolCondition.UpToDate;
    const replicas = sc.obj.spec.replicas;
    const progress = `${plan.updated}/${replicas} machines up to date (template ${rollout.templateHash})`;
    if (plan.candidates.length === 0 && !rollout.draining) {
      sc.set({ type, status: 'True', reason: UpToDateReason.UpToDate, message: progress });
      return;
    }
    const timeout = rollout.lastDrainTimeout;
    const detail = [...notes, ...(plan.waiting ? [`waiting: ${plan.waiting}`] : [])].join('; ');
    if (paused) {
      const stayed = timeout ? `; ${timeout.machine} stayed: ${timeout.message}` : '';
      sc.set({ type, status: 'False', reason: UpToDateReason.Paused, message: `${progress}; paused: ${paused}${stayed}`.slice(0, 32768) });
    } else if (timeout && blocked.has(timeout.machine)) {
      sc.set({ type, status: 'False', reason: UpToDateReason.DrainTimeout, message: `${progress}; ${timeout.machine} stays: ${timeout.message}${detail ? `; ${detail}` : ''}`.slice(0, 32768) });
    } else {
      sc.set({ type, status: 'False', reason: UpToDateReason.RollingUpdate, message: `${progress}${detail ? `; ${detail}` : ''}`.slice(0, 32768) });
    }
  }

  private drainTimeoutMs(pool: NodePool): number {
    const seconds = pool.spec.healing?.drainTimeoutSeconds;
    return seconds !== undefined ? seconds * 1000 : this.s.timing.drainTimeoutMs;
  }

  /** One pass of draining `m`: drained, still draining (with what holds it up), or timed out. */
  private async drainPass(sc: RollScope, cluster: Cluster, m: Machine, d: DrainRecord): Promise<{ state: 'drained' | 'draining' | 'timedOut'; message: string }> {
    const node = m.status?.nodeName ?? m.metadata.name;
    const timeoutMs = m.spec.drainTimeoutSeconds !== undefined ? m.spec.drainTimeoutSeconds * 1000 : this.drainTimeoutMs(sc.obj);
    let remaining = 0;
    let pods = '';
    let problem: string;
    try {
      const kube = await this.s.connections.kube(cluster);
      const pass = kube ? await cordonAndEvict(kube, node, { dead: false, signal: sc.signal }) : { remaining: [], problem: 'the cluster has no admin kubeconfig' };
      if (pass === 'apiGone') problem = 'the API does not answer';
      else {
        remaining = pass.remaining.length;
        // Which pods, and whether they are already on their way out (evicted, their kubelet yet to confirm).
        pods = pass.remaining.slice(0, 5).map((p) => `${p.metadata.namespace}/${p.metadata.name}${p.metadata.deletionTimestamp ? ' terminating' : ''}`).join(', ');
        problem = pass.problem;
      }
    } catch (err) {
      sc.signal.throwIfAborted();
      problem = errorMessage(err);
    }
    if (!problem && remaining === 0) {
      // An apiserver stops only once the endpoint sends it no new connections: a connection the
      // balancer hands to a process that is closing its listener is a failed request.
      if (!cluster.status?.endpointBackends?.includes(m.metadata.name)) return { state: 'drained', message: `Node ${node} cordoned and drained` };
      problem = 'waiting for the API endpoint to stop sending connections to its apiserver';
    }
    const elapsed = Date.now() - Date.parse(d.since);
    const left = `${remaining} pods left on ${node}${pods ? ` (${pods}${remaining > 5 ? ', …' : ''})` : ''}${problem ? `; ${problem}` : ''}`;
    if (elapsed >= timeoutMs) return { state: 'timedOut', message: `drain of ${node} timed out after ${Math.round(timeoutMs / 1000)} s: ${left}` };
    return { state: 'draining', message: left };
  }

  private async undrain(sc: RollScope, cluster: Cluster, m: Machine, why: string): Promise<void> {
    sc.log.info({ machine: m.metadata.name, why }, 'rolling update: no longer draining the machine; it stays schedulable');
    try {
      const kube = await this.s.connections.kube(cluster);
      if (kube && hasKubelet(m)) await uncordon(kube, m.status?.nodeName ?? m.metadata.name, sc.signal);
    } catch (err) {
      sc.signal.throwIfAborted();
      sc.log.warn({ err, machine: m.metadata.name }, 'could not make the Node schedulable again; the next reconcile tries again');
      throw err;
    }
  }

  /** Removes a drained old machine (its finalizer leaves etcd and deletes the Node). true, or why it waits. */
  private async remove(sc: RollScope, cluster: Cluster, c: RollCandidate): Promise<true | string> {
    const m = c.machine;
    if (hasRole(m, 'etcd')) {
      // Quorum checked before the member leaves (and, through the next successor's gate, after).
      const decisions: Decision[] = [await etcdScaleIn(this.s, cluster, m), await apiserversKeepAMember(this.s, cluster, m)];
      const refused = decisions.find((d): d is Extract<Decision, { ok: false }> => !d.ok);
      if (refused) return `${refused.reason}: ${refused.message}`;
    }
    const pool = sc.obj;
    sc.log.info({ machine: m.metadata.name, reason: c.reason }, 'rolling update: removing the old machine');
    await this.machineObjects.deleteIfExists(pool.metadata.project ?? '', m.metadata.name);
    sc.active = sc.active.filter((x) => x !== m);
    if (c.reason === 'EtcdEndpointsStale') {
      // A working machine replaced to repair it: recorded like healing's replacements.
      const remediation = { machine: m.metadata.name, reason: c.reason, message: c.message.slice(0, 1024), at: new Date().toISOString() };
      sc.status.remediations = [...(sc.status.remediations ?? []), remediation].slice(-50);
      publishEvent(this.s, sc.log, machineReplaced(pool, m, remediation));
    }
    return true;
  }

  /** The health gate before the next replacement: the cluster's API answers through its endpoint. */
  private async gate(sc: RollScope, cluster: Cluster): Promise<string | undefined> {
    try {
      const kube = await this.s.connections.kube(cluster);
      if (!kube) return 'the cluster has no admin kubeconfig yet';
      const r = await kube.readyz({ signal: sc.signal });
      return r.ok ? undefined : `/readyz through the endpoint: ${r.message}`.slice(0, 1024);
    } catch (err) {
      sc.signal.throwIfAborted();
      return `/readyz through the endpoint: ${errorMessage(err)}`;
    }
  }
}

/** Why the cluster's rolls are paused, or undefined. */
export function pausedBy(cluster: Cluster): string | undefined {
  const restore = cluster.metadata.annotations?.[ANNOTATION_PAUSED_BY];
  if (restore) return `operation ${restore} holds the cluster`;
  const rollout = cluster.metadata.annotations?.[ANNOTATION_ROLLOUT_PAUSED_BY];
  return rollout ? `rollouts paused by operation ${rollout} (run it again to resume)` : undefined;
}

/** The machine names a pool is draining (the Cluster controller keeps them out of the endpoint). */
export function drainingMachines(pool: NodePool): string[] {
  return (pool.status?.rollout?.draining ?? []).map((d) => d.machine);
}
