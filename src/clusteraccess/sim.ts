// Cluster access for the `sim` provider's clusters: their API, etcd, apiservers and agents live in
// a simulated world (src/sim) instead of behind sockets. It keeps the rules of the real access
// (LiveConnections): no etcd without the cluster's PKI Secret, no API without its admin
// kubeconfig Secret (read through the same ClusterSecrets), the same per-call timeout, and Node
// changes wake their Machines.
import type { Cluster } from '../api/kinds.js';
import type { EtcdApi } from '../etcd/client.js';
import { simAgent } from '../sim/agents.js';
import { simEtcd } from '../sim/etcd.js';
import { simApiServer, simKubeApi } from '../sim/kube.js';
import type { SimWorld } from '../sim/world.js';
import type { ApiServerProbe, ClusterConnections, KubeApi } from './access.js';
import type { AgentApi } from './agents.js';
import type { ClusterSecrets } from './secrets.js';

export interface SimConnectionsOptions {
  world: SimWorld;
  secrets: ClusterSecrets;
  /** Per-call timeout: how long a call into a partitioned cluster waits (default 3 s). */
  timeoutMs?: number;
  /** Called on every Node change (to wake its Machine). */
  onNodeEvent?: (project: string, cluster: string, nodeName: string) => void;
}

const ref = (cluster: Cluster) => ({ project: cluster.metadata.project ?? '', name: cluster.metadata.name });

export class SimConnections implements ClusterConnections {
  private readonly world: SimWorld;
  private readonly call: { timeoutMs: number };
  private readonly unsubscribe?: () => void;

  constructor(private readonly opts: SimConnectionsOptions) {
    this.world = opts.world;
    this.call = { timeoutMs: opts.timeoutMs ?? 3000 };
    if (opts.onNodeEvent) this.unsubscribe = this.world.onNodeEvent(opts.onNodeEvent);
  }

  private simCluster(cluster: Cluster) {
    const r = ref(cluster);
    return this.world.view(r.project, r.name);
  }

  async etcd(cluster: Cluster, endpoints: string[]): Promise<EtcdApi | undefined> {
    if (!(await this.opts.secrets.pki(cluster))) return undefined;
    return simEtcd(this.world, this.simCluster(cluster), endpoints, this.call);
  }

  async kube(cluster: Cluster): Promise<KubeApi | undefined> {
    if (!(await this.opts.secrets.adminKubeconfig(cluster))) return undefined;
    return simKubeApi(this.world, this.simCluster(cluster), this.call);
  }

  /** A simulated cluster has no object API: its Nodes and Leases are modelled, its pods are not. */
  async objects(): Promise<undefined> {
    return undefined;
  }

  runsWorkloads(): boolean {
    return false;
  }

  async apiserverAt(cluster: Cluster, address: string): Promise<ApiServerProbe | undefined> {
    if (!(await this.opts.secrets.adminKubeconfig(cluster))) return undefined;
    return simApiServer(this.world, this.simCluster(cluster), address, this.call);
  }

  agent(cluster: Cluster, agentURL: string): AgentApi {
    return simAgent(this.world, this.simCluster(cluster), agentURL);
  }

  forget(cluster: { project: string; name: string }): void {
    this.opts.secrets.forget(cluster);
  }

  async close(): Promise<void> {
    this.unsubscribe?.();
  }
}
