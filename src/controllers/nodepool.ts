// The NodePool controller keeps exactly `spec.replicas` Machines for a pool, made of the pool's
// current template, replaces broken ones and passes label / taint changes on to them.
//
// Phases: propagate → heal → roll → scale → summarise.
//
// heal deletes broken machines (the scale phase creates their replacements); roll replaces the
// machines that work but are out of date — their template changed (machine spec, runtime,
// Kubernetes version, certificates), their kube-apiserver knows too few live etcd members, or a
// ReplaceMachine operation asked for it — surge first, one successor per machine, annotated
// `marina.dev/replaces: <old>` and counted on top of spec.replicas until the old one is gone
// (./pool-rollout.ts, planned by ./rollout.ts). Both see the same machines in one reconcile, so
// they agree on who replaces what: a machine healing removed has no successor made for it, a
// successor is never made twice, the pool never goes above replicas + maxSurge. While the
// cluster is out of service (`marina.dev/paused-by`, a restore) neither heals nor rolls.
//
// etcd pools change membership one member at a time: a new etcd Machine is created only when
// every etcd Machine of the cluster (all pools) is Running (its member promoted to voter), no
// member is leaving or joining and the etcd quorum is healthy — except for a new cluster, whose
// etcd Machines are all created at once (each joins only when its gate lets it, one after the
// other, but their addresses, certificates and starts are ready meanwhile, and the control
// plane can be told about every one of them); a member is removed only when no
// other is leaving and the remaining members still hold a healthy quorum (src/etcd/membership.ts
// decides, through ./pool-etcd.ts). Other pools scale in one step. Scale-in removes out-of-date
// machines first, then those that are not ready, then the newest.
//
// A pool whose provider creates no machines (`import`: users' servers join with a join token)
// never scales out, never replaces and never rolls a machine: healing raises
// ImportedMachineUnhealthy for a person instead, a replacement request waits for a person to
// remove the machine, an Upgrade moves its servers in place (src/operations/in-place.ts) and
// certificate rotations refuse such clusters in their preflight.
import { getCondition, type ConditionInput } from '../api/conditions.js';
import { jsonEqual } from '../api/json.js';
import type { Cluster, Machine, NodePool, NodePoolSpec } from '../api/kinds.js';
import { hasRole, isMachineReady } from '../api/machines.js';
import { API_VERSION, byAge, isDeleting, type ObjectKey } from '../api/meta.js';
import { ANNOTATION_HOSTNAME, ANNOTATION_PAUSED_BY, ANNOTATION_REPLACES, FINALIZER_NODEPOOL, LABEL_CLUSTER, LABEL_NODEPOOL, LABEL_POOL, LABEL_TEMPLATE_HASH, MachineCondition, NodePoolCondition } from '../api/wellknown.js';
import { RULES } from '../alerts/manager.js';
import { createsMachines } from '../providers/contract.js';
import type { ReconcileContext, Reconciler, Result } from '../runtime/controller.js';
import { runPhases, scopeFor, type Phase, type PhaseResult, type Scope } from '../runtime/phases.js';
import { reconcileObject, type Outcome } from '../runtime/reconcile.js';
import { typed } from '../store/typed.js';
import { backoffPoll, machineName, publishEvent, type Shared } from './common.js';
import { machineReplaced } from '../events/platform.js';
import { isHealthy, observed, planHealing, type Candidate, type HealingPlan } from './healing.js';
import { etcdScaleIn, etcdScaleOut, type Decision } from './pool-etcd.js';
import { machineHash, PoolRoller } from './pool-rollout.js';
import type { RolloutPlan } from './rollout.js';
import { templateHash } from './template.js';

type Status = NonNullable<NodePool['status']>;

interface PoolScope extends Scope<NodePool> {
  /** undefined: the cluster is gone. */
  cluster?: Cluster;
  /** The pool's machines, oldest first, those being deleted included. */
  machines: Machine[];
  /** The machines that count: not being deleted, without what healing removed, with what scaling created. */
  active: Machine[];
  /** What healing did (set by the heal phase while the cluster lives). */
  healing?: HealingPlan;
  /** What the roll did (set by the roll phase while the cluster lives). */
  rollout?: RolloutPlan;
  /** Surge machines standing in for one still running: counted on top of spec.replicas (set by scale). */
  surging: number;
  /** Set by the scale phase. */
  scaled?: ConditionInput;
}

