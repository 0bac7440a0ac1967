// The add-on controller of ONE cluster, started and configured by the starter (seed 002: "Addon
// Controller Starter runs with the management plane and runs an Addon Controller for each
// cluster"). It runs inside Marina's process: its own work queue (one worker, so the add-ons of a
// cluster are applied one after the other), its own resync timer, and watches on the cluster's
// managed objects (DriftWatch) over the cluster access Marina shares (src/clusteraccess). Each
// Addon is reconciled in the Cluster API shape (finalizer, one status write) as named phases:
//
//   gate    cluster gone/deleting/replaced, duplicate, definition missing or unusable, dependency
//           missing or not Healthy, API not ready ─▶ Applied=False, wait
//   render  definition + values + cluster facts ─▶ objects in install order, digest
//   apply   server-side apply (own field manager, forced on our fields), drift, prune, health
//   report  Applied / Healthy / Progressing, inventory, drift counts
//   alerts  AddonUnhealthy, AddonDriftCorrected
//
// Deleting an Addon removes what it applied (except objects annotated keep/ignore or shared with
// another add-on) and waits until those objects are gone before the finalizer is released.
import type { Logger } from 'pino';
import semver from 'semver';
import type { Addon, AddonDefinition, AddonPolicySpec, AddonStatus, AppliedObject } from '../api/addons.js';
import { getCondition, isTrue } from '../api/conditions.js';
import type { Cluster } from '../api/kinds.js';
import { isDeleting } from '../api/meta.js';
import { AddonCondition, AddonReason, ClusterCondition, FINALIZER_ADDON } from '../api/wellknown.js';
import { RULES, type AlertInput, type AlertSink } from '../alerts/manager.js';
import type { ClusterConnections, ObjectApi } from '../clusteraccess/access.js';
import { isTerminalError, type ReconcileContext } from '../runtime/controller.js';
import { runPhases, scopeFor, type Phase, type PhaseResult, type Scope } from '../runtime/phases.js';
import { reconcileObject, type Outcome } from '../runtime/reconcile.js';
import { WorkQueue } from '../runtime/workqueue.js';
import { typed } from '../store/typed.js';
import type { Store } from '../store/types.js';
import type { AddonIndex } from './addon-index.js';
import type { DefinitionIndex, PreparedDefinition } from './definitions.js';
import { DriftWatch } from './drift-watch.js';
import type { AddonMetrics } from './metrics.js';
import { describeKubeError, refKey } from './refs.js';
import { clusterContext, renderAddon, RenderError, type Manifest, type Rendered } from './render.js';
import { removeObjects, syncAddon, type SyncReport } from './sync.js';

/** How the add-on controllers reach a cluster's objects: the cluster access Marina shares. */
export type ClusterObjectAccess = Pick<ClusterConnections, 'objects'>;

/** AddonDriftCorrected stays firing this long after the last correction, then resolves. */
export const DRIFT_ALERT_MS = 5 * 60_000;
/** Re-check a rollout this often until it settles (status changes wake it earlier through the watch). */
const ROLLOUT_POLL_MS = 2_000;
/** The cluster has no reachable API yet; its status changes wake us earlier. */
const NOT_READY_POLL_MS = 15_000;
/** How long a stop lets a pass finish before its calls are aborted. */
export const DEFAULT_STOP_GRACE_MS = 10_000;

/** Waiting states other alerts already cover (cluster provisioning, the dependency's own alert) or that end by themselves. */
const QUIET_REASONS = new Set<string>([
  AddonReason.ClusterNotFound,
  AddonReason.ClusterReplaced,
  AddonReason.ClusterNotReady,
  AddonReason.DependencyNotReady,
  AddonReason.Removing,
]);

export interface ClusterAddonControllerOptions {
  store: Store;
  project: string;
  cluster: string;
  definitions: DefinitionIndex;
  addons: AddonIndex;
  access: ClusterObjectAccess;
  policy: () => Required<AddonPolicySpec>;
  alerts?: AlertSink;
  metrics?: AddonMetrics;
  log: Logger;
  stopGracePeriodMs?: number;
}

/** Field manager of one add-on: each add-on owns its fields, so add-ons sharing a Namespace never fight over it. */
export const fieldManagerOf = (addon: string): string => `marina-addons/${addon}`;

type Status = AddonStatus;

