// The add-on controller starter (seed 002's "Addon Controller Starter"): one per Marina. It follows
// Clusters, Addons, AddonDefinitions and the AddonPolicy, and per cluster
//   - gives a new cluster the platform's default set (once: the cluster is annotated afterwards,
//     so an add-on a user disables stays disabled; a cluster annotated `addons.marina.dev/defaults:
//     none` gets nothing),
//   - starts that cluster's add-on controller and configures it (resync interval and drift watches
//     from the policy),
//   - routes changes to it: a changed Addon to its controller, a changed definition to the Addons
//     that use it, a Cluster status change to the add-ons that wait for the cluster,
//   - when the cluster is deleted, deletes its Addons (their objects go with the cluster's
//     machines) and stops its controller once none is left.
import type { Logger } from 'pino';
import { isTrue } from '../api/conditions.js';
import { isApiError } from '../api/errors.js';
import { jsonEqual } from '../api/json.js';
import { ADDON_POLICY_NAME, addonObjectName, resolveAddonPolicy, type Addon, type AddonDefinition, type AddonPolicySpec } from '../api/addons.js';
import type { Cluster } from '../api/kinds.js';
import { API_VERSION, isDeleting } from '../api/meta.js';
import { validateObject, type ValidationContext } from '../api/registry.js';
import { ANNOTATION_ADDON_DEFAULTS, ANNOTATION_ADDON_DEFAULTS_APPLIED, AddonCondition, LABEL_CLUSTER, LABEL_DEFAULT_ADDON } from '../api/wellknown.js';
import type { AlertSink } from '../alerts/manager.js';
import { WorkQueue } from '../runtime/workqueue.js';
import { typed } from '../store/typed.js';
import type { Store, Watch, WatchEvent } from '../store/types.js';
import { AddonIndex, clusterKeyOf } from './addon-index.js';
import { ClusterAddonController, type ClusterObjectAccess } from './controller.js';
import type { DefinitionIndex } from './definitions.js';
import type { AddonMetrics } from './metrics.js';

export interface StarterOptions {
  store: Store;
  definitions: DefinitionIndex;
  /** Admission context, so that the starter never stores an Addon a client could not. */
  validation: ValidationContext;
  /** How the per-cluster controllers reach their clusters (the cluster access Marina shares). */
  access: ClusterObjectAccess;
  alerts?: AlertSink;
  metrics?: AddonMetrics;
  log: Logger;
  /** How long a stopping controller lets its pass finish before aborting its calls. */
  stopGracePeriodMs?: number;
}

const splitKey = (key: string): [string, string] => {
  const i = key.indexOf('/');
  return [key.slice(0, i), key.slice(i + 1)];
};

export class AddonStarter {
  readonly addons = new AddonIndex();
  private readonly controllers = new Map<string, ClusterAddonController>();
  private readonly queue = new WorkQueue({ backoff: { baseDelayMs: 500, maxDelayMs: 30_000 } });
  private readonly watches: Watch[] = [];
  private policy: Required<AddonPolicySpec> = resolveAddonPolicy(undefined);
  private workers: Promise<void>[] = [];
  private unsubscribe?: () => void;
  private stopping?: Promise<void>;
  private readonly clusters;
  private readonly addonObjects;

  constructor(private readonly o: StarterOptions) {
    this.clusters = typed(o.store, 'Cluster');
    this.addonObjects = typed(o.store, 'Addon');
  }

  async start(): Promise<void> {
    const rv = await this.o.store.currentRevision();
    const policy = await typed(this.o.store, 'AddonPolicy').get('', ADDON_POLICY_NAME);
    this.policy = resolveAddonPolicy(policy?.spec);
    for (const a of await this.addonObjects.list()) this.addons.note(a, false);
    const clusters = await this.clusters.list();
    // Watch from the revision before the lists: changes made meanwhile arrive (again) as events.
    const watch = (kind: string, handle: (ev: WatchEvent) => void) => this.watches.push(this.o.store.watch({ kind, resourceVersion: rv }, handle));
    watch('Cluster', (ev) => this.onCluster(ev));
    watch('Addon', (ev) => this.onAddon(ev));
    watch('AddonPolicy', (ev) => this.onPolicy(ev));
    this.unsubscribe = this.o.definitions.onChange((def) => this.onDefinition(def));
    for (const c of clusters) this.queue.add(clusterKeyOf(c.metadata.project ?? '', c.metadata.name));
    for (const key of this.addons.clusterKeys()) this.queue.add(key);
    this.workers = [this.work(), this.work()];
    this.o.log.info({ clusters: clusters.length, resyncSeconds: this.policy.resyncSeconds }, 'add-on starter started');
  }

