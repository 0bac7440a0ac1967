// The Cluster controller: PKI, API endpoint, one NodePool per spec.nodePools entry, the admin
// kubeconfig, and the cluster's health as conditions. Deletion tears down in order: NodePools
// (and through them every Machine), then the endpoint, then the Secrets.
//
// Conditions (each with reason and observedGeneration):
//   PKIReady          the CA Secret exists and loads
//   EndpointReady     the provider's load balancer exists (status.endpoint)
//   EtcdReady         a quorum of etcd members answers /health
//   ControlPlaneReady kube-apiserver answers /readyz through the endpoint (admin credentials)
//   PoolsReady        every NodePool has all its replicas ready and no removed machine left
//   Ready             all of the above
import { isDeepStrictEqual } from 'node:util';
import type { HealthReport } from '../health/types.js';
import type { Cluster, ClusterStatus, HealthSummary, Machine, NodePool, NodePoolSpec, NodePoolTemplate, Secret } from '../api/kinds.js';
import { API_VERSION, type ObjectKey } from '../api/meta.js';
import {
  caExpiries,
  generateClusterPki,
  PKI_SECRET_TYPE,
  pkiSecretName,
  pkiToSecretData,
  type ClusterPki,
} from '../bootstrap/clusterPki.js';
import { APISERVER_PORT, buildAdminKubeconfig, etcdClientURL } from '../bootstrap/machine.js';
import { certificateNotAfter } from '../pki/index.js';
import { parseKubeconfig } from '../kube/client.js';
import type { EndpointDescription, InfrastructureProvider } from '../providers/contract.js';
import type { ReconcileContext, Reconciler, Result } from '../runtime/controller.js';
import { TerminalError } from '../runtime/controller.js';
import { getCondition, setCondition, type ConditionInput } from '../runtime/conditions.js';
import { reconcileObject, type Outcome } from '../runtime/reconcile.js';
import { quorumHealthy } from '../etcd/client.js';
import {
  ADMIN_KUBECONFIG_SECRET_TYPE,
  adminKubeconfigSecretName,
  clusterMachines,
  clusterNodePools,
  clusterRef,
  deleteIfExists,
  errorMessage,
  FINALIZER_CLUSTER,
  hasRole,
  isConflictOrExists,
  isDeleting,
  isStarted,
  kubernetesVersionOf,
  LABEL_CLUSTER,
  LABEL_POOL,
  listAll,
  nodePoolName,
  providerName,
  type Shared,
} from './common.js';

/** The summary of a health report kept in Cluster.status.health. */
export function healthSummary(report: HealthReport): HealthSummary {
  const failing = [
    ...report.checks.filter((c) => !c.ok).map((c) => `${c.component}${c.machine ? `/${c.machine}` : ''}: ${c.message}`),
    ...report.nodes.flatMap((n) => n.problems.map((p) => `node/${n.name}: ${p.type}=${p.status}${p.reason ? ` (${p.reason})` : ''}`)),
  ];
  return {
    healthy: report.healthy,
    failing: failing.slice(0, 20).map((f) => f.slice(0, 256)),
    nodesReady: report.nodes.filter((n) => n.ready === 'True').length,
    nodesTotal: report.nodes.length,
  };
}

/** Rotate the admin certificate when less than this much validity is left. */
const ADMIN_CERT_RENEW_BEFORE_MS = 30 * 24 * 3600 * 1000;

type Status = ClusterStatus;

export class ClusterReconciler implements Reconciler {
  constructor(private readonly s: Shared) {}

  reconcile(key: ObjectKey, ctx: ReconcileContext): Promise<Result> {
    return reconcileObject<Cluster>(
      this.s.store,
      key,
      {
        finalizer: FINALIZER_CLUSTER,
        reconcile: (c) => this.ensure(c),
        finalize: (c) => this.finalize(c),
      },
      ctx,
    );
  }

  // ------------------------------------------------------------------------------------------
  // reconcile

