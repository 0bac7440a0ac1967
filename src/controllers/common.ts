// What the Cluster, NodePool and Machine controllers share: timing, the dependencies every
// reconciler gets, object names and refs, error helpers, and the cluster → children index.
import { createHash, randomInt } from 'node:crypto';
import { isApiError } from '../api/errors.js';
import type { Cluster, Machine, NodePool, Provider } from '../api/kinds.js';
import { isDeleting, keyString, NAME_MAX, type ObjectKey } from '../api/meta.js';
import type { ClusterRef, MachineRef, ProviderRegistry } from '../providers/contract.js';
import type { Logger } from 'pino';
import type { Store } from '../store/types.js';
import type { ClusterConnections } from '../clusteraccess/access.js';
import type { ClusterSecrets } from '../clusteraccess/secrets.js';
import type { HealthRegistry } from '../health/registry.js';
import type { AlertSink } from '../alerts/manager.js';
import type { RuntimeMetrics } from '../runtime/metrics.js';
import type { CloudEvent } from '../api/functions.js';
import type { EventBus } from '../events/bus.js';

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

// A Ready cluster or a Running machine changes through events (its machines, its Node, the health
// checker's report), so their periodic look is only a safety net: at 10,000 machines a 30 s poll
// alone would be 330 reconciles a second.
export const DEFAULT_TIMING: Timing = {
  clusterPollMs: 2000,
  clusterReadyPollMs: 120_000,
  poolPollMs: 2000,
  machinePollMs: 500,
  machineReadyPollMs: 300_000,
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
  /** Newest health report per cluster (the health checker's); absent in tests that don't check. */
  health?: HealthRegistry;
  /** Where healing reports HealingHeldBack. */
  alerts?: AlertSink;
  /** Where remediations are counted. */
  metrics?: RuntimeMetrics;
  /** Where platform events go (the function service); absent: none are published. */
  events?: EventBus;
}

/**
 * When to look again at something that waits for other objects or for the world: soon at first,
 * then less often the longer it has waited (an eighth of the wait so far, between `baseMs` and
 * `capMs`). Watch events wake the waiter at once anyway; the poll is the safety net, and backing
 * it off keeps thousands of waiting objects from flooding the work queues when a large number of
 * clusters is created at once.
 */
export function backoffPoll(waitingSince: string | undefined, baseMs: number, capMs: number, nowMs = Date.now()): number {
  const since = waitingSince ? Date.parse(waitingSince) : NaN;
  const waited = Number.isFinite(since) ? Math.max(0, nowMs - since) : 0;
  return Math.round(Math.min(capMs, Math.max(baseMs, waited / 8)));
}

/** Publishes a platform event (built in src/events/platform.ts); a failure is logged, never fails the reconcile. */
export function publishEvent(s: Pick<Shared, 'events'>, log: Logger, event: CloudEvent): void {
  s.events?.publish(event).catch((err) => log.warn({ err, type: event.type, id: event.id }, 'publishing a platform event failed'));
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

export function providerName(cluster: Cluster): Provider {
  return cluster.spec.provider ?? 'local';
}

export function kubernetesVersionOf(cluster: Cluster, fallback: string): string {
  return cluster.spec.kubernetesVersion ?? fallback;
}

// ---------- errors ----------

export function isConflictOrExists(err: unknown): boolean {
  return isApiError(err) && err.code === 409;
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
