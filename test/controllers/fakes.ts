// An in-test infrastructure provider and in-test cluster internals (etcd membership, a Kubernetes
// API with Nodes and Pods) for the controller integration tests. The provider records every call;
// the etcd fake enforces what real etcd enforces (a joining member must have been added first;
// one unstarted member at a time; membership changes need a quorum) and the API fake enforces
// NodeRestriction's label rule on kubelet registration, and lets a real kubelet (a bootstrap with a
// `node` section) register only while its bootstrap token Secret exists and bootstrappers are bound.
import type { Cluster, Machine } from '../../src/api/kinds.js';
import type { Store } from '../../src/store/types.js';
import { kubeletMaySetLabel } from '../../src/kube/node-labels.js';
import { EtcdError, type EtcdMember, type MemberHealth } from '../../src/etcd/client.js';
import { quorumHealthy, quorumSize } from '../../src/etcd/membership.js';
import { UnknownKindError, type ClusterConnections, type ClusterObject, type EvictionResult, type KubeApi, type ObjectApi } from '../../src/clusteraccess/access.js';
import type { EtcdApi } from '../../src/etcd/client.js';
import type { Node as KubeNode, Pod as KubePod, Taint as KubeTaint } from '../../src/kube/objects.js';
import {
  ProviderError,
  type ClusterRef,
  type EndpointDescription,
  type InfrastructureProvider,
  type MachineBootstrap,
  type MachineDescription,
  type MachineRef,
  type PreparedMachine,
  type ProviderRegistry,
} from '../../src/providers/contract.js';

export interface Call {
  op: 'prepare' | 'start' | 'describe' | 'delete' | 'ensureEndpoint' | 'deleteEndpoint';
  name: string;
  detail?: string;
}

interface FakeMachine {
  ref: MachineRef;
  address: string;
  started: boolean;
  running: boolean;
  /** kill(): its processes are gone; the provider reports it Failed. */
  killed?: boolean;
  describesUntilRunning: number;
  bootstrap?: MachineBootstrap;
}

interface Member {
  id: string;
  name: string;
  peerURL: string;
  clientURL: string;
  started: boolean;
  machine: string;
  isLearner: boolean;
}

interface ClusterSim {
  members: Member[];
  nodes: Map<string, KubeNode>;
  pods: KubePod[];
  backends: string[];
  endpoint?: EndpointDescription;
  nextRv: number;
  /** Node names kubelets registered with forbidden labels (NodeRestriction violations). */
  violations: string[];
  /** What node admission wrote (Secrets, Endpoints, ClusterRoleBindings), by `kind/namespace/name`. */
  objects: Map<string, ClusterObject>;
}

const argOf = (args: string[], name: string): string | undefined =>
  args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);

export class FakeWorld {
  readonly calls: Call[] = [];
  /** Everything in order: provider calls and notes pushed by tests. */
  readonly timeline: string[] = [];
  readonly machines = new Map<string, FakeMachine>();
  readonly clusters = new Map<string, ClusterSim>();
  readonly etcdOps: string[] = [];
  /** Broken invariants (a real etcd / provider would have refused): tests assert this stays empty. */
  readonly errors: string[] = [];
  /** Machines whose startMachine fails terminally. */
  readonly failStart = new Set<string>();
  /** Boot delay in describe calls. */
  bootDescribes = 1;
  /** The API endpoint new clusters get (default: a fresh loopback address, port 6443). */
  endpointURL?: string;
  private nextIp = 1;
  private nextEndpoint = 1;
  private nextMemberId = 18_000_000_000_000_000_000n;

  constructor(private readonly store: Store) {}

  sim(cluster: string): ClusterSim {
    let s = this.clusters.get(cluster);
    if (!s) {
      s = { members: [], nodes: new Map(), pods: [], backends: [], nextRv: 1, violations: [], objects: new Map() };
      this.clusters.set(cluster, s);
    }
    return s;
  }

  private record(op: Call['op'], name: string, detail?: string): void {
    this.calls.push({ op, name, ...(detail ? { detail } : {}) });
    this.timeline.push(`${op} ${name}${detail ? ` ${detail}` : ''}`);
  }

