// The simulated world of the `sim` provider: machines that exist only in memory (and in a small
// state file, so they outlive a Marina restart), and the clusters they form — an etcd cluster with
// the membership rules of real etcd, a Kubernetes API behind the cluster's endpoint with Nodes
// and leader Leases, and a machine agent per machine. The provider (src/providers/sim) drives the
// machines' lifecycle; Marina's controllers and health checker reach the clusters through the
// cluster-access seam (src/clusteraccess/sim.ts) exactly as they reach real ones; faults
// (./faults.ts) break parts of it on purpose.
import { randomBytes } from 'node:crypto';
import { kubeletMaySetLabel } from '../kube/node-labels.js';
import type { Node } from '../kube/objects.js';
import {
  alive,
  apiserverStarted,
  clusterKey,
  etcdUp,
  etcdUpSince,
  kubeletDelay,
  kubeletStarted,
  machineKey,
  quorumOf,
  type ClusterState,
  type MachineState,
  type MemberState,
  type NodeState,
  type SimMachineSpec,
} from './model.js';
import { memoryPersistence, type SimPersistence } from './persist.js';
import { DEFAULT_SIM_TIMING, type SimTiming } from './timing.js';

export interface SimMachineRef {
  project: string;
  cluster: string;
  name: string;
  uid: string;
}

export type SimMachineState = 'Missing' | 'Provisioning' | 'Running' | 'Failed';

export interface SimDescription {
  state: SimMachineState;
  address?: string;
  startedAt?: number;
  failureReason?: string;
  failureMessage?: string;
}

export interface SimWorldOptions {
  timing?: Partial<SimTiming>;
  persistence?: SimPersistence;
  now?: () => number;
}

/** The /15 reserved for benchmarking (RFC 2544): addresses nothing on this host answers on. */
const ADDRESS_BASE = (198 << 24) | (18 << 16);
const ADDRESS_COUNT = 2 ** 17;

export const SIM_AGENT_PORT = 10250;
export const SIM_ENDPOINT_PORT = 6443;

const formatAddress = (n: number): string => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
/** The host of `scheme://host:port/...` or `host:port` (IPv4 only: the world's addresses are). */
const hostOf = (url: string): string => {
  const start = url.indexOf('://');
  const rest = start >= 0 ? url.slice(start + 3) : url;
  const end = rest.search(/[:/]/);
  return end >= 0 ? rest.slice(0, end) : rest;
};

/** A cluster's live state: its record plus its machines and Nodes. */
export class SimCluster {
  readonly machines = new Map<string, MachineState>();
  readonly nodes = new Map<string, NodeState>();
  /** When a leader last held the kube-system leases (renewed whenever a control plane answers). */
  leaseRenewedAt?: number;

  constructor(public state: ClusterState) {}

  get key(): string {
    return clusterKey(this.state.project, this.state.name);
  }
}

export class SimWorld {
  readonly timing: SimTiming;
  /** Things real etcd / Kubernetes would have refused (a split-brain etcd start, a kubelet setting a reserved label): tests assert none. */
  readonly violations: string[] = [];
  private readonly clusters = new Map<string, SimCluster>();
  private readonly byAddress = new Map<string, MachineState>();
  private readonly usedAddresses = new Set<number>();
  private nextAddress = 1;
  private readonly persist: SimPersistence;
  private readonly nodeListeners = new Set<(project: string, cluster: string, node: string) => void>();
  private readonly timers = new Set<NodeJS.Timeout>();
  readonly now: () => number;
  private closed = false;

  constructor(opts: SimWorldOptions = {}) {
    this.timing = { ...DEFAULT_SIM_TIMING, ...opts.timing };
    this.persist = opts.persistence ?? memoryPersistence();
    this.now = opts.now ?? Date.now;
    this.load();
  }

