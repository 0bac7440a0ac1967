// The Cluster controller: PKI, API endpoint, one NodePool per spec.nodePools entry, the admin
// kubeconfig, and the cluster's health as conditions. Deletion tears down in order: NodePools
// (and through them every Machine), then the endpoint, then the Secrets.
//
// Phases:  pki → endpoint → pools → adminKubeconfig → nodeBootstrap → health, then Ready sums them up.
//
// A new Kubernetes version and new certificates (a rotation's generation) reach the NodePools in
// upgrade order (./upgrade-order.ts): etcd pools, then control planes once etcd rolled out, then
// the workers once the control planes did; each pool then rolls its machines.
// Conditions (each with reason and observedGeneration):
//   PKIReady          the CA Secret exists and loads
//   EndpointReady     the provider's load balancer exists (status.endpoint)
//   EtcdReady         a quorum of etcd members answers /health
//   ControlPlaneReady kube-apiserver answers /readyz through the endpoint (admin credentials)
//   PoolsReady        every NodePool has all its replicas ready and no removed machine left
//   Healthy           the health checker's newest report (informational: Ready does not read it)
//   NodeBootstrapReady clusters with real kubelets: they may join (informational, see ./node-admission.ts)
//   Ready             all of the above but Healthy
import { getCondition, type ConditionInput } from '../api/conditions.js';
import { jsonEqual } from '../api/json.js';
import type { Cluster, ClusterStatus, Machine, NodePool, NodePoolSpec, NodePoolTemplate, Secret } from '../api/kinds.js';
import { ANNOTATION_CERTIFICATES_GENERATION } from '../api/wellknown.js';
import { hasRole, isStarted } from '../api/machines.js';
import { API_VERSION, isDeleting, type ObjectKey } from '../api/meta.js';
import {
  adminKubeconfigSecretName,
  ClusterCondition,
  FINALIZER_CLUSTER,
  LABEL_CLUSTER,
  LABEL_POOL,
  pkiSecretName,
  SECRET_TYPE_KUBECONFIG,
  SECRET_TYPE_PKI,
} from '../api/wellknown.js';
import { caExpiries, generateClusterPki, pkiToSecretData, trustPem, type ClusterPki } from '../bootstrap/clusterPki.js';
import { APISERVER_PORT, buildAdminKubeconfig } from '../bootstrap/machine.js';
import { etcdMembership, startedEtcdMachines } from '../clusteraccess/etcd.js';
import { quorumSummary } from '../etcd/membership.js';
import { healthSummary } from '../health/evaluate.js';
import { parseKubeconfig } from '../kube/client.js';
import { certificateInfo } from '../pki/index.js';
import type { EndpointDescription, InfrastructureProvider } from '../providers/contract.js';
import { TerminalError, type ReconcileContext, type Reconciler, type Result } from '../runtime/controller.js';
import { runPhases, scopeFor, type Phase, type PhaseResult, type Scope } from '../runtime/phases.js';
import { reconcileObject, type Outcome } from '../runtime/reconcile.js';
import { clusterMachines, clusterNodePools, typed } from '../store/typed.js';
import { backoffPoll, clusterRef, errorMessage, isConflictOrExists, kubernetesVersionOf, nodePoolName, providerName, publishEvent, type Shared } from './common.js';
import { clusterCreated, clusterDeleted } from '../events/platform.js';
import { drainingMachines } from './pool-rollout.js';
import { orderedFields, type OrderedFields } from './upgrade-order.js';
import { ensureNodeBootstrap, hasRealKubelets } from './node-admission.js';

/** Rotate the admin certificate when less than this much validity is left. */
const ADMIN_CERT_RENEW_BEFORE_MS = 30 * 24 * 3600 * 1000;

/** The conditions Ready sums up, in the order a reader fixes them. */
const READY_PARTS = [ClusterCondition.PKIReady, ClusterCondition.EndpointReady, ClusterCondition.EtcdReady, ClusterCondition.ControlPlaneReady, ClusterCondition.PoolsReady];

type Status = ClusterStatus;

interface ClusterScope extends Scope<Cluster> {
  provider: InfrastructureProvider;
  /** The Kubernetes version the cluster's pools run. */
  version: string;
  pools: NodePool[];
  machines: Machine[];
  /** Set by the pki phase. */
  pki?: ClusterPki;
  /** Set by the endpoint phase, when the provider has one. */
  endpoint?: EndpointDescription;
}

type ClusterPhase = Phase<ClusterScope, Status>;

