// The add-on controller of ONE cluster, started and configured by the starter (seed 002: "Addon
// Controller Starter runs with the management plane and runs an Addon Controller for each
// cluster"). It runs inside Marina's process: its own work queue (one worker, so the add-ons of a
// cluster are applied one after the other), its own resync timer and its own connection to the
// cluster's API. Each Addon is reconciled in the Cluster API shape (finalizer, one status write):
//
//   cluster gone/deleting ─▶ wait (the starter deletes the Addon; its objects go with the cluster)
//   duplicate, definition missing, dependency not Healthy, API not ready ─▶ Applied=False, wait
//   render ─▶ apply (server-side, own field manager, forced on our fields) ─▶ prune ─▶ health
//   status: Applied / Healthy / Progressing, inventory, drift counts; alerts AddonUnhealthy and
//   AddonDriftCorrected
//
// Deleting an Addon removes what it applied (except objects annotated keep/ignore or shared with
// another add-on) and waits until those objects are gone before the finalizer is released.
import type { Logger } from 'pino';
import semver from 'semver';
import {
  ADDON_FINALIZER,
  type Addon,
  type AddonPolicySpec,
  type AddonStatus,
  type AppliedObject,
} from '../api/addons.js';
import type { Cluster } from '../api/kinds.js';
import type { ConditionStatus } from '../api/meta.js';
import type { AlertInput, AlertSink } from '../alerts/manager.js';
import { getCondition, setCondition } from '../runtime/conditions.js';
import { isTerminalError } from '../runtime/controller.js';
import { reconcileObject, type Outcome } from '../runtime/reconcile.js';
import { WorkQueue } from '../runtime/workqueue.js';
import type { Store } from '../store/types.js';
import type { AddonIndex } from './addon-index.js';
import type { DefinitionIndex } from './definitions.js';
import { describeKubeError, KubeAddonApi, refKey, type AddonClusterApi } from './kube.js';
import type { AddonMetrics } from './metrics.js';
import { clusterContext, renderAddon, RenderError, type Manifest } from './render.js';
import { removeObjects, syncAddon } from './sync.js';

/** The admin kubeconfig of a cluster, undefined while it has none (ClusterSecrets.adminKubeconfig). */
export type KubeconfigSource = (cluster: Cluster) => Promise<string | undefined>;

export const RULE_UNHEALTHY = 'AddonUnhealthy';
export const RULE_DRIFT = 'AddonDriftCorrected';
/** AddonDriftCorrected stays firing this long after the last correction, then resolves. */
export const DRIFT_ALERT_MS = 5 * 60_000;
/** Re-check a rollout this often until it settles. */
const ROLLOUT_POLL_MS = 2_000;
/** The cluster has no reachable API yet; its status changes wake us earlier. */
const NOT_READY_POLL_MS = 15_000;

/** Waiting states other alerts already cover (cluster provisioning, the dependency's own alert) or that end by themselves. */
const QUIET_REASONS = new Set(['ClusterNotFound', 'ClusterReplaced', 'ClusterNotReady', 'DependencyNotReady', 'Removing']);

export interface ClusterAddonControllerOptions {
  store: Store;
  project: string;
  cluster: string;
  definitions: DefinitionIndex;
  addons: AddonIndex;
  kubeconfig: KubeconfigSource;
  /** Client for a kubeconfig (default: KubeAddonApi). */
  apiFor?: (kubeconfig: string) => AddonClusterApi;
  policy: () => Required<AddonPolicySpec>;
  alerts?: AlertSink;
  metrics?: AddonMetrics;
  log: Logger;
}

/** Field manager of one add-on: each add-on owns its fields, so add-ons sharing a Namespace never fight over it. */
export const fieldManagerOf = (addon: string): string => `marina-addons/${addon}`;

/**
 * The status being built. Messages carry no timestamps or counters that move on their own: a pass
 * that finds nothing new must produce the stored status again and write nothing.
 */
type Draft = { status: AddonStatus; set(type: string, status: ConditionStatus, reason: string, message: string): void };

