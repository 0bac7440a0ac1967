// The Machine controller boots one machine through its provider once the cluster is ready for
// it, watches it come up, keeps its Node's labels and taints in sync, and takes it apart again.
//
// Phases:    prepare → describe → gate → bootstrap → start → admitNode → observe, then Healthy
// Finalize:  drain → leaveEtcd → deleteMachine → revokeBootstrapToken → deleteNode
//
// admitNode and revokeBootstrapToken are for real kubelets (runtime containerd, imported servers):
// their kubelet joins by TLS bootstrap with the machine's token, and Marina approves its
// certificates (./node-admission.ts).
//
// Whether a machine was started is Marina's own record (condition Bootstrapped=True): the
// provider's description cannot tell prepared from started. startMachine is idempotent, so a
// start whose record was lost in a crash is simply repeated (the etcd member is then found by its
// peer URL and not added twice). The gates a machine waits at are in ./machine-gate.ts.
//
// status.phase: Pending (gated) → Provisioning (started) → Running (provider says Running, the
// etcd member votes, and for machines with a kubelet the Node was Ready — a real kubelet's also
// admitted) ; Failed (terminal
// provider error, or a Running machine the provider lost) ; Deleting.
//
// Deletion: Nodes are cordoned and drained through the eviction API (PodDisruptionBudgets hold;
// bounded by the drain timeout, recorded as Drained=True/DrainTimeout); etcd members are removed
// when the remaining members keep a healthy quorum; the provider deletes the machine; then the
// Node is deleted (after the kubelet is gone, so nothing re-registers it). When the whole cluster
// is being deleted none of that is worth doing: the provider just deletes the machine.
import { getCondition, isTrue, setCondition, type ConditionInput } from '../api/conditions.js';
import type { Cluster, Machine, MachineStatus } from '../api/kinds.js';
import { hasComeUp, hasKubelet, hasRole, isStarted, usesRealKubelet } from '../api/machines.js';
import { isDeleting, type ObjectKey } from '../api/meta.js';
import { FINALIZER_MACHINE, MachineCondition, MachineHealthyReason, NodeReadyReason } from '../api/wellknown.js';
import { buildMachineBootstrap, etcdPeerURL } from '../bootstrap/machine.js';
import { etcdMembership } from '../clusteraccess/etcd.js';
import { failureReason } from '../etcd/membership.js';
import type { ComponentCheck } from '../health/types.js';
import { ProviderError, type InfrastructureProvider, type MachineBootstrap, type MachineDescription, type MachineRef } from '../providers/contract.js';
import type { ReconcileContext, Reconciler, Result } from '../runtime/controller.js';
import { runPhases, scopeFor, type Phase, type PhaseResult, type Scope } from '../runtime/phases.js';
import { reconcileObject, type Outcome } from '../runtime/reconcile.js';
import { clusterMachines, typed } from '../store/typed.js';
import { backoffPoll, errorMessage, kubernetesVersionOf, machineRef, publishEvent, type Shared } from './common.js';
import { etcdMemberAdded } from '../events/platform.js';
import { machineGate, type Gate } from './machine-gate.js';
import { drainNode, observeNode, removeNode } from './node.js';
import { admitNode, revokeBootstrapToken } from './node-admission.js';

type Status = MachineStatus;

/** How long a learner's promotion waits at most for the other etcd machines of a new cluster to join. */
const PROMOTION_HOLD_MS = 10_000;

interface MachineScope extends Scope<Machine> {
  cluster: Cluster;
  provider: InfrastructureProvider;
  ref: MachineRef;
  /** Bootstrapped=True when the reconcile began: the provider was asked to start the machine. */
  started: boolean;
  /** Set by the gate phase, when it opened. */
  gate?: Extract<Gate, { open: true }>;
  /** Set by the bootstrap phase. */
  bootstrap?: MachineBootstrap;
  /** What the provider says about the machine (describe, or the answer to start). */
  desc?: MachineDescription;
}