export class ClusterReconciler implements Reconciler {
  private readonly clusterPools;
  private readonly machines;
  private readonly secretObjects;
  private readonly phases: readonly ClusterPhase[] = [
    { name: 'pki', run: (sc) => this.pkiPhase(sc) },
    { name: 'endpoint', run: (sc) => this.endpointPhase(sc) },
    { name: 'pools', run: (sc) => this.poolsPhase(sc) },
    { name: 'adminKubeconfig', run: (sc) => this.adminKubeconfigPhase(sc) },
    { name: 'nodeBootstrap', run: (sc) => this.nodeBootstrapPhase(sc) },
    { name: 'health', run: (sc) => this.healthPhase(sc) },
  ];

  /** What each admin kubeconfig Secret holds, parsed once per revision (reconciles run every 30 s per cluster). */
  private readonly adminCertificates = new ParsedPerRevision((kubeconfig: string) => {
    const conn = parseKubeconfig(kubeconfig);
    return { server: conn.server, caPem: conn.ca?.toString('utf8'), info: conn.cert ? certificateInfo(conn.cert.toString('utf8')) : undefined };
  });

  constructor(private readonly s: Shared) {
    this.clusterPools = typed(s.store, 'NodePool');
    this.machines = typed(s.store, 'Machine');
    this.secretObjects = typed(s.store, 'Secret');
  }

  reconcile(key: ObjectKey, ctx: ReconcileContext): Promise<Result> {
    return reconcileObject<Cluster>(
      this.s.store,
      key,
      { finalizer: FINALIZER_CLUSTER, reconcile: (c) => this.ensure(c, ctx), finalize: (c) => this.finalize(c, ctx) },
      ctx,
    );
  }

  // ------------------------------------------------------------------------------------------
  // reconcile

  private async ensure(cluster: Cluster, ctx: ReconcileContext): Promise<Outcome<Status>> {
    // The first reconcile of a new Cluster (a retry before its status is written publishes the same event id).
    if (cluster.status?.observedGeneration === undefined) publishEvent(this.s, ctx.log, clusterCreated(cluster));
    const base = scopeFor(cluster, ctx);
    const version = kubernetesVersionOf(cluster, this.s.defaultKubernetesVersion);
    base.status.kubernetesVersion = version;
    let provider: InfrastructureProvider;
    try {
      provider = this.s.providers.get(providerName(cluster));
    } catch (err) {
      base.set({ type: ClusterCondition.Ready, status: 'False', reason: 'UnknownProvider', message: errorMessage(err) });
      base.status.phase = 'Failed';
      return { status: base.status, error: new TerminalError(`cluster ${cluster.metadata.name}: ${errorMessage(err)}`) };
    }
    const project = cluster.metadata.project ?? '';
    const [pools, machines] = await Promise.all([
      clusterNodePools(this.s.store, project, cluster.metadata.name),
      clusterMachines(this.s.store, project, cluster.metadata.name),
    ]);
    const sc: ClusterScope = { ...base, provider, version, pools, machines };
    const run = await runPhases(sc, this.phases);
    return run.ended ?? this.finish(sc);
  }

  /** Ready and the phase from the parts; look again soon until Ready, then on the health schedule. */
  private finish(sc: ClusterScope): Outcome<Status> {
    const { status } = sc;
    const notReady = READY_PARTS.filter((t) => getCondition(status.conditions, t)?.status !== 'True');
    const first = notReady[0];
    if (first === undefined) {
      sc.set({ type: ClusterCondition.Ready, status: 'True', reason: 'Ready', message: 'all components are ready' });
    } else {
      const reason = getCondition(status.conditions, first)?.reason;
      sc.set({ type: ClusterCondition.Ready, status: 'False', reason: `${first}${reason ? `:${reason}` : ''}`.slice(0, 1024), message: `not ready: ${notReady.join(', ')}` });
    }
    const ready = first === undefined;
    const wasUp = status.phase === 'Ready' || status.phase === 'Degraded';
    status.phase = ready ? 'Ready' : wasUp ? 'Degraded' : 'Provisioning';
    // Not Ready: its pools, machines and Secrets wake it when they change; the poll backs off.
    const since = getCondition(status.conditions, ClusterCondition.Ready)?.lastTransitionTime;
    return { status, requeueAfterMs: ready ? this.s.timing.clusterReadyPollMs : backoffPoll(since, this.s.timing.clusterPollMs, 5 * this.s.timing.clusterPollMs) };
  }

