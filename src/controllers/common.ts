// Names, labels, timing and small store helpers shared by the Cluster, NodePool and Machine
// controllers.
import { createHash, randomInt } from 'node:crypto';
import type { Logger } from 'pino';
import { isApiError } from '../api/errors.js';
import type { Cluster, Machine, MachineRole, NodePool } from '../api/kinds.js';
import { keyString, NAME_MAX, type ObjectKey, type Resource } from '../api/meta.js';
import { LABEL_CLUSTER, LABEL_POOL } from '../bootstrap/machine.js';
import { EtcdError } from '../etcd/client.js';
import type { ClusterRef, MachineRef, ProviderRegistry } from '../providers/contract.js';
import { getCondition, isTrue } from '../runtime/conditions.js';
import type { ListOptions, Store } from '../store/types.js';
import type { ClusterConnections, ClusterSecrets } from './connections.js';
import type { HealthRegistry } from '../health/registry.js';
import type { AlertSink } from '../alerts/manager.js';
import type { CloudEvent } from '../api/functions.js';
import type { EventBus } from '../functions/events.js';

export { LABEL_CLUSTER, LABEL_POOL };
/** On Machines: the name of the NodePool object that owns them. */
export const LABEL_NODEPOOL = 'marina.dev/nodepool';

export const FINALIZER_CLUSTER = 'marina.dev/cluster';
export const FINALIZER_NODEPOOL = 'marina.dev/nodepool';
export const FINALIZER_MACHINE = 'marina.dev/machine';

export const ADMIN_KUBECONFIG_SECRET_TYPE = 'marina.dev/kubeconfig';

export function adminKubeconfigSecretName(cluster: string): string {
  return `${cluster}-admin-kubeconfig`;
}

/** How often controllers look again; tests shrink these. */
export interface Timing {
  /** Cluster not Ready yet: look again after this long. */
  clusterPollMs: number;
  /** Cluster Ready: periodic health check. */
  clusterReadyPollMs: number;
  /** NodePool still converging (e.g. waiting for etcd to allow the next member). */
  poolPollMs: number;
  /** Machine waiting at a gate or booting. */
  machinePollMs: number;
  /** Machine Running with a Ready Node (or no Node). */
  machineReadyPollMs: number;
  /** Upper bound for draining a Node before its Machine is deleted anyway. */
  drainTimeoutMs: number;
  /** Deleting objects: look again after this long. */
  deletePollMs: number;
  /** Timeout of one etcd / Kubernetes API call made by a controller. */
  remoteCallTimeoutMs: number;
}

export const DEFAULT_TIMING: Timing = {
  clusterPollMs: 2000,
  clusterReadyPollMs: 30_000,
  poolPollMs: 2000,
  machinePollMs: 1000,
  machineReadyPollMs: 30_000,
  drainTimeoutMs: 60_000,
  deletePollMs: 1000,
  remoteCallTimeoutMs: 3000,
};

/** What every reconciler gets. */
export interface Shared {
  store: Store;
  providers: ProviderRegistry;
  connections: ClusterConnections;
  secrets: ClusterSecrets;
  timing: Timing;
  defaultKubernetesVersion: string;
  log: Logger;
  /** Newest health report per cluster (the health checker's); absent in tests that don't check. */
  health?: HealthRegistry;
  /** Where healing reports HealingHeldBack. */
  alerts?: AlertSink;
  /** Where platform events go (the function service); absent: none are published. */
  events?: EventBus;
}

/** Publishes a platform event (src/functions/platform-events.ts); a failure is logged, never fails the reconcile. */
export function publishEvent(s: Pick<Shared, 'events' | 'log'>, event: CloudEvent): void {
  s.events?.publish(event).catch((err) => s.log.warn({ err, type: event.type, id: event.id }, 'publishing a platform event failed'));
}

// ---------- names ----------

/** `<prefix>` cut to `max` characters with a short hash so distinct long names stay distinct. */
export function boundedName(prefix: string, max: number): string {
  if (prefix.length <= max) return prefix;
  const hash = createHash('sha256').update(prefix).digest('hex').slice(0, 6);
  return `${prefix.slice(0, max - 7).replace(/-+$/, '')}-${hash}`;
}

/** NodePool object name for a pool template: `<cluster>-<pool>`. */
export function nodePoolName(cluster: string, pool: string): string {
  return boundedName(`${cluster}-${pool}`, NAME_MAX);
}

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

/** `<cluster>-<pool>-<5 random [a-z0-9]>`, within the 63-character name limit. */
export function machineName(cluster: string, pool: string): string {
  let suffix = '';
  for (let i = 0; i < 5; i++) suffix += ALPHABET[randomInt(ALPHABET.length)];
  return `${boundedName(`${cluster}-${pool}`, NAME_MAX - 6)}-${suffix}`;
}

// ---------- refs and keys ----------

export function clusterKey(project: string, name: string): ObjectKey {
  return { kind: 'Cluster', project, name };
}