interface FinalizeScope extends Scope<Machine> {
  cluster?: Cluster;
  /** The cluster lives on and the machine was started: drain it, leave etcd, delete its Node. */
  live: boolean;
}

/**
 * The Healthy condition of a machine. Only signals that replacing the machine can fix count:
 * the provider reports it failed, its agent does not answer at all, or the cluster's API (which
 * answers) says its Node is not Ready. An agent that answers with a problem (a restarting
 * process, a kubelet cut off from an API that is down) is alive and is not judged unhealthy, so a
 * control-plane outage never makes the workers look broken.
 */
export function machineHealth(machine: Machine, status: Status, agent: (ComponentCheck & { at: string }) | undefined): ConditionInput {
  const type = MachineCondition.Healthy;
  if (status.phase === 'Failed') {
    const message = `${status.failureReason ?? 'Failed'}: ${status.failureMessage ?? ''}`;
    return { type, status: 'False', reason: MachineHealthyReason.MachineFailed, message: message.slice(0, 32768) };
  }
  if (!hasComeUp({ status })) return { type, status: 'Unknown', reason: MachineHealthyReason.Provisioning, message: 'the machine has not been running yet' };
  if (agent && agent.reachable === false) {
    return { type, status: 'False', reason: MachineHealthyReason.AgentUnreachable, message: `machine agent: ${agent.message}`.slice(0, 32768) };
  }
  const node = hasKubelet(machine) ? getCondition(status.conditions, MachineCondition.NodeReady) : undefined;
  // An API that does not answer, or a machine not running yet, says nothing about the Node.
  if (node && node.status !== 'True' && node.reason !== NodeReadyReason.APIUnreachable && node.reason !== NodeReadyReason.MachineNotRunning) {
    const message = `Node ${status.nodeName ?? machine.metadata.name}: ${node.reason}: ${node.message}`;
    return { type, status: 'False', reason: MachineHealthyReason.NodeNotReady, message: message.slice(0, 32768) };
  }
  return { type, status: 'True', reason: MachineHealthyReason.Healthy, message: 'running; agent and Node healthy' };
}

/** kube-apiserver's `--etcd-servers` in a bootstrap (undefined for machines without one). */
function etcdServersOf(bootstrap: MachineBootstrap): string[] | undefined {
  const flag = '--etcd-servers=';
  return bootstrap.services.find((svc) => svc.name === 'kube-apiserver')?.args.find((a) => a.startsWith(flag))?.slice(flag.length).split(',');
}

export class MachineReconciler implements Reconciler {
  private readonly clusters;
  private readonly phases: readonly Phase<MachineScope, Status>[] = [
    { name: 'prepare', run: (sc) => this.prepare(sc) },
    { name: 'describe', run: (sc) => this.describe(sc) },
    { name: 'gate', run: (sc) => this.gate(sc) },
    { name: 'bootstrap', run: (sc) => this.buildBootstrap(sc) },
    { name: 'start', run: (sc) => this.start(sc) },
    { name: 'admitNode', run: (sc) => this.admitNode(sc) },
    { name: 'observe', run: (sc) => this.observe(sc) },
  ];
  private readonly finalizePhases: readonly Phase<FinalizeScope, Status>[] = [
    { name: 'drain', run: (sc) => this.drain(sc) },
    { name: 'leaveEtcd', run: (sc) => this.leaveEtcd(sc) },
    { name: 'deleteMachine', run: (sc) => this.deleteMachine(sc) },
    { name: 'revokeBootstrapToken', run: (sc) => this.revokeBootstrapToken(sc) },
    { name: 'deleteNode', run: (sc) => this.deleteNode(sc) },
  ];

  constructor(private readonly s: Shared) {
    this.clusters = typed(s.store, 'Cluster');
  }

  reconcile(key: ObjectKey, ctx: ReconcileContext): Promise<Result> {
    return reconcileObject<Machine>(
      this.s.store,
      key,
      { finalizer: FINALIZER_MACHINE, reconcile: async (m) => this.withHealth(m, await this.ensure(m, ctx)), finalize: (m) => this.finalize(m, ctx) },
      ctx,
    );
  }

