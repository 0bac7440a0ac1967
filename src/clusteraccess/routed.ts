// Cluster access chosen per cluster by its provider: the real clients (LiveConnections) for
// clusters whose machines are real, another implementation for a provider that brings its own
// (the `sim` provider's simulated clusters). The controllers and the health checker hold one
// ClusterConnections and never learn which one answered.
import type { Cluster } from '../api/kinds.js';
import type { EtcdApi } from '../etcd/client.js';
import type { ApiServerProbe, ClusterConnections, KubeApi, ObjectApi } from './access.js';
import type { AgentApi } from './agents.js';

/** The provider a Cluster names; `local` when it names none (the API's default). */
const providerOf = (cluster: Cluster): string => cluster.spec.provider ?? 'local';

export class ProviderRoutedConnections implements ClusterConnections {
  private readonly all: ClusterConnections[];

  constructor(
    /** Used for every provider without its own entry in `byProvider`. */
    private readonly fallback: ClusterConnections,
    private readonly byProvider: ReadonlyMap<string, ClusterConnections>,
  ) {
    this.all = [...new Set([fallback, ...byProvider.values()])];
  }

  /** The access for `cluster`'s provider. */
  for(cluster: Cluster): ClusterConnections {
    return this.byProvider.get(providerOf(cluster)) ?? this.fallback;
  }

  etcd(cluster: Cluster, endpoints: string[]): Promise<EtcdApi | undefined> {
    return this.for(cluster).etcd(cluster, endpoints);
  }

  kube(cluster: Cluster): Promise<KubeApi | undefined> {
    return this.for(cluster).kube(cluster);
  }

  objects(cluster: Cluster): Promise<ObjectApi | undefined> {
    return this.for(cluster).objects(cluster);
  }

  runsWorkloads(cluster: Cluster): boolean {
    return this.for(cluster).runsWorkloads?.(cluster) ?? true;
  }

  apiserverAt(cluster: Cluster, address: string): Promise<ApiServerProbe | undefined> {
    return this.for(cluster).apiserverAt(cluster, address);
  }

  agent(cluster: Cluster, agentURL: string): AgentApi {
    return this.for(cluster).agent(cluster, agentURL);
  }

  /** A deleted cluster's reference names no provider: every implementation lets go of it. */
  forget(cluster: { project: string; name: string }): void {
    for (const c of this.all) c.forget(cluster);
  }

  async close(): Promise<void> {
    await Promise.all(this.all.map((c) => c.close()));
  }
}
