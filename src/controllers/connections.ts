// How controllers reach *into* a cluster: its etcd members (membership, health) and its
// Kubernetes API (readiness, Nodes, draining). Controllers use the narrow EtcdApi / KubeApi
// interfaces below; LiveConnections implements them with the real clients and caches one of
// each per cluster (closed when the cluster is deleted or the controllers stop). Tests substitute
// their own ClusterConnections.
import type { Logger } from 'pino';
import type { Cluster, Secret } from '../api/kinds.js';
import { pkiSecretName } from '../api/wellknown.js';
import { loadClusterPkiFromSecretData, type ClusterPki } from '../bootstrap/clusterPki.js';
import { EtcdClient, type EtcdMember, type MemberHealth } from '../etcd/client.js';
import { isNotFound, KubeClient, KubeError, parseKubeconfig, Resources, type KubeObject, type OwnerReference, type Watcher } from '../kube/client.js';
import { issueCertificate } from '../pki/index.js';
import { APISERVER_PORT } from '../bootstrap/machine.js';
import type { Store } from '../store/types.js';
import type { Node as KubeNode, Pod as KubePod } from '../kube/objects.js';

export type { KubeNode, KubePod };

// ---------- what controllers need ----------

export interface EtcdApi {
  memberList(): Promise<EtcdMember[]>;
  memberAdd(peerURLs: string[], opts?: { isLearner?: boolean }): Promise<{ member: EtcdMember; members: EtcdMember[] }>;
  memberRemove(id: string): Promise<EtcdMember[]>;
  /** Makes a learner that caught up with the leader a voting member. */
  memberPromote(id: string): Promise<EtcdMember[]>;
  /** /health of every member (unstarted members are unhealthy). */
  memberHealth(members?: EtcdMember[]): Promise<MemberHealth[]>;
  /** Prometheus text of the member at `endpoint` (a client URL). */
  metrics(endpoint: string): Promise<string>;
}

/** The parts of a coordination.k8s.io Lease a leader-election check reads. */
export interface LeaseInfo {
  holderIdentity?: string;
  renewTime?: string;
  leaseDurationSeconds?: number;
}

export type EvictionResult = 'evicted' | 'blocked' | 'gone';

export interface KubeApi {
  /** GET /readyz. */
  readyz(): Promise<{ ok: boolean; message: string }>;
  /** undefined when the Node does not exist. */
  getNode(name: string): Promise<KubeNode | undefined>;
  /** JSON merge patch; include metadata.resourceVersion for optimistic concurrency. */
  patchNode(name: string, patch: Record<string, unknown>): Promise<void>;
  /** Succeeds when the Node is already gone. */
  deleteNode(name: string): Promise<void>;
  podsOnNode(name: string): Promise<KubePod[]>;
  /** policy/v1 eviction: `blocked` when a PodDisruptionBudget refuses (429). */
  evictPod(namespace: string, name: string): Promise<EvictionResult>;
  listNodes(): Promise<KubeNode[]>;
  /** undefined when the Lease does not exist. */
  getLease(namespace: string, name: string): Promise<LeaseInfo | undefined>;
}

/** One control-plane machine's own kube-apiserver, addressed directly (not through the endpoint). */
export interface ApiServerProbe {
  readyz(): Promise<{ ok: boolean; message: string }>;
  /** Prometheus text of /metrics. */
  metrics(): Promise<string>;
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

/** GET /readyz: never throws; a failure's message says what answered (or did not). */
async function readyz(client: KubeClient): Promise<{ ok: boolean; message: string }> {
  try {
    const body = await client.request<unknown>({ method: 'GET', path: '/readyz' });
    return { ok: true, message: typeof body === 'string' ? body.trim() : 'ok' };
  } catch (err) {
    return { ok: false, message: err instanceof KubeError ? `${err.code ? `HTTP ${err.code}: ` : ''}${err.message}` : String(err) };
  }
}

// ---------- cluster secrets, parsed once per revision ----------

const cacheKey = (c: { project: string; name: string }): string => `${c.project}/${c.name}`;
const refOf = (cluster: Cluster) => ({ project: cluster.metadata.project ?? '', name: cluster.metadata.name });

/** Reads a cluster's PKI and admin kubeconfig Secrets, keeping the parsed PKI per Secret revision. */
export class ClusterSecrets {
  private readonly pkis = new Map<string, { uid: string; rv: string; pki: Promise<ClusterPki> }>();

  constructor(private readonly store: Store) {}

