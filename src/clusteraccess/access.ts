// How Marina reaches *into* a cluster: its Kubernetes API (readiness, Nodes, Pods, Leases), each
// control-plane machine's own apiserver, and its etcd members. The controllers and the health
// checker use these narrow interfaces; LiveConnections (./live.ts) implements them with the real
// clients, tests substitute their own ClusterConnections.
import type { Cluster } from '../api/kinds.js';
import type { EtcdApi } from '../etcd/client.js';
import type { Node, Pod, PodDisruptionBudget } from '../kube/objects.js';

/** The parts of a coordination.k8s.io Lease a leader-election check reads. */
export interface LeaseInfo {
  holderIdentity?: string;
  renewTime?: string;
  leaseDurationSeconds?: number;
}

/**
 * `blocked`: a PodDisruptionBudget refused (429); `{ blockedBy }` names it (namespace/name) when
 * the API said which one.
 */
export type EvictionResult = 'evicted' | 'blocked' | 'gone' | { blockedBy: string };

/** Every call takes the caller's AbortSignal (a reconcile's): a stop of Marina ends it at once. */
export interface CallOptions {
  signal?: AbortSignal;
}

export interface Readiness {
  ok: boolean;
  /** What answered (or did not), for people. */
  message: string;
}

export interface KubeApi {
  /** GET /readyz; never throws. */
  readyz(opts?: CallOptions): Promise<Readiness>;
  /** undefined when the Node does not exist. */
  getNode(name: string, opts?: CallOptions): Promise<Node | undefined>;
  /** JSON merge patch; include metadata.resourceVersion for optimistic concurrency. */
  patchNode(name: string, patch: Record<string, unknown>, opts?: CallOptions): Promise<void>;
  /** Succeeds when the Node is already gone. */
  deleteNode(name: string, opts?: CallOptions): Promise<void>;
  podsOnNode(name: string, opts?: CallOptions): Promise<Pod[]>;
  /** policy/v1 eviction: `blocked` when a PodDisruptionBudget refuses (429). */
  evictPod(namespace: string, name: string, opts?: CallOptions): Promise<EvictionResult>;
  listNodes(opts?: CallOptions): Promise<Node[]>;
  /** undefined when the Lease does not exist. */
  getLease(namespace: string, name: string, opts?: CallOptions): Promise<LeaseInfo | undefined>;
  /** Every PodDisruptionBudget of the cluster (all namespaces). */
  listPodDisruptionBudgets(opts?: CallOptions): Promise<PodDisruptionBudget[]>;
  /** GET /version: the apiserver's gitVersion (what `kubectl version` reports as the server version). */
  serverVersion(opts?: CallOptions): Promise<string>;
}

/** One control-plane machine's own kube-apiserver, addressed directly (not through the endpoint). */
export interface ApiServerProbe {
  readyz(opts?: CallOptions): Promise<Readiness>;
  /** Prometheus text of /metrics. */
  metrics(opts?: CallOptions): Promise<string>;
}

export interface ClusterConnections {
  /** undefined while the cluster has no PKI secret. `endpoints`: etcd client URLs to use. */
  etcd(cluster: Cluster, endpoints: string[]): Promise<EtcdApi | undefined>;
  /** undefined while the cluster has no admin kubeconfig. Talks through the cluster endpoint. */
  kube(cluster: Cluster): Promise<KubeApi | undefined>;
  /** undefined while the cluster has no admin kubeconfig. `address`: the machine's address. */
  apiserverAt(cluster: Cluster, address: string): Promise<ApiServerProbe | undefined>;
  /** Closes what is cached for the cluster. */
  forget(cluster: { project: string; name: string }): void;
  close(): Promise<void>;
}
