// Drift found as it happens: for one cluster, a watch on each kind its add-ons manage, through the
// cluster's API and selected by the managed-by label every applied object carries, so that an
// object someone deletes or edits wakes the add-ons that own it within about a second. The
// periodic resync stays as the safety net (a watch that is down, an object that lost its label).
//
// The controller's own writes come back as events too; each pass tells this watch the
// resourceVersion it read or wrote of every object (`observed`), and an event carrying a version
// already seen wakes nothing (an event that overtakes the response to the write costs one steady
// pass more). A status change by the cluster's controllers does wake the add-on: its health is
// judged again.
import type { Logger } from 'pino';
import type { AppliedObject } from '../api/addons.js';
import { LABEL_MANAGED_BY, MANAGED_BY_ADDONS } from '../api/wellknown.js';
import type { ClusterObject, ObjectApi, ObjectRef } from '../clusteraccess/access.js';
import type { WatchEventType } from '../kube/client.js';
import { describeKubeError, groupOf, refKey } from './refs.js';

export const MANAGED_SELECTOR = `${LABEL_MANAGED_BY}=${MANAGED_BY_ADDONS}`;

interface KindWatch {
  apiVersion: string;
  kind: string;
  /** Resolves to the running watch; undefined once it failed to start (the next `track` retries). */
  running: Promise<{ stop(): void } | undefined>;
}

export interface DriftWatchOptions {
  /** An object of `addon` changed or went away. */
  onChange(addon: string): void;
  log: Logger;
}

export class DriftWatch {
  private api?: ObjectApi;
  /** By group/kind: one watch serves every version of a kind. */
  private readonly watches = new Map<string, KindWatch>();
  /** The objects each add-on manages (refKey → ref), as its last pass left them. */
  private readonly managed = new Map<string, Map<string, ObjectRef>>();
  /** The resourceVersion the passes last saw of each object ('' when it did not exist). */
  private readonly seen = new Map<string, string>();
  private stopped = false;

  constructor(private readonly o: DriftWatchOptions) {}

  /** What a pass read or wrote of an object (undefined: it does not exist). */
  observed(ref: ObjectRef, obj: ClusterObject | undefined): void {
    this.seen.set(refKey(ref), obj?.metadata?.resourceVersion ?? '');
  }

  /** The objects `addon` manages after a pass, over `api`; watches start and stop to match. */
  track(api: ObjectApi, addon: string, objects: readonly AppliedObject[]): void {
    if (this.stopped) return;
    if (api !== this.api) {
      // A new connection (the admin kubeconfig changed): the old client's watches died with it.
      this.stopWatches();
      this.api = api;
    }
    this.managed.set(addon, new Map(objects.map((r) => [refKey(r), r])));
    this.sync();
  }

  /** `addon` manages nothing any more (removed). */
  forget(addon: string): void {
    if (!this.managed.delete(addon)) return;
    const live = new Set([...this.managed.values()].flatMap((m) => [...m.keys()]));
    for (const key of this.seen.keys()) if (!live.has(key)) this.seen.delete(key);
    this.sync();
  }

  /** Kinds watched now, as `group/kind`. */
  kinds(): string[] {
    return [...this.watches.keys()].sort();
  }

  /** Stops every watch and forgets what was tracked; the next `track` starts over. */
  clear(): void {
    this.stopWatches();
    this.managed.clear();
    this.seen.clear();
  }

  /** For good (the controller stops). */
  stop(): void {
    this.stopped = true;
    this.clear();
  }

  private sync(): void {
    const api = this.api;
    if (!api) return;
    const wanted = new Map<string, ObjectRef>();
    for (const refs of this.managed.values()) for (const r of refs.values()) wanted.set(`${groupOf(r.apiVersion)}/${r.kind}`, r);
    for (const [gk, w] of this.watches) {
      if (wanted.has(gk)) continue;
      this.watches.delete(gk);
      void w.running.then((h) => h?.stop());
    }
    for (const [gk, r] of wanted) {
      if (this.watches.has(gk)) continue;
      const w: KindWatch = {
        apiVersion: r.apiVersion,
        kind: r.kind,
        running: api
          .watch(r.apiVersion, r.kind, {
            labelSelector: MANAGED_SELECTOR,
            onEvent: (type, obj) => this.onEvent(type, obj, r.apiVersion),
            onError: (err) => this.o.log.debug({ kind: gk, err: describeKubeError(err) }, 'add-on object watch interrupted; resuming'),
          })
          .then(
            (h) => {
              // Stopped or replaced while it was starting.
              if (this.watches.get(gk) !== w || this.api !== api) {
                h.stop();
                return undefined;
              }
              return h;
            },
            (err: unknown) => {
              this.o.log.debug({ kind: gk, err: describeKubeError(err) }, 'add-on object watch did not start; the next pass retries');
              if (this.watches.get(gk) === w) this.watches.delete(gk);
              return undefined;
            },
          ),
      };
      this.watches.set(gk, w);
    }
  }

  private onEvent(type: WatchEventType, obj: ClusterObject, apiVersion: string): void {
    const m = obj.metadata ?? {};
    const key = refKey({ apiVersion: obj.apiVersion ?? apiVersion, kind: obj.kind ?? '', name: m.name ?? '', ...(m.namespace ? { namespace: m.namespace } : {}) });
    const seen = this.seen.get(key);
    if (type !== 'DELETED' && seen !== undefined && seen === m.resourceVersion) return;
    for (const [addon, refs] of this.managed) if (refs.has(key)) this.o.onChange(addon);
  }

  private stopWatches(): void {
    for (const w of this.watches.values()) void w.running.then((h) => h?.stop());
    this.watches.clear();
  }
}
