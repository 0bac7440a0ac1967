// A simulated cluster's Kubernetes API as Marina reaches it: through the cluster's endpoint (Nodes,
// Leases, Pods, /readyz) and on each control-plane machine directly (/readyz, /metrics). Shaped
// like the KubeApi and ApiServerProbe of src/clusteraccess/access.ts, which src/clusteraccess/sim.ts
// hands out. There are no Pods: simulated Nodes run nothing, so a drain has nothing to evict.
import type { CertificateSigningRequest, Node, Pod, PodDisruptionBudget, Taint } from '../kube/objects.js';
import { noAnswer, refused, roundTrip } from './errors.js';
import { alive, apiserverStarted } from './model.js';
import type { SimCluster, SimWorld } from './world.js';
import type { SimCallOptions } from './etcd.js';

interface Call {
  signal?: AbortSignal;
}

type Readiness = { ok: boolean; message: string };

const LEADER_LEASES = new Set(['kube-controller-manager', 'kube-scheduler']);

function mergeStrings(target: Record<string, string>, patch: Record<string, string | null> | undefined): void {
  for (const [k, v] of Object.entries(patch ?? {})) {
    if (v === null) delete target[k];
    else target[k] = v;
  }
}

export function simKubeApi(world: SimWorld, c: SimCluster, opts: SimCallOptions) {
  const endpoint = () => (c.state.endpoint ? `${c.state.endpoint.address}:${c.state.endpoint.port}` : 'no endpoint');

  /** A call through the endpoint: answered when an apiserver behind it is ready. */
  async function reach(signal: AbortSignal | undefined): Promise<void> {
    if (c.state.partitionedAt !== undefined) return noAnswer(opts.timeoutMs, signal);
    await roundTrip(world.timing.callLatencyMs);
    signal?.throwIfAborted();
    world.settle(c);
    if (!world.apiUp(c)) throw refused(endpoint());
  }

  const nodeOf = (name: string) => c.nodes.get(name);

  return {
    async readyz(o: Call = {}): Promise<Readiness> {
      try {
        await reach(o.signal);
        return { ok: true, message: 'ok' };
      } catch (err) {
        o.signal?.throwIfAborted();
        return { ok: false, message: (err as Error).message };
      }
    },

    async getNode(name: string, o: Call = {}): Promise<Node | undefined> {
      await reach(o.signal);
      const n = nodeOf(name);
      return n && world.nodeObject(c, n);
    },

    async listNodes(o: Call = {}): Promise<Node[]> {
      await reach(o.signal);
      const now = world.now();
      return [...c.nodes.values()].map((n) => world.nodeObject(c, n, now));
    },

    /** JSON merge patch of labels, annotations, taints and unschedulable; metadata.resourceVersion is a precondition. */
    async patchNode(name: string, patch: Record<string, unknown>, o: Call = {}): Promise<void> {
      await reach(o.signal);
      const n = nodeOf(name);
      if (!n) throw new Error(`nodes "${name}" not found`);
      const p = patch as {
        metadata?: { resourceVersion?: string; labels?: Record<string, string | null>; annotations?: Record<string, string | null> };
        spec?: { taints?: Taint[] | null; unschedulable?: boolean | null };
      };
      if (p.metadata?.resourceVersion !== undefined && p.metadata.resourceVersion !== String(n.resourceVersion)) {
        throw new Error(`Operation cannot be fulfilled on nodes "${name}": the object has been modified; please apply your changes to the latest version and try again`);
      }
      mergeStrings(n.labels, p.metadata?.labels);
      mergeStrings(n.annotations, p.metadata?.annotations);
      if (p.spec && 'taints' in p.spec) n.taints = (p.spec.taints ?? []).map((t) => ({ key: t.key, ...(t.value !== undefined ? { value: t.value } : {}), effect: t.effect }));
      if (p.spec && 'unschedulable' in p.spec) {
        if (p.spec.unschedulable) n.unschedulable = true;
        else delete n.unschedulable;
      }
      n.resourceVersion = c.state.nextRv++;
      world.saveNode(c, n);
      world.saveCluster(c);
      world.nodeChanged(c, name);
    },

    async deleteNode(name: string, o: Call = {}): Promise<void> {
      await reach(o.signal);
      if (!c.nodes.has(name)) return;
      world.deleteNode(c, name);
      world.nodeChanged(c, name);
    },

    /** A simulated cluster runs no workloads, so it has no budgets. */
    async listPodDisruptionBudgets(o: Call = {}): Promise<PodDisruptionBudget[]> {
      await reach(o.signal);
      return [];
    },

    /** The version of an apiserver behind the endpoint: its machine's kubelet version (one binary set per machine). */
    async serverVersion(o: Call = {}): Promise<string> {
      await reach(o.signal);
      const now = world.now();
      for (const b of c.state.backends) {
        const m = world.machineOfURL(c, `https://${b}`);
        if (m && m.spec?.apiserver && world.apiserverReady(c, m, now)) return m.spec.kubelet?.kubeletVersion ?? '';
      }
      return '';
    },

    async podsOnNode(_name: string, o: Call = {}): Promise<Pod[]> {
      await reach(o.signal);
      return [];
    },

    async evictPod(_namespace: string, _name: string, o: Call = {}): Promise<'evicted' | 'blocked' | 'gone'> {
      await reach(o.signal);
      return 'gone';
    },

    /** The leader-election Leases of kube-controller-manager and kube-scheduler, held by a live control plane. */
    async getLease(namespace: string, name: string, o: Call = {}): Promise<{ holderIdentity?: string; renewTime?: string; leaseDurationSeconds?: number } | undefined> {
      await reach(o.signal);
      if (namespace !== 'kube-system' || !LEADER_LEASES.has(name)) return undefined;
      const now = world.now();
      const leader = [...c.machines.values()].filter((m) => apiserverStarted(m, world.timing, now)).sort((a, b) => a.name.localeCompare(b.name))[0];
      if (leader) c.leaseRenewedAt = now;
      const renewed = c.leaseRenewedAt ?? now;
      return { holderIdentity: `${leader?.name ?? 'gone'}_sim`, renewTime: new Date(renewed).toISOString(), leaseDurationSeconds: 15 };
    },

    /** Simulated kubelets are virtual ones with their certificates given: none asks for one. */
    async listCertificateSigningRequests(o: Call = {}): Promise<CertificateSigningRequest[]> {
      await reach(o.signal);
      return [];
    },

    async decideCertificateSigningRequest(csr: CertificateSigningRequest, _condition: unknown, o: Call = {}): Promise<void> {
      await reach(o.signal);
      throw new Error(`certificatesigningrequests.certificates.k8s.io "${csr.metadata.name}" not found`);
    },

    /** No node proxy: a simulated kubelet serves nothing the apiserver could reach. */
    async kubeletHealthz(node: string, o: Call = {}): Promise<Readiness> {
      try {
        await reach(o.signal);
      } catch (err) {
        return { ok: false, message: (err as Error).message };
      }
      return { ok: false, message: `node ${node} is simulated: its kubelet serves no node proxy` };
    },
  };
}

