// The core Kubernetes objects Marina reads and writes (Nodes, their taints and conditions, Leases,
// Pods): only the fields some module uses. The machine agent's virtual kubelet writes them; the
// controllers and the health checker read them through a cluster's API.
import type { KubeObject, ObjectMeta } from './client.js';

/** Metadata of an object read back from (or written to) the API: it always has a name. */
export type NamedMeta = ObjectMeta & { name: string };

export interface Taint {
  key: string;
  value?: string;
  effect: 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute';
  timeAdded?: string;
}

export interface NodeCondition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason?: string;
  message?: string;
  lastHeartbeatTime?: string;
  lastTransitionTime?: string;
}

export interface NodeStatus {
  conditions?: NodeCondition[];
  addresses?: { type: string; address: string }[];
  capacity?: Record<string, string>;
  allocatable?: Record<string, string>;
  nodeInfo?: Record<string, string>;
  daemonEndpoints?: { kubeletEndpoint: { Port: number } };
}

export interface Node extends KubeObject {
  metadata: NamedMeta;
  spec?: { podCIDR?: string; podCIDRs?: string[]; taints?: Taint[]; unschedulable?: boolean; providerID?: string };
  status?: NodeStatus;
}

export interface Lease extends KubeObject {
  metadata: NamedMeta;
  spec?: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    renewTime?: string;
    acquireTime?: string;
  };
}

export interface ContainerSpec {
  name: string;
  image?: string;
  restartPolicy?: string;
}

export interface PodCondition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason?: string;
  message?: string;
  lastProbeTime?: string | null;
  lastTransitionTime?: string;
  observedGeneration?: number;
}

export interface ContainerStatus {
  name: string;
  image: string;
  imageID: string;
  containerID?: string;
  ready: boolean;
  started?: boolean;
  restartCount: number;
  state: Record<string, Record<string, unknown>>;
  lastState?: Record<string, unknown>;
}

export interface PodStatus {
  phase?: string;
  conditions?: PodCondition[];
  hostIP?: string;
  hostIPs?: { ip: string }[];
  podIP?: string;
  podIPs?: { ip: string }[];
  startTime?: string;
  containerStatuses?: ContainerStatus[];
  initContainerStatuses?: ContainerStatus[];
  observedGeneration?: number;
  qosClass?: string;
}

export interface Pod extends KubeObject {
  metadata: NamedMeta & { namespace: string };
  spec?: {
    nodeName?: string;
    containers?: ContainerSpec[];
    initContainers?: ContainerSpec[];
    readinessGates?: { conditionType: string }[];
    hostNetwork?: boolean;
    restartPolicy?: string;
  };
  status?: PodStatus;
}

/** policy/v1 PodDisruptionBudget: what an upgrade's preflight reads to list the budgets that will block drains. */
export interface PodDisruptionBudget extends KubeObject {
  metadata: NamedMeta & { namespace: string };
  spec?: { minAvailable?: number | string; maxUnavailable?: number | string; selector?: { matchLabels?: Record<string, string> } };
  status?: { currentHealthy?: number; desiredHealthy?: number; disruptionsAllowed?: number; expectedPods?: number };
}

/** A certificates.k8s.io/v1 CertificateSigningRequest (kubelet client and serving certificates). */
export interface CertificateSigningRequest extends KubeObject {
  metadata: NamedMeta;
  spec: { request: string; signerName: string; username?: string; groups?: string[]; usages?: string[] };
  status?: { conditions?: { type: string; status?: string; reason?: string; message?: string }[]; certificate?: string };
}

/** A v1 Secret (what Marina writes into a cluster: kubelet bootstrap tokens). */
export interface Secret extends KubeObject {
  apiVersion: string;
  kind: string;
  metadata: NamedMeta & { namespace: string };
  type?: string;
  /** Values in base64. */
  data?: Record<string, string>;
}

/** A v1 Endpoints object (the `kubernetes` Service's, which Marina writes). */
export interface Endpoints extends KubeObject {
  apiVersion: string;
  kind: string;
  metadata: NamedMeta & { namespace: string };
  subsets?: { addresses?: { ip: string }[]; ports?: { name?: string; port: number; protocol?: string }[] }[];
}

/** An rbac.authorization.k8s.io/v1 ClusterRoleBinding. */
export interface ClusterRoleBinding extends KubeObject {
  apiVersion: string;
  kind: string;
  metadata: NamedMeta;
  roleRef: { apiGroup: string; kind: string; name: string };
  subjects: { apiGroup?: string; kind: string; name: string; namespace?: string }[];
}