export class ClusterAddonController {
  private readonly queue = new WorkQueue({ backoff: { baseDelayMs: 1_000, maxDelayMs: 60_000 } });
  private readonly log: Logger;
  private conn?: { kubeconfig: string; api: AddonClusterApi };
  private worker?: Promise<void>;
  private timer?: NodeJS.Timeout;
  private resyncMs = 0;
  /** Last alert set sent per Addon, so steady passes do not touch the alert store. */
  private readonly sentAlerts = new Map<string, string>();

  constructor(private readonly o: ClusterAddonControllerOptions) {
    this.log = o.log.child({ cluster: `${o.project}/${o.cluster}` });
  }

  start(): void {
    this.worker = this.work();
    this.setResync(this.o.policy().resyncSeconds * 1000);
    this.enqueueAll();
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.shutDown();
    await this.queue.drain();
    await this.worker;
    this.conn?.api.close();
    this.conn = undefined;
  }

  enqueue(name: string): void {
    this.queue.add(name);
  }

  enqueueAll(filter: (a: Addon) => boolean = () => true): void {
    for (const a of this.o.addons.of(this.o.project, this.o.cluster)) if (filter(a)) this.queue.add(a.metadata.name);
  }

  /** Wakes the add-ons that wait for something (the cluster's API, a dependency). */
  wakeWaiting(): void {
    this.enqueueAll((a) => getCondition(a.status?.conditions, 'Applied')?.status !== 'True');
  }

  /** Every add-on is re-applied this often; the first tick comes at a random point of the period so clusters spread out. */
  setResync(ms: number): void {
    if (ms === this.resyncMs && this.timer) return;
    this.resyncMs = ms;
    if (this.timer) clearTimeout(this.timer);
    const tick = (delay: number) => {
      this.timer = setTimeout(() => {
        this.enqueueAll();
        tick(this.resyncMs);
      }, delay);
      this.timer.unref();
    };
    tick(Math.floor(Math.random() * ms));
  }

  private async work(): Promise<void> {
    for (;;) {
      const name = await this.queue.get();
      if (name === undefined) return;
      const started = process.hrtime.bigint();
      let outcome = 'success';
      try {
        const res = await reconcileObject<Addon>(this.o.store, { kind: 'Addon', project: this.o.project, name }, {
          finalizer: ADDON_FINALIZER,
          reconcile: (a) => this.reconcile(a),
          finalize: (a) => this.finalize(a),
        });
        this.queue.forget(name);
        if (res?.requeueAfterMs) this.queue.addAfter(name, res.requeueAfterMs);
      } catch (err) {
        outcome = 'error';
        if (isTerminalError(err)) {
          this.queue.forget(name);
          this.log.error({ err, addon: name }, 'add-on failed terminally');
        } else {
          const retryInMs = this.queue.addRateLimited(name);
          this.log.warn({ err: describeKubeError(err), addon: name, retryInMs }, 'add-on pass failed; retrying');
        }
      } finally {
        this.queue.done(name);
        this.o.metrics?.observePass(outcome, Number(process.hrtime.bigint() - started) / 1e9);
      }
    }
  }

  private async connection(cluster: Cluster): Promise<AddonClusterApi | undefined> {
    const kubeconfig = await this.o.kubeconfig(cluster);
    if (!kubeconfig) return undefined;
    if (this.conn?.kubeconfig !== kubeconfig) {
      this.conn?.api.close();
      this.conn = { kubeconfig, api: (this.o.apiFor ?? ((k) => KubeAddonApi.fromKubeconfig(k)))(kubeconfig) };
    }
    return this.conn.api;
  }

  private async getCluster(): Promise<Cluster | undefined> {
    return (await this.o.store.get({ kind: 'Cluster', project: this.o.project, name: this.o.cluster })) as Cluster | undefined;
  }

  private draft(addon: Addon): Draft {
    const status: AddonStatus = structuredClone(addon.status ?? {});
    const generation = addon.metadata.generation;
    return {
      status,
      set(type, s, reason, message) {
        status.conditions = setCondition(status.conditions, { type, status: s, reason, message }, generation);
      },
    };
  }