  private async ensure(cluster: Cluster): Promise<Outcome<Status>> {
    const gen = cluster.metadata.generation;
    const status: Status = { ...(cluster.status ?? {}) };
    const set = (c: ConditionInput) => (status.conditions = setCondition(status.conditions, c, gen));
    const version = kubernetesVersionOf(cluster, this.s.defaultKubernetesVersion);
    status.kubernetesVersion = version;

    let provider: InfrastructureProvider;
    try {
      provider = this.s.providers.get(providerName(cluster));
    } catch (err) {
      set({ type: 'Ready', status: 'False', reason: 'UnknownProvider', message: errorMessage(err) });
      status.phase = 'Failed';
      return { status, error: new TerminalError(`cluster ${cluster.metadata.name}: ${errorMessage(err)}`) };
    }

    // PKI
    const pki = await this.ensurePki(cluster, status);
    if (!pki) {
      set({ type: 'PKIReady', status: 'False', reason: 'SecretLost', message: `Secret ${pkiSecretName(cluster.metadata.name)} is gone; the cluster's CAs cannot be recreated` });
      return this.finish(cluster, status);
    }
    set({ type: 'PKIReady', status: 'True', reason: 'Ready', message: `Secret ${pkiSecretName(cluster.metadata.name)}` });

    const [pools, machines] = await Promise.all([
      clusterNodePools(this.s.store, cluster.metadata.project ?? '', cluster.metadata.name),
      clusterMachines(this.s.store, cluster.metadata.project ?? '', cluster.metadata.name),
    ]);

    // Endpoint: the load balancer in front of every started control-plane machine. The balancer
    // health-checks /readyz itself; waiting for the machine to be Running here would deadlock,
    // since a machine's kubelet registers through this very endpoint before the machine counts
    // as Running.
    const backends = machines
      .filter((m) => hasRole(m, 'controlplane') && !isDeleting(m) && isStarted(m) && m.status?.address)
      .map((m) => `${m.status!.address}:${APISERVER_PORT}`)
      .sort();
    let endpoint: EndpointDescription | undefined;
    try {
      endpoint = await provider.ensureEndpoint(clusterRef(cluster), backends);
      status.endpoint = endpoint.url;
      set({
        type: 'EndpointReady',
        status: 'True',
        reason: backends.length > 0 ? 'Ready' : 'NoBackends',
        message: `${endpoint.url} → ${backends.length > 0 ? backends.join(', ') : 'no control-plane machine is up yet'}`,
      });
    } catch (err) {
      set({ type: 'EndpointReady', status: 'False', reason: 'ProviderError', message: errorMessage(err) });
    }

    // NodePools follow spec.nodePools.
    const poolSummary = await this.ensurePools(cluster, pools, machines, version);
    status.pools = poolSummary.summary;

    // Admin kubeconfig (needs the endpoint's address).
    const previousAdmin = (status.certificates ?? []).find((c) => c.name === 'admin');
    const admin = endpoint ? { name: 'admin', notAfter: (await this.ensureAdminKubeconfig(cluster, endpoint, pki)).toISOString() } : previousAdmin;
    status.certificates = [...caExpiries(pki), ...(admin ? [admin] : [])];

    // Health.
    const [etcdReady, controlPlaneReady] = await Promise.all([
      this.etcdCondition(cluster, machines),
      this.controlPlaneCondition(cluster, endpoint !== undefined),
    ]);
    set(etcdReady);
    set(controlPlaneReady);
    set(
      poolSummary.ready
        ? { type: 'PoolsReady', status: 'True', reason: 'Ready', message: poolSummary.message }
        : { type: 'PoolsReady', status: 'False', reason: 'Scaling', message: poolSummary.message },
    );
    // The health checker's newest report (it runs on its own schedule and wakes this reconciler
    // when the summary changes). Healthy is informational: Ready keeps meaning "serves its API
    // and has its machines", so one flaky scheduler does not turn a cluster Degraded.
    const report = this.s.health?.get(cluster.metadata.project ?? '', cluster.metadata.name);
    if (report) {
      status.health = healthSummary(report);
      set(
        report.healthy
          ? { type: 'Healthy', status: 'True', reason: 'ChecksPassing', message: `all checks pass; ${status.health.nodesReady}/${status.health.nodesTotal} Nodes Ready` }
          : { type: 'Healthy', status: 'False', reason: 'ChecksFailing', message: status.health.failing.join('; ').slice(0, 32768) || 'the Nodes could not be listed' },
      );
    }
    return this.finish(cluster, status);
  }