/** One control-plane machine's own kube-apiserver, addressed directly. */
export function simApiServer(world: SimWorld, c: SimCluster, address: string, opts: SimCallOptions) {
  async function reach(signal: AbortSignal | undefined) {
    if (c.state.partitionedAt !== undefined) return noAnswer(opts.timeoutMs, signal);
    await roundTrip(world.timing.callLatencyMs);
    signal?.throwIfAborted();
    world.settle(c);
    const m = world.machineAt(address);
    if (!m || !alive(m) || !m.spec?.apiserver || m.cluster !== c.state.name || m.project !== c.state.project) throw refused(`${address}:6443`);
    return m;
  }
  return {
    async readyz(o: Call = {}): Promise<Readiness> {
      try {
        const m = await reach(o.signal);
        if (!apiserverStarted(m, world.timing, world.now())) return { ok: false, message: 'HTTP 500: poststarthook/start-apiextensions-controllers failed: not finished' };
        return world.apiserverReady(c, m) ? { ok: true, message: 'ok' } : { ok: false, message: 'HTTP 500: etcd failed: etcd cluster is unavailable or misconfigured' };
      } catch (err) {
        o.signal?.throwIfAborted();
        return { ok: false, message: (err as Error).message };
      }
    },
    async metrics(o: Call = {}): Promise<string> {
      await reach(o.signal);
      return [
        '# TYPE apiserver_current_inflight_requests gauge',
        'apiserver_current_inflight_requests{request_kind="mutating"} 0',
        'apiserver_current_inflight_requests{request_kind="readOnly"} 1',
        '# TYPE apiserver_request_duration_seconds histogram',
        'apiserver_request_duration_seconds_bucket{verb="GET",le="0.005"} 900',
        'apiserver_request_duration_seconds_bucket{verb="GET",le="0.025"} 990',
        'apiserver_request_duration_seconds_bucket{verb="GET",le="+Inf"} 1000',
        'apiserver_request_duration_seconds_sum{verb="GET"} 3',
        'apiserver_request_duration_seconds_count{verb="GET"} 1000',
        '',
      ].join('\n');
    },
  };
}