  // ------------------------------------------------------------------------------------------
  // reconcile

  /** Adds the Healthy condition (what the pool's auto-healing reads) to a reconcile's outcome. */
  private withHealth(machine: Machine, outcome: Outcome<Status>): Outcome<Status> {
    const status = outcome.status ?? machine.status ?? {};
    const agent = this.s.health?.agentCheck(machine.metadata.project ?? '', machine.spec.cluster, machine.metadata.name);
    status.conditions = setCondition(status.conditions, machineHealth(machine, status, agent), machine.metadata.generation);
    return { ...outcome, status };
  }

  private async ensure(machine: Machine, ctx: ReconcileContext): Promise<Outcome<Status>> {
    const base = scopeFor(machine, ctx);
    const { status } = base;
    if (status.phase === 'Failed') return { status }; // stays failed until healing replaces it
    const cluster = await this.clusters.get(machine.metadata.project ?? '', machine.spec.cluster);
    if (!cluster) {
      status.phase ??= 'Pending';
      base.set({ type: MachineCondition.Bootstrapped, status: 'False', reason: 'ClusterNotFound', message: `cluster ${machine.spec.cluster} does not exist` });
      return { status, requeueAfterMs: this.s.timing.poolPollMs };
    }
    let provider: InfrastructureProvider;
    try {
      provider = this.s.providers.get(machine.spec.provider);
    } catch (err) {
      return failed(base, 'UnknownProvider', errorMessage(err));
    }
    const sc: MachineScope = { ...base, cluster, provider, ref: machineRef(machine), started: isTrue(status.conditions, MachineCondition.Bootstrapped) };
    try {
      const run = await runPhases(sc, this.phases);
      return run.ended ?? { status };
    } catch (err) {
      sc.signal.throwIfAborted();
      if (err instanceof ProviderError && err.terminal) return failed(sc, err.reason, err.message);
      status.phase ??= 'Pending';
      sc.set({ type: MachineCondition.InfrastructureReady, status: 'False', reason: err instanceof ProviderError ? err.reason : 'Error', message: errorMessage(err) });
      return { status, error: err };
    }
  }

  /** The machine's identity and address exist (certificates name the address). */
  private async prepare(sc: MachineScope): Promise<PhaseResult<Status>> {
    if (sc.status.address) return;
    const prepared = await sc.provider.prepareMachine(sc.ref, { signal: sc.signal });
    sc.status.address = prepared.address;
    sc.status.providerID = prepared.providerID;
  }

  /** A started machine: what runs now. One the provider lost is started again, unless it ran already. */
  private async describe(sc: MachineScope): Promise<PhaseResult<Status>> {
    if (!sc.started) return;
    sc.desc = await sc.provider.describeMachine(sc.ref, { signal: sc.signal });
    if (sc.desc.state !== 'Missing') return;
    if (sc.status.phase === 'Running') return { end: failed(sc, 'MachineMissing', 'the provider no longer knows this machine') };
    sc.set({ type: MachineCondition.Bootstrapped, status: 'False', reason: 'MachineMissing', message: 'the provider lost the machine before it ran; starting it again' });
    sc.status.phase = 'Pending';
    return { end: { status: sc.status, requeueAfterMs: this.s.timing.machinePollMs } };
  }

  private async gate(sc: MachineScope): Promise<PhaseResult<Status>> {
    if (sc.started) return;
    const gate = await machineGate(this.s, sc, sc.cluster, sc.status.address!);
    if (gate.open) {
      sc.gate = gate;
      return;
    }
    sc.status.phase = 'Pending';
    sc.set({ type: MachineCondition.Bootstrapped, status: 'False', reason: gate.reason, message: gate.message });
    // Changes of the cluster and of its etcd machines wake a gated machine; the poll backs off.
    const since = getCondition(sc.status.conditions, MachineCondition.Bootstrapped)?.lastTransitionTime ?? sc.obj.metadata.creationTimestamp;
    return { end: { status: sc.status, requeueAfterMs: backoffPoll(since, this.s.timing.machinePollMs, 10 * this.s.timing.machinePollMs) } };
  }

