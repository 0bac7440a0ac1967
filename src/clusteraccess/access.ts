// How Marina reaches *into* a cluster: its Kubernetes API (readiness, Nodes, Pods, Leases, and any
// other kind through discovery), each control-plane machine's own apiserver, its etcd members and
// its machines' agents. The controllers, the health checker and the add-on controllers use these
// narrow interfaces; LiveConnections (./live.ts) implements them with the real clients,
// SimConnections (./sim.ts) over the simulated clusters of the `sim` provider, and
// ProviderRoutedConnections (./routed.ts) picks one per cluster by the cluster's provider, so the
// controllers never know which.
import type { Cluster } from '../api/kinds.js';
import type { EtcdApi } from '../etcd/client.js';
import type { KubeObject, ObjectMeta, WatchEventType } from '../kube/client.js';
import type { CertificateSigningRequest, Node, Pod, PodDisruptionBudget } from '../kube/objects.js';
import type { AgentApi } from './agents.js';

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

  // What admitting real kubelets takes besides objects of known kinds (ObjectApi): their
  // certificate requests, and whether the apiserver can verify them (src/controllers/node-admission.ts).

  listCertificateSigningRequests(opts?: CallOptions): Promise<CertificateSigningRequest[]>;
  /** Adds an Approved or Denied condition through the `approval` subresource (resourceVersion of `csr`). */
  decideCertificateSigningRequest(csr: CertificateSigningRequest, condition: { type: 'Approved' | 'Denied'; reason: string; message: string }, opts?: CallOptions): Promise<void>;
  /**
   * The kubelet's /healthz through the apiserver's node proxy: ok only when the apiserver reaches
   * the kubelet and verifies its serving certificate (what `kubectl logs` and `exec` need). Never throws.
   */
  kubeletHealthz(node: string, opts?: CallOptions): Promise<Readiness>;
}

/** One control-plane machine's own kube-apiserver, addressed directly (not through the endpoint). */
export interface ApiServerProbe {
  readyz(opts?: CallOptions): Promise<Readiness>;
  /** Prometheus text of /metrics. */
  metrics(opts?: CallOptions): Promise<string>;
}

/** Where an object lives in a cluster. */
export interface ObjectRef {
  apiVersion: string;
  kind: string;
  namespace?: string;
  name: string;
}

/** Any object of a cluster, as its API returns it. */
export interface ClusterObject extends KubeObject {
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
}

/** What server-side apply takes: a (partial) object that names itself. */
export interface ApplyObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta & { name: string };
}

/** The cluster's API does not serve this kind (a CRD not installed, or not established yet). */
export class UnknownKindError extends Error {
  constructor(
    readonly apiVersion: string,
    readonly kind: string,
  ) {
    super(`the cluster's API does not serve ${kind} in ${apiVersion}`);
    this.name = 'UnknownKindError';
  }
}

export interface ObjectWatchOptions {
  /** Only objects with these labels (a Kubernetes label selector), in every namespace. */
  labelSelector: string;
  /** Every change, serially; the initial list arrives as ADDED. */
  onEvent(type: WatchEventType, obj: ClusterObject): void;
  /** A failure the watch recovers from by itself (it resumes until stopped). */
  onError?(err: unknown): void;
}

/**
 * Objects of any kind the cluster's API serves, found through discovery (cached with the cluster's
 * client; a kind the cache does not know is looked up again, so a CRD established a moment ago is
 * found). What the add-on controllers read, apply, delete and watch.
 */
export interface ObjectApi {
  /** Is `kind` of `apiVersion` namespaced? Throws UnknownKindError when the API does not serve it. */
  namespaced(apiVersion: string, kind: string, opts?: CallOptions): Promise<boolean>;
  /** undefined when the object does not exist. */
  get(ref: ObjectRef, opts?: CallOptions): Promise<ClusterObject | undefined>;
  /** Server-side apply under `fieldManager`, forcing conflicts on the fields `obj` sets (and only those). */
  apply(obj: ApplyObject, fieldManager: string, opts?: CallOptions): Promise<ClusterObject>;
  /** Deletion with background propagation; succeeds when the object is already gone. */
  delete(ref: ObjectRef, opts?: CallOptions): Promise<void>;
  /**
   * Follows the objects of one kind (list, then watch; resumes after errors). Stops with `stop()`,
   * or when the cluster's clients are closed (a new ObjectApi comes with the next connection).
   */
  watch(apiVersion: string, kind: string, opts: ObjectWatchOptions): Promise<{ stop(): void }>;
}

export interface ClusterConnections {
  /** undefined while the cluster has no PKI secret. `endpoints`: etcd client URLs to use. */
  etcd(cluster: Cluster, endpoints: string[]): Promise<EtcdApi | undefined>;
  /** undefined while the cluster has no admin kubeconfig. Talks through the cluster endpoint. */
  kube(cluster: Cluster): Promise<KubeApi | undefined>;
  /** undefined while the cluster has no admin kubeconfig. The same client as `kube`, for any kind. */
  objects(cluster: Cluster): Promise<ObjectApi | undefined>;
  /**
   * false: the cluster runs no workloads, so `objects` never answers and nothing should wait for
   * it (a simulated cluster: its machines run no kubelet that could start a pod). Absent: true.
   */
  runsWorkloads?(cluster: Cluster): boolean;
  /** undefined while the cluster has no admin kubeconfig. `address`: the machine's address. */
  apiserverAt(cluster: Cluster, address: string): Promise<ApiServerProbe | undefined>;
  /** The machine agent at `agentURL` (Machine.status.agentURL) of one of the cluster's machines. */
  agent(cluster: Cluster, agentURL: string): AgentApi;
  /** Closes what is cached for the cluster. */
  forget(cluster: { project: string; name: string }): void;
  close(): Promise<void>;
}