  /** Stops following the store and every per-cluster controller. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    for (const w of this.watches.splice(0)) w.stop();
    this.unsubscribe?.();
    this.queue.shutDown();
    await this.queue.drain();
    await Promise.all(this.workers);
    await Promise.all([...this.controllers.values()].map((c) => c.stop()));
    this.controllers.clear();
  }

  /** Running per-cluster controllers (for diagnostics and the benchmark). */
  controllerCount(): number {
    return this.controllers.size;
  }

  /** The kinds whose objects the controller of one cluster watches now (`group/kind`). */
  watchedKinds(project: string, cluster: string): string[] {
    return this.controllers.get(clusterKeyOf(project, cluster))?.watchedKinds() ?? [];
  }

  // ---------- routing changes ----------

  private onCluster(ev: WatchEvent): void {
    const key = clusterKeyOf(ev.object.metadata.project ?? '', ev.object.metadata.name);
    this.queue.add(key);
    this.controllers.get(key)?.wakeWaiting();
  }

  private onAddon(ev: WatchEvent): void {
    // The watch is on Addons: the store delivers objects of that kind only.
    const addon = ev.object as Addon;
    const deleted = ev.type === 'DELETED';
    const previous = this.addons.note(addon, deleted);
    const key = clusterKeyOf(addon.metadata.project ?? '', addon.spec.cluster);
    this.queue.add(key);
    const controller = this.controllers.get(key);
    if (!controller || deleted) return;
    const m = addon.metadata;
    const p = previous?.metadata;
    const specOrLifecycle = !p || p.generation !== m.generation || p.deletionTimestamp !== m.deletionTimestamp || !jsonEqual(p.finalizers, m.finalizers);
    if (specOrLifecycle) controller.enqueue(m.name);
    // Its own status write needs no pass; but add-ons waiting for this one may move on now.
    else controller.enqueueAll((a) => a.metadata.name !== m.name && !isTrue(a.status?.conditions, AddonCondition.Applied));
  }

  private onPolicy(ev: WatchEvent): void {
    if (ev.object.metadata.name !== ADDON_POLICY_NAME) return;
    this.policy = resolveAddonPolicy(ev.type === 'DELETED' ? undefined : (ev.object.spec as Partial<AddonPolicySpec>));
    for (const c of this.controllers.values()) {
      c.setResync(this.policy.resyncSeconds * 1000);
      c.setWatching(this.policy.watchObjects);
    }
  }

  private onDefinition(def: AddonDefinition): void {
    for (const c of this.controllers.values()) c.enqueueAll((a) => a.spec.addon === def.spec.addon);
  }

  // ---------- per cluster ----------