/** One pass over one Addon: what the phases found, in order. */
interface AddonScope extends Scope<Addon> {
  cluster?: Cluster;
  definition?: AddonDefinition;
  prepared?: PreparedDefinition;
  api?: ObjectApi;
  rendered?: Rendered;
  report?: SyncReport;
}

export class ClusterAddonController {
  private readonly queue = new WorkQueue({ backoff: { baseDelayMs: 1_000, maxDelayMs: 60_000 } });
  private readonly log: Logger;
  private readonly clusters;
  private readonly abort = new AbortController();
  private readonly drift: DriftWatch;
  private worker?: Promise<void>;
  private timer?: NodeJS.Timeout;
  private resyncMs = 0;
  private watching: boolean;
  /** Last alert set sent per Addon, so steady passes do not touch the alert store. */
  private readonly sentAlerts = new Map<string, string>();
  private readonly phases: readonly Phase<AddonScope, Status>[] = [
    { name: 'gate', run: (sc) => this.gate(sc) },
    { name: 'render', run: (sc) => this.render(sc) },
    { name: 'apply', run: (sc) => this.apply(sc) },
    { name: 'report', run: (sc) => this.report(sc) },
    { name: 'alerts', run: (sc) => this.alerts(sc) },
  ];

  constructor(private readonly o: ClusterAddonControllerOptions) {
    this.log = o.log.child({ cluster: `${o.project}/${o.cluster}` });
    this.clusters = typed(o.store, 'Cluster');
    this.drift = new DriftWatch({ onChange: (addon) => this.queue.add(addon), log: this.log });
    this.watching = o.policy().watchObjects;
  }

  start(): void {
    this.worker = this.work();
    this.setResync(this.o.policy().resyncSeconds * 1000);
    this.enqueueAll();
  }