  private load(): void {
    const snap = this.persist.load();
    for (const c of snap.clusters) {
      const sc = new SimCluster(c);
      this.clusters.set(sc.key, sc);
      if (c.endpoint) this.usedAddresses.add(this.addressNumber(c.endpoint.address));
    }
    for (const m of snap.machines) {
      this.cluster(m.project, m.cluster).machines.set(m.name, m);
      this.byAddress.set(m.address, m);
      this.usedAddresses.add(this.addressNumber(m.address));
    }
    for (const n of snap.nodes) this.cluster(n.project, n.cluster).nodes.set(n.node.name, n.node);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.persist.close();
  }

  // ---------------------------------------------------------------------------------------------
  // lookups

  cluster(project: string, name: string): SimCluster {
    const key = clusterKey(project, name);
    let c = this.clusters.get(key);
    if (!c) {
      c = new SimCluster({ project, name, backends: [], members: [], nextRv: 1 });
      this.clusters.set(key, c);
    }
    return c;
  }

  findCluster(project: string, name: string): SimCluster | undefined {
    return this.clusters.get(clusterKey(project, name));
  }

  /** The cluster as its API, etcd and agents are reached: one the world does not know is empty (nothing answers). */
  view(project: string, name: string): SimCluster {
    return this.findCluster(project, name) ?? new SimCluster({ project, name, backends: [], members: [], nextRv: 1 });
  }

  machine(ref: { project: string; cluster: string; name: string }): MachineState | undefined {
    return this.findCluster(ref.project, ref.cluster)?.machines.get(ref.name);
  }

  machineAt(address: string): MachineState | undefined {
    return this.byAddress.get(address);
  }

  /** The machine of `c` serving at `url` (any URL whose host is the machine's address). */
  machineOfURL(c: SimCluster, url: string): MachineState | undefined {
    const m = this.byAddress.get(hostOf(url));
    return m && m.project === c.state.project && m.cluster === c.state.name ? m : undefined;
  }

  /** Every machine the world runs (prepared or started), for the provider's listMachines. */
  allMachines(): MachineState[] {
    return [...this.clusters.values()].flatMap((c) => [...c.machines.values()]);
  }

  allClusters(): SimCluster[] {
    return [...this.clusters.values()];
  }

  // ---------------------------------------------------------------------------------------------
  // machines (the provider's side)

  prepare(ref: SimMachineRef): MachineState {
    const existing = this.machine(ref);
    if (existing && existing.uid === ref.uid) return existing;
    // A machine of an earlier object with the same name: never adopted, cleared out first.
    if (existing) this.remove({ ...ref, uid: existing.uid });
    const m: MachineState = { project: ref.project, cluster: ref.cluster, name: ref.name, uid: ref.uid, address: this.allocate(), preparedAt: this.now() };
    this.cluster(ref.project, ref.cluster).machines.set(m.name, m);
    this.byAddress.set(m.address, m);
    this.saveMachine(m);
    return m;
  }

  /** Boots a prepared machine with what its bootstrap data says it runs; a started one is left as is. */
  start(m: MachineState, spec: SimMachineSpec): void {
    if (m.startedAt !== undefined) return;
    const c = this.cluster(m.project, m.cluster);
    const now = this.now();
    m.startedAt = now;
    m.spec = spec;
    if (spec.etcd) this.startEtcd(c, m, spec.etcd);
    this.saveMachine(m);
    // Wake whoever watches the cluster's Nodes when something may have come up.
    const t = this.timing;
    for (const delay of new Set([t.etcdMs, t.etcdMs + t.learnerSyncMs, spec.apiserver ? t.controlPlaneMs : 0, spec.kubelet ? kubeletDelay(spec, t) : 0])) {
      if (delay > 0) this.later(delay + 1, () => this.settle(c));
    }
  }

