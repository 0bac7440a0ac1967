// The NodePool controller keeps exactly `spec.replicas` Machines for a pool and passes label /
// taint changes on to them.
//
// etcd pools change membership one member at a time: a new etcd Machine is created only when
// every etcd Machine of the cluster (all pools) is Running (its member promoted to voter), no
// member is leaving or joining and the etcd quorum is healthy; a member is removed only when no
// other is leaving and the remaining members still hold a healthy quorum. Other pools scale in one
// step. Scale-in removes machines that are not ready first, then the newest.
import { isDeepStrictEqual } from 'node:util';
import type { Cluster, Machine, NodePool, NodePoolSpec } from '../api/kinds.js';
import { API_VERSION, type ObjectKey } from '../api/meta.js';
import { etcdClientURL, etcdPeerURL } from '../bootstrap/machine.js';
import { quorumHealthy } from '../etcd/client.js';
import type { ReconcileContext, Reconciler, Result } from '../runtime/controller.js';
import { getCondition, setCondition, type ConditionInput } from '../runtime/conditions.js';
import { reconcileObject, type Outcome } from '../runtime/reconcile.js';
import {
  byAge,
  clusterMachines,
  deleteIfExists,
  errorMessage,
  etcdFailureReason,
  FINALIZER_NODEPOOL,
  getCluster,
  hasRole,
  isDeleting,
  isMachineReady,
  isStarted,
  LABEL_CLUSTER,
  LABEL_NODEPOOL,
  LABEL_POOL,
  listAll,
  machineName,
  type Shared,
} from './common.js';

import { isHealthy, planHealing, type Candidate, type HealingPlan } from './healing.js';
import { RULES } from '../alerts/manager.js';
import { ANNOTATION_HOSTNAME } from '../api/imports.js';

type Status = NonNullable<NodePool['status']>;

/** On a surge machine: the name of the (working) machine it is brought up to replace. */
export const ANNOTATION_REPLACES = 'marina.dev/replaces';
type Decision = { ok: true } | { ok: false; reason: string; message: string };

/** The pool's template name (Machine.spec.pool). */
export function poolTemplateName(pool: NodePool): string {
  return pool.metadata.labels?.[LABEL_POOL] ?? pool.metadata.name;
}

/** Scale-in order: machines that are not ready go first, then the newest. */
export function scaleInOrder(machines: Machine[]): Machine[] {
  return [...machines].sort((a, b) => {
    const ra = isMachineReady(a) ? 1 : 0;
    const rb = isMachineReady(b) ? 1 : 0;
    if (ra !== rb) return ra - rb;
    return byAge(b, a);
  });
}

/** The Machine fields a pool owns and passes on to its existing Machines. */
function propagated(spec: NodePoolSpec): Pick<Machine['spec'], 'labels' | 'taints'> {
  const out: Pick<Machine['spec'], 'labels' | 'taints'> = {};
  if (spec.labels && Object.keys(spec.labels).length > 0) out.labels = spec.labels;
  if (spec.taints && spec.taints.length > 0) out.taints = spec.taints;
  return out;
}

const json = (v: unknown): unknown => (v === undefined ? undefined : JSON.parse(JSON.stringify(v)));

export class NodePoolReconciler implements Reconciler {
  constructor(private readonly s: Shared) {}

  reconcile(key: ObjectKey, ctx: ReconcileContext): Promise<Result> {
    return reconcileObject<NodePool>(
      this.s.store,
      key,
      { finalizer: FINALIZER_NODEPOOL, reconcile: (p) => this.ensure(p), finalize: (p) => this.finalize(p) },
      ctx,
    );
  }

  private async poolMachines(pool: NodePool): Promise<Machine[]> {
    const items = await listAll<Machine>(this.s.store, 'Machine', {
      project: pool.metadata.project ?? '',
      labelSelector: `${LABEL_NODEPOOL}=${pool.metadata.name}`,
    });
    return items.filter((m) => m.spec.cluster === pool.spec.cluster).sort(byAge);
  }

