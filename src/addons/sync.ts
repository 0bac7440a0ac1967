// One pass of an add-on over its cluster: apply what is desired, count what had drifted, prune
// what the new revision no longer has, judge health; and the removal of everything when the
// add-on goes. Pure over AddonClusterApi, so it is tested without a cluster.
//
// Drift: when the rendered objects are the ones last applied in full (`unchanged`), every object
// is read and compared with what we want (our fields only: the live object may carry more). An
// object that is missing, or differs and changes when re-applied (server-side apply of identical
// fields is a no-op that keeps the resourceVersion), was changed by someone else: it is put back
// and counted. After an upgrade (`unchanged` false) every object is applied, so fields the new
// revision dropped are removed by server-side apply, and nothing is counted.
import { isDeepStrictEqual } from 'node:util';
import { ANNOTATION_IGNORE, ANNOTATION_KEEP, type AppliedObject, type HealthRule } from '../api/addons.js';
import { KubeError } from '../kube/client.js';
import { judge, type LiveObject } from './health.js';
import { refKey, showRef, type AddonClusterApi, type ObjectRef } from './kube.js';
import { installRank, type Manifest } from './render.js';

export interface SyncOptions {
  api: AddonClusterApi;
  fieldManager: string;
  /** Rendered objects in install order. */
  objects: readonly Manifest[];
  /** Namespace of namespaced objects that name none. */
  defaultNamespace: string;
  /** What the previous passes applied. */
  inventory: readonly AppliedObject[];
  /** The objects are those last applied in full: differences now are drift. */
  unchanged: boolean;
  /** Objects another add-on of the cluster applies too (a shared Namespace): never deleted here. */
  shared?: (key: string) => boolean;
  rules?: readonly HealthRule[];
}

export interface SyncReport {
  inventory: AppliedObject[];
  /** Objects written in this pass. */
  applied: number;
  /** Objects put back after someone changed or deleted them. */
  drifted: string[];
  /** Objects annotated ignore: left alone. */
  ignored: string[];
  pruned: string[];
  /** Objects the new revision no longer has but that stay (annotated keep/ignore, or shared). */
  kept: string[];
  unhealthy: string[];
  progressing: boolean;
  /** Objects that could not be applied or pruned, with the API's reason. */
  failed: string[];
}

const annotated = (obj: LiveObject | undefined, key: string) => obj?.metadata?.annotations?.[key] === 'true';
const toApplied = (r: ObjectRef): AppliedObject => (r.namespace ? { apiVersion: r.apiVersion, kind: r.kind, namespace: r.namespace, name: r.name } : { apiVersion: r.apiVersion, kind: r.kind, name: r.name });

/**
 * Does `live` have every field of `want` with the same value? Objects compare by key (extra live
 * keys are fine: defaults, other managers' fields), lists element by element; an empty object or
 * null in `want` also matches an absent field (the API server drops empty structs).
 */
export function covers(live: unknown, want: unknown): boolean {
  if (want === null) return live === null || live === undefined;
  if (Array.isArray(want)) return Array.isArray(live) && live.length === want.length && want.every((w, i) => covers(live[i], w));
  if (typeof want === 'object') {
    const entries = Object.entries(want as Record<string, unknown>);
    if (live === undefined || live === null) return entries.length === 0;
    if (typeof live !== 'object' || Array.isArray(live)) return false;
    return entries.every(([k, v]) => covers((live as Record<string, unknown>)[k], v));
  }
  return isDeepStrictEqual(live, want);
}

/** A network failure or an overloaded API: the whole pass is retried later. */
function isTransient(err: unknown): boolean {
  return err instanceof KubeError && err.retryable;
}

const reason = (err: unknown) => (err instanceof KubeError ? `${err.reason}: ${err.message}` : err instanceof Error ? err.message : String(err));

/** Where an object goes: its namespace (discovery says whether it has one) and its ref. */
async function place(api: AddonClusterApi, o: Manifest, defaultNamespace: string): Promise<{ obj: Manifest; ref: ObjectRef }> {
  const namespaced = await api.namespaced(o.apiVersion, o.kind);
  const metadata = { ...o.metadata };
  if (namespaced) metadata.namespace ??= defaultNamespace;
  else delete metadata.namespace;
  const ref: ObjectRef = { apiVersion: o.apiVersion, kind: o.kind, name: metadata.name };
  if (metadata.namespace) ref.namespace = metadata.namespace;
  return { obj: { ...o, metadata }, ref };
}