  private async work(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      try {
        await this.reconcile(key);
        this.queue.forget(key);
      } catch (err) {
        const retryInMs = this.queue.addRateLimited(key);
        const conflict = isApiError(err) && err.code === 409;
        this.o.log[conflict ? 'debug' : 'warn']({ err, cluster: key, retryInMs }, 'add-on starter failed; retrying');
      } finally {
        this.queue.done(key);
      }
    }
  }

  private async reconcile(key: string): Promise<void> {
    const [project, name] = splitKey(key);
    const cluster = await this.clusters.get(project, name);
    const addons = this.addons.of(project, name);
    if (cluster && !isDeleting(cluster)) {
      await this.ensureDefaults(cluster);
      // Addons applied to an earlier cluster of the same name belong to nothing any more.
      for (const a of addons) {
        if (a.status?.clusterUID && a.status.clusterUID !== cluster.metadata.uid && !isDeleting(a)) await this.addonObjects.deleteIfExists(project, a.metadata.name);
      }
      this.ensureController(key, project, name);
      return;
    }
    // The cluster is being deleted, or is gone after add-ons were applied to it: they go too. An
    // Addon created ahead of its cluster (never applied) waits for it.
    for (const a of addons) {
      if (isDeleting(a)) continue;
      if (cluster || a.status?.clusterUID) await this.addonObjects.deleteIfExists(project, a.metadata.name);
    }
    if (addons.length > 0) this.ensureController(key, project, name);
    else await this.stopController(key);
  }

  private ensureController(key: string, project: string, cluster: string): void {
    if (this.controllers.has(key)) return;
    const c = new ClusterAddonController({
      store: this.o.store,
      project,
      cluster,
      definitions: this.o.definitions,
      addons: this.addons,
      access: this.o.access,
      policy: () => this.policy,
      ...(this.o.alerts ? { alerts: this.o.alerts } : {}),
      ...(this.o.metrics ? { metrics: this.o.metrics } : {}),
      ...(this.o.stopGracePeriodMs !== undefined ? { stopGracePeriodMs: this.o.stopGracePeriodMs } : {}),
      log: this.o.log,
    });
    this.controllers.set(key, c);
    c.start();
    this.o.log.debug({ cluster: key }, 'add-on controller started');
  }

  private async stopController(key: string): Promise<void> {
    const c = this.controllers.get(key);
    if (!c) return;
    this.controllers.delete(key);
    await c.stop();
    this.o.log.debug({ cluster: key }, 'add-on controller stopped');
  }

  /** The policy's default set, once per cluster. */
  private async ensureDefaults(cluster: Cluster): Promise<void> {
    const annotations = cluster.metadata.annotations ?? {};
    if (annotations[ANNOTATION_ADDON_DEFAULTS_APPLIED] || annotations[ANNOTATION_ADDON_DEFAULTS] === 'none') return;
    const project = cluster.metadata.project ?? '';
    const have = new Set(this.addons.of(project, cluster.metadata.name).map((a) => a.spec.addon));
    const created: string[] = [];
    for (const d of this.policy.defaults) {
      if (have.has(d.addon)) continue;
      const def = d.version ? this.o.definitions.get(d.addon, d.version) : this.o.definitions.newest(d.addon);
      if (!def) {
        this.o.log.warn({ cluster: cluster.metadata.name, addon: d.addon, version: d.version }, 'default add-on not in the catalog; skipped');
        continue;
      }
      const addon: Addon = {
        apiVersion: API_VERSION as Addon['apiVersion'],
        kind: 'Addon',
        metadata: {
          name: addonObjectName(cluster.metadata.name, d.addon),
          project,
          labels: { [LABEL_CLUSTER]: cluster.metadata.name, [LABEL_DEFAULT_ADDON]: 'true' },
        },
        spec: { cluster: cluster.metadata.name, addon: d.addon, version: def.spec.version, ...(d.values ? { values: d.values } : {}) },
      };
      try {
        await this.o.store.create(validateObject(addon, undefined, this.o.validation));
        created.push(d.addon);
      } catch (err) {
        // 409: an Addon of that name exists (made by a person); 422: values the definition refuses.
        if (!isApiError(err) || (err.code !== 409 && err.code !== 422)) throw err;
        this.o.log.warn({ cluster: cluster.metadata.name, addon: d.addon, err: err.message }, 'default add-on not created');
      }
    }
    const latest = await this.clusters.get(project, cluster.metadata.name);
    if (!latest || isDeleting(latest)) return;
    await this.clusters.update({
      ...latest,
      metadata: { ...latest.metadata, annotations: { ...(latest.metadata.annotations ?? {}), [ANNOTATION_ADDON_DEFAULTS_APPLIED]: new Date().toISOString() } },
    });
    this.o.log.info({ cluster: `${project}/${cluster.metadata.name}`, addons: created }, 'default add-ons enabled');
  }
}