  /** Certificates, kubeconfigs and service arguments for the machine's roles. */
  private async buildBootstrap(sc: MachineScope): Promise<PhaseResult<Status>> {
    if (sc.started) return;
    const { cluster, gate, obj: machine } = sc;
    const { certificatesNotAfter, ...bootstrap } = await buildMachineBootstrap({
      cluster,
      machine,
      address: sc.status.address!,
      endpoint: gate!.endpoint,
      pki: gate!.pki,
      ...(gate!.etcd ? { etcd: gate!.etcd } : {}),
      kubernetesVersion: machine.spec.kubernetesVersion || kubernetesVersionOf(cluster, this.s.defaultKubernetesVersion),
    });
    sc.bootstrap = bootstrap;
    // The cluster's status shows each pool's earliest-ending leaf; the renewal rotates before it ends.
    sc.status.certificatesNotAfter = certificatesNotAfter.toISOString();
    // kube-apiserver's etcd client never learns about members added later: remember whom it was
    // told about, so the control-plane pool can refresh it before they are all replaced.
    const etcdServers = etcdServersOf(sc.bootstrap);
    if (etcdServers) sc.status.etcdServers = etcdServers;
  }

  private async start(sc: MachineScope): Promise<PhaseResult<Status>> {
    if (!sc.started) {
      sc.log.info({ roles: sc.obj.spec.roles, etcd: sc.gate?.etcd?.state }, 'starting machine');
      sc.desc = await sc.provider.startMachine(sc.ref, sc.bootstrap!, { signal: sc.signal });
    }
    sc.set({ type: MachineCondition.Bootstrapped, status: 'True', reason: 'Started', message: 'the provider was asked to start the machine' });
  }

  /** A real kubelet's bootstrap token and certificate requests (a virtual kubelet has its certificate already). */
  private async admitNode(sc: MachineScope): Promise<PhaseResult<Status>> {
    if (!hasKubelet(sc.obj) || !usesRealKubelet(sc.obj)) return;
    const address = sc.desc?.address ?? sc.status.address;
    // The provider's address of a machine it reports Running is final: a serving certificate for another is denied.
    sc.set(await admitNode(this.s, sc, sc.cluster, { ...(address ? { address } : {}), settled: sc.desc?.state === 'Running' }));
  }

  /** Records what the provider and the cluster's API say about a started machine. */
  private async observe(sc: MachineScope): Promise<PhaseResult<Status>> {
    const { status, obj: machine } = sc;
    const desc = sc.desc!;
    if (desc.address) status.address = desc.address;
    if (desc.providerID) status.providerID = desc.providerID;
    if (desc.providerStatus) status.providerStatus = desc.providerStatus;
    if (desc.agentUrl) status.agentURL = desc.agentUrl;
    if (desc.state === 'Failed') return { end: failed(sc, desc.failureReason ?? 'MachineFailed', desc.failureMessage ?? 'the provider reports the machine failed') };
    const infraUp = desc.state === 'Running';
    sc.set(
      infraUp
        ? { type: MachineCondition.InfrastructureReady, status: 'True', reason: 'Running', message: 'the machine and its services are up' }
        : { type: MachineCondition.InfrastructureReady, status: 'False', reason: desc.state, message: `the provider reports ${desc.state}` },
    );
    let nodeOk = true;
    if (hasKubelet(machine)) {
      status.nodeName = machine.metadata.name;
      nodeOk = false;
      if (infraUp) {
        const node = await observeNode(this.s, sc, sc.cluster, status.nodeName);
        if (node.ready !== undefined) status.nodeReady = node.ready;
        sc.set(node.condition);
        // A real kubelet counts once the apiserver can verify it too (logs and exec work).
        nodeOk = node.ready === true && (!usesRealKubelet(machine) || isTrue(status.conditions, MachineCondition.NodeAdmitted));
      } else {
        sc.set({ type: MachineCondition.NodeReady, status: 'False', reason: NodeReadyReason.MachineNotRunning, message: 'waiting for the machine' });
      }
    }
    // A joining etcd member starts as a learner; it counts once it is a voting member.
    const memberOk = !hasRole(machine, 'etcd') || !infraUp || (await this.ensureVotingMember(sc));
    status.phase = infraUp && memberOk && (nodeOk || status.phase === 'Running') ? 'Running' : 'Provisioning';
    const settled = infraUp && nodeOk && memberOk;
    // Booting: the provider has to be asked (no event tells); less often the longer it takes.
    const booting = backoffPoll(getCondition(status.conditions, MachineCondition.Bootstrapped)?.lastTransitionTime, this.s.timing.machinePollMs, 5 * this.s.timing.machinePollMs);
    const settledPoll = Math.min(this.s.timing.machineReadyPollMs, sc.provider.capabilities?.describeEveryMs ?? Infinity);
    return { end: { status, requeueAfterMs: settled ? settledPoll : booting } };
  }

