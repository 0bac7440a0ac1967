// The state of simulated machines and clusters, and what follows from it at a moment in time.
// Everything that takes time (an etcd member starting, kube-apiserver getting ready, a learner
// catching up, a Node going Unknown after its kubelet stopped) is a timestamp compared with "now",
// never a timer: the state is the same after a Marina restart as before, and nothing drifts.
import type { SimTiming } from './timing.js';

/** What a machine runs, as read from its bootstrap data (the provider translates it). */
export interface SimMachineSpec {
  roles: string[];
  etcd?: {
    name: string;
    peerURL: string;
    clientURL: string;
    state: 'new' | 'existing';
    initialCluster: { name: string; peerURL: string }[];
    /** --max-learners (etcd's default 1). */
    maxLearners: number;
  };
  /** kube-apiserver (with kube-controller-manager and kube-scheduler beside it). */
  apiserver?: { etcdServers: string[] };
  kubelet?: {
    nodeName: string;
    labels: Record<string, string>;
    taints: { key: string; value?: string; effect: string }[];
    capacity: { cpu: string; memory: string; pods: string };
    kubeletVersion: string;
  };
}

export interface MachineState {
  project: string;
  cluster: string;
  name: string;
  uid: string;
  address: string;
  preparedAt: number;
  startedAt?: number;
  spec?: SimMachineSpec;
  /** The first time its agent was healthy: from then on an unhealthy agent is not a failed start. */
  healthyAt?: number;
  /** Fault: the machine's process group is gone (a machine killed is a machine gone). */
  killedAt?: number;
  /** Fault: its kubelet reports the Node NotReady. */
  nodeNotReadyAt?: number;
  /** Fault: Marina cannot reach its agent (the machine itself runs on). */
  agentUnreachableAt?: number;
  /** Fault: its etcd process is down. */
  etcdDownAt?: number;
  /** After an etcd fault was cleared: when its etcd process serves again (it restarts). */
  etcdRestartedAt?: number;
  /** Why its etcd cannot start at all (a join real etcd would refuse); it keeps failing. */
  etcdError?: string;
}

export interface MemberState {
  /** uint64 as a decimal string, as etcd's JSON gateway sends it. */
  id: string;
  peerURL: string;
  /** Empty until the member first started (etcd learns a member's name and client URL then). */
  name: string;
  clientURL: string;
  isLearner: boolean;
}

export interface NodeState {
  name: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  taints: { key: string; value?: string; effect: string }[];
  unschedulable?: boolean;
  resourceVersion: number;
  createdAt: number;
  /** When its kubelet stopped posting status (its machine was killed or deleted). */
  kubeletStoppedAt?: number;
  /** The Node's capacity and version, as its kubelet registered it. */
  capacity: Record<string, string>;
  kubeletVersion: string;
}

export interface ClusterState {
  project: string;
  name: string;
  /** uid of the Cluster the endpoint was made for. */
  uid?: string;
  endpoint?: { address: string; port: number };
  /** host:port of the apiservers behind the endpoint. */
  backends: string[];
  members: MemberState[];
  /** Fault: nothing of the cluster answers Marina (its machines run on and see each other). */
  partitionedAt?: number;
  /** resourceVersion of the next Node change. */
  nextRv: number;
}

export const clusterKey = (project: string, cluster: string): string => `${project}/${cluster}`;
export const machineKey = (m: { project: string; cluster: string; name: string }): string => `${m.project}/${m.cluster}/${m.name}`;

/** When a machine's kubelet (and agent) is up: its slowest role decides. */
export function kubeletDelay(spec: SimMachineSpec, t: SimTiming): number {
  return spec.apiserver ? t.controlPlaneMs : t.workerMs;
}

export function alive(m: MachineState): boolean {
  return m.startedAt !== undefined && m.killedAt === undefined;
}

/** Its etcd process serves. */
export function etcdUp(m: MachineState, t: SimTiming, now: number): boolean {
  if (!alive(m) || !m.spec?.etcd || m.etcdDownAt !== undefined || m.etcdError) return false;
  return now >= etcdUpSince(m, t);
}

export function etcdUpSince(m: MachineState, t: SimTiming): number {
  return Math.max(m.startedAt! + t.etcdMs, m.etcdRestartedAt ?? 0);
}

/** kube-apiserver's own start-up is over (whether it can reach etcd is the cluster's business). */
export function apiserverStarted(m: MachineState, t: SimTiming, now: number): boolean {
  return alive(m) && !!m.spec?.apiserver && now >= m.startedAt! + t.controlPlaneMs;
}

export function kubeletStarted(m: MachineState, t: SimTiming, now: number): boolean {
  return alive(m) && !!m.spec?.kubelet && now >= m.startedAt! + kubeletDelay(m.spec, t);
}

/** Members needed for a quorum among `n` voting members (as src/etcd/membership.ts counts). */
export function quorumOf(n: number): number {
  return Math.floor(n / 2) + 1;
}