  private waiting(d: Draft, reason: string, message: string, requeueAfterMs?: number): Outcome<AddonStatus> {
    d.set('Applied', 'False', reason, message);
    d.set('Progressing', 'False', reason, message);
    if (!getCondition(d.status.conditions, 'Healthy')) d.set('Healthy', 'Unknown', reason, message);
    return { status: d.status, ...(requeueAfterMs ? { requeueAfterMs } : {}) };
  }

  /** What stops an add-on before it is applied, if anything. */
  private blocker(addon: Addon): { reason: string; message: string } | undefined {
    const others = this.o.addons.of(this.o.project, this.o.cluster).filter((a) => !a.metadata.deletionTimestamp);
    const first = others.find((a) => a.spec.addon === addon.spec.addon);
    if (first && first.metadata.name !== addon.metadata.name) {
      return { reason: 'Duplicate', message: `${addon.spec.addon} is already enabled on cluster ${this.o.cluster} by Addon ${first.metadata.name}` };
    }
    const def = this.o.definitions.get(addon.spec.addon, addon.spec.version);
    for (const dep of def?.spec.dependencies ?? []) {
      const have = others.find((a) => a.spec.addon === dep.addon);
      const want = `${dep.addon}${dep.minVersion ? ` >= ${dep.minVersion}` : ''}`;
      if (!have) return { reason: 'DependencyMissing', message: `needs ${want} enabled on cluster ${this.o.cluster}` };
      if (dep.minVersion && semver.lt(have.spec.version, dep.minVersion)) return { reason: 'DependencyMissing', message: `needs ${want}; ${have.spec.version} is enabled` };
      if (getCondition(have.status?.conditions, 'Healthy')?.status !== 'True') return { reason: 'DependencyNotReady', message: `waiting for ${dep.addon} to be Healthy` };
    }
    return undefined;
  }

