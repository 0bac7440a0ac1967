// One pass of an add-on over its cluster: apply what is desired, count what had drifted, prune
// what the new revision no longer has, judge health; and the removal of everything when the
// add-on goes. It reaches the cluster only through an ObjectApi, so it is tested without one.
//
// Drift: when the rendered objects are the ones last applied in full (`unchanged`), every object
// is read and compared with what we want (our fields only: the live object may carry more). An
// object that is missing, or differs and changes when re-applied (server-side apply of identical
// fields is a no-op that keeps the resourceVersion), was changed by someone else: it is put back
// and counted. After an upgrade (`unchanged` false) every object is applied, so fields the new
// revision dropped are removed by server-side apply, and nothing is counted.
//
// CustomResourceDefinitions come first: the pass waits until they are established and their kinds
// are served before it applies the rest, so custom resources of the same add-on apply in one pass.
import { setTimeout as sleep } from 'node:timers/promises';
import { isDeepStrictEqual } from 'node:util';
import type { AppliedObject, HealthRule } from '../api/addons.js';
import { ANNOTATION_ADDON_IGNORE, ANNOTATION_ADDON_KEEP } from '../api/wellknown.js';
import type { ClusterObject, ObjectApi, ObjectRef } from '../clusteraccess/access.js';
import { KubeError } from '../kube/client.js';
import { judge } from './health.js';
import { refKey, showRef } from './refs.js';
import { CRD_KIND, installRank, type Manifest } from './render.js';

/** A CRD applied in a pass is usually established within a second; after this the pass goes on without it. */
export const CRD_ESTABLISH_TIMEOUT_MS = 30_000;
const CRD_POLL_MS = 200;

