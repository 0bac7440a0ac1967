// The Machine controller boots one machine through its provider once the cluster is ready for
// it, watches it come up, keeps its Node's labels and taints in sync, and takes it apart again.
//
// Gates, checked before the machine is started (status.phase Pending, condition Bootstrapped=False
// with the reason it waits for):
//   every machine   the cluster's PKI Secret and API endpoint exist
//   etcd            the oldest etcd machine of a cluster in which no etcd member ever started
//                   bootstraps a new etcd cluster alone; every later one is first added as a
//                   learner through a healthy member (`member add`, unless a member with its peer
//                   URL already exists: added before a restart), only when every member is healthy
//                   and none is still joining, then starts as `existing` with the member list; once
//                   its services run it is promoted to a voting member (EtcdMember condition).
//                   A learner does not count for the quorum, so a cluster never loses its quorum
//                   while a member boots (a plain voting add of the 2nd member would)
//   controlplane    (without etcd on the same machine) a healthy etcd quorum with every etcd
//                   member the spec asks for, so --etcd-servers names them all
//   worker          kube-apiserver answers /readyz through the endpoint
//
// Whether a machine was started is Marina's own record (condition Bootstrapped=True): the
// provider's description cannot tell prepared from started. startMachine is idempotent, so a
// start whose record was lost in a crash is simply repeated (the etcd member is then found by its
// peer URL and not added twice).
//
// Phases: Pending (gated) → Provisioning (started) → Running (provider says Running, the etcd
// member votes, and for machines with a kubelet the Node was Ready) ; Failed (terminal provider
// error, or a Running machine the provider lost) ; Deleting.
//
// Deletion: Nodes are cordoned and drained through the eviction API (PodDisruptionBudgets hold;
// bounded by the drain timeout, recorded as Drained=True/DrainTimeout); etcd members are removed
// when the remaining members keep a healthy quorum; the provider deletes the machine; then the
// Node is deleted (after the kubelet is gone, so nothing re-registers it). When the whole cluster
// is being deleted none of that is worth doing: the provider just deletes the machine.
import { isDeepStrictEqual } from 'node:util';
import type { Cluster, Machine, Taint } from '../api/kinds.js';
import { ANNOTATION_APPROVAL, ANNOTATION_APPROVED } from '../api/imports.js';
import type { ObjectKey } from '../api/meta.js';
import {
  buildMachineBootstrap,
  etcdClientURL,
  etcdPeerURL,
  hasKubelet,
  nodeLabels,
  nodeTaints,
  type EtcdBootstrap,
} from '../bootstrap/machine.js';
import type { ClusterPki } from '../bootstrap/clusterPki.js';
import { quorumHealthy } from '../etcd/client.js';
import {
  ProviderError,
  type EndpointDescription,
  type InfrastructureProvider,
  type MachineDescription,
} from '../providers/contract.js';
import type { ReconcileContext, Reconciler, Result } from '../runtime/controller.js';
import { getCondition, isTrue, setCondition, type ConditionInput } from '../runtime/conditions.js';
import { reconcileObject, type Outcome } from '../runtime/reconcile.js';
import {
  byAge,
  clusterMachines,
  errorMessage,
  etcdFailureReason,
  FINALIZER_MACHINE,
  getCluster,
  hasRole,
  isDeleting,
  isStarted,
  kubernetesVersionOf,
  machineRef,
  type Shared,
} from './common.js';
import type { KubeApi, KubeNode, KubePod, KubeTaint } from './connections.js';
import type { ComponentCheck } from '../health/types.js';

type Status = NonNullable<Machine['status']>;

/** Annotations on the Node recording what Marina set, so removals can be told from others' additions. */
export const ANNOTATION_MANAGED_LABELS = 'marina.dev/managed-labels';
export const ANNOTATION_MANAGED_TAINTS = 'marina.dev/managed-taints';

type Gate =
  | { open: true; pki: ClusterPki; endpoint: EndpointDescription; etcd?: EtcdBootstrap }
  | { open: false; reason: string; message: string };

const closed = (reason: string, message: string): Gate => ({ open: false, reason, message });

function endpointFromUrl(url: string): EndpointDescription {
  const u = new URL(url);
  return { url, host: u.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(u.port || 443) };
}