  async pki(cluster: Cluster): Promise<ClusterPki | undefined> {
    const project = cluster.metadata.project ?? '';
    const secret = (await this.store.get({ kind: 'Secret', project, name: pkiSecretName(cluster.metadata.name) })) as Secret | undefined;
    const key = cacheKey(refOf(cluster));
    if (!secret) {
      this.pkis.delete(key);
      return undefined;
    }
    const uid = secret.metadata.uid ?? '';
    const rv = secret.metadata.resourceVersion ?? '';
    let entry = this.pkis.get(key);
    if (!entry || entry.uid !== uid || entry.rv !== rv) {
      entry = { uid, rv, pki: loadClusterPkiFromSecretData(secret.spec.data) };
      this.pkis.set(key, entry);
      entry.pki.catch(() => this.pkis.delete(key));
    }
    return entry.pki;
  }

  async adminKubeconfig(cluster: Cluster): Promise<string | undefined> {
    const project = cluster.metadata.project ?? '';
    const secret = (await this.store.get({ kind: 'Secret', project, name: `${cluster.metadata.name}-admin-kubeconfig` })) as Secret | undefined;
    return secret?.spec.data.kubeconfig;
  }

  forget(cluster: { project: string; name: string }): void {
    this.pkis.delete(cacheKey(cluster));
  }
}

// ---------- the real thing ----------

export interface LiveConnectionsOptions {
  secrets: ClusterSecrets;
  /** Per-call timeout (default 3 s). */
  timeoutMs?: number;
  /** Called on every Node change of a cluster whose API answered /readyz (to wake its Machine). */
  onNodeEvent?: (project: string, cluster: string, nodeName: string) => void;
  log?: Logger;
}

/** Marina's etcd client certificate lives this long and is renewed a day before it ends. */
const ETCD_CLIENT_CERT_DAYS = 30;
const RENEW_BEFORE_MS = 24 * 3600 * 1000;

interface Entry {
  clusterUid: string;
  etcd?: { caPem: string; notAfter: number; client: EtcdClient };
  kube?: { kubeconfig: string; client: KubeClient; api: KubeApi; nodes?: Watcher<KubeNode> };
  /** Direct clients of each control-plane machine's apiserver, by address. */
  apiservers?: { kubeconfig: string; byAddress: Map<string, { client: KubeClient; probe: ApiServerProbe }> };
}

export class LiveConnections implements ClusterConnections {
  private readonly entries = new Map<string, Entry>();
  private readonly timeoutMs: number;
  private closed = false;

  constructor(private readonly opts: LiveConnectionsOptions) {
    this.timeoutMs = opts.timeoutMs ?? 3000;
  }

  private entry(cluster: Cluster): Entry {
    const key = cacheKey(refOf(cluster));
    const uid = cluster.metadata.uid ?? '';
    let e = this.entries.get(key);
    if (e && e.clusterUid !== uid) {
      this.forget(refOf(cluster));
      e = undefined;
    }
    if (!e) this.entries.set(key, (e = { clusterUid: uid }));
    return e;
  }

  async etcd(cluster: Cluster, endpoints: string[]): Promise<EtcdApi | undefined> {
    if (this.closed) throw new Error('connections closed');
    const pki = await this.opts.secrets.pki(cluster);
    if (!pki) return undefined;
    const e = this.entry(cluster);
    if (!e.etcd || e.etcd.caPem !== pki.etcdCa.certPem || e.etcd.notAfter - Date.now() < RENEW_BEFORE_MS) {
      e.etcd?.client.close();
      const cert = await issueCertificate(pki.etcdCa, { commonName: 'marina-controller', usage: 'client', validityDays: ETCD_CLIENT_CERT_DAYS });
      e.etcd = {
        caPem: pki.etcdCa.certPem,
        notAfter: cert.notAfter.getTime(),
        client: new EtcdClient({ endpoints, ca: pki.etcdCa.certPem, cert: cert.certPem, key: cert.keyPem, timeoutMs: this.timeoutMs }),
      };
    }
    e.etcd.client.setEndpoints(endpoints);
    return e.etcd.client;
  }

  async kube(cluster: Cluster): Promise<KubeApi | undefined> {
    if (this.closed) throw new Error('connections closed');
    const kubeconfig = await this.opts.secrets.adminKubeconfig(cluster);
    if (!kubeconfig) return undefined;
    const e = this.entry(cluster);
    if (!e.kube || e.kube.kubeconfig !== kubeconfig) {
      this.closeKube(e);
      const client = new KubeClient(parseKubeconfig(kubeconfig), { timeoutMs: this.timeoutMs, userAgent: 'marina-controllers' });
      const kube: NonNullable<Entry['kube']> = { kubeconfig, client, api: undefined as unknown as KubeApi };
      kube.api = this.adapt(cluster, kube);
      e.kube = kube;
    }
    return e.kube.api;
  }