  callsOf(op: Call['op']): Call[] {
    return this.calls.filter((c) => c.op === op);
  }

  // ---------------- provider ----------------

  readonly provider: InfrastructureProvider = {
    name: 'test',
    prepareMachine: async (ref: MachineRef): Promise<PreparedMachine> => {
      this.record('prepare', ref.name);
      let m = this.machines.get(ref.name);
      if (!m) {
        const n = this.nextIp++;
        m = { ref, address: `127.1.${Math.floor(n / 250)}.${(n % 250) + 2}`, started: false, running: false, describesUntilRunning: 0 };
        this.machines.set(ref.name, m);
      }
      return { address: m.address, providerID: `test:///${ref.project}/${ref.cluster}/${ref.name}` };
    },
    startMachine: async (ref: MachineRef, bootstrap: MachineBootstrap): Promise<MachineDescription> => {
      const m = this.machines.get(ref.name);
      if (!m) throw new ProviderError('NotPrepared', `machine ${ref.name} was not prepared`);
      if (this.failStart.has(ref.name)) {
        this.record('start', ref.name, 'failed');
        throw new ProviderError('BadFlavor', `flavor of ${ref.name} does not exist`, true);
      }
      if (m.started) return this.describe(m);
      const etcd = bootstrap.services.find((s) => s.name === 'etcd');
      this.record('start', ref.name, etcd ? `etcd:${argOf(etcd.args, 'initial-cluster-state')}` : bootstrap.roles.join('+'));
      const sim = this.sim(ref.cluster);
      if (etcd) {
        const state = argOf(etcd.args, 'initial-cluster-state');
        const peerURL = argOf(etcd.args, 'initial-advertise-peer-urls')!;
        const clientURL = argOf(etcd.args, 'advertise-client-urls')!;
        const name = argOf(etcd.args, 'name')!;
        if (state === 'new') {
          if (sim.members.length > 0) throw this.broken(`etcd ${name} bootstraps a new cluster although members exist`);
          sim.members.push({ id: String(this.nextMemberId++), name, peerURL, clientURL, started: true, machine: ref.name, isLearner: false });
        } else {
          const member = sim.members.find((x) => x.peerURL === peerURL);
          if (!member) throw this.broken(`etcd ${name} joins without member add`);
          const initial = argOf(etcd.args, 'initial-cluster')!.split(',').sort();
          const expected = sim.members.map((x) => `${x === member ? name : x.name}=${x.peerURL}`).sort();
          if (initial.join(',') !== expected.join(',')) throw this.broken(`etcd ${name}: initial cluster ${initial} != ${expected}`);
          Object.assign(member, { name, clientURL, started: true, machine: ref.name });
        }
      }
      m.started = true;
      m.bootstrap = bootstrap;
      m.describesUntilRunning = this.bootDescribes;
      return this.describe(m);
    },
    describeMachine: async (ref: MachineRef): Promise<MachineDescription> => {
      this.calls.push({ op: 'describe', name: ref.name });
      const m = this.machines.get(ref.name);
      if (!m) return { state: 'Missing' };
      // Like the local provider: prepared but not started is Provisioning, not Missing.
      if (!m.started) return { state: 'Provisioning', address: m.address };
      if (!m.running && !m.killed && m.describesUntilRunning-- <= 0) m.running = true;
      return this.describe(m);
    },
    deleteMachine: async (ref: MachineRef): Promise<void> => {
      this.record('delete', ref.name);
      const m = this.machines.get(ref.name);
      if (!m) return;
      this.machines.delete(ref.name);
      // Its etcd process is gone; the membership stays until someone removes it.
      const sim = this.clusters.get(ref.cluster);
      const member = sim?.members.find((x) => x.machine === ref.name);
      if (member) member.started = false;
    },
    ensureEndpoint: async (cluster: ClusterRef, backends: string[]): Promise<EndpointDescription> => {
      const sim = this.sim(cluster.name);
      if (!sim.endpoint) {
        this.record('ensureEndpoint', cluster.name, 'created');
        const url = new URL(this.endpointURL ?? `https://127.2.0.${this.nextEndpoint++}:6443`);
        sim.endpoint = { url: url.origin, host: url.hostname, port: Number(url.port) };
      }
      sim.backends = [...backends];
      return sim.endpoint;
    },
    deleteEndpoint: async (cluster: ClusterRef): Promise<void> => {
      this.record('deleteEndpoint', cluster.name);
      const sim = this.clusters.get(cluster.name);
      if (sim) sim.endpoint = undefined;
    },
    listMachines: async () =>
      [...this.machines.values()].map((m) => ({ ref: m.ref, providerID: `test:///${m.ref.project}/${m.ref.cluster}/${m.ref.name}`, state: this.describe(m).state })),
    sweepOrphans: true,
    close: async () => undefined,
  };