/** The pool's template name (Machine.spec.pool). */
export function poolTemplateName(pool: NodePool): string {
  return pool.metadata.labels?.[LABEL_POOL] ?? pool.metadata.name;
}

/** The role a pool's metrics are labelled with: its most critical one. */
function poolRole(pool: NodePool): string {
  return hasRole(pool, 'etcd') ? 'etcd' : hasRole(pool, 'controlplane') ? 'controlplane' : 'worker';
}

/** Scale-in order: machines of an old template go first (`hash`, when given), then those that are not ready, then the newest. */
export function scaleInOrder(machines: Machine[], hash?: string): Machine[] {
  const outdated = (m: Machine) => (hash !== undefined && machineHash(m) !== hash ? 0 : 1);
  return [...machines].sort((a, b) => {
    if (outdated(a) !== outdated(b)) return outdated(a) - outdated(b);
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

const liveCluster = (sc: PoolScope): Cluster | undefined => (sc.cluster && !isDeleting(sc.cluster) ? sc.cluster : undefined);
const named = (ms: readonly { metadata: { name: string } }[]) => new Set(ms.map((m) => m.metadata.name));

export class NodePoolReconciler implements Reconciler {
  private readonly clusters;
  private readonly machineObjects;
  private readonly roller: PoolRoller;
  private readonly phases: readonly Phase<PoolScope, Status>[] = [
    { name: 'propagate', run: (sc) => this.propagate(sc) },
    { name: 'heal', run: (sc) => this.heal(sc) },
    { name: 'roll', run: (sc) => this.roll(sc) },
    { name: 'scale', run: (sc) => this.scale(sc) },
    { name: 'summarise', run: (sc) => this.summarise(sc) },
  ];

  constructor(private readonly s: Shared) {
    this.clusters = typed(s.store, 'Cluster');
    this.machineObjects = typed(s.store, 'Machine');
    this.roller = new PoolRoller(s, (sc, annotations) => this.createMachine(sc as PoolScope, annotations));
  }

  reconcile(key: ObjectKey, ctx: ReconcileContext): Promise<Result> {
    return reconcileObject<NodePool>(
      this.s.store,
      key,
      { finalizer: FINALIZER_NODEPOOL, reconcile: (p) => this.ensure(p, ctx), finalize: (p) => this.finalize(p, ctx) },
      ctx,
    );
  }

  private async poolMachines(pool: NodePool): Promise<Machine[]> {
    const items = await this.machineObjects.list({ project: pool.metadata.project ?? '', labelSelector: `${LABEL_NODEPOOL}=${pool.metadata.name}` });
    return items.filter((m) => m.spec.cluster === pool.spec.cluster).sort(byAge);
  }

  private async ensure(pool: NodePool, ctx: ReconcileContext): Promise<Outcome<Status>> {
    const [cluster, machines] = await Promise.all([this.clusters.get(pool.metadata.project ?? '', pool.spec.cluster), this.poolMachines(pool)]);
    const sc: PoolScope = { ...scopeFor(pool, ctx), ...(cluster ? { cluster } : {}), machines, active: machines.filter((m) => !isDeleting(m)), surging: 0 };
    const run = await runPhases(sc, this.phases);
    return run.ended ?? { status: sc.status };
  }

  /**
   * Passes the pool's labels and taints on to its machines (their controller syncs the Nodes), and
   * labels each machine with the hash of what it is made of (machines made before the label existed).
   */
  private async propagate(sc: PoolScope): Promise<PhaseResult<Status>> {
    const want = propagated(sc.obj.spec);
    sc.active = await Promise.all(
      sc.active.map(async (m) => {
        const hash = machineHash(m);
        const specInSync = jsonEqual({ labels: m.spec.labels, taints: m.spec.taints }, { labels: want.labels, taints: want.taints });
        if (specInSync && m.metadata.labels?.[LABEL_TEMPLATE_HASH] === hash) return m;
        const { labels: _l, taints: _t, ...rest } = m.spec;
        return this.machineObjects.update({ ...m, metadata: { ...m.metadata, labels: { ...m.metadata.labels, [LABEL_TEMPLATE_HASH]: hash } }, spec: { ...rest, ...want } });
      }),
    );
  }

  // ------------------------------------------------------------------------------------------
  // heal

  /**
   * Auto-healing: deletes the machines the plan picks (the scale phase then creates their
   * replacements, keeping the pool's labels and taints), records them, and reports what the
   * guard holds back as the HealingHeldBack condition and alert. etcd members are replaced only
   * while the others keep a healthy quorum without the one removed, one at a time.
   */
  private async heal(sc: PoolScope): Promise<PhaseResult<Status>> {
    const cluster = liveCluster(sc);
    if (!cluster) return;
    // A restore holds the cluster's services down on purpose: nothing to heal.
    if (cluster.metadata.annotations?.[ANNOTATION_PAUSED_BY]) return;
    const pool = sc.obj;
    if (!this.createsMachines(pool)) return this.alertUnhealthyImports(sc, cluster);
    // Stale control planes are the roll's business (pool-rollout.ts); healing replaces what is broken.
    const report = this.s.health?.get(cluster.metadata.project ?? '', cluster.metadata.name);
    const admitted = await this.admitEtcdVictims(cluster, sc.obj, planHealing(pool, sc.active, Date.now(), observed(report)));
    const replaced = await this.replace(sc, admitted.victims);
    await this.reportHealing(sc, cluster, admitted);
    sc.healing = { ...admitted, victims: replaced };
    const gone = named(replaced.map((v) => v.machine));
    sc.active = sc.active.filter((m) => !gone.has(m.metadata.name));
  }

  /** The plan, with the etcd victims whose removal would put the quorum at risk held back instead. */
  private async admitEtcdVictims(cluster: Cluster, pool: NodePool, plan: HealingPlan): Promise<HealingPlan> {
    if (!hasRole(pool, 'etcd')) return plan;
    const victims: Candidate[] = [];
    const refused: { candidate: Candidate; decision: Extract<Decision, { ok: false }> }[] = [];
    for (const v of plan.victims) {
      const decision = await etcdScaleIn(this.s, cluster, v.machine);
      if (decision.ok) victims.push(v);
      else refused.push({ candidate: v, decision });
    }
    const last = refused.at(-1);
    if (!last) return plan;
    return {
      ...plan,
      victims,
      heldBack: [...refused.map((r) => r.candidate).reverse(), ...plan.heldBack],
      heldReason: 'EtcdQuorumAtRisk',
      heldMessage: `${last.decision.reason}: ${last.decision.message}`,
    };
  }

  /** Deletes the victims and records them in status.remediations; returns the ones deleted. */
  private async replace(sc: PoolScope, victims: readonly Candidate[]): Promise<Candidate[]> {
    const pool = sc.obj;
    const project = pool.metadata.project ?? '';
    const now = new Date().toISOString();
    for (const v of victims) {
      const name = v.machine.metadata.name;
      sc.log.warn({ machine: name, reason: v.reason, message: v.message }, 'auto-healing: replacing machine');
      await this.machineObjects.deleteIfExists(project, name);
      const remediation = { machine: name, reason: v.reason, message: v.message.slice(0, 1024), at: now };
      sc.status.remediations = [...(sc.status.remediations ?? []), remediation].slice(-50);
      this.s.metrics?.remediations.inc({ reason: v.reason, role: poolRole(pool) });
      publishEvent(this.s, sc.log, machineReplaced(pool, v.machine, remediation));
    }
    return [...victims];
  }

  // ------------------------------------------------------------------------------------------
  // roll

  private async roll(sc: PoolScope): Promise<PhaseResult<Status>> {
    const cluster = liveCluster(sc);
    if (!cluster) return;
    // Users' servers are never replaced, so never rolled (an Upgrade moves them in place).
    if (!this.createsMachines(sc.obj)) return;
    sc.rollout = await this.roller.roll(sc, cluster);
  }

  /** Whether the pool's provider creates machines (imported servers join by themselves). */
  private createsMachines(pool: NodePool): boolean {
    try {
      return createsMachines(this.s.providers.get(pool.spec.provider));
    } catch {
      return true; // a provider this server does not run: the Machine controller reports it on each machine
    }
  }

  /** Healing never replaces a user's server: an unhealthy one becomes an alert for a person. */
  private async alertUnhealthyImports(sc: PoolScope, cluster: Cluster): Promise<void> {
    const pool = sc.obj;
    const template = poolTemplateName(pool);
    const alerts = sc.active.flatMap((m) => {
      const h = getCondition(m.status?.conditions, MachineCondition.Healthy);
      if (h?.status !== 'False') return [];
      const server = m.metadata.annotations?.[ANNOTATION_HOSTNAME] ?? m.metadata.name;
      return [
        {
          rule: RULES.ImportedMachineUnhealthy,
          severity: 'warning' as const,
          labels: { pool: template, machine: m.metadata.name },
          summary: `imported server ${server} (machine ${m.metadata.name}) is unhealthy; Marina does not replace users' servers`,
          description: `${h.reason}: ${h.message ?? ''}`.slice(0, 16384),
        },
      ];
    });
    await this.s.alerts?.sync({ project: pool.metadata.project ?? '', cluster: cluster.metadata.name, source: `healing.${pool.metadata.name}` }, alerts);
  }

  /** HealingHeldBack (condition and alert) from the plan as admitted. */
  private async reportHealing(sc: PoolScope, cluster: Cluster, plan: HealingPlan): Promise<void> {
    const pool = sc.obj;
    const held = plan.heldBack;
    const template = poolTemplateName(pool);
    const names = (cs: readonly Candidate[]) => cs.map((c) => c.machine.metadata.name).join(', ');
    sc.set(
      held.length > 0
        ? {
            type: NodePoolCondition.HealingHeldBack,
            status: 'True',
            reason: plan.heldReason ?? 'HeldBack',
            message: `${held.length} unhealthy machines wait for replacement (${names(held)}): ${plan.heldMessage ?? ''}`.slice(0, 32768),
          }
        : plan.victims.length > 0
          ? { type: NodePoolCondition.HealingHeldBack, status: 'False', reason: 'Replacing', message: `replacing ${names(plan.victims)}` }
          : { type: NodePoolCondition.HealingHeldBack, status: 'False', reason: 'NothingHeldBack', message: 'no unhealthy machine is waiting' },
    );
    const alert = {
      rule: RULES.HealingHeldBack,
      severity: 'warning' as const,
      labels: { pool: template },
      summary: `auto-healing of pool ${template} is held back: ${held.length} unhealthy machines wait`,
      description: `${plan.heldReason}: ${plan.heldMessage ?? ''}; waiting: ${held.map((c) => `${c.machine.metadata.name} (${c.reason}: ${c.message})`).join('; ')}`.slice(0, 16384),
    };
    await this.s.alerts?.sync({ project: pool.metadata.project ?? '', cluster: cluster.metadata.name, source: `healing.${pool.metadata.name}` }, held.length > 0 ? [alert] : []);
  }

  // ------------------------------------------------------------------------------------------
  // scale

  private async scale(sc: PoolScope): Promise<PhaseResult<Status>> {
    const type = NodePoolCondition.Scaled;
    // A surge machine (see replace) stands in for one still running: it is counted on top of the
    // spec until the one it replaces is gone, so scale-in does not take it away again.
    const names = named(sc.active);
    sc.surging = sc.active.filter((m) => names.has(m.metadata.annotations?.[ANNOTATION_REPLACES] ?? '')).length;
    const desired = sc.obj.spec.replicas + sc.surging;
    const cluster = liveCluster(sc);
    let scaled: ConditionInput;
    if (!cluster) scaled = { type, status: 'False', reason: sc.cluster ? 'ClusterDeleting' : 'ClusterNotFound', message: 'not scaling' };
    else if (sc.active.length < desired) scaled = await this.scaleOut(sc, cluster, desired);
    else if (sc.active.length > desired) scaled = await this.scaleIn(sc, cluster, desired);
    else scaled = { type, status: 'True', reason: 'Scaled', message: `${desired} machines` };
    sc.scaled = scaled;
    sc.set(scaled);
  }

  private async scaleOut(sc: PoolScope, cluster: Cluster, desired: number): Promise<ConditionInput> {
    if (!this.createsMachines(sc.obj)) {
      const pool = sc.obj;
      return {
        type: NodePoolCondition.Scaled,
        status: 'False',
        reason: 'WaitingForServers',
        message: `${sc.active.length}/${desired} servers joined; more join with \`marina cluster join-token create ${pool.spec.cluster} --pool ${poolTemplateName(pool)}\``,
      };
    }
    const etcd = hasRole(sc.obj, 'etcd');
    const decision = etcd ? await etcdScaleOut(this.s, cluster) : ({ ok: true, all: true } as const);
    if (!decision.ok) return { type: NodePoolCondition.Scaled, status: 'False', reason: decision.reason, message: decision.message };
    const count = decision.all ? desired - sc.active.length : 1;
    for (let i = 0; i < count; i++) sc.active.push(await this.createMachine(sc));
    return { type: NodePoolCondition.Scaled, status: 'False', reason: 'ScalingOut', message: `${sc.active.length}/${desired} machines` };
  }

  private async scaleIn(sc: PoolScope, cluster: Cluster, desired: number): Promise<ConditionInput> {
    const order = scaleInOrder(sc.active, templateHash(sc.obj.spec));
    let victims = order.slice(0, sc.active.length - desired);
    let decision: Decision = { ok: true };
    if (hasRole(sc.obj, 'etcd')) {
      decision = await etcdScaleIn(this.s, cluster, order[0]!);
      victims = decision.ok ? [order[0]!] : [];
    }
    for (const v of victims) await this.machineObjects.deleteIfExists(sc.obj.metadata.project ?? '', v.metadata.name);
    const gone = named(victims);
    sc.active = sc.active.filter((m) => !gone.has(m.metadata.name));
    return decision.ok
      ? { type: NodePoolCondition.Scaled, status: 'False', reason: 'ScalingIn', message: `${sc.active.length}/${desired} machines` }
      : { type: NodePoolCondition.Scaled, status: 'False', reason: decision.reason, message: decision.message };
  }

  private async createMachine(sc: PoolScope, annotations?: Record<string, string>): Promise<Machine> {
    const pool = sc.obj;
    const template = poolTemplateName(pool);
    const spec: Machine['spec'] = {
      cluster: pool.spec.cluster,
      pool: template,
      roles: [...pool.spec.roles],
      provider: pool.spec.provider,
      kubernetesVersion: pool.spec.kubernetesVersion,
      ...(pool.spec.machine ? { machine: pool.spec.machine } : {}),
      ...(pool.spec.runtime ? { runtime: pool.spec.runtime } : {}),
      ...(pool.spec.certificates ? { certificates: pool.spec.certificates } : {}),
      ...(pool.spec.healing?.drainTimeoutSeconds !== undefined ? { drainTimeoutSeconds: pool.spec.healing.drainTimeoutSeconds } : {}),
      ...propagated(pool.spec),
    };
    const name = machineName(pool.spec.cluster, template);
    sc.log.info({ machine: name }, 'creating machine');
    return this.machineObjects.create({
      apiVersion: API_VERSION,
      kind: 'Machine',
      metadata: {
        name,
        project: pool.metadata.project,
        labels: { [LABEL_CLUSTER]: pool.spec.cluster, [LABEL_POOL]: template, [LABEL_NODEPOOL]: pool.metadata.name, [LABEL_TEMPLATE_HASH]: templateHash(spec) },
        ...(annotations ? { annotations } : {}),
      },
      spec,
      status: { phase: 'Pending' },
    });
  }

  // ------------------------------------------------------------------------------------------
  // summarise

  /** Replica counts, Ready and Healthy; when to look again. */
  private async summarise(sc: PoolScope): Promise<PhaseResult<Status>> {
    const { status, active, obj: pool } = sc;
    const desired = pool.spec.replicas + sc.surging;
    const ready = active.filter(isMachineReady);
    const notReady = active.filter((m) => !isMachineReady(m));
    status.replicas = active.length - sc.surging;
    // A surge machine and the one it replaces are one replica.
    status.readyReplicas = Math.min(ready.length, pool.spec.replicas);
    status.machines = active.map((m) => m.metadata.name).sort();
    const allReady = active.length === desired && notReady.length === 0;
    const problems = notReady.map(machineProblem);
    const waiting = notReady.map((m, i) => `${m.metadata.name} (${m.status?.phase ?? 'Pending'}${problems[i] ? `: ${problems[i]!.reason}: ${problems[i]!.message}` : ''})`).join(', ');
    // Healing replaces a failed machine in the same pass that would report it: while the pool is
    // not ready, the newest failure it replaced since then still says why (a missing image fails
    // every replacement the same way).
    const justReplaced = new Set((sc.healing?.victims ?? []).map((v) => v.machine.metadata.name));
    const replaced = allReady ? undefined : failureReplacedWhileNotReady(sc.status, new Set(active.map((m) => m.metadata.name)), justReplaced);
    // The first provider problem names the pool's reason too (QuotaExceeded, ImageNotFound, …): what to fix.
    const reason = problems.find((p) => p !== undefined)?.reason ?? replaced?.reason ?? 'MachinesNotReady';
    const message = `${ready.length}/${desired} machines ready${waiting ? `; waiting for ${waiting}` : ''}${replaced ? `; replaced failed ${replaced.machine} (${replaced.message})` : ''}`;
    sc.set(
      allReady
        ? { type: NodePoolCondition.Ready, status: 'True', reason: 'Ready', message: `${ready.length}/${desired} machines ready` }
        : { type: NodePoolCondition.Ready, status: 'False', reason, message: message.slice(0, 32768) },
    );
    status.healthyReplicas = active.filter(isHealthy).length;
    if (sc.rollout) {
      status.updatedReplicas = Math.min(sc.rollout.updated, pool.spec.replicas);
      status.availableReplicas = Math.min(sc.rollout.available, pool.spec.replicas);
    }
    const unhealthy = active.flatMap((m) => {
      const h = getCondition(m.status?.conditions, MachineCondition.Healthy);
      return h?.status === 'False' ? [`${m.metadata.name}: ${h.reason}`] : [];
    });
    sc.set(
      unhealthy.length === 0
        ? { type: NodePoolCondition.Healthy, status: 'True', reason: 'MachinesHealthy', message: `${status.healthyReplicas}/${active.length} machines healthy, none failing` }
        : { type: NodePoolCondition.Healthy, status: 'False', reason: 'MachinesUnhealthy', message: unhealthy.join(', ').slice(0, 32768) },
    );
    const requeueAfterMs = this.nextLook(sc, allReady && sc.scaled?.status === 'True');
    return { end: { status, ...(requeueAfterMs !== undefined ? { requeueAfterMs } : {}) } };
  }

  /**
   * Soon while converging (less often the longer it takes: its machines' changes wake it anyway),
   * rolling or holding back healing; when the next machine crosses a healing timeout; else never.
   */
  private nextLook(sc: PoolScope, settled: boolean): number | undefined {
    const poll = this.s.timing.poolPollMs;
    const since = getCondition(sc.status.conditions, NodePoolCondition.Ready)?.lastTransitionTime;
    const rolling = (sc.rollout?.candidates.length ?? 0) > 0 || (sc.status.rollout?.draining?.length ?? 0) > 0;
    // Waiting for etcd to allow a membership change is waiting for the world: poll (backing off).
    // Waiting for its machines to come up is not: their changes wake the pool; a slow safety poll.
    const waitsForEtcd = sc.scaled?.status === 'False' && sc.scaled.reason !== 'ScalingOut' && sc.scaled.reason !== 'ScalingIn';
    let after = settled && !rolling ? undefined : rolling ? poll : waitsForEtcd ? backoffPoll(since, poll, 5 * poll) : 15 * poll;
    const healing = sc.healing;
    if (healing?.nextCheckAtMs !== undefined) after = Math.min(after ?? Infinity, Math.max(50, healing.nextCheckAtMs - Date.now()));
    if (healing && healing.heldBack.length > 0) after = Math.min(after ?? poll, poll);
    return after;
  }

  // ------------------------------------------------------------------------------------------
  // finalize

  private async finalize(pool: NodePool, ctx: ReconcileContext): Promise<Outcome<Status>> {
    const project = pool.metadata.project ?? '';
    const machines = await this.poolMachines(pool);
    if (machines.length === 0) {
      await this.s.alerts?.sync({ project, cluster: pool.spec.cluster, source: `healing.${pool.metadata.name}` }, []);
      return { done: true };
    }
    const sc = scopeFor(pool, ctx);
    const cluster = await this.clusters.get(project, pool.spec.cluster);
    const active = machines.filter((m) => !isDeleting(m));
    if (hasRole(pool, 'etcd') && cluster && !isDeleting(cluster)) {
      // Removing an etcd pool from a live cluster: one member at a time.
      const victim = scaleInOrder(active)[0];
      if (victim && active.length === machines.length && (await etcdScaleIn(this.s, cluster, victim)).ok) await this.machineObjects.deleteIfExists(project, victim.metadata.name);
    } else {
      for (const m of active) await this.machineObjects.deleteIfExists(project, m.metadata.name);
    }
    sc.set({ type: NodePoolCondition.Ready, status: 'False', reason: 'Deleting', message: `waiting for ${machines.length} machines to be deleted` });
    return { status: sc.status, requeueAfterMs: this.s.timing.deletePollMs };
  }
}

/**
 * The newest machine healing replaced for a provider failure since the pool's Ready condition
 * turned False (in this pass, if it is True still), with the failure's reason: the machine's
 * Healthy message, which `remediation.message` holds, starts with it (`ImageNotFound: …`).
 * A replacement that made a ready pool not ready is recorded moments before the condition turns
 * False in the same pass: it counts when it is at most REPLACED_BEFORE_NOT_READY_MS older.
 */
const REPLACED_BEFORE_NOT_READY_MS = 60_000;
export function failureReplacedWhileNotReady(status: Status, active: ReadonlySet<string>, justReplaced: ReadonlySet<string>): { machine: string; reason: string; message: string } | undefined {
  const ready = getCondition(status.conditions, NodePoolCondition.Ready);
  const since = ready?.status === 'False' ? (Date.parse(ready.lastTransitionTime ?? '') || 0) - REPLACED_BEFORE_NOT_READY_MS : undefined;
  const inEpisode = (x: { machine: string; at: string }) => (since === undefined ? justReplaced.has(x.machine) : Date.parse(x.at) >= since);
  const r = (status.remediations ?? []).filter((x) => x.reason === 'MachineFailed' && !active.has(x.machine) && inEpisode(x)).at(-1);
  if (!r) return undefined;
  return { machine: r.machine, reason: /^([A-Za-z]+): /.exec(r.message)?.[1] ?? r.reason, message: r.message };
}

/**
 * What the provider said about a machine that is not ready (a quota, a missing image, the cloud
 * unreachable), so the pool's condition names it too; undefined for a plain state.
 */
function machineProblem(m: Machine): { reason: string; message: string } | undefined {
  if (m.status?.phase === 'Failed' && m.status.failureReason) return { reason: m.status.failureReason, message: m.status.failureMessage ?? '' };
  const infra = getCondition(m.status?.conditions, MachineCondition.InfrastructureReady);
  // A plain state ("the provider reports Provisioning") is already in the phase.
  const plain = ['Provisioning', 'Missing', 'Failed', 'Running'].includes(infra?.reason ?? '');
  return infra?.status === 'False' && infra.reason && !plain ? { reason: infra.reason, message: infra.message ?? '' } : undefined;
}