  /** Lets the pass under way finish (its calls are aborted after the grace period), then stops watching. */
  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.shutDown();
    let grace: NodeJS.Timeout | undefined;
    const drained = this.queue.drain();
    const timedOut = await Promise.race([drained.then(() => false), new Promise<boolean>((r) => (grace = setTimeout(() => r(true), this.o.stopGracePeriodMs ?? DEFAULT_STOP_GRACE_MS)))]);
    clearTimeout(grace);
    if (timedOut) {
      this.abort.abort(new Error(`add-on controller of ${this.o.project}/${this.o.cluster} stopped`));
      await drained;
    }
    await this.worker;
    this.drift.stop();
  }

  enqueue(name: string): void {
    this.queue.add(name);
  }

  enqueueAll(filter: (a: Addon) => boolean = () => true): void {
    for (const a of this.o.addons.of(this.o.project, this.o.cluster)) if (filter(a)) this.queue.add(a.metadata.name);
  }

  /** Wakes the add-ons that wait for something (the cluster's API, a dependency). */
  wakeWaiting(): void {
    this.enqueueAll((a) => !isTrue(a.status?.conditions, AddonCondition.Applied));
  }

  /** Follows AddonPolicy.spec.watchObjects: off stops the watches (the resync alone finds drift); on starts them with each add-on's next pass. */
  setWatching(on: boolean): void {
    if (on === this.watching) return;
    this.watching = on;
    if (on) this.enqueueAll();
    else this.drift.clear();
  }

  /** Kinds whose objects this controller watches now (`group/kind`). */
  watchedKinds(): string[] {
    return this.drift.kinds();
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
      const ctx: ReconcileContext = { signal: this.abort.signal, log: this.log.child({ addon: name }) };
      let outcome = 'success';
      try {
        const res = await reconcileObject<Addon>(
          this.o.store,
          { kind: 'Addon', project: this.o.project, name },
          { finalizer: FINALIZER_ADDON, reconcile: (a) => this.reconcile(a, ctx), finalize: (a) => this.finalize(a, ctx) },
          ctx,
        );
        this.queue.forget(name);
        if (res?.requeueAfterMs) this.queue.addAfter(name, res.requeueAfterMs);
      } catch (err) {
        outcome = 'error';
        if (isTerminalError(err)) {
          this.queue.forget(name);
          ctx.log.error({ err }, 'add-on failed terminally');
        } else if (this.abort.signal.aborted) {
          ctx.log.warn({ err: describeKubeError(err) }, 'add-on pass aborted by stop');
        } else {
          const retryInMs = this.queue.addRateLimited(name);
          ctx.log.warn({ err: describeKubeError(err), retryInMs }, 'add-on pass failed; retrying');
        }
      } finally {
        this.queue.done(name);
        this.o.metrics?.observePass(outcome, Number(process.hrtime.bigint() - started) / 1e9);
      }
    }
  }

  /** The add-on waits for something: Applied (and Progressing) say what; nothing is applied. */
  private wait(sc: AddonScope, reason: string, message: string, requeueAfterMs?: number): Outcome<Status> {
    sc.set({ type: AddonCondition.Applied, status: 'False', reason, message });
    sc.set({ type: AddonCondition.Progressing, status: 'False', reason, message });
    if (!getCondition(sc.status.conditions, AddonCondition.Healthy)) sc.set({ type: AddonCondition.Healthy, status: 'Unknown', reason, message });
    return { status: sc.status, ...(requeueAfterMs ? { requeueAfterMs } : {}) };
  }

  private async reconcile(addon: Addon, ctx: ReconcileContext): Promise<Outcome<Status>> {
    const sc: AddonScope = scopeFor(addon, ctx);
    const run = await runPhases(sc, this.phases);
    return run.ended ?? { status: sc.status, ...(run.requeueAfterMs !== undefined ? { requeueAfterMs: run.requeueAfterMs } : {}) };
  }

  // ---------- phases ----------

  /** What stops the add-on before anything is applied, if anything. */
  private async gate(sc: AddonScope): Promise<PhaseResult<Status>> {
    const addon = sc.obj;
    const cluster = await this.clusters.get(this.o.project, this.o.cluster);
    if (!cluster || isDeleting(cluster)) {
      return { end: this.wait(sc, AddonReason.ClusterNotFound, `cluster ${this.o.cluster} ${cluster ? 'is being deleted' : 'does not exist'}`) };
    }
    if (sc.status.clusterUID && sc.status.clusterUID !== cluster.metadata.uid) {
      return { end: this.wait(sc, AddonReason.ClusterReplaced, `applied to an earlier cluster ${this.o.cluster}; it is removed`) };
    }
    sc.cluster = cluster;
    const others = this.o.addons.of(this.o.project, this.o.cluster).filter((a) => !isDeleting(a));
    const first = others.find((a) => a.spec.addon === addon.spec.addon);
    if (first && first.metadata.name !== addon.metadata.name) {
      return { end: this.wait(sc, AddonReason.Duplicate, `${addon.spec.addon} is already enabled on cluster ${this.o.cluster} by Addon ${first.metadata.name}`) };
    }
    const def = this.o.definitions.get(addon.spec.addon, addon.spec.version);
    if (!def) return { end: this.wait(sc, AddonReason.DefinitionNotFound, `the catalog has no ${addon.spec.addon} ${addon.spec.version}`) };
    for (const dep of def.spec.dependencies ?? []) {
      const have = others.find((a) => a.spec.addon === dep.addon);
      const want = `${dep.addon}${dep.minVersion ? ` >= ${dep.minVersion}` : ''}`;
      if (!have) return { end: this.wait(sc, AddonReason.DependencyMissing, `needs ${want} enabled on cluster ${this.o.cluster}`) };
      if (dep.minVersion && semver.lt(have.spec.version, dep.minVersion)) return { end: this.wait(sc, AddonReason.DependencyMissing, `needs ${want}; ${have.spec.version} is enabled`) };
      if (!isTrue(have.status?.conditions, AddonCondition.Healthy)) return { end: this.wait(sc, AddonReason.DependencyNotReady, `waiting for ${dep.addon} to be Healthy`) };
    }
    const prepared = this.o.definitions.prepare(def);
    if (typeof prepared === 'string') return { end: this.wait(sc, AddonReason.InvalidDefinition, prepared) };
    sc.definition = def;
    sc.prepared = prepared;
    if (!isTrue(cluster.status?.conditions, ClusterCondition.ControlPlaneReady)) {
      return { end: this.wait(sc, AddonReason.ClusterNotReady, `the API of cluster ${this.o.cluster} is not ready yet`, NOT_READY_POLL_MS) };
    }
    const api = await this.o.access.objects(cluster);
    if (!api) return { end: this.wait(sc, AddonReason.ClusterNotReady, `cluster ${this.o.cluster} has no admin kubeconfig yet`, NOT_READY_POLL_MS) };
    sc.api = api;
  }

  private async render(sc: AddonScope): Promise<PhaseResult<Status>> {
    try {
      sc.rendered = renderAddon(sc.prepared!, sc.obj.spec.values, clusterContext(sc.cluster!));
    } catch (err) {
      if (err instanceof RenderError) return { end: this.wait(sc, AddonReason.RenderFailed, err.message) };
      throw err;
    }
  }

  /** Server-side apply, drift, prune and health (sync.ts); an API that does not answer ends the pass. */
  private async apply(sc: AddonScope): Promise<PhaseResult<Status>> {
    const addon = sc.obj;
    const api = sc.api!;
    try {
      sc.report = await syncAddon({
        api,
        signal: sc.signal,
        fieldManager: fieldManagerOf(addon.spec.addon),
        objects: sc.rendered!.objects,
        defaultNamespace: sc.definition!.spec.namespace,
        inventory: sc.status.inventory ?? [],
        unchanged: sc.status.appliedDigest === sc.rendered!.digest,
        shared: (key) => this.o.addons.sharedWith(this.o.project, this.o.cluster, addon.metadata.name, key),
        rules: sc.definition!.spec.health?.rules ?? [],
        ...(this.watching ? { observed: (ref, obj) => this.drift.observed(ref, obj) } : {}),
      });
    } catch (err) {
      sc.signal.throwIfAborted();
      // The API did not answer: say so, keep the rest of the status, retry with backoff.
      sc.set({ type: AddonCondition.Applied, status: 'Unknown', reason: AddonReason.ClusterUnreachable, message: describeKubeError(err).slice(0, 1024) });
      return { end: { status: sc.status, error: err } };
    }
    if (this.watching) this.drift.track(api, addon.metadata.name, sc.report.inventory);
  }

  private async report(sc: AddonScope): Promise<PhaseResult<Status>> {
    const { obj: addon, status: s } = sc;
    const report = sc.report!;
    const digest = sc.rendered!.digest;
    const now = new Date().toISOString();
    s.clusterUID = sc.cluster!.metadata.uid;
    s.inventory = report.inventory;
    if (report.applied > 0) s.lastAppliedAt = now;
    if (report.drifted.length > 0) {
      s.driftCorrections = (s.driftCorrections ?? 0) + report.drifted.length;
      s.lastDriftCorrection = { at: now, objects: report.drifted.slice(0, 20) };
      this.o.metrics?.countDrift(report.drifted.length);
      sc.log.info({ objects: report.drifted }, 'drift corrected');
    }
    const upgraded = s.appliedDigest !== digest;
    if (report.failed.length > 0) {
      sc.set({ type: AddonCondition.Applied, status: 'False', reason: AddonReason.ApplyFailed, message: report.failed.join('; ').slice(0, 4096) });
    } else {
      s.appliedDigest = digest;
      s.appliedVersion = addon.spec.version;
      const extras = [report.ignored.length ? `${report.ignored.length} ignored` : '', report.kept.length ? `kept: ${report.kept.join(', ')}` : ''].filter(Boolean);
      const message = `${report.inventory.length} objects of ${addon.spec.addon} ${addon.spec.version}${extras.length ? ` (${extras.join('; ')})` : ''}`;
      sc.set({ type: AddonCondition.Applied, status: 'True', reason: AddonReason.Applied, message });
    }
    s.unhealthy = report.unhealthy.slice(0, 20);
    if (report.unhealthy.length === 0) sc.set({ type: AddonCondition.Healthy, status: 'True', reason: AddonReason.Healthy, message: 'every object is healthy' });
    else sc.set({ type: AddonCondition.Healthy, status: 'False', reason: report.progressing ? AddonReason.RollingOut : AddonReason.Unhealthy, message: report.unhealthy.join('; ').slice(0, 4096) });
    const rolling = report.progressing || (upgraded && report.failed.length === 0 && report.unhealthy.length > 0);
    sc.set({
      type: AddonCondition.Progressing,
      status: rolling ? 'True' : 'False',
      reason: rolling ? AddonReason.RollingOut : AddonReason.Stable,
      message: rolling ? `rolling out ${addon.spec.addon} ${addon.spec.version}` : 'nothing to roll out',
    });
    if (report.progressing || report.unhealthy.length > 0) return { requeueAfterMs: ROLLOUT_POLL_MS };
  }

  private async alerts(sc: AddonScope): Promise<PhaseResult<Status>> {
    const recheck = await this.syncAlerts(sc.obj, sc.status);
    if (recheck !== undefined) return { requeueAfterMs: recheck };
  }

  // ---------- removal ----------

  private async finalize(addon: Addon, ctx: ReconcileContext): Promise<Outcome<Status>> {
    const sc: AddonScope = scopeFor(addon, ctx);
    const done = async (): Promise<Outcome<Status>> => {
      await this.syncAlerts(addon, undefined);
      this.sentAlerts.delete(addon.metadata.name);
      this.drift.forget(addon.metadata.name);
      return { done: true };
    };
    const cluster = await this.clusters.get(this.o.project, this.o.cluster);
    // The cluster is going (or went) away: its machines take every object with them.
    if (!cluster || isDeleting(cluster) || (sc.status.clusterUID && sc.status.clusterUID !== cluster.metadata.uid)) return done();
    const refs = [...(sc.status.inventory ?? [])];
    if (refs.length === 0 && !sc.status.clusterUID) return done(); // never applied
    const api = await this.o.access.objects(cluster);
    if (!api) return this.wait(sc, AddonReason.ClusterNotReady, "waiting for the cluster's API to remove the add-on", NOT_READY_POLL_MS);
    // What the current spec renders may not be in the inventory yet (a pass interrupted before its status write).
    refs.push(...(await this.renderedRefs(addon, cluster, api, ctx.signal)));
    const seen = new Set<string>();
    const unique = refs.filter((r) => !seen.has(refKey(r)) && seen.add(refKey(r)));
    const removal = await removeObjects(api, unique, {
      shared: (key) => this.o.addons.sharedWith(this.o.project, this.o.cluster, addon.metadata.name, key),
      signal: ctx.signal,
    });
    if (removal.pending.length === 0) {
      ctx.log.info({ kept: removal.kept }, 'add-on removed');
      return done();
    }
    // Deletions come back through the watch: the next look is as soon as they are gone.
    if (this.watching) this.drift.track(api, addon.metadata.name, removal.pending);
    sc.status.inventory = removal.pending;
    const failed = removal.failed.length ? `; failed: ${removal.failed.join('; ')}` : '';
    sc.set({ type: AddonCondition.Applied, status: 'False', reason: AddonReason.Removing, message: `${removal.pending.length} objects still being deleted${failed}`.slice(0, 4096) });
    return { status: sc.status, requeueAfterMs: ROLLOUT_POLL_MS };
  }

  private async renderedRefs(addon: Addon, cluster: Cluster, api: ObjectApi, signal: AbortSignal): Promise<AppliedObject[]> {
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
        namespaced = await api.namespaced(o.apiVersion, o.kind, { signal });
      } catch {
        continue; // a kind the cluster does not serve holds no object
      }
      const ns = namespaced ? (o.metadata.namespace ?? def.spec.namespace) : undefined;
      refs.push({ apiVersion: o.apiVersion, kind: o.kind, name: o.metadata.name, ...(ns ? { namespace: ns } : {}) });
    }
    return refs;
  }

  // ---------- alerts ----------

  /**
   * AddonUnhealthy while the add-on has been unhealthy (or could not be applied) for
   * `unhealthyAlertSeconds`; AddonDriftCorrected for DRIFT_ALERT_MS after a correction. Returns
   * when to look again for an alert to open or resolve on time. `status` undefined: resolve all.
   */
  private async syncAlerts(addon: Addon, status: Status | undefined): Promise<number | undefined> {
    if (!this.o.alerts) return undefined;
    const now = Date.now();
    const active: AlertInput[] = [];
    let recheck: number | undefined;
    const labels = { addon: addon.spec.addon };
    const where = `${addon.spec.addon} on cluster ${this.o.cluster}`;
    if (status) {
      const problem = [AddonCondition.Healthy, AddonCondition.Applied]
        .map((t) => getCondition(status.conditions, t))
        .find((c) => c?.status === 'False' && !QUIET_REASONS.has(c.reason ?? ''));
      if (problem) {
        const since = Date.parse(problem.lastTransitionTime ?? '') || now;
        const due = since + this.o.policy().unhealthyAlertSeconds * 1000;
        if (now >= due) {
          active.push({
            rule: RULES.AddonUnhealthy,
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
          rule: RULES.AddonDriftCorrected,
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