  private async ensure(pool: NodePool): Promise<Outcome<Status>> {
    const project = pool.metadata.project ?? '';
    const gen = pool.metadata.generation;
    const status: Status = { ...(pool.status ?? {}) };
    const set = (c: ConditionInput) => (status.conditions = setCondition(status.conditions, c, gen));

    const cluster = await getCluster(this.s.store, project, pool.spec.cluster);
    const machines = await this.poolMachines(pool);
    await this.propagate(pool, machines);

    let active = machines.filter((m) => !isDeleting(m));
    const healing = cluster && !isDeleting(cluster) ? await this.heal(cluster, pool, active, status) : undefined;
    if (healing) {
      const gone = new Set(healing.victims.map((v) => v.machine.metadata.name));
      active = active.filter((m) => !gone.has(m.metadata.name));
    }
    // A surge machine (see heal) stands in for one still running: it is counted on top of the
    // spec until the one it replaces is gone, so scale-in does not take it away again.
    const names = new Set(active.map((m) => m.metadata.name));
    const surging = active.filter((m) => names.has(m.metadata.annotations?.[ANNOTATION_REPLACES] ?? '')).length;
    const desired = pool.spec.replicas + surging;
    let scaled: ConditionInput;
    if (!cluster || isDeleting(cluster)) {
      scaled = { type: 'Scaled', status: 'False', reason: cluster ? 'ClusterDeleting' : 'ClusterNotFound', message: 'not scaling' };
    } else if (active.length < desired && !this.createsMachines(pool)) {
      // Imported servers join by themselves (marina cluster join-token create); nothing to create.
      scaled = {
        type: 'Scaled',
        status: 'False',
        reason: 'WaitingForServers',
        message: `${active.length}/${desired} servers joined; more join with \`marina cluster join-token create ${pool.spec.cluster} --pool ${poolTemplateName(pool)}\``,
      };
    } else if (active.length < desired) {
      const decision = hasRole(pool, 'etcd') ? await this.etcdScaleOut(cluster) : ({ ok: true } as Decision);
      if (decision.ok) {
        const count = hasRole(pool, 'etcd') ? 1 : desired - active.length;
        for (let i = 0; i < count; i++) active.push(await this.createMachine(pool));
        scaled = { type: 'Scaled', status: 'False', reason: 'ScalingOut', message: `${active.length}/${desired} machines` };
      } else {
        scaled = { type: 'Scaled', status: 'False', reason: decision.reason, message: decision.message };
      }
    } else if (active.length > desired) {
      const order = scaleInOrder(active);
      let victims: Machine[] = [];
      let decision: Decision = { ok: true };
      if (hasRole(pool, 'etcd')) {
        decision = await this.etcdScaleIn(cluster, order[0]!);
        if (decision.ok) victims = [order[0]!];
      } else {
        victims = order.slice(0, active.length - desired);
      }
      for (const v of victims) await deleteIfExists(this.s.store, { kind: 'Machine', project, name: v.metadata.name });
      const gone = new Set(victims.map((v) => v.metadata.name));
      active = active.filter((m) => !gone.has(m.metadata.name));
      scaled = decision.ok
        ? { type: 'Scaled', status: 'False', reason: 'ScalingIn', message: `${active.length}/${desired} machines` }
        : { type: 'Scaled', status: 'False', reason: decision.reason, message: decision.message };
    } else {
      scaled = { type: 'Scaled', status: 'True', reason: 'Scaled', message: `${desired} machines` };
    }
    set(scaled);

    const ready = active.filter(isMachineReady);
    status.replicas = active.length - surging;
    // A surge machine and the one it replaces are one replica.
    status.readyReplicas = Math.min(ready.length, pool.spec.replicas);
    status.machines = active.map((m) => m.metadata.name).sort();
    const notReady = active.filter((m) => !isMachineReady(m));
    const allReady = active.length === desired && notReady.length === 0;
    set(
      allReady
        ? { type: 'Ready', status: 'True', reason: 'Ready', message: `${ready.length}/${desired} machines ready` }
        : {
            type: 'Ready',
            status: 'False',
            reason: 'MachinesNotReady',
            message: `${ready.length}/${desired} machines ready${notReady.length ? `; waiting for ${notReady.map((m) => `${m.metadata.name} (${m.status?.phase ?? 'Pending'})`).join(', ')}` : ''}`.slice(0, 32768),
          },
    );
    status.healthyReplicas = active.filter(isHealthy).length;
    const unhealthy = active.filter((m) => getCondition(m.status?.conditions, 'Healthy')?.status === 'False');
    set(
      unhealthy.length === 0
        ? { type: 'Healthy', status: 'True', reason: 'MachinesHealthy', message: `${status.healthyReplicas}/${active.length} machines healthy, none failing` }
        : {
            type: 'Healthy',
            status: 'False',
            reason: 'MachinesUnhealthy',
            message: unhealthy.map((m) => `${m.metadata.name}: ${getCondition(m.status?.conditions, 'Healthy')?.reason}`).join(', ').slice(0, 32768),
          },
    );
    let requeueAfterMs = allReady && scaled.status === 'True' ? undefined : this.s.timing.poolPollMs;
    if (healing?.nextCheckAtMs !== undefined) {
      const untilDue = Math.max(50, healing.nextCheckAtMs - Date.now());
      requeueAfterMs = requeueAfterMs === undefined ? untilDue : Math.min(requeueAfterMs, untilDue);
    }
    if (healing && healing.heldBack.length > 0) requeueAfterMs = Math.min(requeueAfterMs ?? this.s.timing.poolPollMs, this.s.timing.poolPollMs);
    return { status, ...(requeueAfterMs !== undefined ? { requeueAfterMs } : {}) };
  }

