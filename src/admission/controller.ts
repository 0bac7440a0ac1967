// Node admission: lets the real kubelet of a Machine (runtime containerd, imported servers) into its
// cluster, and nothing else. A reconciler over Machines beside the Machine controller; it writes no
// Machine status (the Machine's NodeReady condition tells the outcome) and talks to the cluster with
// its admin credentials:
//
//   1. RBAC: group system:bootstrappers may create CSRs (ClusterRole system:node-bootstrapper), and
//      nothing approves them automatically (kube-controller-manager approves only for requesters
//      with the nodeclient permissions, which Marina never grants).
//   2. While the Machine's Node is not registered: the Secret kube-system/bootstrap-token-<id> of
//      the machine's token (bootstrap-token.ts), valid for an hour and renewed while needed. Once
//      the Node exists, the Secret is deleted: the kubelet renews its certificate as itself.
//   3. Pending kubelet CSRs of the machine are judged by csr.ts and approved or denied; the
//      cluster's CSR signer (kube-controller-manager with the cluster CA) then issues them.
//   4. The `kubernetes` Service's Endpoints point where real nodes reach the API (the provider
//      says where: a node network's gateway, Marina's public address): its apiservers listen on
//      loopback, so their own endpoint reconciler is off, and without this pods (a DNS add-on)
//      could not reach the API. kube-controller-manager mirrors them into an EndpointSlice.
import type { Logger } from 'pino';
import type { Cluster, Machine, Secret } from '../api/kinds.js';
import type { ObjectKey } from '../api/meta.js';
import { bootstrapTokenFor, bootstrapTokenSecret } from '../bootstrap/bootstrap-token.js';
import { pkiDataFromSecretData } from '../bootstrap/clusterPki.js';
import { hasKubelet, usesRealKubelet } from '../api/machines.js';
import { pkiSecretName } from '../api/wellknown.js';
import { isAlreadyExists, isNotFound, KubeClient, parseKubeconfig, Resources, type KubeObject, type ResourceType } from '../kube/client.js';
import { Controller, type ReconcileContext, type Reconciler, type Result } from '../runtime/controller.js';
import type { Store } from '../store/types.js';
import type { ProviderRegistry } from '../providers/contract.js';
import { isPending, judgeCsr, requestedNode, type CsrObject } from './csr.js';

const CSRS: ResourceType = { apiVersion: 'certificates.k8s.io/v1', kind: 'CertificateSigningRequest', plural: 'certificatesigningrequests', namespaced: false };

export const BOOTSTRAP_BINDING = 'marina:kubelet-bootstrap';
/** A bootstrap token Secret lives this long; renewed while the machine has not joined. */
const TOKEN_TTL_MS = 60 * 60 * 1000;

export interface NodeAdmissionOptions {
  store: Store;
  log: Logger;
  /** To ask providers where their nodes reach the API (the `kubernetes` Service's Endpoints). */
  providers?: ProviderRegistry;
  /** Look again this often while a machine is joining (default 2 s), and when it has joined (60 s). */
  joiningPollMs?: number;
  joinedPollMs?: number;
}

interface ClusterClient {
  kubeconfig: string;
  client: KubeClient;
  rbacDone: boolean;
  /** The `kubernetes` Endpoints last written (ip:port). */
  apiEndpoint?: string;
}

export class NodeAdmission implements Reconciler {
  private readonly clients = new Map<string, ClusterClient>();

  constructor(private readonly opts: NodeAdmissionOptions) {}

  async reconcile(key: ObjectKey, _ctx: ReconcileContext): Promise<Result> {
    const machine = (await this.opts.store.get(key)) as Machine | undefined;
    if (!machine || !hasKubelet(machine) || !usesRealKubelet(machine)) return;
    const project = machine.metadata.project ?? '';
    const cluster = (await this.opts.store.get({ kind: 'Cluster', project, name: machine.spec.cluster })) as Cluster | undefined;
    if (!cluster || cluster.metadata.deletionTimestamp) return;
    const api = await this.client(cluster);
    const pkiSecret = (await this.opts.store.get({ kind: 'Secret', project, name: pkiSecretName(cluster.metadata.name) })) as Secret | undefined;
    if (!api || !pkiSecret || !machine.metadata.uid) return { requeueAfterMs: this.opts.joiningPollMs ?? 2000 };
    const token = bootstrapTokenFor(pkiDataFromSecretData(pkiSecret.spec.data).caKey, machine.metadata.uid);
    const secretName = `bootstrap-token-${token.id}`;
    const name = machine.metadata.name;

    if (machine.metadata.deletionTimestamp) {
      await this.deleteSecret(api.client, secretName);
      return;
    }
    await this.ensureRbac(api);
    await this.ensureKubernetesEndpoints(cluster, api);
    const node = await api.client.get<KubeObject & { status?: { conditions?: { type: string; status: string }[] } }>(Resources.nodes, name).catch((err: unknown) => {
      if (isNotFound(err)) return undefined;
      throw err;
    });
    if (node) await this.deleteSecret(api.client, secretName);
    else if (machine.status?.phase !== 'Failed') await this.ensureSecret(api.client, secretName, token, name);

    const csrs = (await api.client.list<CsrObject & KubeObject>(CSRS)).items;
    for (const csr of csrs) {
      if (!isPending(csr) || requestedNode(csr) !== name) continue;
      const verdict = judgeCsr(csr, { name, tokenId: token.id, address: machine.status?.address, settled: machine.status?.phase === 'Running' });
      if (verdict.action === 'ignore') continue;
      const condition =
        verdict.action === 'approve'
          ? { type: 'Approved', status: 'True', reason: 'MarinaApproved', message: verdict.message }
          : { type: 'Denied', status: 'True', reason: verdict.reason, message: verdict.message };
      await api.client.replace(CSRS, { ...csr, status: { ...csr.status, conditions: [...(csr.status?.conditions ?? []), condition] } }, { subresource: 'approval' });
      this.opts.log.info({ machine: name, csr: csr.metadata.name, signer: csr.spec.signerName, decision: condition.type, message: condition.message }, 'kubelet certificate request decided');
    }
    const ready = node?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
    return { requeueAfterMs: ready ? (this.opts.joinedPollMs ?? 60_000) : (this.opts.joiningPollMs ?? 2000) };
  }