/** etcd machines of the cluster that were started and have an address (member candidates). */
function startedEtcd(machines: Machine[], except: string): Machine[] {
  return machines.filter((m) => m.metadata.name !== except && hasRole(m, 'etcd') && isStarted(m) && m.status?.address);
}

/** Desired etcd member count from the cluster spec. */
function desiredEtcdMembers(cluster: Cluster): number {
  return cluster.spec.nodePools.filter((p) => p.roles.includes('etcd')).reduce((n, p) => n + p.replicas, 0);
}

const taintId = (t: { key: string; effect: string }): string => `${t.key}:${t.effect}`;

/**
 * The merge patch that makes a Node carry `labels` and `taints`, removing what Marina set before
 * (per the managed-* annotations) and no longer wants, and keeping everything others set (e.g.
 * the node-lifecycle controller's not-ready taints). undefined when the Node is already in sync.
 */
export function nodeSyncPatch(node: KubeNode, labels: Record<string, string>, taints: Taint[]): Record<string, unknown> | undefined {
  const ann = node.metadata.annotations ?? {};
  const have = node.metadata.labels ?? {};
  const prevLabels = (ann[ANNOTATION_MANAGED_LABELS] ?? '').split(',').filter(Boolean);
  const labelPatch: Record<string, string | null> = {};
  for (const [k, v] of Object.entries(labels)) if (have[k] !== v) labelPatch[k] = v;
  for (const k of prevLabels) if (!(k in labels) && k in have) labelPatch[k] = null;

  let prevTaints: string[] = [];
  try {
    prevTaints = JSON.parse(ann[ANNOTATION_MANAGED_TAINTS] ?? '[]') as string[];
  } catch {
    prevTaints = [];
  }
  const current = node.spec?.taints ?? [];
  const wanted = new Map(taints.map((t) => [taintId(t), t]));
  const next: KubeTaint[] = [];
  for (const t of current) {
    const id = taintId(t);
    if (wanted.has(id)) {
      const w = wanted.get(id)!;
      next.push(w.value !== undefined ? { ...t, value: w.value } : (({ value: _v, ...rest }) => rest)(t));
      wanted.delete(id);
    } else if (!prevTaints.includes(id)) {
      next.push(t);
    }
  }
  for (const t of wanted.values()) next.push({ key: t.key, ...(t.value !== undefined ? { value: t.value } : {}), effect: t.effect });

  const managedLabels = Object.keys(labels).sort().join(',');
  const managedTaints = JSON.stringify(taints.map(taintId).sort());
  const taintsChanged = !isDeepStrictEqual(JSON.parse(JSON.stringify(next)), JSON.parse(JSON.stringify(current)));
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

/**
 * The Healthy condition of a machine. Only signals that replacing the machine can fix count:
 * the provider reports it failed, its agent does not answer at all, or the cluster's API (which
 * answers) says its Node is not Ready. An agent that answers with a problem (a restarting
 * process, a kubelet cut off from an API that is down) is alive and is not judged unhealthy, so a
 * control-plane outage never makes the workers look broken.
 */
export function machineHealth(machine: Machine, status: Status, agent: (ComponentCheck & { at: string }) | undefined): ConditionInput {
  const prev = getCondition(status.conditions, 'Healthy');
  const cameUp = status.phase === 'Running' || (prev !== undefined && prev.reason !== 'Provisioning');
  if (status.phase === 'Failed') {
    return { type: 'Healthy', status: 'False', reason: 'MachineFailed', message: `${status.failureReason ?? 'Failed'}: ${status.failureMessage ?? ''}`.slice(0, 32768) };
  }
  if (!cameUp) return { type: 'Healthy', status: 'Unknown', reason: 'Provisioning', message: 'the machine has not been running yet' };
  if (agent && agent.reachable === false) {
    return { type: 'Healthy', status: 'False', reason: 'AgentUnreachable', message: `machine agent: ${agent.message}`.slice(0, 32768) };
  }
  if (hasKubelet(machine)) {
    const node = getCondition(status.conditions, 'NodeReady');
    if (node && node.status !== 'True' && node.reason !== 'APIUnreachable' && node.reason !== 'MachineNotRunning') {
      return { type: 'Healthy', status: 'False', reason: 'NodeNotReady', message: `Node ${status.nodeName ?? machine.metadata.name}: ${node.reason}: ${node.message}`.slice(0, 32768) };
    }
  }
  return { type: 'Healthy', status: 'True', reason: 'Healthy', message: 'running; agent and Node healthy' };
}

/** Pods a drain evicts: not DaemonSet-managed, not static (mirror) pods, not finished. */
export function podsToEvict(pods: KubePod[]): KubePod[] {
  return pods.filter(
    (p) =>
      !(p.metadata.ownerReferences ?? []).some((o) => o.kind === 'DaemonSet') &&
      !p.metadata.annotations?.['kubernetes.io/config.mirror'] &&
      p.status?.phase !== 'Succeeded' &&
      p.status?.phase !== 'Failed',
  );
}

export class MachineReconciler implements Reconciler {
  constructor(private readonly s: Shared) {}

  reconcile(key: ObjectKey, ctx: ReconcileContext): Promise<Result> {
    return reconcileObject<Machine>(
      this.s.store,
      key,
      { finalizer: FINALIZER_MACHINE, reconcile: async (m) => this.withHealth(m, await this.ensure(m)), finalize: (m) => this.finalize(m) },
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

  private async ensure(machine: Machine): Promise<Outcome<Status>> {
    const gen = machine.metadata.generation;
    const status: Status = { ...(machine.status ?? {}) };
    const set = (c: ConditionInput) => (status.conditions = setCondition(status.conditions, c, gen));
    const poll = this.s.timing.machinePollMs;
    if (status.phase === 'Failed') return { status }; // stays failed until healing replaces it

    const project = machine.metadata.project ?? '';
    const cluster = await getCluster(this.s.store, project, machine.spec.cluster);
    if (!cluster) {
      status.phase ??= 'Pending';
      set({ type: 'Bootstrapped', status: 'False', reason: 'ClusterNotFound', message: `cluster ${machine.spec.cluster} does not exist` });
      return { status, requeueAfterMs: this.s.timing.poolPollMs };
    }

    let provider: InfrastructureProvider;
    try {
      provider = this.s.providers.get(machine.spec.provider);
    } catch (err) {
      return this.failed(status, gen, 'UnknownProvider', errorMessage(err));
    }
    const ref = machineRef(machine);

    let desc: MachineDescription;
    try {
      if (!status.address) {
        const prepared = await provider.prepareMachine(ref);
        status.address = prepared.address;
        status.providerID = prepared.providerID;
      }
      // Whether the machine was started is Marina's own record (Bootstrapped): a provider may
      // describe a prepared-but-not-started machine as Provisioning. startMachine is idempotent,
      // so a start whose record was lost (crash) is simply repeated.
      const started = isTrue(status.conditions, 'Bootstrapped');
      desc = started ? await provider.describeMachine(ref) : { state: 'Missing' };
      if (started && desc.state === 'Missing') {
        if (status.phase === 'Running') return this.failed(status, gen, 'MachineMissing', 'the provider no longer knows this machine');
        set({ type: 'Bootstrapped', status: 'False', reason: 'MachineMissing', message: 'the provider lost the machine before it ran; starting it again' });
        status.phase = 'Pending';
        return { status, requeueAfterMs: poll };
      }
      if (!started) {
        const gate = await this.gate(cluster, machine, status.address);
        if (!gate.open) {
          status.phase = 'Pending';
          set({ type: 'Bootstrapped', status: 'False', reason: gate.reason, message: gate.message });
          return { status, requeueAfterMs: poll };
        }
        const bootstrap = await buildMachineBootstrap({
          cluster,
          machine,
          address: status.address,
          endpoint: gate.endpoint,
          pki: gate.pki,
          ...(gate.etcd ? { etcd: gate.etcd } : {}),
          kubernetesVersion: machine.spec.kubernetesVersion || kubernetesVersionOf(cluster, this.s.defaultKubernetesVersion),
        });
        this.s.log.info({ machine: machine.metadata.name, roles: machine.spec.roles, etcd: gate.etcd?.state }, 'starting machine');
        // kube-apiserver's etcd client never learns about members added later: remember whom it
        // was told about, so the control-plane pool can refresh it before they are all replaced.
        const etcdServers = bootstrap.services
          .find((svc) => svc.name === 'kube-apiserver')
          ?.args.find((a) => a.startsWith('--etcd-servers='))
          ?.slice('--etcd-servers='.length)
          .split(',');
        if (etcdServers) status.etcdServers = etcdServers;
        desc = await provider.startMachine(ref, bootstrap);
      }
    } catch (err) {
      if (err instanceof ProviderError && err.terminal) return this.failed(status, gen, err.reason, err.message);
      status.phase ??= 'Pending';
      set({
        type: 'InfrastructureReady',
        status: 'False',
        reason: err instanceof ProviderError ? err.reason : 'Error',
        message: errorMessage(err),
      });
      return { status, error: err };
    }
    set({ type: 'Bootstrapped', status: 'True', reason: 'Started', message: 'the provider was asked to start the machine' });
    return this.observe(cluster, machine, status, desc);
  }

  private failed(status: Status, gen: number | undefined, reason: string, message: string): Outcome<Status> {
    status.phase = 'Failed';
    status.failureReason = reason;
    status.failureMessage = message;
    status.conditions = setCondition(status.conditions, { type: 'InfrastructureReady', status: 'False', reason, message }, gen);
    return { status };
  }

  /** Records what the provider and the cluster's API say about a started machine. */
  private async observe(cluster: Cluster, machine: Machine, status: Status, desc: MachineDescription): Promise<Outcome<Status>> {
    const gen = machine.metadata.generation;
    const set = (c: ConditionInput) => (status.conditions = setCondition(status.conditions, c, gen));
    if (desc.address) status.address = desc.address;
    if (desc.providerID) status.providerID = desc.providerID;
    if (desc.providerStatus) status.providerStatus = desc.providerStatus;
    if (desc.agentUrl) status.agentURL = desc.agentUrl;

    if (desc.state === 'Failed') {
      return this.failed(status, gen, desc.failureReason ?? 'MachineFailed', desc.failureMessage ?? 'the provider reports the machine failed');
    }
    const infraUp = desc.state === 'Running';
    set(
      infraUp
        ? { type: 'InfrastructureReady', status: 'True', reason: 'Running', message: 'the machine and its services are up' }
        : { type: 'InfrastructureReady', status: 'False', reason: desc.state, message: `the provider reports ${desc.state}` },
    );

    let nodeOk = true;
    if (hasKubelet(machine)) {
      const nodeName = machine.metadata.name;
      status.nodeName = nodeName;
      nodeOk = false;
      if (infraUp) {
        const node = await this.observeNode(cluster, machine, nodeName);
        if (node.ready !== undefined) status.nodeReady = node.ready;
        set(node.condition);
        nodeOk = node.ready === true;
      } else {
        set({ type: 'NodeReady', status: 'False', reason: 'MachineNotRunning', message: 'waiting for the machine' });
      }
    }
    // A joining etcd member starts as a learner; it counts once it is a voting member.
    const memberOk = !hasRole(machine, 'etcd') || !infraUp || (await this.ensureVotingMember(cluster, machine, status));
    status.phase = infraUp && memberOk && (nodeOk || status.phase === 'Running') ? 'Running' : 'Provisioning';
    const settled = infraUp && nodeOk && memberOk;
    return { status, requeueAfterMs: settled ? this.s.timing.machineReadyPollMs : this.s.timing.machinePollMs };
  }

  /**
   * Promotes the machine's etcd member once the learner caught up. True when it is a voting
   * member (recorded in the EtcdMember condition, so this runs until it first succeeds).
   */
  private async ensureVotingMember(cluster: Cluster, machine: Machine, status: Status): Promise<boolean> {
    const gen = machine.metadata.generation;
    const set = (c: ConditionInput) => (status.conditions = setCondition(status.conditions, c, gen));
    if (isTrue(status.conditions, 'EtcdMember')) return true;
    const address = status.address!;
    const peerURL = etcdPeerURL(address);
    try {
      const machines = await clusterMachines(this.s.store, cluster.metadata.project ?? '', cluster.metadata.name);
      // The others first: a learner serves no membership calls.
      const endpoints = [...startedEtcd(machines, machine.metadata.name).map((m) => etcdClientURL(m.status!.address!)), etcdClientURL(address)];
      const api = await this.s.connections.etcd(cluster, endpoints);
      if (!api) throw new Error('the cluster has no PKI');
      const self = (await api.memberList()).find((m) => m.peerURLs.includes(peerURL));
      if (!self) {
        set({ type: 'EtcdMember', status: 'False', reason: 'NotAMember', message: `${peerURL} is not in the member list` });
        return false;
      }
      if (self.isLearner) {
        this.s.log.info({ machine: machine.metadata.name, member: self.id }, 'promoting etcd learner');
        await api.memberPromote(self.id);
      }
      set({ type: 'EtcdMember', status: 'True', reason: 'Voting', message: `member ${self.id}` });
      return true;
    } catch (err) {
      // Typically "can only promote a learner member which is in sync with leader": try again.
      set({ type: 'EtcdMember', status: 'False', reason: 'Joining', message: errorMessage(err) });
      return false;
    }
  }

  private async observeNode(
    cluster: Cluster,
    machine: Machine,
    nodeName: string,
  ): Promise<{ ready?: boolean; condition: ConditionInput }> {
    try {
      const kube = await this.s.connections.kube(cluster);
      if (!kube) return { condition: { type: 'NodeReady', status: 'Unknown', reason: 'NoKubeconfig', message: 'the cluster has no admin kubeconfig yet' } };
      const node = await kube.getNode(nodeName);
      if (!node) return { ready: false, condition: { type: 'NodeReady', status: 'False', reason: 'NodeNotRegistered', message: `Node ${nodeName} does not exist yet` } };
      const patch = nodeSyncPatch(node, nodeLabels(machine), nodeTaints(machine));
      if (patch) await kube.patchNode(nodeName, patch);
      const ready = node.status?.conditions?.find((c) => c.type === 'Ready');
      const isReady = ready?.status === 'True';
      return {
        ready: isReady,
        condition: {
          type: 'NodeReady',
          status: isReady ? 'True' : ready?.status === 'False' ? 'False' : 'Unknown',
          reason: ready?.reason ?? 'NoReadyCondition',
          message: ready?.message ?? `Node ${nodeName} reports no Ready condition yet`,
        },
      };
    } catch (err) {
      return { condition: { type: 'NodeReady', status: 'Unknown', reason: 'APIUnreachable', message: errorMessage(err) } };
    }
  }

  /** Whether the machine may start now, and with which etcd membership. */
  private async gate(cluster: Cluster, machine: Machine, address: string): Promise<Gate> {
    if (isDeleting(cluster)) return closed('ClusterDeleting', 'the cluster is being deleted');
    // A server that joined with a token asking for approval waits for an operator.
    const annotations = machine.metadata.annotations ?? {};
    if (annotations[ANNOTATION_APPROVAL] === 'required' && annotations[ANNOTATION_APPROVED] !== 'true') {
      return closed('WaitingForApproval', `an operator admits it with \`marina cluster approve ${cluster.metadata.name} ${machine.metadata.name}\``);
    }
    const pki = await this.s.secrets.pki(cluster);
    if (!pki) return closed('WaitingForPKI', 'the cluster PKI does not exist yet');
    if (!cluster.status?.endpoint) return closed('WaitingForEndpoint', 'the cluster API endpoint does not exist yet');
    const endpoint = endpointFromUrl(cluster.status.endpoint);
    const isEtcd = hasRole(machine, 'etcd');
    const isCP = hasRole(machine, 'controlplane');
    const name = machine.metadata.name;
    let etcd: EtcdBootstrap | undefined;

    if (isEtcd || isCP) {
      const machines = await clusterMachines(this.s.store, cluster.metadata.project ?? '', cluster.metadata.name);
      const started = startedEtcd(machines, name);
      if (isEtcd) {
        const r = await this.etcdGate(cluster, machine, address, machines, started);
        if ('open' in r) return r;
        etcd = r;
      } else {
        if (started.length === 0) return closed('WaitingForEtcd', 'no etcd member has started yet');
        try {
          const api = await this.s.connections.etcd(cluster, started.map((m) => etcdClientURL(m.status!.address!)));
          if (!api) return closed('WaitingForPKI', 'the cluster PKI does not exist yet');
          const health = await api.memberHealth();
          if (!quorumHealthy(health)) {
            return closed('WaitingForEtcdQuorum', `${health.filter((m) => m.healthy).length}/${health.length} etcd members healthy`);
          }
          const want = desiredEtcdMembers(cluster);
          const up = health.filter((m) => m.healthy && !m.isLearner && m.clientURLs.length > 0);
          if (up.length < want) return closed('WaitingForEtcdMembers', `${up.length}/${want} etcd members are up`);
          etcd = { initialCluster: [], state: 'existing', clientURLs: up.flatMap((m) => m.clientURLs.slice(0, 1)) };
        } catch (err) {
          return closed(etcdFailureReason(err), errorMessage(err));
        }
      }
    }

    if (hasKubelet(machine) && !isCP) {
      try {
        const kube = await this.s.connections.kube(cluster);
        if (!kube) return closed('WaitingForControlPlane', 'the cluster has no admin kubeconfig yet');
        const r = await kube.readyz();
        if (!r.ok) return closed('WaitingForControlPlane', `kube-apiserver is not ready: ${r.message}`.slice(0, 32768));
      } catch (err) {
        return closed('WaitingForControlPlane', errorMessage(err));
      }
    }
    return { open: true, pki, endpoint, ...(etcd ? { etcd } : {}) };
  }

  /** Bootstrap or join etcd; returns the membership to start with, or a closed gate. */
  private async etcdGate(
    cluster: Cluster,
    machine: Machine,
    address: string,
    machines: Machine[],
    started: Machine[],
  ): Promise<EtcdBootstrap | Extract<Gate, { open: false }>> {
    const name = machine.metadata.name;
    const peerURL = etcdPeerURL(address);
    if (started.length === 0) {
      // Nobody started yet: the oldest waiting etcd machine founds the cluster, alone.
      const first = machines.filter((m) => hasRole(m, 'etcd') && !isDeleting(m) && !isStarted(m)).sort(byAge)[0];
      if (first && first.metadata.name !== name) {
        return { open: false, reason: 'WaitingForFirstEtcdMember', message: `etcd machine ${first.metadata.name} founds the etcd cluster` };
      }
      return { initialCluster: [{ name, peerURL }], state: 'new', clientURLs: [etcdClientURL(address)] };
    }
    try {
      const api = await this.s.connections.etcd(cluster, started.map((m) => etcdClientURL(m.status!.address!)));
      if (!api) return { open: false, reason: 'WaitingForPKI', message: 'the cluster PKI does not exist yet' };
      let members = await api.memberList();
      const self = members.find((m) => m.peerURLs.includes(peerURL));
      if (!self) {
        // Join one at a time, into a fully healthy cluster, as a learner: it does not count for
        // the quorum until it caught up and is promoted (see ensureVotingMember), so the cluster
        // never waits for a member that is still starting.
        const joining = members.find((m) => m.isLearner || !m.name || m.clientURLs.length === 0);
        if (joining) return { open: false, reason: 'EtcdMemberJoining', message: `etcd member ${joining.name || joining.peerURLs.join(',')} is still joining` };
        const health = await api.memberHealth(members);
        const sick = health.filter((m) => !m.healthy);
        if (sick.length > 0) {
          return { open: false, reason: 'EtcdUnhealthy', message: `etcd member ${sick.map((m) => m.name).join(', ')} unhealthy: ${sick[0]!.error ?? ''}` };
        }
        this.s.log.info({ machine: name, peerURL }, 'adding etcd learner');
        members = (await api.memberAdd([peerURL], { isLearner: true })).members;
      }
      const byPeer = new Map(machines.filter((m) => m.status?.address).map((m) => [etcdPeerURL(m.status!.address!), m.metadata.name]));
      const initialCluster = members.map((m) => ({
        name: m.peerURLs.includes(peerURL) ? name : m.name || byPeer.get(m.peerURLs[0] ?? '') || '',
        peerURL: m.peerURLs[0] ?? '',
      }));
      const anonymous = initialCluster.find((m) => !m.name || !m.peerURL);
      if (anonymous) return { open: false, reason: 'EtcdMemberJoining', message: `etcd member ${anonymous.peerURL} has no name yet` };
      return {
        initialCluster,
        state: 'existing',
        clientURLs: members.flatMap((m) => m.clientURLs.slice(0, 1)),
      };
    } catch (err) {
      return { open: false, reason: etcdFailureReason(err), message: errorMessage(err) };
    }
  }

  // ------------------------------------------------------------------------------------------
  // finalize

  private async finalize(machine: Machine): Promise<Outcome<Status>> {
    const gen = machine.metadata.generation;
    const status: Status = { ...(machine.status ?? {}), phase: 'Deleting' };
    const set = (c: ConditionInput) => (status.conditions = setCondition(status.conditions, c, gen));
    const project = machine.metadata.project ?? '';
    const cluster = await getCluster(this.s.store, project, machine.spec.cluster);
    // When the whole cluster goes, draining, leaving etcd and deleting Nodes is wasted effort.
    const live = cluster !== undefined && !isDeleting(cluster) && isStarted(machine);
    const again = { status, requeueAfterMs: this.s.timing.machinePollMs };

    if (live && hasKubelet(machine)) {
      const drain = await this.drain(cluster, machine, status);
      if (drain === 'draining') return again;
      // Persist the give-up before going on, so the record survives the Machine.
      if (drain === 'timedOut') return { status, requeueAfterMs: 1 };
    }
    if (live && hasRole(machine, 'etcd') && machine.status?.address && !(await this.leaveEtcd(cluster, machine, status))) return again;

    try {
      const provider = this.s.providers.get(machine.spec.provider);
      await provider.deleteMachine(machineRef(machine));
    } catch (err) {
      set({ type: 'InfrastructureReady', status: 'False', reason: err instanceof ProviderError ? err.reason : 'DeleteFailed', message: errorMessage(err) });
      return { status, error: err };
    }
    // The Node goes last: with the kubelet stopped nothing registers it again.
    if (live && hasKubelet(machine) && !(await this.deleteNode(cluster, machine, status))) return again;
    return { done: true };
  }

  /**
   * Cordons the Node and evicts its pods through the eviction API: `drained` when no pod is left,
   * `timedOut` when the drain timeout passed (both set Drained=True, with the reason saying which),
   * `draining` otherwise.
   */
  private async drain(cluster: Cluster, machine: Machine, status: Status): Promise<'drained' | 'timedOut' | 'draining'> {
    const gen = machine.metadata.generation;
    const nodeName = status.nodeName ?? machine.metadata.name;
    const prev = getCondition(status.conditions, 'Drained');
    if (prev?.status === 'True') return 'drained';
    // lastTransitionTime of Drained=False marks the start of the drain (it only moves on a flip).
    const startedAt = prev?.lastTransitionTime ? Date.parse(prev.lastTransitionTime) : Date.now();
    const set = (c: ConditionInput) => (status.conditions = setCondition(status.conditions, c, gen));

    // A machine known to be dead (failed, or unhealthy when it was removed) has no kubelet to
    // confirm its pods' deletion: once evicted (their controllers then create replacements
    // elsewhere) they count as gone, the way `kubectl drain` treats an unreachable node. And when
    // the cluster's API is down as well (the only control-plane machine died) there is nothing to
    // drain through: waiting would only delay the replacement that brings the API back.
    const dead = machine.status?.phase === 'Failed' || getCondition(machine.status?.conditions, 'Healthy')?.status === 'False';
    const timeoutMs = machine.spec.drainTimeoutSeconds !== undefined ? machine.spec.drainTimeoutSeconds * 1000 : this.s.timing.drainTimeoutMs;
    let remaining: KubePod[] = [];
    let problem = '';
    try {
      const kube = await this.s.connections.kube(cluster);
      if (dead && kube && !(await kube.readyz()).ok) {
        set({ type: 'Drained', status: 'True', reason: 'APIUnavailable', message: `Node ${nodeName} not drained: the machine is dead and the cluster's API does not answer` });
        return 'drained';
      }
      const node = kube ? await kube.getNode(nodeName) : undefined;
      if (!kube) {
        problem = 'the cluster has no admin kubeconfig';
      } else if (node) {
        if (!node.spec?.unschedulable) await kube.patchNode(nodeName, { spec: { unschedulable: true } });
        remaining = podsToEvict(await kube.podsOnNode(nodeName));
        if (dead) remaining = remaining.filter((p) => !p.metadata.deletionTimestamp);
        const blocked: string[] = [];
        for (const p of remaining) {
          if (p.metadata.deletionTimestamp) continue;
          const r = await kube.evictPod(p.metadata.namespace, p.metadata.name);
          if (r === 'blocked') blocked.push(`${p.metadata.namespace}/${p.metadata.name}`);
        }
        if (blocked.length > 0) problem = `PodDisruptionBudget blocks eviction of ${blocked.join(', ')}`;
        // Evicted pods are gone once their kubelet confirms the deletion: the next look tells.
      }
    } catch (err) {
      problem = errorMessage(err);
    }

    if (!problem && remaining.length === 0) {
      set({ type: 'Drained', status: 'True', reason: 'Drained', message: `Node ${nodeName} cordoned and drained` });
      return 'drained';
    }
    if (Date.now() - startedAt >= timeoutMs) {
      set({
        type: 'Drained',
        status: 'True',
        reason: 'DrainTimeout',
        message: `gave up draining after ${Math.round(timeoutMs / 1000)} s: ${remaining.length} pods left${problem ? `; ${problem}` : ''}`.slice(0, 32768),
      });
      this.s.log.warn({ machine: machine.metadata.name, pods: remaining.length, problem }, 'drain timed out; deleting the machine anyway');
      return 'timedOut';
    }
    set({ type: 'Drained', status: 'False', reason: 'Draining', message: `${remaining.length} pods left on ${nodeName}${problem ? `; ${problem}` : ''}`.slice(0, 32768) });
    return 'draining';
  }

  /** Deletes the machine's Node; gives up (recorded) after the drain timeout when the API is unreachable. */
  private async deleteNode(cluster: Cluster, machine: Machine, status: Status): Promise<boolean> {
    const gen = machine.metadata.generation;
    const nodeName = status.nodeName ?? machine.metadata.name;
    const set = (c: ConditionInput) => (status.conditions = setCondition(status.conditions, c, gen));
    try {
      const kube = await this.s.connections.kube(cluster);
      if (!kube) return true;
      await kube.deleteNode(nodeName);
      return true;
    } catch (err) {
      const prev = getCondition(status.conditions, 'NodeDeleted');
      const since = prev?.lastTransitionTime ? Date.parse(prev.lastTransitionTime) : Date.now();
      if (Date.now() - since >= this.s.timing.drainTimeoutMs) {
        this.s.log.warn({ err, machine: machine.metadata.name }, 'giving up deleting the Node');
        return true;
      }
      set({ type: 'NodeDeleted', status: 'False', reason: 'APIUnreachable', message: errorMessage(err) });
      return false;
    }
  }

  /** Removes the machine's etcd member if the rest keeps a healthy quorum. True when it is out. */
  private async leaveEtcd(cluster: Cluster, machine: Machine, status: Status): Promise<boolean> {
    const gen = machine.metadata.generation;
    const set = (c: ConditionInput) => (status.conditions = setCondition(status.conditions, c, gen));
    if (getCondition(status.conditions, 'EtcdMemberRemoved')?.status === 'True') return true;
    const peerURL = etcdPeerURL(machine.status!.address!);
    const machines = await clusterMachines(this.s.store, cluster.metadata.project ?? '', cluster.metadata.name);
    // Ask the others first; the leaving member may already be down.
    const endpoints = [
      ...startedEtcd(machines, machine.metadata.name).map((m) => etcdClientURL(m.status!.address!)),
      etcdClientURL(machine.status!.address!),
    ];
    try {
      const api = await this.s.connections.etcd(cluster, endpoints);
      if (!api) throw new Error('the cluster has no PKI');
      const members = await api.memberList();
      const self = members.find((m) => m.peerURLs.includes(peerURL));
      if (!self) {
        set({ type: 'EtcdMemberRemoved', status: 'True', reason: 'NotAMember', message: `${peerURL} is not an etcd member` });
        return true;
      }
      const rest = members.filter((m) => m.id !== self.id);
      if (rest.length === 0) {
        set({ type: 'EtcdMemberRemoved', status: 'False', reason: 'LastMember', message: 'the last etcd member of a live cluster is not removed' });
        return false;
      }
      const health = await api.memberHealth(rest);
      if (!quorumHealthy(health)) {
        set({
          type: 'EtcdMemberRemoved',
          status: 'False',
          reason: 'QuorumAtRisk',
          message: `only ${health.filter((m) => m.healthy).length}/${health.length} remaining members are healthy`,
        });
        return false;
      }
      this.s.log.info({ machine: machine.metadata.name, member: self.id }, 'removing etcd member');
      await api.memberRemove(self.id);
      set({ type: 'EtcdMemberRemoved', status: 'True', reason: 'Removed', message: `member ${self.id} removed` });
      return true;
    } catch (err) {
      set({ type: 'EtcdMemberRemoved', status: 'False', reason: etcdFailureReason(err), message: errorMessage(err) });
      return false;
    }
  }
}