export interface SyncOptions {
  api: ObjectApi;
  /** The reconcile's: every call to the cluster takes it. */
  signal?: AbortSignal;
  fieldManager: string;
  /** Rendered objects in install order (CustomResourceDefinitions first). */
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
  /** Told each object as this pass read or wrote it (undefined: it does not exist), as soon as it is known. */
  observed?: (ref: ObjectRef, obj: ClusterObject | undefined) => void;
  /** How long to wait for the add-on's CRDs to be established (default CRD_ESTABLISH_TIMEOUT_MS). */
  crdTimeoutMs?: number;
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

const annotated = (obj: ClusterObject | undefined, key: string) => obj?.metadata?.annotations?.[key] === 'true';
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
async function place(o: SyncOptions, m: Manifest): Promise<{ obj: Manifest; ref: ObjectRef }> {
  const namespaced = await o.api.namespaced(m.apiVersion, m.kind, { signal: o.signal });
  const metadata = { ...m.metadata };
  if (namespaced) metadata.namespace ??= o.defaultNamespace;
  else delete metadata.namespace;
  const ref: ObjectRef = { apiVersion: m.apiVersion, kind: m.kind, name: metadata.name };
  if (metadata.namespace) ref.namespace = metadata.namespace;
  return { obj: { ...m, metadata }, ref };
}

export async function syncAddon(o: SyncOptions): Promise<SyncReport> {
  const report: SyncReport = { inventory: [], applied: 0, drifted: [], ignored: [], pruned: [], kept: [], unhealthy: [], progressing: false, failed: [] };
  const before = new Set(o.inventory.map(refKey));
  const wanted = new Set<string>();
  const call = { signal: o.signal };

  /** Health of an object as it is now; ignored objects are not judged. */
  const judgeOne = (name: string, obj: ClusterObject) => {
    if (annotated(obj, ANNOTATION_ADDON_IGNORE)) return;
    const verdict = judge(obj, o.rules);
    if (verdict && !verdict.healthy) report.unhealthy.push(`${name}: ${verdict.message ?? 'not healthy'}`);
    if (verdict?.progressing) report.progressing = true;
  };

  /** Brings one object to its manifest; returns it as it is now in the cluster (undefined: failed). */
  const syncOne = async (manifest: Manifest): Promise<{ name: string; obj: ClusterObject } | undefined> => {
    let name = showRef({ kind: manifest.kind, ...manifest.metadata });
    try {
      const { obj, ref } = await place(o, manifest);
      name = showRef(ref);
      wanted.add(refKey(ref));
      const live = await o.api.get(ref, call);
      o.observed?.(ref, live);
      if (live && annotated(live, ANNOTATION_ADDON_IGNORE)) {
        report.ignored.push(name);
        report.inventory.push(toApplied(ref));
        return { name, obj: live };
      }
      let current = live;
      if (!live || !o.unchanged || !covers(live, obj)) {
        current = await o.api.apply(obj, o.fieldManager, call);
        o.observed?.(ref, current);
        report.applied++;
        const drift = o.unchanged && before.has(refKey(ref)) && (!live || current.metadata?.resourceVersion !== live.metadata?.resourceVersion);
        if (drift) report.drifted.push(`${name} (${live ? 'changed' : 'deleted'})`);
      }
      report.inventory.push(toApplied(ref));
      return { name, obj: current! };
    } catch (err) {
      if (isTransient(err)) throw err;
      report.failed.push(`${name}: ${reason(err)}`);
      return undefined;
    }
  };

  // The add-on's own CRDs first, established and served before the objects that may be of their kinds.
  const crds: { name: string; obj: ClusterObject }[] = [];
  for (const m of o.objects.filter((x) => x.kind === CRD_KIND)) {
    const crd = await syncOne(m);
    if (crd) crds.push(crd);
  }
  const established = crds.length > 0 ? await awaitEstablished(o, crds.map((c) => c.obj)) : [];
  crds.forEach((c, i) => judgeOne(c.name, established[i] ?? c.obj));
  for (const m of o.objects.filter((x) => x.kind !== CRD_KIND)) {
    const synced = await syncOne(m);
    if (synced) judgeOne(synced.name, synced.obj);
  }

  if (report.failed.length > 0) {
    // Keep every old object until the new revision is in: a failed upgrade must not leave nothing.
    const have = new Set(report.inventory.map(refKey));
    report.inventory.push(...o.inventory.filter((r) => !have.has(refKey(r))));
    return report;
  }
  const stale = o.inventory.filter((r) => !wanted.has(refKey(r)));
  const removal = await removeObjects(o.api, stale, { ...(o.shared ? { shared: o.shared } : {}), ...(o.signal ? { signal: o.signal } : {}) });
  report.pruned.push(...removal.deleted);
  report.kept.push(...removal.kept);
  report.failed.push(...removal.failed);
  report.inventory.push(...removal.pending);
  return report;
}

interface CrdShape {
  spec?: { group?: string; names?: { kind?: string }; versions?: { name?: string; served?: boolean }[] };
  status?: { conditions?: { type?: string; status?: string }[] };
}

/** The kinds a CRD serves, as apiVersion + kind. */
function servedKinds(crd: ClusterObject): { apiVersion: string; kind: string }[] {
  const spec = (crd as CrdShape).spec;
  const kind = spec?.names?.kind;
  if (!spec?.group || !kind) return [];
  return (spec.versions ?? []).filter((v) => v.name && v.served !== false).map((v) => ({ apiVersion: `${spec.group}/${v.name}`, kind }));
}

const conditionOf = (crd: ClusterObject, type: string) => (crd as CrdShape).status?.conditions?.find((c) => c.type === type)?.status;

/**
 * Waits until every CRD is Established and the API's discovery serves its kinds, a CRD's names are
 * refused (NamesAccepted False: waiting cannot help), or the timeout passes. What is still not
 * served then fails on its own when its objects are applied, and the next pass tries again.
 * Returns the CRDs as last read, in the order given (a CRD deleted meanwhile: as given).
 */
async function awaitEstablished(o: SyncOptions, crds: readonly ClusterObject[]): Promise<ClusterObject[]> {
  const latest = [...crds];
  const deadline = Date.now() + (o.crdTimeoutMs ?? CRD_ESTABLISH_TIMEOUT_MS);
  const ready = async (crd: ClusterObject): Promise<boolean> => {
    if (conditionOf(crd, 'Established') !== 'True') return false;
    for (const k of servedKinds(crd)) {
      try {
        await o.api.namespaced(k.apiVersion, k.kind, { signal: o.signal });
      } catch (err) {
        if (isTransient(err)) throw err;
        return false;
      }
    }
    return true;
  };
  let waiting = latest.map((_, i) => i);
  for (;;) {
    const next: number[] = [];
    for (const i of waiting) if (conditionOf(latest[i]!, 'NamesAccepted') !== 'False' && !(await ready(latest[i]!))) next.push(i);
    if (next.length === 0 || Date.now() >= deadline) return latest;
    await sleep(CRD_POLL_MS, undefined, o.signal ? { signal: o.signal } : {});
    waiting = [];
    for (const i of next) {
      const crd = latest[i]!;
      const ref = { apiVersion: crd.apiVersion ?? 'apiextensions.k8s.io/v1', kind: CRD_KIND, name: crd.metadata?.name ?? '' };
      const fresh = await o.api.get(ref, { signal: o.signal });
      o.observed?.(ref, fresh);
      if (fresh) {
        latest[i] = fresh;
        waiting.push(i);
      }
    }
  }
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
export async function removeObjects(
  api: ObjectApi,
  refs: readonly AppliedObject[],
  opts: { shared?: (key: string) => boolean; signal?: AbortSignal } = {},
): Promise<RemovalReport> {
  const out: RemovalReport = { deleted: [], gone: [], kept: [], pending: [], failed: [] };
  const ordered = [...refs].sort((a, b) => installRank(b.kind) - installRank(a.kind) || (a.kind === 'Namespace' ? 1 : 0) - (b.kind === 'Namespace' ? 1 : 0));
  const keptNamespaces = new Set<string>();
  const call = { signal: opts.signal };
  for (const ref of ordered) {
    const name = showRef(ref);
    try {
      if (opts.shared?.(refKey(ref))) {
        out.kept.push(`${name} (shared with another add-on)`);
        continue;
      }
      const live = await api.get(ref, call);
      if (!live) {
        out.gone.push(name);
        continue;
      }
      const keep = annotated(live, ANNOTATION_ADDON_KEEP) || annotated(live, ANNOTATION_ADDON_IGNORE);
      if (keep || (ref.kind === 'Namespace' && keptNamespaces.has(ref.name))) {
        out.kept.push(`${name} (${keep ? 'annotated' : 'holds kept objects'})`);
        if (ref.namespace) keptNamespaces.add(ref.namespace);
        continue;
      }
      if (!live.metadata?.deletionTimestamp) {
        await api.delete(ref, call);
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
