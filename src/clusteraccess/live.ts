// The real ClusterConnections: one etcd client (with a short-lived client certificate from the
// cluster's etcd CA), one Kubernetes client through the endpoint (behind both KubeApi and the
// discovery-based ObjectApi) and one per control-plane machine's apiserver, cached per cluster and
// closed when the cluster is deleted or Marina stops.
// Once a cluster's API answers, a Node watch wakes the Machine of every Node that changes.
import type { Logger } from 'pino';
import type { Cluster } from '../api/kinds.js';
import { APISERVER_PORT } from '../bootstrap/machine.js';
import { EtcdClient, type EtcdApi } from '../etcd/client.js';
import { isNotFound, KubeClient, KubeError, parseKubeconfig, resourcePath, Resources, type KubeObject, type ResourceType, type Watcher } from '../kube/client.js';
import type { CertificateSigningRequest, Node, Pod, PodDisruptionBudget } from '../kube/objects.js';
import { issueLeaf, trustPem } from '../bootstrap/clusterPki.js';
import type { ApiServerProbe, CallOptions, ClusterConnections, KubeApi, LeaseInfo, ObjectApi, Readiness } from './access.js';
import { DiscoveredObjects } from './objects.js';
import { httpAgent, type AgentApi } from './agents.js';
import type { ClusterSecrets } from './secrets.js';

const cacheKey = (c: { project: string; name: string }): string => `${c.project}/${c.name}`;
const refOf = (cluster: Cluster) => ({ project: cluster.metadata.project ?? '', name: cluster.metadata.name });

/** GET /readyz: never throws; a failure's message says what answered (or did not). */
async function readyz(client: KubeClient, opts: CallOptions = {}): Promise<Readiness> {
  try {
    const body = await client.request<unknown>({ method: 'GET', path: '/readyz', signal: opts.signal });
    return { ok: true, message: typeof body === 'string' ? body.trim() : 'ok' };
  } catch (err) {
    return { ok: false, message: err instanceof KubeError ? `${err.code ? `HTTP ${err.code}: ` : ''}${failedChecks(err.message)}` : String(err) };
  }
}

/**
 * A failed /readyz answers every check, one per line ("[+]ping ok", "[-]etcd failed: …"): only
 * the failing ones, on one line, so that a condition or a CLI progress line says what is wrong.
 */