  /** The cluster's CAs: created on first reconcile, never again (its machines trust the old ones). */
  private async pkiPhase(sc: ClusterScope): Promise<PhaseResult<Status>> {
    const name = sc.obj.metadata.name;
    const pki = await this.ensurePki(sc);
    if (!pki) {
      sc.set({ type: ClusterCondition.PKIReady, status: 'False', reason: 'SecretLost', message: `Secret ${pkiSecretName(name)} is gone; the cluster's CAs cannot be recreated` });
      return { end: this.finish(sc) };
    }
    sc.pki = pki;
    sc.set({ type: ClusterCondition.PKIReady, status: 'True', reason: 'Ready', message: `Secret ${pkiSecretName(name)}` });
  }

  /** Loads the PKI, creating it on first reconcile. undefined: it existed once and is gone. */
  private async ensurePki(sc: ClusterScope): Promise<ClusterPki | undefined> {
    const cluster = sc.obj;
    const existing = await this.s.secrets.pki(cluster);
    if (existing) return existing;
    if (getCondition(sc.status.conditions, ClusterCondition.PKIReady)?.status === 'True' || (sc.status.certificates ?? []).length > 0) return undefined;
    const pki = await generateClusterPki({ clusterName: cluster.metadata.name });
    try {
      await this.secretObjects.create({
        apiVersion: API_VERSION,
        kind: 'Secret',
        metadata: { name: pkiSecretName(cluster.metadata.name), project: cluster.metadata.project, labels: { [LABEL_CLUSTER]: cluster.metadata.name } },
        spec: { type: SECRET_TYPE_PKI, data: pkiToSecretData(pki) },
      });
    } catch (err) {
      if (!isConflictOrExists(err)) throw err;
    }
    // Read back: if another writer won the race, use theirs.
    return this.s.secrets.pki(cluster);
  }

  /**
   * The load balancer in front of every started control-plane machine. The balancer health-checks
   * /readyz itself; waiting for the machine to be Running here would deadlock, since a machine's
   * kubelet registers through this very endpoint before the machine counts as Running.
   */
  private async endpointPhase(sc: ClusterScope): Promise<PhaseResult<Status>> {
    // A control plane a roll drains is on its way out: no new connections reach its apiserver.
    const leaving = new Set(sc.pools.flatMap(drainingMachines));
    const serving = sc.machines.filter((m) => hasRole(m, 'controlplane') && !isDeleting(m) && !leaving.has(m.metadata.name) && isStarted(m) && m.status?.address);
    const backends = serving.map((m) => `${m.status!.address}:${APISERVER_PORT}`).sort();
    try {
      const endpoint = await sc.provider.ensureEndpoint(clusterRef(sc.obj), backends, { signal: sc.signal });
      sc.endpoint = endpoint;
      sc.status.endpoint = endpoint.url;
      // Recorded once the endpoint has them: a roll stops an old apiserver only after it left this list.
      sc.status.endpointBackends = serving.map((m) => m.metadata.name).sort();
      sc.set({
        type: ClusterCondition.EndpointReady,
        status: 'True',
        reason: backends.length > 0 ? 'Ready' : 'NoBackends',
        message: `${endpoint.url} → ${backends.length > 0 ? backends.join(', ') : 'no control-plane machine is up yet'}`,
      });
    } catch (err) {
      sc.set({ type: ClusterCondition.EndpointReady, status: 'False', reason: 'ProviderError', message: errorMessage(err) });
    }
  }