  async apiserverAt(cluster: Cluster, address: string): Promise<ApiServerProbe | undefined> {
    if (this.closed) throw new Error('connections closed');
    const kubeconfig = await this.opts.secrets.adminKubeconfig(cluster);
    if (!kubeconfig) return undefined;
    const e = this.entry(cluster);
    if (!e.apiservers || e.apiservers.kubeconfig !== kubeconfig) {
      this.closeApiservers(e);
      e.apiservers = { kubeconfig, byAddress: new Map() };
    }
    let hit = e.apiservers.byAddress.get(address);
    if (!hit) {
      const conn = parseKubeconfig(kubeconfig);
      const host = address.includes(':') ? `[${address}]` : address;
      // The admin credentials are valid on every apiserver; each serving certificate names its
      // machine's address, so TLS verification holds without the endpoint.
      const client = new KubeClient({ ...conn, server: `https://${host}:${APISERVER_PORT}` }, { timeoutMs: this.timeoutMs, userAgent: 'marina-health' });
      const metrics = async (): Promise<string> => String(await client.request<unknown>({ method: 'GET', path: '/metrics', timeoutMs: Math.max(this.timeoutMs, 10_000) }));
      hit = { client, probe: { readyz: () => readyz(client), metrics } };
      e.apiservers.byAddress.set(address, hit);
    }
    return hit.probe;
  }

  /** Drops direct apiserver clients of machines no longer in `addresses`. */
  pruneApiservers(cluster: { project: string; name: string }, addresses: Iterable<string>): void {
    const e = this.entries.get(cacheKey(cluster));
    if (!e?.apiservers) return;
    const keep = new Set(addresses);
    for (const [addr, hit] of e.apiservers.byAddress) {
      if (!keep.has(addr)) {
        hit.client.close();
        e.apiservers.byAddress.delete(addr);
      }
    }
  }

  forget(cluster: { project: string; name: string }): void {
    const key = cacheKey(cluster);
    const e = this.entries.get(key);
    if (!e) return;
    e.etcd?.client.close();
    this.closeKube(e);
    this.closeApiservers(e);
    this.entries.delete(key);
    this.opts.secrets.forget(cluster);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const key of [...this.entries.keys()]) {
      const [project, name] = key.split('/') as [string, string];
      this.forget({ project, name });
    }
  }

  private closeApiservers(e: Entry): void {
    for (const hit of e.apiservers?.byAddress.values() ?? []) hit.client.close();
    e.apiservers = undefined;
  }

  private closeKube(e: Entry): void {
    e.kube?.nodes?.stop();
    e.kube?.client.close();
    e.kube = undefined;
  }

  /** Starts the Node watch once the API answers, so Node changes wake their Machines. */
  private watchNodes(cluster: Cluster, kube: NonNullable<Entry['kube']>): void {
    const onNodeEvent = this.opts.onNodeEvent;
    if (kube.nodes || !onNodeEvent || this.closed) return;
    const project = cluster.metadata.project ?? '';
    const name = cluster.metadata.name;
    kube.nodes = kube.client.watch<KubeNode>(Resources.nodes, {
      backoff: { initialMs: 500, maxMs: 5000 },
      onEvent: (ev) => onNodeEvent(project, name, ev.object.metadata.name),
      onError: (err) => this.opts.log?.debug({ err, cluster: `${project}/${name}` }, 'node watch interrupted'),
    });
  }

  private adapt(cluster: Cluster, kube: NonNullable<Entry['kube']>): KubeApi {
    const client = kube.client;
    return {
      readyz: async () => {
        const r = await readyz(client);
        if (r.ok) this.watchNodes(cluster, kube);
        return r;
      },
      getNode: async (name) => {
        try {
          return await client.get<KubeNode>(Resources.nodes, name);
        } catch (err) {
          if (isNotFound(err)) return undefined;
          throw err;
        }
      },
      patchNode: async (name, patch) => {
        await client.patch(Resources.nodes, name, patch, { type: 'merge', fieldManager: 'marina' });
      },
      deleteNode: async (name) => {
        try {
          await client.delete(Resources.nodes, name);
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
      },
      podsOnNode: async (name) => {
        const list = await client.listAll<KubePod>(Resources.pods, { fieldSelector: `spec.nodeName=${name}` });
        return list.items;
      },
      listNodes: async () => (await client.listAll<KubeNode>(Resources.nodes)).items,
      getLease: async (namespace, name) => {
        try {
          const lease = await client.get<KubeObject & { spec?: LeaseInfo }>(Resources.leases, name, { namespace });
          return lease.spec ?? {};
        } catch (err) {
          if (isNotFound(err)) return undefined;
          throw err;
        }
      },
      evictPod: async (namespace, name) => {
        try {
          await client.evict(namespace, name);
          return 'evicted';
        } catch (err) {
          if (isNotFound(err)) return 'gone';
          if (err instanceof KubeError && err.code === 429) return 'blocked';
          throw err;
        }
      },
    };
  }
}
