// The add-on controller starter (seed 002's "Addon Controller Starter"): one per Marina. It follows
// Clusters, Addons, AddonDefinitions and the AddonPolicy, and per cluster
//   - gives a new cluster the platform's default set (once: the cluster is annotated afterwards,
//     so an add-on a user disables stays disabled; a cluster annotated `addons.marina.dev/defaults:
//     none` gets nothing),
//   - starts that cluster's add-on controller and configures it (resync interval from the policy),
//   - routes changes to it: a changed Addon to its controller, a changed definition to the Addons
//     that use it, a Cluster status change to the add-ons that wait for the cluster,
//   - when the cluster is deleted, deletes its Addons (their objects go with the cluster's
//     machines) and stops its controller once none is left.
import type { Logger } from 'pino';
import { isApiError } from '../api/errors.js';
import {
  ADDON_POLICY_NAME,
  addonObjectName,
  ANNOTATION_DEFAULTS,
  ANNOTATION_DEFAULTS_APPLIED,
  resolveAddonPolicy,
  type Addon,
  type AddonDefinition,
  type AddonPolicy,
  type AddonPolicySpec,
} from '../api/addons.js';
import type { Cluster } from '../api/kinds.js';
import { API_VERSION, type Resource } from '../api/meta.js';
import { validateObject, type ValidationContext } from '../api/registry.js';
import type { AlertSink } from '../alerts/manager.js';
import { WorkQueue } from '../runtime/workqueue.js';
import type { Store, Watch, WatchEvent } from '../store/types.js';
import { AddonIndex, clusterKeyOf } from './addon-index.js';
import { ClusterAddonController, type KubeconfigSource } from './controller.js';
import type { DefinitionIndex } from './definitions.js';
import type { AddonClusterApi } from './kube.js';
import type { AddonMetrics } from './metrics.js';

/** The label the cluster controllers put on a cluster's objects; Addons carry it too. */
const LABEL_CLUSTER = 'marina.dev/cluster';
/** On Addons the starter created from the policy. */
export const LABEL_DEFAULT_ADDON = 'addons.marina.dev/default';

export interface StarterOptions {
  store: Store;
  definitions: DefinitionIndex;
  /** Admission context, so that the starter never stores an Addon a client could not. */
  validation: ValidationContext;
  kubeconfig: KubeconfigSource;
  apiFor?: (kubeconfig: string) => AddonClusterApi;
  alerts?: AlertSink;
  metrics?: AddonMetrics;
  log: Logger;
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

  constructor(private readonly o: StarterOptions) {}

  async start(): Promise<void> {
    const rv = await this.o.store.currentRevision();
    const policy = await this.o.store.get({ kind: 'AddonPolicy', project: '', name: ADDON_POLICY_NAME });
    this.policy = resolveAddonPolicy((policy as AddonPolicy | undefined)?.spec);
    for (const a of await this.listAll('Addon')) this.addons.note(a as Addon, false);
    const clusters = await this.listAll('Cluster');
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

  async stop(): Promise<void> {
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

  private async listAll(kind: string): Promise<Resource[]> {
    const out: Resource[] = [];
    let cont: string | undefined;
    do {
      const page = await this.o.store.list(kind, { limit: 500, continue: cont });
      out.push(...page.items);
      cont = page.continue;
    } while (cont);
    return out;
  }

  // ---------- routing changes ----------

  private onCluster(ev: WatchEvent): void {
    const key = clusterKeyOf(ev.object.metadata.project ?? '', ev.object.metadata.name);
    this.queue.add(key);
    this.controllers.get(key)?.wakeWaiting();
  }

  private onAddon(ev: WatchEvent): void {
    const addon = ev.object as Addon;
    const deleted = ev.type === 'DELETED';
    const previous = this.addons.note(addon, deleted);
    const key = clusterKeyOf(addon.metadata.project ?? '', addon.spec.cluster);
    this.queue.add(key);
    const controller = this.controllers.get(key);
    if (!controller || deleted) return;
    const m = addon.metadata;
    const p = previous?.metadata;
    const specOrLifecycle = !p || p.generation !== m.generation || p.deletionTimestamp !== m.deletionTimestamp || JSON.stringify(p.finalizers) !== JSON.stringify(m.finalizers);
    if (specOrLifecycle) controller.enqueue(m.name);
    // Its own status write needs no pass; but add-ons waiting for this one may move on now.
    else controller.enqueueAll((a) => a.metadata.name !== m.name && (a.status?.conditions ?? []).some((c) => c.type === 'Applied' && c.status !== 'True'));
  }

  private onPolicy(ev: WatchEvent): void {
    if (ev.object.metadata.name !== ADDON_POLICY_NAME) return;
    this.policy = resolveAddonPolicy(ev.type === 'DELETED' ? undefined : (ev.object as AddonPolicy).spec);
    for (const c of this.controllers.values()) c.setResync(this.policy.resyncSeconds * 1000);
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
    const cluster = (await this.o.store.get({ kind: 'Cluster', project, name })) as Cluster | undefined;
    const addons = this.addons.of(project, name);
    if (cluster && !cluster.metadata.deletionTimestamp) {
      await this.ensureDefaults(cluster);
      // Addons applied to an earlier cluster of the same name belong to nothing any more.
      for (const a of addons) {
        if (a.status?.clusterUID && a.status.clusterUID !== cluster.metadata.uid && !a.metadata.deletionTimestamp) await this.deleteAddon(a);
      }
      this.ensureController(key, project, name);
      return;
    }
    // The cluster is being deleted, or is gone after add-ons were applied to it: they go too. An
    // Addon created ahead of its cluster (never applied) waits for it.
    for (const a of addons) {
      if (a.metadata.deletionTimestamp) continue;
      if (cluster || a.status?.clusterUID) await this.deleteAddon(a);
    }
    if (addons.length > 0) this.ensureController(key, project, name);
    else await this.stopController(key);
  }

  private async deleteAddon(a: Addon): Promise<void> {
    try {
      await this.o.store.delete({ kind: 'Addon', project: a.metadata.project ?? '', name: a.metadata.name });
    } catch (err) {
      if (!(isApiError(err) && err.code === 404)) throw err;
    }
  }

  private ensureController(key: string, project: string, cluster: string): void {
    if (this.controllers.has(key)) return;
    const c = new ClusterAddonController({
      store: this.o.store,
      project,
      cluster,
      definitions: this.o.definitions,
      addons: this.addons,
      kubeconfig: this.o.kubeconfig,
      ...(this.o.apiFor ? { apiFor: this.o.apiFor } : {}),
      policy: () => this.policy,
      ...(this.o.alerts ? { alerts: this.o.alerts } : {}),
      ...(this.o.metrics ? { metrics: this.o.metrics } : {}),
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
    if (annotations[ANNOTATION_DEFAULTS_APPLIED] || annotations[ANNOTATION_DEFAULTS] === 'none') return;
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
    const latest = (await this.o.store.get({ kind: 'Cluster', project, name: cluster.metadata.name })) as Cluster | undefined;
    if (!latest || latest.metadata.deletionTimestamp) return;
    await this.o.store.update({
      ...latest,
      metadata: { ...latest.metadata, annotations: { ...(latest.metadata.annotations ?? {}), [ANNOTATION_DEFAULTS_APPLIED]: new Date().toISOString() } },
    });
    this.o.log.info({ cluster: `${project}/${cluster.metadata.name}`, addons: created }, 'default add-ons enabled');
  }
}