export function failedChecks(body: string): string {
  const lines = body.split('\n').map((l) => l.trim()).filter(Boolean);
  const failed = lines.filter((l) => l.startsWith('[-]'));
  if (failed.length === 0) return lines.join('; ');
  return failed.map((l) => l.slice(3)).join('; ');
}

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
  /** `issuer`: the signing CA and trust bundle the client was made for (a CA rotation changes them). */
  etcd?: { issuer: string; notAfter: number; client: EtcdClient };
  kube?: { kubeconfig: string; client: KubeClient; api: KubeApi; objects: ObjectApi; nodes?: Watcher<Node> };
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
    const trust = trustPem(pki, 'etcdCa');
    const issuer = `${pki.etcdCa.certPem}${trust}`;
    if (!e.etcd || e.etcd.issuer !== issuer || e.etcd.notAfter - Date.now() < RENEW_BEFORE_MS) {
      e.etcd?.client.close();
      // During a CA rotation the certificate carries the new CA cross-signed by the old one, so
      // members that still trust only the old CA accept it; the bundle verifies old and new members.
      const cert = await issueLeaf(pki, 'etcdCa', { commonName: 'marina-controller', usage: 'client', validityDays: ETCD_CLIENT_CERT_DAYS });
      e.etcd = {
        issuer,
        notAfter: cert.notAfter.getTime(),
        client: new EtcdClient({ endpoints, ca: trust, cert: cert.certPem, key: cert.keyPem, timeoutMs: this.timeoutMs }),
      };
    }
    e.etcd.client.setEndpoints(endpoints);
    return e.etcd.client;
  }

  async kube(cluster: Cluster): Promise<KubeApi | undefined> {
    return (await this.kubeEntry(cluster))?.api;
  }

  async objects(cluster: Cluster): Promise<ObjectApi | undefined> {
    return (await this.kubeEntry(cluster))?.objects;
  }

  /** The cluster's Kubernetes client (through its endpoint), made anew when the admin kubeconfig changes. */
  private async kubeEntry(cluster: Cluster): Promise<Entry['kube']> {
    if (this.closed) throw new Error('connections closed');
    const kubeconfig = await this.opts.secrets.adminKubeconfig(cluster);
    if (!kubeconfig) return undefined;
    const e = this.entry(cluster);
    if (!e.kube || e.kube.kubeconfig !== kubeconfig) {
      this.closeKube(e);
      const client = new KubeClient(parseKubeconfig(kubeconfig), { timeoutMs: this.timeoutMs, userAgent: 'marina-controllers' });
      const kube: NonNullable<Entry['kube']> = {
        kubeconfig,
        client,
        api: this.adapt(client, () => this.watchNodes(cluster, kube)),
        objects: new DiscoveredObjects(client),
      };
      e.kube = kube;
    }
    return e.kube;
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
      const metrics = async (opts: CallOptions = {}): Promise<string> =>
        String(await client.request<unknown>({ method: 'GET', path: '/metrics', timeoutMs: Math.max(this.timeoutMs, 10_000), signal: opts.signal }));
      hit = { client, probe: { readyz: (opts) => readyz(client, opts), metrics } };
      e.apiservers.byAddress.set(address, hit);
    }
    return hit.probe;
  }

  agent(_cluster: Cluster, agentURL: string): AgentApi {
    return httpAgent(agentURL);
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
    kube.nodes = kube.client.watch<Node>(Resources.nodes, {
      backoff: { initialMs: 500, maxMs: 5000 },
      onEvent: (ev) => onNodeEvent(project, name, ev.object.metadata.name),
      onError: (err) => this.opts.log?.debug({ err, cluster: `${project}/${name}` }, 'node watch interrupted'),
    });
  }

  /** The KubeApi over `client`; `onReady` runs whenever /readyz answers ok. */
  private adapt(client: KubeClient, onReady: () => void): KubeApi {
    /** GET that answers undefined for 404. */
    const find = async <T extends KubeObject>(res: ResourceType, name: string, opts: CallOptions & { namespace?: string }): Promise<T | undefined> => {
      try {
        return await client.get<T>(res, name, opts);
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    };
    return {
      readyz: async (opts) => {
        const r = await readyz(client, opts);
        if (r.ok) onReady();
        return r;
      },
      getNode: (name, opts = {}) => find<Node>(Resources.nodes, name, opts),
      patchNode: async (name, patch, opts = {}) => {
        await client.patch(Resources.nodes, name, patch, { ...opts, type: 'merge', fieldManager: 'marina' });
      },
      deleteNode: async (name, opts = {}) => {
        try {
          await client.delete(Resources.nodes, name, opts);
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
      },
      podsOnNode: async (name, opts = {}) => {
        const list = await client.listAll<Pod>(Resources.pods, { ...opts, fieldSelector: `spec.nodeName=${name}` });
        return list.items;
      },
      listNodes: async (opts = {}) => (await client.listAll<Node>(Resources.nodes, opts)).items,
      listPodDisruptionBudgets: async (opts = {}) => (await client.listAll<PodDisruptionBudget>(Resources.podDisruptionBudgets, opts)).items,
      serverVersion: async (opts = {}) => {
        const v = await client.request<{ gitVersion?: string }>({ method: 'GET', path: '/version', signal: opts.signal });
        return v.gitVersion ?? '';
      },
      getLease: async (namespace, name, opts = {}) => {
        const lease = await find<KubeObject & { spec?: LeaseInfo }>(Resources.leases, name, { ...opts, namespace });
        return lease && (lease.spec ?? {});
      },
      listCertificateSigningRequests: async (opts = {}) => (await client.listAll<CertificateSigningRequest>(Resources.certificateSigningRequests, opts)).items,
      decideCertificateSigningRequest: async (csr, condition, opts = {}) => {
        const decided = { ...csr, status: { ...csr.status, conditions: [...(csr.status?.conditions ?? []), { ...condition, status: 'True' }] } };
        await client.replace(Resources.certificateSigningRequests, decided, { ...opts, subresource: 'approval' });
      },
      kubeletHealthz: async (node, opts = {}) => {
        try {
          const body = await client.request<unknown>({ method: 'GET', path: `${resourcePath(Resources.nodes, { name: node })}/proxy/healthz`, signal: opts.signal });
          const text = typeof body === 'string' ? body.trim() : JSON.stringify(body);
          return { ok: text === 'ok', message: text.slice(0, 1024) };
        } catch (err) {
          return { ok: false, message: err instanceof KubeError ? `${err.code ? `HTTP ${err.code}: ` : ''}${err.message}` : String(err) };
        }
      },
      evictPod: async (namespace, name, opts = {}) => {
        try {
          await client.evict(namespace, name, opts);
          return 'evicted';
        } catch (err) {
          if (isNotFound(err)) return 'gone';
          if (err instanceof KubeError && err.code === 429) {
            // "The disruption budget web needs 2 healthy pods and has 2 currently"
            const text = [err.message, ...(err.details?.causes ?? []).map((c) => c.message ?? '')].join(' ');
            const pdb = /disruption budget ([a-z0-9]([-a-z0-9.]*[a-z0-9])?)/.exec(text)?.[1];
            return pdb ? { blockedBy: `${namespace}/${pdb}` } : 'blocked';
          }
          throw err;
        }
      },
    };
  }
}