  /** NodePools follow spec.nodePools: created, updated, removed; their readiness becomes PoolsReady. */
  private async poolsPhase(sc: ClusterScope): Promise<PhaseResult<Status>> {
    const cluster = sc.obj;
    const project = cluster.metadata.project ?? '';
    const wanted = new Set(cluster.spec.nodePools.map((t) => t.name));
    const byTemplate = new Map<string, NodePool>();
    for (const p of sc.pools) {
      if (isDeleting(p)) continue;
      const template = p.metadata.labels?.[LABEL_POOL];
      if (template && wanted.has(template)) byTemplate.set(template, p);
      else await this.clusterPools.deleteIfExists(project, p.metadata.name);
    }
    const summary: NonNullable<Status['pools']> = [];
    const waiting: string[] = [];
    const order = orderedFields(
      cluster.spec.nodePools.map((t) => ({ name: t.name, roles: t.roles, desired: { kubernetesVersion: sc.version, ...(sc.pki?.generation ? { certificates: sc.pki.generation } : {}) }, existing: byTemplate.get(t.name) })),
    );
    for (const t of cluster.spec.nodePools) {
      const pool = await this.applyPool(sc, t, byTemplate.get(t.name), order.fields.get(t.name)!);
      if (!pool) {
        waiting.push(`${t.name} (previous pool still terminating)`);
        summary.push({ name: t.name, replicas: t.replicas, readyReplicas: 0 });
        continue;
      }
      const ready = pool.status?.readyReplicas ?? 0;
      summary.push({
        name: t.name,
        replicas: t.replicas,
        readyReplicas: ready,
        updatedReplicas: pool.status?.updatedReplicas ?? 0,
        availableReplicas: pool.status?.availableReplicas ?? 0,
        kubernetesVersion: pool.spec.kubernetesVersion,
      });
      // A scale-in is done when the removed machines are gone (drained, Node deleted), not when
      // they are merely marked for deletion: the pool's replica counts leave them out at once.
      const leaving = sc.machines.filter((m) => m.spec.pool === t.name && isDeleting(m)).length;
      const settled = ready === t.replicas && (pool.status?.replicas ?? 0) === t.replicas && leaving === 0;
      if (!settled) waiting.push(`${t.name} ${ready}/${t.replicas}${leaving > 0 ? ` (${leaving} being removed)` : ''}`);
    }
    sc.status.pools = summary;
    sc.set(
      waiting.length === 0
        ? { type: ClusterCondition.PoolsReady, status: 'True', reason: 'Ready', message: `${summary.length} pools ready` }
        : { type: ClusterCondition.PoolsReady, status: 'False', reason: 'Scaling', message: `waiting for ${waiting.join(', ')}` },
    );
  }

  /** Creates or updates the NodePool of template `t`; undefined while one of the same name still terminates. */
  private async applyPool(sc: ClusterScope, t: NodePoolTemplate, existing: NodePool | undefined, ordered: OrderedFields): Promise<NodePool | undefined> {
    const cluster = sc.obj;
    const spec = desiredPoolSpec(cluster, t, ordered);
    if (existing) return jsonEqual(existing.spec, spec) ? existing : this.clusterPools.update({ ...existing, spec });
    try {
      return await this.clusterPools.create({
        apiVersion: API_VERSION,
        kind: 'NodePool',
        metadata: {
          name: nodePoolName(cluster.metadata.name, t.name),
          project: cluster.metadata.project,
          labels: { [LABEL_CLUSTER]: cluster.metadata.name, [LABEL_POOL]: t.name },
        },
        spec,
      });
    } catch (err) {
      // A pool of the same name is still terminating (template removed and re-added): wait.
      if (!isConflictOrExists(err)) throw err;
      return undefined;
    }
  }

  /**
   * The admin kubeconfig (it names the endpoint) and the expiry of every certificate: the CAs, the
   * admin kubeconfig's, and the earliest-ending leaf of each pool's machines.
   */
  private async adminKubeconfigPhase(sc: ClusterScope): Promise<PhaseResult<Status>> {
    const pki = sc.pki!;
    const previous = (sc.status.certificates ?? []).find((c) => c.name === 'admin');
    const admin = sc.endpoint ? await this.ensureAdminKubeconfig(sc.obj, sc.endpoint, pki) : undefined;
    const adminStatus = admin ? { name: 'admin', notAfter: admin.notAfter.toISOString(), notBefore: admin.notBefore.toISOString() } : previous;
    const leaves = new Map<string, string>();
    for (const m of sc.machines) {
      const at = m.status?.certificatesNotAfter;
      if (!at || isDeleting(m)) continue;
      const key = `pool/${m.spec.pool}`;
      if (!leaves.has(key) || at < leaves.get(key)!) leaves.set(key, at);
    }
    sc.status.certificates = [...caExpiries(pki), ...(adminStatus ? [adminStatus] : []), ...[...leaves].sort().map(([name, notAfter]) => ({ name, notAfter }))];
  }