  /**
   * Auto-healing: deletes the machines the plan picks (the scale logic then creates their
   * replacements, keeping the pool's labels and taints), records them, and reports what the
   * guard holds back as the HealingHeldBack condition and alert. etcd members are replaced only
   * while the others keep a healthy quorum without the one removed, one at a time.
   */
  private async heal(cluster: Cluster, pool: NodePool, active: Machine[], status: Status): Promise<HealingPlan | undefined> {
    const project = pool.metadata.project ?? '';
    const gen = pool.metadata.generation;
    if (!this.createsMachines(pool)) {
      await this.alertUnhealthyImports(cluster, pool, active);
      return undefined;
    }
    const plan = planHealing(pool, active, Date.now(), hasRole(pool, 'controlplane') && !hasRole(pool, 'etcd') ? await this.staleControlPlanes(cluster, active) : undefined);
    const victims: Candidate[] = [];
    for (const v of plan.victims) {
      if (hasRole(pool, 'etcd')) {
        const decision = await this.etcdScaleIn(cluster, v.machine);
        if (!decision.ok) {
          plan.heldBack.unshift(v);
          plan.heldReason = 'EtcdQuorumAtRisk';
          plan.heldMessage = `${decision.reason}: ${decision.message}`;
          continue;
        }
      }
      victims.push(v);
    }
    plan.victims = victims;
    const now = new Date().toISOString();
    const deleted: Candidate[] = [];
    for (const v of victims) {
      if (v.reason === 'EtcdEndpointsStale') {
        // The machine works: bring its replacement up first (a surge), then remove it, so a
        // cluster with a single control plane keeps its API throughout.
        const surge = active.find((m) => m.metadata.annotations?.[ANNOTATION_REPLACES] === v.machine.metadata.name);
        if (!surge) {
          this.s.log.warn({ pool: pool.metadata.name, machine: v.machine.metadata.name, message: v.message }, 'auto-healing: surging a replacement');
          await this.createMachine(pool, { [ANNOTATION_REPLACES]: v.machine.metadata.name });
          continue;
        }
        if (!isHealthy(surge)) continue;
      }
      this.s.log.warn({ pool: pool.metadata.name, machine: v.machine.metadata.name, reason: v.reason, message: v.message }, 'auto-healing: replacing machine');
      await deleteIfExists(this.s.store, { kind: 'Machine', project, name: v.machine.metadata.name });
      status.remediations = [...(status.remediations ?? []), { machine: v.machine.metadata.name, reason: v.reason, message: v.message.slice(0, 1024), at: now }].slice(-50);
      deleted.push(v);
    }
    plan.victims = deleted;
    const held = plan.heldBack;
    status.conditions = setCondition(
      status.conditions,
      held.length > 0
        ? {
            type: 'HealingHeldBack',
            status: 'True',
            reason: plan.heldReason ?? 'HeldBack',
            message: `${held.length} unhealthy machines wait for replacement (${held.map((c) => c.machine.metadata.name).join(', ')}): ${plan.heldMessage ?? ''}`.slice(0, 32768),
          }
        : { type: 'HealingHeldBack', status: 'False', reason: victims.length > 0 ? 'Replacing' : 'NothingHeldBack', message: victims.length > 0 ? `replacing ${victims.map((v) => v.machine.metadata.name).join(', ')}` : 'no unhealthy machine is waiting' },
      gen,
    );
    await this.s.alerts?.sync(
      { project, cluster: cluster.metadata.name, source: `healing.${pool.metadata.name}` },
      held.length > 0
        ? [
            {
              rule: RULES.HealingHeldBack,
              severity: 'warning',
              labels: { pool: poolTemplateName(pool) },
              summary: `auto-healing of pool ${poolTemplateName(pool)} is held back: ${held.length} unhealthy machines wait`,
              description: `${plan.heldReason}: ${plan.heldMessage ?? ''}; waiting: ${held.map((c) => `${c.machine.metadata.name} (${c.reason}: ${c.message})`).join('; ')}`.slice(0, 16384),
            },
          ]
        : [],
    );
    return plan;
  }

