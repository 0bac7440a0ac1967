// What one health check of a cluster found (HealthReport) and the compact sample of it kept in the
// cluster's 24-hour time series (HealthSample). The health checker produces both; the Cluster,
// NodePool and Machine controllers turn the latest report into conditions; the API serves both at
// GET /api/v1alpha1/projects/{project}/clusters/{name}/health; the console plots the samples.

/** Which part of the cluster one check looked at. */
export type Component =
  | 'endpoint' // kube-apiserver /readyz through the cluster's load balancer
  | 'apiserver' // kube-apiserver /readyz on one control-plane machine
  | 'etcd' // one etcd member's /health
  | 'kube-controller-manager' // a leader holds a fresh lease, and the process runs on each CP machine
  | 'kube-scheduler' // same, for the scheduler
  | 'agent'; // the machine agent answers /healthz (and reports its processes up)

export interface ComponentCheck {
  component: Component;
  /** The machine the check ran against; absent for cluster-wide checks (endpoint, leases). */
  machine?: string;
  ok: boolean;
  /** What was seen, for people: "ok", "HTTP 500: etcd failed: …", "timeout after 2000 ms". */
  message: string;
  /** Round trip of the check. */
  latencyMs?: number;
  /**
   * agent only: false when the agent did not answer at all (process gone, host down, network
   * cut). An agent that answers 503 (a process restarting, its kubelet cut off from the API) is
   * reachable: that machine is alive, and replacing it would not help.
   */
  reachable?: boolean;
}

export interface NodeConditionSummary {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}

export interface NodeHealth {
  name: string;
  /** The Machine behind the Node (Marina names Nodes after their Machines). */
  machine?: string;
  /** The Node's Ready condition: True, False or Unknown (no condition yet: Unknown). */
  ready: 'True' | 'False' | 'Unknown';
  /** Conditions that are not as they should be (Ready not True, pressure conditions True). */
  problems: NodeConditionSummary[];
  unschedulable?: boolean;
}

/** Advanced check: one etcd member's Prometheus metrics. */
export interface EtcdMemberMetrics {
  machine: string;
  hasLeader: boolean;
  isLeader: boolean;
  leaderChangesTotal: number;
  dbSizeBytes: number;
  /** 99th percentile of WAL fsync latency since the previous scrape (undefined on the first). */
  walFsyncP99Seconds?: number;
}

/** Advanced check: one kube-apiserver's Prometheus metrics. */
export interface ApiServerMetrics {
  machine: string;
  /** 99th percentile request latency (non-long-running requests) since the previous scrape. */
  requestP99Seconds?: number;
  /** Requests in flight (readOnly + mutating). */
  inflightRequests: number;
}

/** Advanced check: what a machine's agent reports about the machine's processes. */
export interface MachineUsage {
  machine: string;
  /** CPU cores used on average since the previous scrape (undefined on the first). */
  cpuCores?: number;
  rssBytes: number;
  diskUsedBytes: number;
}

export interface ClusterMetrics {
  at: string;
  etcd: EtcdMemberMetrics[];
  apiservers: ApiServerMetrics[];
  machines: MachineUsage[];
}

export interface HealthReport {
  project: string;
  cluster: string;
  /** When the check started (RFC 3339). */
  at: string;
  durationMs: number;
  /** True when every check passed and every Node is Ready without problems. */
  healthy: boolean;
  checks: ComponentCheck[];
  nodes: NodeHealth[];
  /** The newest advanced scrape (taken every health.metricsIntervalSeconds). */
  metrics?: ClusterMetrics;
}

/** One point of the per-cluster time series (bounded to 24 hours). */
export interface HealthSample {
  /** RFC 3339 time of the check. */
  t: string;
  healthy: boolean;
  failedChecks: number;
  nodesReady: number;
  nodesTotal: number;
  /** Endpoint /readyz round trip. */
  endpointLatencyMs?: number;
  /** Worst apiserver p99 request latency and total in-flight requests. */
  apiserverP99Ms?: number;
  apiserverInflight?: number;
  /** Largest etcd db and worst WAL fsync p99 among members; leader changes summed. */
  etcdDbBytes?: number;
  etcdFsyncP99Ms?: number;
  etcdLeaderChanges?: number;
  /** Per machine: CPU cores and resident memory. */
  machines?: Record<string, { cpuCores?: number; rssBytes: number; diskUsedBytes: number }>;
}

/** Body of GET /api/v1alpha1/projects/{project}/clusters/{name}/health[?since=RFC3339]. */
export interface ClusterHealth {
  kind: 'ClusterHealth';
  project: string;
  cluster: string;
  /** The newest report; null before the first check finished (e.g. right after Marina started). */
  latest: HealthReport | null;
  /** Samples newer than `since` (default: the last 24 hours), oldest first. */
  samples: HealthSample[];
}