  /** What the machine's agent would tell a provider (the local provider's rules, see describe in src/providers/local). */
  describe(ref: SimMachineRef): SimDescription {
    const m = this.machine(ref);
    if (!m || m.uid !== ref.uid) return { state: 'Missing' };
    const base = { address: m.address, ...(m.startedAt !== undefined ? { startedAt: m.startedAt } : {}) };
    if (m.startedAt === undefined) return { ...base, state: 'Provisioning' };
    if (m.killedAt !== undefined) return { ...base, state: 'Failed', failureReason: 'MachineStopped', failureMessage: 'the machine is not running (killed)' };
    const c = this.cluster(m.project, m.cluster);
    const now = this.now();
    if (this.agentAnswers(c, m) && this.agentHealthy(c, m, now)) {
      if (m.healthyAt === undefined) {
        m.healthyAt = now;
        this.saveMachine(m);
      }
      return { ...base, state: 'Running' };
    }
    // Healthy once: an unhealthy or unreachable agent is a problem of the running machine, not a failed start.
    if (m.healthyAt !== undefined) return { ...base, state: 'Provisioning' };
    const age = now - m.startedAt;
    if (age > this.timing.startTimeoutMs) {
      return { ...base, state: 'Failed', failureReason: 'Unhealthy', failureMessage: `machine agent unhealthy for ${Math.round(age / 1000)}s since start${m.etcdError ? `: etcd: ${m.etcdError}` : ''}` };
    }
    return { ...base, state: 'Provisioning' };
  }

  /** Everything of the machine is gone; its etcd member stays until someone removes it, as in etcd. */
  /** Removes the machine made for `ref.uid`; one of the same name made for another uid stays. */
  remove(ref: SimMachineRef): void {
    const c = this.findCluster(ref.project, ref.cluster);
    const m = c?.machines.get(ref.name);
    if (!c || !m || m.uid !== ref.uid) return;
    c.machines.delete(m.name);
    this.byAddress.delete(m.address);
    this.usedAddresses.delete(this.addressNumber(m.address));
    this.persist.deleteMachine(machineKey(m));
    const node = m.spec?.kubelet ? c.nodes.get(m.spec.kubelet.nodeName) : undefined;
    if (node && node.kubeletStoppedAt === undefined) {
      node.kubeletStoppedAt = this.now();
      this.saveNode(c, node);
    }
    this.dropIfEmpty(c);
  }

  ensureEndpoint(ref: { project: string; name: string; uid: string }, backends: string[]): { address: string; port: number } {
    const c = this.cluster(ref.project, ref.name);
    if (c.state.endpoint && c.state.uid !== ref.uid) this.releaseEndpoint(c);
    c.state.uid = ref.uid;
    c.state.endpoint ??= { address: this.allocate(), port: SIM_ENDPOINT_PORT };
    c.state.backends = [...backends].sort();
    this.saveCluster(c);
    return c.state.endpoint;
  }

  deleteEndpoint(ref: { project: string; name: string }): void {
    const c = this.findCluster(ref.project, ref.name);
    if (!c) return;
    this.releaseEndpoint(c);
    this.saveCluster(c);
    this.dropIfEmpty(c);
  }

  private releaseEndpoint(c: SimCluster): void {
    if (c.state.endpoint) this.usedAddresses.delete(this.addressNumber(c.state.endpoint.address));
    c.state.endpoint = undefined;
    c.state.backends = [];
  }