  private finish(cluster: Cluster, status: Status): Outcome<Status> {
    const gen = cluster.metadata.generation;
    const parts = ['PKIReady', 'EndpointReady', 'EtcdReady', 'ControlPlaneReady', 'PoolsReady'];
    const notReady = parts.filter((t) => getCondition(status.conditions, t)?.status !== 'True');
    if (notReady.length === 0) {
      status.conditions = setCondition(status.conditions, { type: 'Ready', status: 'True', reason: 'Ready', message: 'all components are ready' }, gen);
    } else {
      const first = getCondition(status.conditions, notReady[0]!);
      status.conditions = setCondition(
        status.conditions,
        { type: 'Ready', status: 'False', reason: `${notReady[0]}${first?.reason ? `:${first.reason}` : ''}`.slice(0, 1024), message: `not ready: ${notReady.join(', ')}` },
        gen,
      );
    }
    const ready = notReady.length === 0;
    const wasUp = status.phase === 'Ready' || status.phase === 'Degraded';
    status.phase = ready ? 'Ready' : wasUp ? 'Degraded' : 'Provisioning';
    return { status, requeueAfterMs: ready ? this.s.timing.clusterReadyPollMs : this.s.timing.clusterPollMs };
  }

  /** Loads the PKI, creating it on first reconcile. undefined: it existed once and is gone. */
  private async ensurePki(cluster: Cluster, status: Status): Promise<ClusterPki | undefined> {
    const existing = await this.s.secrets.pki(cluster);
    if (existing) return existing;
    // Never mint new CAs for a cluster that had them: its machines trust the old ones.
    if (getCondition(status.conditions, 'PKIReady')?.status === 'True' || (status.certificates ?? []).length > 0) return undefined;
    const pki = await generateClusterPki({ clusterName: cluster.metadata.name });
    const secret: Secret = {
      apiVersion: API_VERSION,
      kind: 'Secret',
      metadata: {
        name: pkiSecretName(cluster.metadata.name),
        project: cluster.metadata.project,
        labels: { [LABEL_CLUSTER]: cluster.metadata.name },
      },
      spec: { type: PKI_SECRET_TYPE, data: pkiToSecretData(pki) },
    };
    try {
      await this.s.store.create(secret);
    } catch (err) {
      if (!isConflictOrExists(err)) throw err;
    }
    // Read back: if another writer won the race, use theirs.
    return this.s.secrets.pki(cluster);
  }

  private desiredPoolSpec(cluster: Cluster, t: NodePoolTemplate, version: string): NodePoolSpec {
    const spec: NodePoolSpec = {
      cluster: cluster.metadata.name,
      roles: [...t.roles],
      replicas: t.replicas,
      kubernetesVersion: version,
      provider: t.provider ?? (providerName(cluster) as NodePoolSpec['provider']),
    };
    if (t.machine) spec.machine = t.machine;
    if (t.labels) spec.labels = t.labels;
    if (t.taints) spec.taints = t.taints;
    if (t.runtime) spec.runtime = t.runtime;
    if (t.healing) spec.healing = t.healing;
    return spec;
  }