  /** Whether the pool's provider can create machines (imported servers join by themselves). */
  private createsMachines(pool: NodePool): boolean {
    try {
      return this.s.providers.get(pool.spec.provider).capabilities?.createsMachines !== false;
    } catch {
      return true;
    }
  }

  /** Healing never replaces a user's server: an unhealthy one becomes an alert for a person. */
  private async alertUnhealthyImports(cluster: Cluster, pool: NodePool, active: Machine[]): Promise<void> {
    const unhealthy = active.filter((m) => getCondition(m.status?.conditions, 'Healthy')?.status === 'False');
    await this.s.alerts?.sync(
      { project: pool.metadata.project ?? '', cluster: cluster.metadata.name, source: `healing.${pool.metadata.name}` },
      unhealthy.map((m) => {
        const h = getCondition(m.status?.conditions, 'Healthy');
        return {
          rule: RULES.ImportedMachineUnhealthy,
          severity: 'warning' as const,
          labels: { pool: poolTemplateName(pool), machine: m.metadata.name },
          summary: `imported server ${m.metadata.annotations?.[ANNOTATION_HOSTNAME] ?? m.metadata.name} (machine ${m.metadata.name}) is unhealthy; Marina does not replace users' servers`,
          description: `${h?.reason ?? 'Unhealthy'}: ${h?.message ?? ''}`.slice(0, 16384),
        };
      }),
    );
  }

  /** Passes the pool's labels and taints on to its machines (their controller syncs the Nodes). */
  private async propagate(pool: NodePool, machines: Machine[]): Promise<void> {
    const want = propagated(pool.spec);
    for (const m of machines) {
      if (isDeleting(m)) continue;
      const have = { labels: m.spec.labels, taints: m.spec.taints };
      if (isDeepStrictEqual(json(have), json({ labels: want.labels, taints: want.taints }))) continue;
      const spec: Machine['spec'] = { ...m.spec };
      delete spec.labels;
      delete spec.taints;
      Object.assign(spec, want);
      await this.s.store.update({ ...m, spec });
    }
  }