  private broken(message: string): Error {
    this.errors.push(message);
    return new Error(message);
  }

  private describe(m: FakeMachine): MachineDescription {
    const providerID = `test:///${m.ref.project}/${m.ref.cluster}/${m.ref.name}`;
    if (m.killed) return { state: 'Failed', address: m.address, providerID, failureReason: 'MachineStopped', failureMessage: 'killed by the test' };
    return { state: m.running ? 'Running' : 'Provisioning', address: m.address, providerID };
  }

  /** Like kill -9 of a machine's processes: it stops serving and its provider reports it Failed. */
  kill(name: string): void {
    const m = this.machines.get(name);
    if (!m) throw new Error(`no machine ${name}`);
    m.killed = true;
    m.running = false;
    this.timeline.push(`kill ${name}`);
  }

  readonly registry: ProviderRegistry = {
    get: (name: string) => {
      if (name !== 'local' && name !== 'sim') throw new Error(`unknown provider ${name}`);
      return this.provider;
    },
    list: () => [this.provider],
  };

  // ---------------- etcd ----------------

  private runningMember(x: Member): boolean {
    return x.started && (this.machines.get(x.machine)?.started ?? false);
  }

  private hasQuorum(sim: ClusterSim): boolean {
    const voting = sim.members.filter((x) => !x.isLearner);
    return voting.filter((x) => this.runningMember(x)).length >= quorumSize(voting.length);
  }

  private toMember(x: Member): EtcdMember {
    return { id: x.id, name: x.started ? x.name : '', peerURLs: [x.peerURL], clientURLs: x.started ? [x.clientURL] : [], isLearner: x.isLearner };
  }