  close(): void {
    for (const c of this.clients.values()) c.client.close();
    this.clients.clear();
  }

  /** A client with the cluster's admin credentials, cached per kubeconfig. */
  private async client(cluster: Cluster): Promise<ClusterClient | undefined> {
    const project = cluster.metadata.project ?? '';
    const secret = (await this.opts.store.get({ kind: 'Secret', project, name: `${cluster.metadata.name}-admin-kubeconfig` })) as Secret | undefined;
    const kubeconfig = secret?.spec.data.kubeconfig;
    const key = `${project}/${cluster.metadata.name}/${cluster.metadata.uid ?? ''}`;
    if (!kubeconfig) return undefined;
    let entry = this.clients.get(key);
    if (!entry || entry.kubeconfig !== kubeconfig) {
      entry?.client.close();
      entry = { kubeconfig, client: new KubeClient(parseKubeconfig(kubeconfig), { userAgent: 'marina-node-admission', timeoutMs: 10_000 }), rbacDone: false };
      this.clients.set(key, entry);
    }
    return entry;
  }

  private async ensureRbac(api: ClusterClient): Promise<void> {
    if (api.rbacDone) return;
    const binding = {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: BOOTSTRAP_BINDING, labels: { 'app.kubernetes.io/managed-by': 'marina' } },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:node-bootstrapper' },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'system:bootstrappers' }],
    };
    try {
      await api.client.create(Resources.clusterRoleBindings, binding);
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
    api.rbacDone = true;
  }

  /**
   * Endpoints `default/kubernetes` → where real nodes reach the API. An imported server's address
   * wins over a local node network's gateway: local nodes reach it too (it is this host's), the
   * other way round not.
   */
  private async ensureKubernetesEndpoints(cluster: Cluster, api: ClusterClient): Promise<void> {
    const providers = this.opts.providers;
    if (!providers) return;
    const ref = { project: cluster.metadata.project ?? '', name: cluster.metadata.name, uid: cluster.metadata.uid ?? '' };
    const names = [...new Set(['import', ...cluster.spec.nodePools.map((p) => p.provider ?? cluster.spec.provider ?? 'local')])];
    let target: string | undefined;
    for (const name of names) {
      try {
        target = await providers.get(name).nodeAPIEndpoint?.(ref);
      } catch {
        target = undefined;
      }
      if (target) break;
    }
    if (!target || target === api.apiEndpoint) return;
    const i = target.lastIndexOf(':');
    const endpoints = {
      apiVersion: 'v1',
      kind: 'Endpoints',
      metadata: { name: 'kubernetes', namespace: 'default', labels: { 'app.kubernetes.io/managed-by': 'marina' } },
      subsets: [{ addresses: [{ ip: target.slice(0, i) }], ports: [{ name: 'https', port: Number(target.slice(i + 1)), protocol: 'TCP' }] }],
    };
    try {
      await api.client.create(Resources.endpoints, endpoints);
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
      await api.client.patch(Resources.endpoints, 'kubernetes', { metadata: { labels: endpoints.metadata.labels }, subsets: endpoints.subsets }, { namespace: 'default', type: 'merge' });
    }
    api.apiEndpoint = target;
    this.opts.log.info({ cluster: cluster.metadata.name, endpoint: target }, 'the kubernetes Service points where the nodes reach the API');
  }

  private async ensureSecret(client: KubeClient, name: string, token: ReturnType<typeof bootstrapTokenFor>, machine: string): Promise<void> {
    const existing = await client.get<KubeObject & { data?: Record<string, string> }>(Resources.secrets, name, { namespace: 'kube-system' }).catch((err: unknown) => {
      if (isNotFound(err)) return undefined;
      throw err;
    });
    const expiration = existing?.data?.expiration ? Date.parse(Buffer.from(existing.data.expiration, 'base64').toString('utf8')) : 0;
    // Renew ahead of expiry: a kubelet that starts bootstrapping must find it valid.
    if (existing && expiration - Date.now() > TOKEN_TTL_MS / 4) return;
    if (existing) await this.deleteSecret(client, name);
    try {
      await client.create(Resources.secrets, bootstrapTokenSecret(token, { expiration: new Date(Date.now() + TOKEN_TTL_MS), machine }));
      this.opts.log.info({ machine, secret: name }, 'bootstrap token created');
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
  }

  private async deleteSecret(client: KubeClient, name: string): Promise<void> {
    try {
      await client.delete(Resources.secrets, name, { namespace: 'kube-system' });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
}

export interface RunningNodeAdmission {
  controller: Controller;
  stop(): Promise<void>;
}

/** Starts the node-admission controller (Machines are its primary kind; a resync every minute). */
export async function startNodeAdmission(opts: NodeAdmissionOptions): Promise<RunningNodeAdmission> {
  const admission = new NodeAdmission(opts);
  const controller = new Controller({
    name: 'node-admission',
    kind: 'Machine',
    store: opts.store,
    reconciler: admission,
    workers: 2,
    resyncPeriodMs: 60_000,
    logger: opts.log,
  });
  await controller.start();
  return {
    controller,
    async stop() {
      await controller.stop();
      admission.close();
    },
  };
}