  /**
   * Promotes the machine's etcd member once the learner caught up. True when it is a voting
   * member (recorded in the EtcdMember condition, so this runs until it first succeeds).
   */
  private async ensureVotingMember(sc: MachineScope): Promise<boolean> {
    const type = MachineCondition.EtcdMember;
    if (isTrue(sc.status.conditions, type)) return true;
    const peerURL = etcdPeerURL(sc.status.address!);
    try {
      const machines = await clusterMachines(this.s.store, sc.cluster.metadata.project ?? '', sc.cluster.metadata.name);
      // Other etcd machines waiting to join (a new cluster's): they join beside this learner, which
      // etcd refuses for 5 s after a promotion the quorum depends on. Promote once they started,
      // or after PROMOTION_HOLD_MS at most.
      const waiting = machines.filter((m) => m.metadata.name !== sc.obj.metadata.name && hasRole(m, 'etcd') && !isStarted(m) && !isDeleting(m));
      const startedAt = Date.parse(getCondition(sc.status.conditions, MachineCondition.Bootstrapped)?.lastTransitionTime ?? '');
      const hold = waiting.length > 0 && Date.now() - startedAt < PROMOTION_HOLD_MS;
      // The others first: a learner serves no membership calls.
      const membership = await etcdMembership(this.s.connections, sc.cluster, machines, { last: { ...sc.obj, status: sc.status }, signal: sc.signal });
      if (!membership) throw new Error('the cluster has no PKI');
      const self = await membership.promote(peerURL, { hold });
      if (self.member === 'absent') {
        sc.set({ type, status: 'False', reason: 'NotAMember', message: `${peerURL} is not in the member list` });
        return false;
      }
      if (self.member === 'learner') {
        sc.set({ type, status: 'False', reason: 'WaitingForJoiners', message: `promotion waits for ${waiting.map((m) => m.metadata.name).join(', ')} to join` });
        return false;
      }
      if (self.promoted) sc.log.info({ member: self.id }, 'promoted etcd learner');
      sc.set({ type, status: 'True', reason: 'Voting', message: `member ${self.id}` });
      publishEvent(this.s, sc.log, etcdMemberAdded(sc.cluster, sc.obj, { id: self.id, peerURL }));
      return true;
    } catch (err) {
      // Typically "can only promote a learner member which is in sync with leader": try again.
      sc.set({ type, status: 'False', reason: 'Joining', message: errorMessage(err) });
      return false;
    }
  }

  // ------------------------------------------------------------------------------------------
  // finalize

  private async finalize(machine: Machine, ctx: ReconcileContext): Promise<Outcome<Status>> {
    const base = scopeFor(machine, ctx);
    base.status.phase = 'Deleting';
    const cluster = await this.clusters.get(machine.metadata.project ?? '', machine.spec.cluster);
    // When the whole cluster goes, draining, leaving etcd and deleting Nodes is wasted effort.
    const live = cluster !== undefined && !isDeleting(cluster) && isStarted(machine);
    const run = await runPhases({ ...base, ...(cluster ? { cluster } : {}), live }, this.finalizePhases);
    return run.ended ?? { done: true };
  }