  etcdApi(cluster: string, endpoints: string[]): EtcdApi {
    const sim = this.sim(cluster);
    // Like EtcdClient: any running voting member among the endpoints answers; learners serve
    // no membership calls ("rpc not supported for learner").
    const reachable = () => {
      const up = sim.members.filter((x) => this.runningMember(x) && endpoints.includes(x.clientURL));
      if (up.length === 0) throw new EtcdError(`etcd ${endpoints.join(',')}: connect ECONNREFUSED`, 0);
      if (up.every((x) => x.isLearner)) throw new EtcdError('etcdserver: rpc not supported for learner', 503, 14);
    };
    return {
      metrics: async (endpoint: string) => {
        const x = sim.members.find((m) => m.clientURL === endpoint && this.runningMember(m));
        if (!x) throw new EtcdError(`etcd ${endpoint}/metrics: connect ECONNREFUSED`, 0);
        return `etcd_server_has_leader 1\netcd_server_is_leader 0\netcd_mvcc_db_total_size_in_bytes 20480\n`;
      },
      memberList: async () => {
        reachable();
        return sim.members.map((x) => this.toMember(x));
      },
      memberAdd: async (peerURLs: string[], opts?: { isLearner?: boolean }) => {
        const isLearner = opts?.isLearner === true;
        reachable();
        if (!this.hasQuorum(sim)) throw new EtcdError('etcdserver: request timed out', 503);
        if (sim.members.some((x) => peerURLs.includes(x.peerURL))) throw new EtcdError('etcdserver: Peer URLs already exists', 400, 9);
        const started = sim.members.filter((x) => x.started && !x.isLearner).length;
        const total = sim.members.filter((x) => !x.isLearner).length + 1;
        // --max-learners=2, as Marina starts its members.
        if (sim.members.filter((x) => x.isLearner).length >= 2 && isLearner) throw new EtcdError('etcdserver: too many learner members in cluster', 400, 9);
        if (!isLearner && !(started === 1 && total === 2) && started < quorumSize(total)) {
          throw new EtcdError('etcdserver: re-configuration failed due to not enough started members', 400, 9);
        }
        const member: Member = { id: String(this.nextMemberId++), name: '', peerURL: peerURLs[0]!, clientURL: '', started: false, machine: '', isLearner };
        sim.members.push(member);
        this.etcdOps.push(`add${isLearner ? ' learner' : ''} ${member.peerURL}`);
        this.timeline.push(`etcd add ${member.peerURL}`);
        return { member: this.toMember(member), members: sim.members.map((x) => this.toMember(x)) };
      },
      memberRemove: async (id: string) => {
        reachable();
        if (typeof id !== 'string') throw new Error('member id must be a string');
        if (!this.hasQuorum(sim)) throw new EtcdError('etcdserver: request timed out', 503);
        const i = sim.members.findIndex((x) => x.id === id);
        if (i < 0) throw new EtcdError('etcdserver: member not found', 404, 5);
        const [gone] = sim.members.splice(i, 1);
        this.etcdOps.push(`remove ${gone!.name}`);
        this.timeline.push(`etcd remove ${gone!.name}`);
        return sim.members.map((x) => this.toMember(x));
      },
      memberPromote: async (id: string) => {
        reachable();
        if (!this.hasQuorum(sim)) throw new EtcdError('etcdserver: request timed out', 503);
        const x = sim.members.find((y) => y.id === id);
        if (!x) throw new EtcdError('etcdserver: member not found', 404, 5);
        if (!x.isLearner) throw new EtcdError('etcdserver: can only promote a learner member', 400, 9);
        if (!this.runningMember(x)) throw new EtcdError('etcdserver: can only promote a learner member which is in sync with leader', 400, 9);
        x.isLearner = false;
        this.etcdOps.push(`promote ${x.name}`);
        this.timeline.push(`etcd promote ${x.name}`);
        return sim.members.map((y) => this.toMember(y));
      },
      memberHealth: async (members?: EtcdMember[]): Promise<MemberHealth[]> => {
        const list = members ?? (reachable(), sim.members.map((x) => this.toMember(x)));
        const quorum = this.hasQuorum(sim);
        return list.map((m) => {
          const x = sim.members.find((y) => y.id === m.id);
          const healthy = !!x && this.runningMember(x) && quorum;
          return { ...m, healthy, ...(healthy ? {} : { error: x && this.runningMember(x) ? 'no quorum' : 'unreachable' }) };
        });
      },
    };
  }

  // ---------------- Kubernetes API ----------------

  /** The API answers when the endpoint has a backend whose control-plane machine runs. */
  apiUp(cluster: string): boolean {
    const sim = this.sim(cluster);
    if (!sim.endpoint || !this.hasQuorum(sim)) return false;
    return [...this.machines.values()].some(
      (m) => m.ref.cluster === cluster && m.running && m.bootstrap?.roles.includes('controlplane') && sim.backends.includes(`${m.address}:6443`),
    );
  }