export function clusterRef(cluster: Cluster): ClusterRef {
  return { project: cluster.metadata.project ?? '', name: cluster.metadata.name, uid: cluster.metadata.uid ?? '' };
}

export function machineRef(machine: Machine): MachineRef {
  return {
    project: machine.metadata.project ?? '',
    cluster: machine.spec.cluster,
    name: machine.metadata.name,
    uid: machine.metadata.uid ?? '',
  };
}

export function isDeleting(obj: Resource): boolean {
  return obj.metadata.deletionTimestamp !== undefined;
}

export function hasRole(obj: Machine | NodePool, role: MachineRole): boolean {
  return obj.spec.roles.includes(role);
}

export function providerName(cluster: Cluster): string {
  return cluster.spec.provider ?? 'local';
}

export function kubernetesVersionOf(cluster: Cluster, fallback: string): string {
  return cluster.spec.kubernetesVersion ?? fallback;
}

// ---------- machine state ----------

/** The provider was asked to boot this machine (its processes / server may exist). */
export function isStarted(m: Machine): boolean {
  return isTrue(m.status?.conditions, 'Bootstrapped') || m.status?.phase === 'Running';
}

/** Counted as ready by its pool: Running, and its Node (if it has one) Ready. */
export function isMachineReady(m: Machine): boolean {
  return m.status?.phase === 'Running' && m.status.nodeReady !== false;
}

/** Oldest first: creationTimestamp, then name. */
export function byAge(a: Resource, b: Resource): number {
  const ta = a.metadata.creationTimestamp ?? '';
  const tb = b.metadata.creationTimestamp ?? '';
  if (ta !== tb) return ta < tb ? -1 : 1;
  return a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0;
}

export function conditionReason(obj: Resource & { status?: { conditions?: Parameters<typeof getCondition>[0] } }, type: string): string | undefined {
  return getCondition(obj.status?.conditions, type)?.reason;
}

// ---------- store helpers ----------

/** Every object of a kind matching the options (all pages). */
export async function listAll<T extends Resource>(store: Store, kind: string, opts: Omit<ListOptions, 'limit' | 'continue'>): Promise<T[]> {
  const out: T[] = [];
  let cont: string | undefined;
  do {
    const page = await store.list(kind, { ...opts, limit: 500, continue: cont });
    out.push(...(page.items as T[]));
    cont = page.continue;
  } while (cont);
  return out;
}

export async function clusterMachines(store: Store, project: string, cluster: string): Promise<Machine[]> {
  const items = await listAll<Machine>(store, 'Machine', { project, labelSelector: `${LABEL_CLUSTER}=${cluster}` });
  return items.filter((m) => m.spec.cluster === cluster);
}

export async function clusterNodePools(store: Store, project: string, cluster: string): Promise<NodePool[]> {
  const items = await listAll<NodePool>(store, 'NodePool', { project, labelSelector: `${LABEL_CLUSTER}=${cluster}` });
  return items.filter((p) => p.spec.cluster === cluster);
}

export async function getCluster(store: Store, project: string, name: string): Promise<Cluster | undefined> {
  return (await store.get(clusterKey(project, name))) as Cluster | undefined;
}

/** store.delete that treats "already gone" as success. */
export async function deleteIfExists(store: Store, key: ObjectKey): Promise<void> {
  try {
    await store.delete(key);
  } catch (err) {
    if (isApiError(err) && err.code === 404) return;
    throw err;
  }
}

export function isConflictOrExists(err: unknown): boolean {
  return isApiError(err) && err.code === 409;
}

/** Condition reason for a failed etcd call: no answer at all, or an answer that said no. */
export function etcdFailureReason(err: unknown): 'EtcdUnreachable' | 'EtcdRefused' {
  return err instanceof EtcdError && !err.network ? 'EtcdRefused' : 'EtcdUnreachable';
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// ---------- cluster → children index ----------

/**
 * Remembers which objects (Machines or NodePools) belong to which cluster, fed from watch events,
 * so a Cluster change can enqueue its children synchronously (WatchSpec.mapTo cannot query the
 * store). Stale entries are harmless: reconciling a missing key is a no-op.
 */
export class ClusterIndex {
  private readonly byCluster = new Map<string, Map<string, ObjectKey>>();

  note(obj: Machine | NodePool): void {
    const project = obj.metadata.project ?? '';
    const ck = keyString(clusterKey(project, obj.spec.cluster));
    const key: ObjectKey = { kind: obj.kind, project, name: obj.metadata.name };
    const gone = isDeleting(obj) && (obj.metadata.finalizers ?? []).length === 0;
    let set = this.byCluster.get(ck);
    if (gone) {
      set?.delete(keyString(key));
      if (set && set.size === 0) this.byCluster.delete(ck);
      return;
    }
    if (!set) this.byCluster.set(ck, (set = new Map()));
    set.set(keyString(key), key);
  }

  keys(project: string, cluster: string): ObjectKey[] {
    return [...(this.byCluster.get(keyString(clusterKey(project, cluster)))?.values() ?? [])];
  }
}