  /**
   * Ensures the admin kubeconfig Secret is current: it names the endpoint, trusts the CA bundle,
   * was issued under the current certificate generation and is not near its end (a rotation
   * re-issues it, so Marina's own client and `marina cluster kubeconfig` follow). Returns its
   * certificate's validity.
   */
  private async ensureAdminKubeconfig(cluster: Cluster, endpoint: EndpointDescription, pki: ClusterPki): Promise<{ notBefore: Date; notAfter: Date }> {
    const project = cluster.metadata.project ?? '';
    const name = adminKubeconfigSecretName(cluster.metadata.name);
    const existing = await this.secretObjects.get(project, name);
    const current = existing?.spec.data.kubeconfig;
    const generation = pki.generation ?? '';
    if (current) {
      const held = this.adminCertificates.of(existing, current);
      const info = held?.info;
      const fresh =
        info !== undefined &&
        held!.server === endpoint.url &&
        held!.caPem === trustPem(pki, 'ca') &&
        (existing.metadata.annotations?.[ANNOTATION_CERTIFICATES_GENERATION] ?? '') === generation &&
        info.notAfter.getTime() - Date.now() > ADMIN_CERT_RENEW_BEFORE_MS;
      if (fresh) return info;
    }
    const admin = await buildAdminKubeconfig({ clusterName: cluster.metadata.name, endpointUrl: endpoint.url, pki });
    const spec = { type: SECRET_TYPE_KUBECONFIG, data: { kubeconfig: admin.kubeconfig } };
    const annotations = generation ? { [ANNOTATION_CERTIFICATES_GENERATION]: generation } : undefined;
    if (existing) {
      const { [ANNOTATION_CERTIFICATES_GENERATION]: _old, ...others } = existing.metadata.annotations ?? {};
      await this.secretObjects.update({ ...existing, metadata: { ...existing.metadata, annotations: { ...others, ...annotations } }, spec });
      return admin;
    }
    try {
      const secret: Secret = {
        apiVersion: API_VERSION,
        kind: 'Secret',
        metadata: { name, project: cluster.metadata.project, labels: { [LABEL_CLUSTER]: cluster.metadata.name }, ...(annotations ? { annotations } : {}) },
        spec,
      };
      await this.secretObjects.create(secret);
    } catch (err) {
      if (!isConflictOrExists(err)) throw err;
      throw new Error(`admin kubeconfig Secret ${name} appeared concurrently; retrying`);
    }
    return admin;
  }

  /** Clusters with real kubelets: what lets them join (./node-admission.ts), as NodeBootstrapReady. */
  private async nodeBootstrapPhase(sc: ClusterScope): Promise<PhaseResult<Status>> {
    if (!sc.endpoint || !hasRealKubelets(sc.obj)) return;
    sc.set(await ensureNodeBootstrap(this.s, sc));
  }

  /**
   * EtcdReady and ControlPlaneReady (asked now), and Healthy from the health checker's newest
   * report (it runs on its own schedule and wakes this reconciler when the summary changes).
   * Healthy is informational: Ready keeps meaning "serves its API and has its machines", so one
   * flaky scheduler does not turn a cluster Degraded.
   */
  private async healthPhase(sc: ClusterScope): Promise<PhaseResult<Status>> {
    const [etcdReady, controlPlaneReady] = await Promise.all([this.etcdCondition(sc), this.controlPlaneCondition(sc)]);
    sc.set(etcdReady);
    sc.set(controlPlaneReady);
    const report = this.s.health?.get(sc.obj.metadata.project ?? '', sc.obj.metadata.name);
    if (!report) return;
    const health = healthSummary(report);
    sc.status.health = health;
    sc.set(
      report.healthy
        ? { type: ClusterCondition.Healthy, status: 'True', reason: 'ChecksPassing', message: `all checks pass; ${health.nodesReady}/${health.nodesTotal} Nodes Ready` }
        : { type: ClusterCondition.Healthy, status: 'False', reason: 'ChecksFailing', message: health.failing.join('; ').slice(0, 32768) || 'the Nodes could not be listed' },
    );
  }

  private async etcdCondition(sc: ClusterScope): Promise<ConditionInput> {
    const type = ClusterCondition.EtcdReady;
    if (startedEtcdMachines(sc.machines).length === 0) return { type, status: 'False', reason: 'NoMembers', message: 'no etcd machine has started yet' };
    try {
      const membership = await etcdMembership(this.s.connections, sc.obj, sc.machines, { signal: sc.signal });
      if (!membership) return { type, status: 'False', reason: 'NoPKI', message: 'no PKI' };
      const sum = quorumSummary(await membership.health());
      return sum.quorum
        ? { type, status: 'True', reason: sum.allHealthy ? 'Healthy' : 'QuorumHealthy', message: sum.message }
        : { type, status: 'False', reason: 'QuorumLost', message: sum.message };
    } catch (err) {
      return { type, status: 'False', reason: 'Unreachable', message: errorMessage(err) };
    }
  }