  /** Kubelets of running machines register (with their bootstrap labels/taints) once the API is up. */
  private registerNodes(cluster: string): void {
    const sim = this.sim(cluster);
    if (!this.apiUp(cluster)) return;
    for (const m of this.machines.values()) {
      // A virtual kubelet's registration, or a real kubelet's (runtime containerd, imported servers).
      const n = m.bootstrap?.node;
      const k = m.bootstrap?.kubelet ?? (n ? { nodeName: n.nodeName, labels: n.labels, taints: n.taints } : undefined);
      if (m.ref.cluster !== cluster || !m.running || !k || sim.nodes.has(k.nodeName)) continue;
      // A real kubelet's TLS bootstrap needs its token's Secret and the bootstrappers' binding.
      if (n && (!sim.objects.has(`Secret/kube-system/bootstrap-token-${n.bootstrapToken.split('.')[0]}`) || !sim.objects.has('ClusterRoleBinding//marina:kubelet-bootstrap'))) continue;
      if (Object.keys(k.labels).some((l) => !kubeletMaySetLabel(l))) sim.violations.push(k.nodeName);
      sim.nodes.set(k.nodeName, {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: k.nodeName, resourceVersion: String(sim.nextRv++), labels: { ...k.labels }, annotations: {} },
        spec: { taints: k.taints.map((t) => ({ ...t, effect: t.effect as KubeTaint['effect'] })) },
        status: { conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'virtual kubelet is posting ready status' }] },
      });
    }
  }

  kubeApi(cluster: string): KubeApi {
    const sim = this.sim(cluster);
    const up = () => {
      if (!this.apiUp(cluster)) throw new Error(`connect ECONNREFUSED ${sim.endpoint?.url ?? 'no endpoint'}`);
      this.registerNodes(cluster);
    };
    return {
      readyz: async () => (this.apiUp(cluster) ? { ok: true, message: 'ok' } : { ok: false, message: 'connect ECONNREFUSED' }),
      listNodes: async () => {
        up();
        return [...sim.nodes.values()].map((n) => structuredClone(n) as KubeNode);
      },
      listPodDisruptionBudgets: async () => {
        up();
        return [];
      },
      serverVersion: async () => {
        up();
        return 'v1.36.3';
      },
      getLease: async (_namespace, name) => {
        up();
        return { holderIdentity: `${name}-leader`, renewTime: new Date().toISOString(), leaseDurationSeconds: 15 };
      },
      getNode: async (name) => {
        up();
        const n = sim.nodes.get(name);
        return n ? (structuredClone(n) as KubeNode) : undefined;
      },
      patchNode: async (name, patch) => {
        up();
        const n = sim.nodes.get(name);
        if (!n) throw new Error(`nodes "${name}" not found`);
        const p = patch as { metadata?: { resourceVersion?: string; labels?: Record<string, string | null>; annotations?: Record<string, string | null> }; spec?: Record<string, unknown> };
        if (p.metadata?.resourceVersion && p.metadata.resourceVersion !== n.metadata.resourceVersion) throw new Error('Conflict: the object has been modified');
        for (const field of ['labels', 'annotations'] as const) {
          for (const [k, v] of Object.entries(p.metadata?.[field] ?? {})) {
            const target = (n.metadata[field] ??= {});
            if (v === null) delete target[k];
            else target[k] = v;
          }
        }
        if (p.spec) n.spec = { ...n.spec, ...(p.spec as KubeNode['spec']) };
        n.metadata.resourceVersion = String(sim.nextRv++);
      },
      deleteNode: async (name) => {
        up();
        sim.nodes.delete(name);
        this.timeline.push(`node delete ${name}`);
      },
      podsOnNode: async (name) => {
        up();
        return sim.pods.filter((p) => p.spec?.nodeName === name).map((p) => structuredClone(p) as KubePod);
      },
      evictPod: async (namespace, name): Promise<EvictionResult> => {
        up();
        const i = sim.pods.findIndex((p) => p.metadata.namespace === namespace && p.metadata.name === name);
        if (i < 0) return 'gone';
        const pdb = sim.pods[i]!.metadata.annotations?.['test/pdb'];
        // A PodDisruptionBudget that refuses: 'block' unnamed, 'namespace/name' named as the API names it.
        if (pdb === 'block') return 'blocked';
        if (pdb) return { blockedBy: pdb };
        sim.pods.splice(i, 1);
        this.timeline.push(`evict ${namespace}/${name}`);
        return 'evicted';
      },
      listCertificateSigningRequests: async () => {
        up();
        return [];
      },
      decideCertificateSigningRequest: async () => {
        throw new Error('the fake API has no certificate signing requests');
      },
      kubeletHealthz: async (name) => (this.apiUp(cluster) && sim.nodes.has(name) ? { ok: true, message: 'ok' } : { ok: false, message: `nodes "${name}" not found` }),
    };
  }

  /** Secrets, Endpoints and ClusterRoleBindings of a simulated cluster, by `kind/namespace/name`. */
  objectApi(cluster: string): ObjectApi {
    const sim = this.sim(cluster);
    const KINDS: Record<string, boolean> = { Secret: true, Endpoints: true, ClusterRoleBinding: false };
    const key = (ref: { kind: string; namespace?: string; metadata?: { namespace?: string; name: string }; name?: string }) =>
      `${ref.kind}/${ref.namespace ?? ref.metadata?.namespace ?? ''}/${ref.name ?? ref.metadata?.name}`;
    const served = (kind: string, apiVersion: string) => {
      if (!this.apiUp(cluster)) throw new Error(`connect ECONNREFUSED ${sim.endpoint?.url ?? 'no endpoint'}`);
      if (!(kind in KINDS)) throw new UnknownKindError(apiVersion, kind);
    };
    return {
      namespaced: async (apiVersion, kind) => {
        served(kind, apiVersion);
        return KINDS[kind]!;
      },
      get: async (ref) => {
        served(ref.kind, ref.apiVersion);
        const obj = sim.objects.get(key(ref));
        return obj && structuredClone(obj);
      },
      apply: async (obj) => {
        served(obj.kind, obj.apiVersion);
        const k = key(obj);
        if (!sim.objects.has(k)) this.timeline.push(`apply ${k}`);
        sim.objects.set(k, structuredClone(obj));
        return structuredClone(obj);
      },
      delete: async (ref) => {
        served(ref.kind, ref.apiVersion);
        if (sim.objects.delete(key(ref))) this.timeline.push(`delete ${key(ref)}`);
      },
      watch: async () => {
        throw new Error('the simulated clusters do not watch objects');
      },
    };
  }

  readonly connections: ClusterConnections = {
    etcd: async (cluster: Cluster, endpoints: string[]) => {
      const pki = await this.store.get({ kind: 'Secret', project: cluster.metadata.project ?? '', name: `${cluster.metadata.name}-pki` });
      return pki ? this.etcdApi(cluster.metadata.name, endpoints) : undefined;
    },
    kube: async (cluster: Cluster) => {
      const secret = await this.store.get({ kind: 'Secret', project: cluster.metadata.project ?? '', name: `${cluster.metadata.name}-admin-kubeconfig` });
      return secret ? this.kubeApi(cluster.metadata.name) : undefined;
    },
    // Beyond Nodes, Pods and Leases the simulated clusters serve what node admission writes (add-ons
    // are tested with their own fake).
    objects: async (cluster: Cluster) => {
      const secret = await this.store.get({ kind: 'Secret', project: cluster.metadata.project ?? '', name: `${cluster.metadata.name}-admin-kubeconfig` });
      return secret ? this.objectApi(cluster.metadata.name) : undefined;
    },
    apiserverAt: async (cluster: Cluster, _address: string) => {
      const secret = await this.store.get({ kind: 'Secret', project: cluster.metadata.project ?? '', name: `${cluster.metadata.name}-admin-kubeconfig` });
      if (!secret) return undefined;
      const name = cluster.metadata.name;
      return {
        readyz: async () => (this.apiUp(name) ? { ok: true, message: 'ok' } : { ok: false, message: 'connect ECONNREFUSED' }),
        metrics: async () => {
          if (!this.apiUp(name)) throw new Error('connect ECONNREFUSED');
          return 'apiserver_current_inflight_requests{request_kind="readOnly"} 1\n';
        },
      };
    },
    agent: () => {
      throw new Error('the fake machines have no agents (the provider reports no agent URL)');
    },
    forget: (cluster) => {
      this.timeline.push(`forget ${cluster.name}`);
    },
    close: async () => undefined,
  };

  etcdQuorum(cluster: string): boolean {
    return quorumHealthy(this.sim(cluster).members.map((x) => ({ healthy: this.runningMember(x) })));
  }

  /** Machine names that received a startMachine call. */
  started(): string[] {
    return this.callsOf('start').map((c) => c.name);
  }
}

export type { Machine };