  private async createMachine(pool: NodePool, annotations?: Record<string, string>): Promise<Machine> {
    const template = poolTemplateName(pool);
    const spec: Machine['spec'] = {
      cluster: pool.spec.cluster,
      pool: template,
      roles: [...pool.spec.roles],
      provider: pool.spec.provider,
      kubernetesVersion: pool.spec.kubernetesVersion,
    };
    if (pool.spec.machine) spec.machine = pool.spec.machine;
    if (pool.spec.runtime) spec.runtime = pool.spec.runtime;
    if (pool.spec.healing?.drainTimeoutSeconds !== undefined) spec.drainTimeoutSeconds = pool.spec.healing.drainTimeoutSeconds;
    Object.assign(spec, propagated(pool.spec));
    const machine: Machine = {
      apiVersion: API_VERSION,
      kind: 'Machine',
      metadata: {
        name: machineName(pool.spec.cluster, template),
        project: pool.metadata.project,
        labels: { [LABEL_CLUSTER]: pool.spec.cluster, [LABEL_POOL]: template, [LABEL_NODEPOOL]: pool.metadata.name },
        ...(annotations ? { annotations } : {}),
      },
      spec,
      status: { phase: 'Pending' },
    };
    this.s.log.info({ pool: pool.metadata.name, machine: machine.metadata.name }, 'creating machine');
    return (await this.s.store.create(machine)) as Machine;
  }

  /**
   * Control-plane machines whose kube-apiserver knows fewer than two live etcd members (it was
   * started before the others joined, and its etcd client never learns about new members): after
   * one more etcd replacement it would know none. Replacing such a machine (one at a time, under
   * the guard) starts an apiserver with the current member list. Only while every etcd member is
   * up and voting: a membership change in progress settles first.
   */
  private async staleControlPlanes(cluster: Cluster, active: Machine[]): Promise<Map<string, string>> {
    const stale = new Map<string, string>();
    const known = active.filter((m) => m.status?.phase === 'Running' && m.status.etcdServers);
    if (known.length === 0) return stale;
    const etcdMachines = (await clusterMachines(this.s.store, cluster.metadata.project ?? '', cluster.metadata.name)).filter((m) => hasRole(m, 'etcd'));
    if (etcdMachines.some((m) => isDeleting(m) || m.status?.phase !== 'Running' || !m.status.address)) return stale;
    // A Running etcd machine is a voting member (its Machine turns Running only once promoted), so
    // the store tells the current members without asking etcd on every reconcile of the pool.
    const live = new Set(etcdMachines.map((m) => etcdClientURL(m.status!.address!)));
    const want = Math.min(2, live.size);
    for (const m of known) {
      const reachable = m.status!.etcdServers!.filter((u) => live.has(u));
      if (reachable.length < want) {
        stale.set(m.metadata.name, `kube-apiserver knows ${reachable.length} of the ${live.size} current etcd members (${m.status!.etcdServers!.join(', ')})`);
      }
    }
    return stale;
  }

  /** May one more etcd member be created now? */
  private async etcdScaleOut(cluster: Cluster): Promise<Decision> {
    const etcdMachines = (await clusterMachines(this.s.store, cluster.metadata.project ?? '', cluster.metadata.name)).filter((m) => hasRole(m, 'etcd'));
    if (etcdMachines.length === 0) return { ok: true };
    const leaving = etcdMachines.find(isDeleting);
    if (leaving) return { ok: false, reason: 'EtcdMemberLeaving', message: `waiting for etcd machine ${leaving.metadata.name} to leave` };
    const pending = etcdMachines.find((m) => m.status?.phase !== 'Running');
    if (pending) {
      return { ok: false, reason: 'WaitingForEtcdMember', message: `waiting for etcd machine ${pending.metadata.name} to be Running (${pending.status?.phase ?? 'Pending'})` };
    }
    return this.etcdQuorum(cluster, etcdMachines, undefined);
  }