export async function syncAddon(o: SyncOptions): Promise<SyncReport> {
  const report: SyncReport = { inventory: [], applied: 0, drifted: [], ignored: [], pruned: [], kept: [], unhealthy: [], progressing: false, failed: [] };
  const before = new Set(o.inventory.map(refKey));
  const wanted = new Set<string>();
  for (const manifest of o.objects) {
    let name = showRef({ kind: manifest.kind, ...manifest.metadata });
    try {
      const { obj, ref } = await place(o.api, manifest, o.defaultNamespace);
      name = showRef(ref);
      wanted.add(refKey(ref));
      const live = await o.api.get(ref);
      if (annotated(live, ANNOTATION_IGNORE)) {
        report.ignored.push(name);
        report.inventory.push(toApplied(ref));
        continue;
      }
      let current = live;
      if (!live || !o.unchanged || !covers(live, obj)) {
        current = await o.api.apply(obj, o.fieldManager);
        report.applied++;
        const drift = o.unchanged && before.has(refKey(ref)) && (!live || current.metadata?.resourceVersion !== live.metadata?.resourceVersion);
        if (drift) report.drifted.push(`${name} (${live ? 'changed' : 'deleted'})`);
      }
      report.inventory.push(toApplied(ref));
      const verdict = judge(current!, o.rules);
      if (verdict && !verdict.healthy) report.unhealthy.push(`${name}: ${verdict.message ?? 'not healthy'}`);
      if (verdict?.progressing) report.progressing = true;
    } catch (err) {
      if (isTransient(err)) throw err;
      report.failed.push(`${name}: ${reason(err)}`);
    }
  }
  if (report.failed.length > 0) {
    // Keep every old object until the new revision is in: a failed upgrade must not leave nothing.
    const have = new Set(report.inventory.map(refKey));
    report.inventory.push(...o.inventory.filter((r) => !have.has(refKey(r))));
    return report;
  }
  const stale = o.inventory.filter((r) => !wanted.has(refKey(r)));
  const removal = await removeObjects(o.api, stale, o.shared);
  report.pruned.push(...removal.deleted);
  report.kept.push(...removal.kept);
  report.failed.push(...removal.failed);
  report.inventory.push(...removal.pending);
  return report;
}

export interface RemovalReport {
  /** Delete calls made in this pass. */
  deleted: string[];
  /** Objects already gone. */
  gone: string[];
  /** Objects left on purpose (keep/ignore annotation, shared, or a namespace holding kept objects). */
  kept: string[];
  /** Refs still present (deleted in this pass but not gone yet, or failed): try again. */
  pending: AppliedObject[];
  failed: string[];
}

/**
 * Deletes `refs` in reverse install order, except objects annotated keep or ignore, objects other
 * add-ons share, and namespaces that hold a kept object (deleting them would take it along).
 */
export async function removeObjects(api: AddonClusterApi, refs: readonly AppliedObject[], shared?: (key: string) => boolean): Promise<RemovalReport> {
  const out: RemovalReport = { deleted: [], gone: [], kept: [], pending: [], failed: [] };
  const ordered = [...refs].sort((a, b) => installRank(b.kind) - installRank(a.kind) || (a.kind === 'Namespace' ? 1 : 0) - (b.kind === 'Namespace' ? 1 : 0));
  const keptNamespaces = new Set<string>();
  for (const ref of ordered) {
    const name = showRef(ref);
    try {
      if (shared?.(refKey(ref))) {
        out.kept.push(`${name} (shared with another add-on)`);
        continue;
      }
      const live = await api.get(ref);
      if (!live) {
        out.gone.push(name);
        continue;
      }
      const keep = annotated(live, ANNOTATION_KEEP) || annotated(live, ANNOTATION_IGNORE);
      if (keep || (ref.kind === 'Namespace' && keptNamespaces.has(ref.name))) {
        out.kept.push(`${name} (${keep ? 'annotated' : 'holds kept objects'})`);
        if (ref.namespace) keptNamespaces.add(ref.namespace);
        continue;
      }
      if (!live.metadata?.deletionTimestamp) {
        await api.delete(ref);
        out.deleted.push(name);
      }
      out.pending.push(ref);
    } catch (err) {
      if (isTransient(err)) throw err;
      out.failed.push(`${name}: ${reason(err)}`);
      out.pending.push(ref);
    }
  }
  return out;
}