  private again(sc: FinalizeScope): PhaseResult<Status> {
    return { end: { status: sc.status, requeueAfterMs: this.s.timing.machinePollMs } };
  }

  private async drain(sc: FinalizeScope): Promise<PhaseResult<Status>> {
    if (!sc.live || !hasKubelet(sc.obj)) return;
    const drain = await drainNode(this.s, sc, sc.cluster!);
    if (drain === 'draining') return this.again(sc);
    // Persist the give-up before going on, so the record survives the Machine.
    if (drain === 'timedOut') return { end: { status: sc.status, requeueAfterMs: 1 } };
  }

  /** Removes the machine's etcd member if the rest keeps a healthy quorum. */
  private async leaveEtcd(sc: FinalizeScope): Promise<PhaseResult<Status>> {
    const address = sc.obj.status?.address;
    const type = MachineCondition.EtcdMemberRemoved;
    if (!sc.live || !hasRole(sc.obj, 'etcd') || !address || getCondition(sc.status.conditions, type)?.status === 'True') return;
    const cluster = sc.cluster!;
    const peerURL = etcdPeerURL(address);
    try {
      const machines = await clusterMachines(this.s.store, cluster.metadata.project ?? '', cluster.metadata.name);
      // Ask the others first; the leaving member may already be down.
      const membership = await etcdMembership(this.s.connections, cluster, machines, { last: sc.obj, signal: sc.signal });
      if (!membership) throw new Error('the cluster has no PKI');
      const left = await membership.leave(peerURL);
      if (left.member === 'present') {
        sc.set({ type, status: 'False', reason: left.reason, message: left.message });
        return this.again(sc);
      }
      if (left.member === 'absent') {
        sc.set({ type, status: 'True', reason: 'NotAMember', message: `${peerURL} is not an etcd member` });
        return;
      }
      sc.log.info({ member: left.id }, 'removed etcd member');
      sc.set({ type, status: 'True', reason: 'Removed', message: `member ${left.id} removed` });
    } catch (err) {
      sc.set({ type, status: 'False', reason: failureReason(err), message: errorMessage(err) });
      return this.again(sc);
    }
  }

  private async deleteMachine(sc: FinalizeScope): Promise<PhaseResult<Status>> {
    try {
      await this.s.providers.get(sc.obj.spec.provider).deleteMachine(machineRef(sc.obj), { signal: sc.signal });
    } catch (err) {
      sc.signal.throwIfAborted();
      sc.set({ type: MachineCondition.InfrastructureReady, status: 'False', reason: err instanceof ProviderError ? err.reason : 'DeleteFailed', message: errorMessage(err) });
      return { end: { status: sc.status, error: err } };
    }
  }

  private async revokeBootstrapToken(sc: FinalizeScope): Promise<PhaseResult<Status>> {
    if (sc.live && hasKubelet(sc.obj) && usesRealKubelet(sc.obj)) await revokeBootstrapToken(this.s, sc, sc.cluster!);
  }

  /** The Node goes last: with the kubelet stopped nothing registers it again. */
  private async deleteNode(sc: FinalizeScope): Promise<PhaseResult<Status>> {
    if (!sc.live || !hasKubelet(sc.obj)) return;
    if (!(await removeNode(this.s, sc, sc.cluster!))) return this.again(sc);
  }
}

/** The machine went Failed (stays so until healing replaces it). */
function failed(sc: Scope<Machine>, reason: string, message: string): Outcome<Status> {
  sc.status.phase = 'Failed';
  sc.status.failureReason = reason;
  sc.status.failureMessage = message;
  sc.set({ type: MachineCondition.InfrastructureReady, status: 'False', reason, message });
  return { status: sc.status };
}