  /** May `victim` (an etcd machine) be removed now? */
  private async etcdScaleIn(cluster: Cluster, victim: Machine): Promise<Decision> {
    const etcdMachines = (await clusterMachines(this.s.store, cluster.metadata.project ?? '', cluster.metadata.name)).filter((m) => hasRole(m, 'etcd'));
    const leaving = etcdMachines.find((m) => isDeleting(m) && m.metadata.name !== victim.metadata.name);
    if (leaving) return { ok: false, reason: 'EtcdMemberLeaving', message: `waiting for etcd machine ${leaving.metadata.name} to leave` };
    // A member that never started holds no data: removing it cannot hurt.
    if (!isStarted(victim) || !victim.status?.address) return { ok: true };
    return this.etcdQuorum(cluster, etcdMachines, victim);
  }

  /** A healthy quorum among the members, the leaving one (if any) not counted. */
  private async etcdQuorum(cluster: Cluster, etcdMachines: Machine[], leaving: Machine | undefined): Promise<Decision> {
    const endpoints = etcdMachines.filter((m) => m.status?.address && isStarted(m)).map((m) => etcdClientURL(m.status!.address!));
    try {
      const etcd = await this.s.connections.etcd(cluster, endpoints);
      if (!etcd) return { ok: false, reason: 'WaitingForPKI', message: 'the cluster has no PKI yet' };
      const health = await etcd.memberHealth();
      const joining = health.find((m) => m.isLearner || !m.name || m.clientURLs.length === 0);
      if (!leaving && joining) return { ok: false, reason: 'EtcdMemberJoining', message: `etcd member ${joining.name || joining.peerURLs.join(',')} is still joining` };
      const leavingPeer = leaving?.status?.address ? etcdPeerURL(leaving.status.address) : undefined;
      const remaining = health.filter((m) => !leavingPeer || !m.peerURLs.includes(leavingPeer));
      if (leaving && remaining.length === 0) return { ok: false, reason: 'LastEtcdMember', message: 'the last etcd member cannot be removed' };
      if (!quorumHealthy(remaining)) {
        const healthy = remaining.filter((m) => m.healthy).length;
        return { ok: false, reason: 'EtcdQuorumUnhealthy', message: `${healthy}/${remaining.length} etcd members healthy${leaving ? ' without the leaving one' : ''}` };
      }
      return { ok: true };
    } catch (err) {
      return { ok: false, reason: etcdFailureReason(err), message: errorMessage(err) };
    }
  }

  private async finalize(pool: NodePool): Promise<Outcome<Status>> {
    const project = pool.metadata.project ?? '';
    const status: Status = { ...(pool.status ?? {}) };
    const machines = await this.poolMachines(pool);
    if (machines.length === 0) {
      await this.s.alerts?.sync({ project, cluster: pool.spec.cluster, source: `healing.${pool.metadata.name}` }, []);
      return { done: true };
    }
    const cluster = await getCluster(this.s.store, project, pool.spec.cluster);
    const clusterGoing = !cluster || isDeleting(cluster);
    const active = machines.filter((m) => !isDeleting(m));
    if (hasRole(pool, 'etcd') && !clusterGoing) {
      // Removing an etcd pool from a live cluster: one member at a time.
      if (active.length === machines.length) {
        const victim = scaleInOrder(active)[0]!;
        const decision = await this.etcdScaleIn(cluster, victim);
        if (decision.ok) await deleteIfExists(this.s.store, { kind: 'Machine', project, name: victim.metadata.name });
      }
    } else {
      for (const m of active) await deleteIfExists(this.s.store, { kind: 'Machine', project, name: m.metadata.name });
    }
    status.conditions = setCondition(
      status.conditions,
      { type: 'Ready', status: 'False', reason: 'Deleting', message: `waiting for ${machines.length} machines to be deleted` },
      pool.metadata.generation,
    );
    return { status, requeueAfterMs: this.s.timing.deletePollMs };
  }
}