  /** A cluster without machines has no etcd data and no API left; without an endpoint it is gone. */
  private dropIfEmpty(c: SimCluster): void {
    if (c.machines.size > 0) return;
    if (c.state.members.length > 0 || c.nodes.size > 0) {
      c.state.members = [];
      for (const name of c.nodes.keys()) this.persist.deleteNode(c.key, name);
      c.nodes.clear();
      this.saveCluster(c);
    }
    if (!c.state.endpoint) {
      this.clusters.delete(c.key);
      this.persist.deleteCluster(c.key);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // etcd

  /** A member starts with the flags its bootstrap gave it; one real etcd would refuse keeps failing. */
  private startEtcd(c: SimCluster, m: MachineState, etcd: NonNullable<SimMachineSpec['etcd']>): void {
    const refuse = (why: string) => {
      m.etcdError = why;
      this.violations.push(`${c.key}/${m.name}: ${why}`);
    };
    if (etcd.state === 'new') {
      if (c.state.members.length > 0) return refuse(`etcd ${etcd.name} bootstraps a new cluster although ${c.state.members.length} members exist`);
      c.state.members.push({ id: newMemberId(), peerURL: etcd.peerURL, name: '', clientURL: '', isLearner: false });
      this.saveCluster(c);
      return;
    }
    const self = c.state.members.find((x) => x.peerURL === etcd.peerURL);
    if (!self) return refuse(`etcd ${etcd.name} joins with --initial-cluster-state=existing but was never added (member add)`);
    const expected = c.state.members.map((x) => `${x === self ? etcd.name : x.name || this.machineOfURL(c, x.peerURL)?.name || '?'}=${x.peerURL}`).sort();
    const given = etcd.initialCluster.map((x) => `${x.name}=${x.peerURL}`).sort();
    if (expected.join(',') !== given.join(',')) refuse(`etcd ${etcd.name}: --initial-cluster ${given.join(',')} does not match the members ${expected.join(',')}`);
  }

  /** The machine running `member`, if its etcd serves. */
  memberMachine(c: SimCluster, member: MemberState): MachineState | undefined {
    const m = this.machineOfURL(c, member.peerURL);
    return m?.spec?.etcd?.peerURL === member.peerURL ? m : undefined;
  }

  memberRunning(c: SimCluster, member: MemberState, now = this.now()): boolean {
    const m = this.memberMachine(c, member);
    return !!m && etcdUp(m, this.timing, now);
  }

  /** A learner may be promoted once it caught up with the leader. */
  learnerInSync(c: SimCluster, member: MemberState, now = this.now()): boolean {
    const m = this.memberMachine(c, member);
    return !!m && etcdUp(m, this.timing, now) && now >= etcdUpSince(m, this.timing) + this.timing.learnerSyncMs;
  }

  quorum(c: SimCluster, now = this.now()): boolean {
    const voting = c.state.members.filter((x) => !x.isLearner);
    return voting.length > 0 && voting.filter((x) => this.memberRunning(c, x, now)).length >= quorumOf(voting.length);
  }

  newMemberId(): string {
    return newMemberId();
  }

  // ---------------------------------------------------------------------------------------------
  // the Kubernetes side

  /** kube-apiserver on `m` answers /readyz: started, and it reaches a voting member of a quorate etcd. */
  apiserverReady(c: SimCluster, m: MachineState, now = this.now()): boolean {
    if (!apiserverStarted(m, this.timing, now) || !this.quorum(c, now)) return false;
    const servers = m.spec!.apiserver!.etcdServers;
    return c.state.members.some((x) => !x.isLearner && this.memberRunning(c, x, now) && servers.includes(this.memberMachine(c, x)!.spec!.etcd!.clientURL));
  }

  /** The API answers through the endpoint: one backend's apiserver is ready. */
  apiUp(c: SimCluster, now = this.now()): boolean {
    if (!c.state.endpoint) return false;
    return c.state.backends.some((b) => {
      const m = this.machineOfURL(c, `https://${b}`);
      return !!m && this.apiserverReady(c, m, now);
    });
  }

  /** Marina reaches this machine's agent (the machine lives, nothing cuts it off). */
  agentAnswers(c: SimCluster, m: MachineState): boolean {
    return alive(m) && m.agentUnreachableAt === undefined && c.state.partitionedAt === undefined;
  }

  /** What the agent's /healthz reports: every process ready and, with a kubelet, heartbeats getting through. */
  agentHealthy(c: SimCluster, m: MachineState, now = this.now()): boolean {
    return this.processes(c, m, now).every((p) => p.ready) && (!m.spec?.kubelet || this.heartbeating(c, m, now));
  }

  heartbeating(c: SimCluster, m: MachineState, now = this.now()): boolean {
    return kubeletStarted(m, this.timing, now) && this.apiUp(c, now);
  }

  /** The processes the machine's agent supervises, as its /healthz lists them. */
  processes(c: SimCluster, m: MachineState, now = this.now()): { name: string; state: string; ready: boolean; restarts: number; lastError?: string }[] {
    const out: { name: string; state: string; ready: boolean; restarts: number; lastError?: string }[] = [];
    const spec = m.spec;
    if (!spec) return out;
    if (spec.etcd) {
      const up = etcdUp(m, this.timing, now);
      const state = m.etcdDownAt !== undefined || m.etcdError ? 'backoff' : 'running';
      out.push({ name: 'etcd', state, ready: up, restarts: 0, ...(m.etcdError ? { lastError: m.etcdError } : m.etcdDownAt !== undefined ? { lastError: 'etcd stopped (simulated fault)' } : {}) });
    }
    if (spec.apiserver) {
      const ready = this.apiserverReady(c, m, now);
      const started = apiserverStarted(m, this.timing, now);
      out.push({ name: 'kube-apiserver', state: 'running', ready, restarts: 0 });
      out.push({ name: 'kube-controller-manager', state: 'running', ready: started, restarts: 0 });
      out.push({ name: 'kube-scheduler', state: 'running', ready: started, restarts: 0 });
    }
    return out;
  }

  /**
   * Brings the cluster up to date with the time: members that started publish their name and
   * client URL, kubelets that are up register their Node once the API answers. Every call into
   * the cluster settles it first.
   */
  settle(c: SimCluster): void {
    if (this.closed) return;
    const now = this.now();
    let changed = false;
    for (const x of c.state.members) {
      if (x.name || !this.memberRunning(c, x, now)) continue;
      const etcd = this.memberMachine(c, x)!.spec!.etcd!;
      x.name = etcd.name;
      x.clientURL = etcd.clientURL;
      changed = true;
    }
    if (changed) this.saveCluster(c);
    if (!this.apiUp(c, now)) return;
    c.leaseRenewedAt = now;
    for (const m of c.machines.values()) {
      const k = m.spec?.kubelet;
      if (!k || c.nodes.has(k.nodeName) || !kubeletStarted(m, this.timing, now)) continue;
      // NodeRestriction: a kubelet may set only some labels on itself (Marina sets the others).
      const reserved = Object.keys(k.labels).filter((l) => !kubeletMaySetLabel(l));
      if (reserved.length > 0) this.violations.push(`${c.key}/${k.nodeName}: kubelet registers reserved labels ${reserved.join(', ')}`);
      const node: NodeState = {
        name: k.nodeName,
        labels: {
          'kubernetes.io/hostname': k.nodeName,
          'kubernetes.io/os': 'linux',
          'kubernetes.io/arch': 'amd64',
          'marina.dev/machine': m.name,
          'marina.dev/sim': 'true',
          ...k.labels,
        },
        annotations: {},
        taints: k.taints.map((t) => ({ ...t })),
        resourceVersion: c.state.nextRv++,
        createdAt: now,
        capacity: { ...k.capacity },
        kubeletVersion: k.kubeletVersion,
      };
      c.nodes.set(node.name, node);
      this.saveNode(c, node);
      this.saveCluster(c);
      this.nodeChanged(c, node.name);
    }
  }

  /** The Node as the API serves it, its conditions as they are now. */
  nodeObject(c: SimCluster, n: NodeState, now = this.now()): Node {
    const m = [...c.machines.values()].find((x) => x.spec?.kubelet?.nodeName === n.name);
    let ready: { status: 'True' | 'False' | 'Unknown'; reason: string; message: string } = { status: 'True', reason: 'KubeletReady', message: 'simulated kubelet is posting ready status' };
    const stopped = m?.killedAt ?? n.kubeletStoppedAt ?? (m ? undefined : n.createdAt);
    if (stopped !== undefined && now - stopped >= this.timing.nodeMonitorGraceMs) {
      ready = { status: 'Unknown', reason: 'NodeStatusUnknown', message: 'Kubelet stopped posting node status.' };
    } else if (m?.nodeNotReadyAt !== undefined) {
      ready = { status: 'False', reason: 'KubeletNotReady', message: 'container runtime network not ready (simulated fault)' };
    }
    const pressure = (type: string) => ({ type, status: 'False' as const, reason: `KubeletHas${type === 'PIDPressure' ? 'SufficientPID' : type === 'DiskPressure' ? 'NoDiskPressure' : 'SufficientMemory'}` });
    return {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: {
        name: n.name,
        resourceVersion: String(n.resourceVersion),
        creationTimestamp: new Date(n.createdAt).toISOString(),
        labels: { ...n.labels },
        annotations: { ...n.annotations },
      },
      spec: { ...(n.taints.length > 0 ? { taints: n.taints.map((t) => ({ ...t, effect: t.effect as 'NoSchedule' })) } : {}), ...(n.unschedulable ? { unschedulable: true } : {}) },
      status: {
        conditions: [{ type: 'Ready', ...ready }, pressure('MemoryPressure'), pressure('DiskPressure'), pressure('PIDPressure')],
        capacity: { ...n.capacity },
        allocatable: { ...n.capacity },
        nodeInfo: { kubeletVersion: n.kubeletVersion, operatingSystem: 'linux', architecture: 'amd64' },
        ...(m ? { addresses: [{ type: 'InternalIP', address: m.address }, { type: 'Hostname', address: n.name }] } : {}),
      },
    };
  }

  // ---------------------------------------------------------------------------------------------
  // events and persistence

  /** Called on every change of a Node (registered, patched, deleted, its readiness faulted). */
  onNodeEvent(listener: (project: string, cluster: string, node: string) => void): () => void {
    this.nodeListeners.add(listener);
    return () => this.nodeListeners.delete(listener);
  }

  nodeChanged(c: SimCluster, node: string): void {
    for (const l of this.nodeListeners) {
      try {
        l(c.state.project, c.state.name, node);
      } catch {
        /* a listener's failure is its own */
      }
    }
  }

  saveMachine(m: MachineState): void {
    if (!this.closed) this.persist.putMachine(machineKey(m), m);
  }

  saveCluster(c: SimCluster): void {
    if (!this.closed) this.persist.putCluster(c.key, c.state);
  }

  saveNode(c: SimCluster, n: NodeState): void {
    if (!this.closed) this.persist.putNode(c.key, n);
  }

  deleteNode(c: SimCluster, name: string): void {
    c.nodes.delete(name);
    if (!this.closed) this.persist.deleteNode(c.key, name);
  }

  /** Runs `fn` after `ms` unless the world closed first; never keeps the process alive. */
  later(ms: number, fn: () => void): void {
    if (this.closed) return;
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (!this.closed) fn();
    }, ms);
    t.unref();
    this.timers.add(t);
  }

  // ---------------------------------------------------------------------------------------------
  // addresses

  private addressNumber(address: string): number {
    const p = address.split('.').map(Number);
    return (((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0) - (ADDRESS_BASE >>> 0);
  }

  /** The next free address of 198.18.0.0/15 after the previous one (x.x.x.0 and .255 skipped). */
  private allocate(): string {
    for (let i = 0; i < ADDRESS_COUNT; i++) {
      const n = this.nextAddress;
      this.nextAddress = (this.nextAddress + 1) % ADDRESS_COUNT;
      const last = n & 255;
      if (last === 0 || last === 255 || this.usedAddresses.has(n)) continue;
      this.usedAddresses.add(n);
      return formatAddress(((ADDRESS_BASE >>> 0) + n) >>> 0);
    }
    throw new Error('the simulated address space (198.18.0.0/15) is exhausted');
  }
}

/** A random uint64 member id, as a decimal string (never 0). */
function newMemberId(): string {
  return (randomBytes(8).readBigUInt64BE() | 1n).toString();
}