  private async ensurePools(
    cluster: Cluster,
    existing: NodePool[],
    machines: Machine[],
    version: string,
  ): Promise<{ summary: NonNullable<Status['pools']>; ready: boolean; message: string }> {
    const project = cluster.metadata.project ?? '';
    const wanted = new Map(cluster.spec.nodePools.map((t) => [t.name, t]));
    const byTemplate = new Map<string, NodePool>();
    for (const p of existing) {
      const tname = p.metadata.labels?.[LABEL_POOL];
      if (tname && wanted.has(tname) && !isDeleting(p)) byTemplate.set(tname, p);
      else if (!isDeleting(p)) await deleteIfExists(this.s.store, { kind: 'NodePool', project, name: p.metadata.name });
    }
    const summary: NonNullable<Status['pools']> = [];
    const waiting: string[] = [];
    for (const t of cluster.spec.nodePools) {
      const spec = this.desiredPoolSpec(cluster, t, version);
      let pool = byTemplate.get(t.name);
      if (!pool) {
        const obj: NodePool = {
          apiVersion: API_VERSION,
          kind: 'NodePool',
          metadata: {
            name: nodePoolName(cluster.metadata.name, t.name),
            project: cluster.metadata.project,
            labels: { [LABEL_CLUSTER]: cluster.metadata.name, [LABEL_POOL]: t.name },
          },
          spec,
        };
        try {
          pool = (await this.s.store.create(obj)) as NodePool;
        } catch (err) {
          // A pool of the same name is still terminating (template removed and re-added): wait.
          if (!isConflictOrExists(err)) throw err;
          waiting.push(`${t.name} (previous pool still terminating)`);
          summary.push({ name: t.name, replicas: t.replicas, readyReplicas: 0 });
          continue;
        }
      } else if (!isDeepStrictEqual(JSON.parse(JSON.stringify(pool.spec)), JSON.parse(JSON.stringify(spec)))) {
        pool = (await this.s.store.update({ ...pool, spec })) as NodePool;
      }
      const ready = pool.status?.readyReplicas ?? 0;
      summary.push({ name: t.name, replicas: t.replicas, readyReplicas: ready });
      // A scale-in is done when the removed machines are gone (drained, Node deleted), not when
      // they are merely marked for deletion: the pool's replica counts leave them out at once.
      const leaving = machines.filter((m) => m.spec.pool === t.name && isDeleting(m)).length;
      const settled = ready === t.replicas && (pool.status?.replicas ?? 0) === t.replicas && leaving === 0;
      if (!settled) waiting.push(`${t.name} ${ready}/${t.replicas}${leaving > 0 ? ` (${leaving} being removed)` : ''}`);
    }
    return {
      summary,
      ready: waiting.length === 0,
      message: waiting.length === 0 ? `${summary.length} pools ready` : `waiting for ${waiting.join(', ')}`,
    };
  }

  /** Ensures the admin kubeconfig Secret is current; returns its certificate's notAfter. */
  private async ensureAdminKubeconfig(cluster: Cluster, endpoint: EndpointDescription, pki: ClusterPki): Promise<Date> {
    const project = cluster.metadata.project ?? '';
    const key = { kind: 'Secret', project, name: adminKubeconfigSecretName(cluster.metadata.name) };
    const existing = (await this.s.store.get(key)) as Secret | undefined;
    const current = existing?.spec.data.kubeconfig;
    if (current) {
      try {
        const conn = parseKubeconfig(current);
        const notAfter = conn.cert ? certificateNotAfter(conn.cert.toString('utf8')) : new Date(0);
        const fresh =
          conn.server === endpoint.url &&
          conn.ca?.toString('utf8') === pki.ca.certPem &&
          notAfter.getTime() - Date.now() > ADMIN_CERT_RENEW_BEFORE_MS;
        if (fresh) return notAfter;
      } catch {
        /* unreadable: replace it */
      }
    }
    const admin = await buildAdminKubeconfig({ clusterName: cluster.metadata.name, endpointUrl: endpoint.url, pki });
    const spec = { type: ADMIN_KUBECONFIG_SECRET_TYPE, data: { kubeconfig: admin.kubeconfig } };
    if (existing) {
      await this.s.store.update({ ...existing, spec });
    } else {
      try {
        await this.s.store.create({
          apiVersion: API_VERSION,
          kind: 'Secret',
          metadata: { name: key.name, project: cluster.metadata.project, labels: { [LABEL_CLUSTER]: cluster.metadata.name } },
          spec,
        });
      } catch (err) {
        if (!isConflictOrExists(err)) throw err;
        throw new Error(`admin kubeconfig Secret ${key.name} appeared concurrently; retrying`);
      }
    }
    return admin.notAfter;
  }