  private async reconcile(addon: Addon): Promise<Outcome<AddonStatus>> {
    const d = this.draft(addon);
    const cluster = await this.getCluster();
    if (!cluster || cluster.metadata.deletionTimestamp) return this.waiting(d, 'ClusterNotFound', `cluster ${this.o.cluster} ${cluster ? 'is being deleted' : 'does not exist'}`);
    if (d.status.clusterUID && d.status.clusterUID !== cluster.metadata.uid) {
      return this.waiting(d, 'ClusterReplaced', `applied to an earlier cluster ${this.o.cluster}; it is removed`);
    }
    const blocked = this.blocker(addon);
    if (blocked) return this.waiting(d, blocked.reason, blocked.message);
    const def = this.o.definitions.get(addon.spec.addon, addon.spec.version);
    if (!def) return this.waiting(d, 'DefinitionNotFound', `the catalog has no ${addon.spec.addon} ${addon.spec.version}`);
    const prepared = this.o.definitions.prepare(def);
    if (typeof prepared === 'string') return this.waiting(d, 'InvalidDefinition', prepared);
    if (getCondition(cluster.status?.conditions, 'ControlPlaneReady')?.status !== 'True') {
      return this.waiting(d, 'ClusterNotReady', `the API of cluster ${this.o.cluster} is not ready yet`, NOT_READY_POLL_MS);
    }
    const api = await this.connection(cluster);
    if (!api) return this.waiting(d, 'ClusterNotReady', `cluster ${this.o.cluster} has no admin kubeconfig yet`, NOT_READY_POLL_MS);
    let rendered;
    try {
      rendered = renderAddon(prepared, addon.spec.values, clusterContext(cluster));
    } catch (err) {
      if (err instanceof RenderError) return this.waiting(d, 'RenderFailed', err.message);
      throw err;
    }
    const s = d.status;
    let report;
    try {
      report = await syncAddon({
        api,
        fieldManager: fieldManagerOf(addon.spec.addon),
        objects: rendered.objects,
        defaultNamespace: def.spec.namespace,
        inventory: s.inventory ?? [],
        unchanged: s.appliedDigest === rendered.digest,
        shared: (key) => this.o.addons.sharedWith(this.o.project, this.o.cluster, addon.metadata.name, key),
        rules: def.spec.health?.rules ?? [],
      });
    } catch (err) {
      // The API did not answer: say so, keep the rest of the status, retry with backoff.
      d.set('Applied', 'Unknown', 'ClusterUnreachable', describeKubeError(err).slice(0, 1024));
      return { status: s, error: err };
    }
    const now = new Date().toISOString();
    s.clusterUID = cluster.metadata.uid;
    s.inventory = report.inventory;
    if (report.applied > 0) s.lastAppliedAt = now;
    if (report.drifted.length > 0) {
      s.driftCorrections = (s.driftCorrections ?? 0) + report.drifted.length;
      s.lastDriftCorrection = { at: now, objects: report.drifted.slice(0, 20) };
      this.o.metrics?.countDrift(report.drifted.length);
      this.log.info({ addon: addon.metadata.name, objects: report.drifted }, 'drift corrected');
    }
    const upgraded = s.appliedDigest !== rendered.digest;
    if (report.failed.length > 0) {
      d.set('Applied', 'False', 'ApplyFailed', report.failed.join('; ').slice(0, 4096));
    } else {
      s.appliedDigest = rendered.digest;
      s.appliedVersion = addon.spec.version;
      const extras = [report.ignored.length ? `${report.ignored.length} ignored` : '', report.kept.length ? `kept: ${report.kept.join(', ')}` : ''].filter(Boolean);
      d.set('Applied', 'True', 'Applied', `${report.inventory.length} objects of ${addon.spec.addon} ${addon.spec.version}${extras.length ? ` (${extras.join('; ')})` : ''}`);
    }
    s.unhealthy = report.unhealthy.slice(0, 20);
    if (report.unhealthy.length === 0) d.set('Healthy', 'True', 'Healthy', 'every object is healthy');
    else d.set('Healthy', 'False', report.progressing ? 'RollingOut' : 'Unhealthy', report.unhealthy.join('; ').slice(0, 4096));
    const rolling = report.progressing || (upgraded && report.failed.length === 0 && report.unhealthy.length > 0);
    d.set('Progressing', rolling ? 'True' : 'False', rolling ? 'RollingOut' : 'Stable', rolling ? `rolling out ${addon.spec.addon} ${addon.spec.version}` : 'nothing to roll out');
    const alertIn = await this.syncAlerts(addon, s);
    const next = [report.progressing || report.unhealthy.length > 0 ? ROLLOUT_POLL_MS : undefined, alertIn].filter((x): x is number => x !== undefined);
    return { status: s, ...(next.length ? { requeueAfterMs: Math.min(...next) } : {}) };
  }

  private async finalize(addon: Addon): Promise<Outcome<AddonStatus>> {
    const d = this.draft(addon);
    const cluster = await this.getCluster();
    const done = async (): Promise<Outcome<AddonStatus>> => {
      await this.syncAlerts(addon, undefined);
      this.sentAlerts.delete(addon.metadata.name);
      return { done: true };
    };
    // The cluster is going (or went) away: its machines take every object with them.
    if (!cluster || cluster.metadata.deletionTimestamp || (d.status.clusterUID && d.status.clusterUID !== cluster.metadata.uid)) return done();
    const refs = [...(d.status.inventory ?? [])];
    if (refs.length === 0 && !d.status.clusterUID) return done(); // never applied
    const api = await this.connection(cluster);
    if (!api) return this.waiting(d, 'ClusterNotReady', 'waiting for the cluster\'s API to remove the add-on', NOT_READY_POLL_MS);
    // What the current spec renders may not be in the inventory yet (a pass interrupted before its status write).
    refs.push(...(await this.renderedRefs(addon, cluster, api)));
    const seen = new Set<string>();
    const unique = refs.filter((r) => !seen.has(refKey(r)) && seen.add(refKey(r)));
    const removal = await removeObjects(api, unique, (key) => this.o.addons.sharedWith(this.o.project, this.o.cluster, addon.metadata.name, key));
    if (removal.pending.length === 0) {
      this.log.info({ addon: addon.metadata.name, kept: removal.kept }, 'add-on removed');
      return done();
    }
    d.status.inventory = removal.pending;
    d.set('Applied', 'False', 'Removing', `${removal.pending.length} objects still being deleted${removal.failed.length ? `; failed: ${removal.failed.join('; ')}` : ''}`.slice(0, 4096));
    return { status: d.status, requeueAfterMs: ROLLOUT_POLL_MS };
  }

