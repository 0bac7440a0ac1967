// The shapes the console reads. Loose on purpose (every status field optional): the console shows
// what is there and must not break when the server adds fields. The schemas are in src/api/kinds.ts.
import type { Condition, Resource } from '../api/meta.js';

export type { Condition, Resource };

export interface PoolTemplate {
  name: string;
  roles: string[];
  replicas: number;
}

export interface ClusterHealthSummary {
  healthy: boolean;
  failing?: string[];
  nodesReady?: number;
  nodesTotal?: number;
}

export interface ClusterStatusView {
  phase?: string;
  endpoint?: string;
  kubernetesVersion?: string;
  pools?: { name: string; replicas: number; readyReplicas: number }[];
  conditions?: Condition[];
  observedGeneration?: number;
  health?: ClusterHealthSummary;
}

export type ClusterView = Resource<{ kubernetesVersion?: string; provider?: string; network?: { podCIDR?: string; serviceCIDR?: string }; nodePools: PoolTemplate[] }, ClusterStatusView>;

export type NodePoolView = Resource<
  { cluster: string; roles: string[]; replicas: number; kubernetesVersion?: string },
  { replicas?: number; readyReplicas?: number; machines?: string[]; conditions?: Condition[] }
>;

export type MachineView = Resource<
  { cluster: string; pool: string; roles: string[] },
  { phase?: string; address?: string; nodeName?: string; nodeReady?: boolean; failureReason?: string; failureMessage?: string; conditions?: Condition[] }
>;

export interface NotificationRecordView {
  channel: string;
  state: string;
  startsAt: string;
  outcome: string;
  attempts: number;
  at: string;
  nextAttemptAt?: string;
  code?: number;
  error?: string;
}

export type AlertView = Resource<
  { rule: string; severity: string; cluster?: string; labels?: Record<string, string>; annotations: { summary: string; description?: string } },
  { state?: string; startsAt?: string; endsAt?: string; lastEvaluatedAt?: string; fingerprint?: string; notifications?: NotificationRecordView[]; conditions?: Condition[] }
>;

export type ChannelView = Resource<
  { type: string; url: string; sendResolved?: boolean; rules?: string[]; minSeverity?: string },
  { delivered?: number; failedAttempts?: number; lastDeliveredAt?: string; lastFailedAt?: string; lastError?: string; conditions?: Condition[] }
>;

export type ProjectView = Resource<{ displayName?: string; members?: { user: string; role: string }[] }>;