  private async controlPlaneCondition(sc: ClusterScope): Promise<ConditionInput> {
    const type = ClusterCondition.ControlPlaneReady;
    if (!sc.endpoint) return { type, status: 'False', reason: 'NoEndpoint', message: 'the API endpoint does not exist yet' };
    try {
      const kube = await this.s.connections.kube(sc.obj);
      if (!kube) return { type, status: 'False', reason: 'NoKubeconfig', message: 'no admin kubeconfig yet' };
      const r = await kube.readyz({ signal: sc.signal });
      return r.ok
        ? { type, status: 'True', reason: 'Ready', message: `/readyz: ${r.message}` }
        : { type, status: 'False', reason: 'NotReady', message: `/readyz: ${r.message}`.slice(0, 32768) };
    } catch (err) {
      return { type, status: 'False', reason: 'Unreachable', message: errorMessage(err) };
    }
  }

  // ------------------------------------------------------------------------------------------
  // finalize: children, then the endpoint, then the Secrets

  private async finalize(cluster: Cluster, ctx: ReconcileContext): Promise<Outcome<Status>> {
    const sc = scopeFor(cluster, ctx);
    sc.status.phase = 'Deleting';
    const project = cluster.metadata.project ?? '';
    const name = cluster.metadata.name;
    const [pools, machines] = await Promise.all([clusterNodePools(this.s.store, project, name), clusterMachines(this.s.store, project, name)]);
    for (const p of pools) if (!isDeleting(p)) await this.clusterPools.deleteIfExists(project, p.metadata.name);
    // Machines whose pool is already gone (or never had one) are deleted directly.
    for (const m of machines) if (!isDeleting(m)) await this.machines.deleteIfExists(project, m.metadata.name);
    if (pools.length > 0 || machines.length > 0) {
      sc.set({ type: ClusterCondition.Ready, status: 'False', reason: 'Deleting', message: `waiting for ${pools.length} node pools and ${machines.length} machines to be deleted` });
      return { status: sc.status, requeueAfterMs: this.s.timing.deletePollMs };
    }
    try {
      await this.s.providers.get(providerName(cluster)).deleteEndpoint(clusterRef(cluster), { signal: ctx.signal });
    } catch (err) {
      sc.set({ type: ClusterCondition.EndpointReady, status: 'False', reason: 'DeleteFailed', message: errorMessage(err) });
      return { status: sc.status, error: err };
    }
    const secrets = await this.secretObjects.list({ project, labelSelector: `${LABEL_CLUSTER}=${name}` });
    const names = new Set([...secrets.map((s) => s.metadata.name), pkiSecretName(name), adminKubeconfigSecretName(name)]);
    for (const n of names) await this.secretObjects.deleteIfExists(project, n);
    for (const secret of secrets) this.adminCertificates.forget(secret);
    this.s.connections.forget({ project, name });
    this.s.secrets.forget({ project, name });
    publishEvent(this.s, ctx.log, clusterDeleted(cluster));
    return { done: true };
  }
}

/** A value derived from a Secret's content, computed once per Secret revision (undefined when it cannot be). */
class ParsedPerRevision<T> {
  private readonly byUid = new Map<string, { rv: string; value: T | undefined }>();

  constructor(private readonly parse: (content: string) => T) {}

  of(secret: Secret, content: string): T | undefined {
    const uid = secret.metadata.uid ?? '';
    const rv = secret.metadata.resourceVersion ?? '';
    const hit = this.byUid.get(uid);
    if (hit?.rv === rv) return hit.value;
    let value: T | undefined;
    try {
      value = this.parse(content);
    } catch {
      value = undefined; // unreadable: the caller replaces it
    }
    this.byUid.set(uid, { rv, value });
    return value;
  }

  forget(secret: Pick<Secret, 'metadata'>): void {
    this.byUid.delete(secret.metadata.uid ?? '');
  }
}

function desiredPoolSpec(cluster: Cluster, t: NodePoolTemplate, ordered: OrderedFields): NodePoolSpec {
  const spec: NodePoolSpec = {
    cluster: cluster.metadata.name,
    roles: [...t.roles],
    replicas: t.replicas,
    kubernetesVersion: ordered.kubernetesVersion,
    provider: t.provider ?? providerName(cluster),
  };
  if (ordered.certificates) spec.certificates = ordered.certificates;
  if (t.machine) spec.machine = t.machine;
  if (t.labels) spec.labels = t.labels;
  if (t.taints) spec.taints = t.taints;
  if (t.runtime) spec.runtime = t.runtime;
  if (t.healing) spec.healing = t.healing;
  if (t.rollout) spec.rollout = t.rollout;
  return spec;
}