  private async etcdCondition(cluster: Cluster, machines: Awaited<ReturnType<typeof clusterMachines>>): Promise<ConditionInput> {
    const endpoints = machines
      .filter((m) => hasRole(m, 'etcd') && isStarted(m) && m.status?.address)
      .map((m) => etcdClientURL(m.status!.address!));
    if (endpoints.length === 0) return { type: 'EtcdReady', status: 'False', reason: 'NoMembers', message: 'no etcd machine has started yet' };
    try {
      const etcd = await this.s.connections.etcd(cluster, endpoints);
      if (!etcd) return { type: 'EtcdReady', status: 'False', reason: 'NoPKI', message: 'no PKI' };
      const health = await etcd.memberHealth();
      const healthy = health.filter((m) => m.healthy).length;
      const message = `${healthy}/${health.length} members healthy${health
        .filter((m) => !m.healthy)
        .map((m) => `; ${m.name || m.peerURLs[0]}: ${m.error ?? 'unhealthy'}`)
        .join('')}`;
      return quorumHealthy(health)
        ? { type: 'EtcdReady', status: 'True', reason: healthy === health.length ? 'Healthy' : 'QuorumHealthy', message }
        : { type: 'EtcdReady', status: 'False', reason: 'QuorumLost', message };
    } catch (err) {
      return { type: 'EtcdReady', status: 'False', reason: 'Unreachable', message: errorMessage(err) };
    }
  }

  private async controlPlaneCondition(cluster: Cluster, hasEndpoint: boolean): Promise<ConditionInput> {
    if (!hasEndpoint) return { type: 'ControlPlaneReady', status: 'False', reason: 'NoEndpoint', message: 'the API endpoint does not exist yet' };
    try {
      const kube = await this.s.connections.kube(cluster);
      if (!kube) return { type: 'ControlPlaneReady', status: 'False', reason: 'NoKubeconfig', message: 'no admin kubeconfig yet' };
      const r = await kube.readyz();
      return r.ok
        ? { type: 'ControlPlaneReady', status: 'True', reason: 'Ready', message: `/readyz: ${r.message}` }
        : { type: 'ControlPlaneReady', status: 'False', reason: 'NotReady', message: `/readyz: ${r.message}`.slice(0, 32768) };
    } catch (err) {
      return { type: 'ControlPlaneReady', status: 'False', reason: 'Unreachable', message: errorMessage(err) };
    }
  }

  // ------------------------------------------------------------------------------------------
  // finalize

  private async finalize(cluster: Cluster): Promise<Outcome<Status>> {
    const project = cluster.metadata.project ?? '';
    const name = cluster.metadata.name;
    const status: Status = { ...(cluster.status ?? {}), phase: 'Deleting' };
    const gen = cluster.metadata.generation;

    const [pools, machines] = await Promise.all([clusterNodePools(this.s.store, project, name), clusterMachines(this.s.store, project, name)]);
    for (const p of pools) if (!isDeleting(p)) await deleteIfExists(this.s.store, { kind: 'NodePool', project, name: p.metadata.name });
    // Machines whose pool is already gone (or never had one) are deleted directly.
    for (const m of machines) if (!isDeleting(m)) await deleteIfExists(this.s.store, { kind: 'Machine', project, name: m.metadata.name });
    if (pools.length > 0 || machines.length > 0) {
      status.conditions = setCondition(
        status.conditions,
        { type: 'Ready', status: 'False', reason: 'Deleting', message: `waiting for ${pools.length} node pools and ${machines.length} machines to be deleted` },
        gen,
      );
      return { status, requeueAfterMs: this.s.timing.deletePollMs };
    }

    try {
      const provider = this.s.providers.get(providerName(cluster));
      await provider.deleteEndpoint(clusterRef(cluster));
    } catch (err) {
      status.conditions = setCondition(status.conditions, { type: 'EndpointReady', status: 'False', reason: 'DeleteFailed', message: errorMessage(err) }, gen);
      return { status, error: err };
    }

    const secrets = await listAll<Secret>(this.s.store, 'Secret', { project, labelSelector: `${LABEL_CLUSTER}=${name}` });
    const names = new Set([...secrets.map((s) => s.metadata.name), pkiSecretName(name), adminKubeconfigSecretName(name)]);
    for (const n of names) await deleteIfExists(this.s.store, { kind: 'Secret', project, name: n });
    this.s.connections.forget({ project, name });
    this.s.secrets.forget({ project, name });
    return { done: true };
  }
}