  private async renderedRefs(addon: Addon, cluster: Cluster, api: AddonClusterApi): Promise<AppliedObject[]> {
    const def = this.o.definitions.get(addon.spec.addon, addon.spec.version);
    const prepared = def ? this.o.definitions.prepare(def) : undefined;
    if (!def || !prepared || typeof prepared === 'string') return [];
    let objects: Manifest[];
    try {
      objects = renderAddon(prepared, addon.spec.values, clusterContext(cluster)).objects;
    } catch {
      return [];
    }
    const refs: AppliedObject[] = [];
    for (const o of objects) {
      let namespaced: boolean;
      try {
        namespaced = await api.namespaced(o.apiVersion, o.kind);
      } catch {
        continue; // a kind the cluster does not serve holds no object
      }
      const ns = namespaced ? (o.metadata.namespace ?? def.spec.namespace) : undefined;
      refs.push({ apiVersion: o.apiVersion, kind: o.kind, name: o.metadata.name, ...(ns ? { namespace: ns } : {}) });
    }
    return refs;
  }

  /**
   * AddonUnhealthy while the add-on has been unhealthy (or could not be applied) for
   * `unhealthyAlertSeconds`; AddonDriftCorrected for DRIFT_ALERT_MS after a correction. Returns
   * when to look again for an alert to open or resolve on time. `status` undefined: resolve all.
   */
  private async syncAlerts(addon: Addon, status: AddonStatus | undefined): Promise<number | undefined> {
    if (!this.o.alerts) return undefined;
    const now = Date.now();
    const active: AlertInput[] = [];
    let recheck: number | undefined;
    const labels = { addon: addon.spec.addon };
    const where = `${addon.spec.addon} on cluster ${this.o.cluster}`;
    if (status) {
      const problem = (['Healthy', 'Applied'] as const)
        .map((t) => getCondition(status.conditions, t))
        .find((c) => c?.status === 'False' && !QUIET_REASONS.has(c.reason ?? ''));
      if (problem) {
        const since = Date.parse(problem.lastTransitionTime ?? '') || now;
        const due = since + this.o.policy().unhealthyAlertSeconds * 1000;
        if (now >= due) {
          active.push({
            rule: RULE_UNHEALTHY,
            severity: 'warning',
            labels,
            summary: `add-on ${where} is not healthy (${problem.reason})`,
            description: problem.message ?? '',
          });
        } else recheck = due - now;
      }
      const drift = status.lastDriftCorrection;
      const driftAt = drift ? Date.parse(drift.at) : NaN;
      if (drift && now - driftAt < DRIFT_ALERT_MS) {
        active.push({
          rule: RULE_DRIFT,
          severity: 'info',
          labels,
          summary: `add-on ${where}: changed objects put back (${status.driftCorrections ?? 0} corrections so far)`,
          description: `at ${drift.at}: ${drift.objects.join(', ')}`,
        });
        const resolveIn = driftAt + DRIFT_ALERT_MS - now;
        recheck = recheck === undefined ? resolveIn : Math.min(recheck, resolveIn);
      }
    }
    const memo = JSON.stringify(active);
    if (this.sentAlerts.get(addon.metadata.name) !== memo) {
      await this.o.alerts.sync({ project: this.o.project, cluster: this.o.cluster, source: `addons.${addon.metadata.name}` }, active);
      this.sentAlerts.set(addon.metadata.name, memo);
    }
    return recheck;
  }
}
