// The Cluster API reconciler skeleton as one helper, so a controller only writes the two
// interesting functions:
//
//   get ──missing──▶ done
//    │
//    ├─ not deleting: ensure finalizer (update) ─▶ reconcile(draft) ─▶ patch status once ─▶ result
//    └─ deleting:     finalize(draft) ─┬─ done ─▶ remove finalizer (the store removes the object)
//                                      └─ not done ─▶ patch status once ─▶ result
//
// Every write carries the resourceVersion that was read, so a concurrent change fails with 409;
// the error propagates and the Controller retries the key with backoff against the fresh state.
// A step aborted by a stop writes nothing.
import { isApiError } from '../api/errors.js';
import { jsonEqual } from '../api/json.js';
import type { ObjectKey, Resource } from '../api/meta.js';
import type { Store } from '../store/types.js';
import type { ReconcileContext, Result } from './controller.js';

type StatusOf<T extends Resource> = NonNullable<T['status']>;

/**
 * What a `reconcile` or `finalize` step produced.
 *
 * - `status`: the complete new status. When omitted, the draft's `obj.status` (which the step may
 *   have mutated in place) is used. Either way, `observedGeneration` is set to
 *   `metadata.generation`, and the status is written (one `updateStatus`) only if it differs
 *   (deep-equal) from the stored one. Changes a step makes to the draft's metadata or spec are
 *   ignored: spec and children are written by the step itself, explicitly.
 * - `requeueAfterMs`: reconcile again after this long even without a change (poll external state,
 *   wait for a machine to boot). Ignored when `error` is set (the backoff decides).
 * - `error`: a failure to report *after* the status (typically with a failure condition) is
 *   persisted. A `TerminalError` is not retried; anything else is retried with backoff. Throwing
 *   from the step instead skips the status write.
 * - `done` (finalize only): cleanup is complete; the finalizer is removed and, if it was the last
 *   one, the store removes the object. The status is not written then. When false, the status is
 *   written and the object is reconciled again on `requeueAfterMs`, on a change, or on resync.
 */
export interface Outcome<S = unknown> {
  status?: S;
  requeueAfterMs?: number;
  error?: unknown;
  done?: boolean;
}

export interface ObjectHandlers<T extends Resource = Resource> {
  /**
   * Finalizer that guards cleanup, e.g. `marina.dev/cluster`. Added before the first reconcile;
   * removed when `finalize` reports done. Omit it (and `finalize`) for kinds without cleanup:
   * then deleting objects are left alone.
   */
  finalizer?: string;
  /** Drive the object towards its spec. `obj` is a private deep copy (a draft). */
  reconcile: (obj: T, ctx?: ReconcileContext) => Promise<Outcome<StatusOf<T>>>;
  /** Clean up an object whose deletionTimestamp is set. `obj` is a private deep copy. */
  finalize?: (obj: T, ctx?: ReconcileContext) => Promise<Outcome<StatusOf<T>>>;
}

/**
 * Reconciles the object at `key` with `handlers`; returns what a Reconciler should return, or
 * throws what it should throw. `ctx` is passed through to the handlers.
 */
export async function reconcileObject<T extends Resource = Resource>(
  store: Store,
  key: ObjectKey,
  handlers: ObjectHandlers<T>,
  ctx?: ReconcileContext,
): Promise<Result> {
  try {
    return await run(store, key, handlers, ctx);
  } catch (err) {
    // The object vanished between our read and a write: nothing is left to reconcile.
    if (isApiError(err) && err.code === 404) return;
    throw err;
  }
}

async function run<T extends Resource>(
  store: Store,
  key: ObjectKey,
  h: ObjectHandlers<T>,
  ctx: ReconcileContext | undefined,
): Promise<Result> {
  let obj = (await store.get(key)) as T | undefined;
  if (!obj) return;
  const finalizers = obj.metadata.finalizers ?? [];
  const deleting = obj.metadata.deletionTimestamp !== undefined;

  if (deleting) {
    if (!h.finalizer || !h.finalize || !finalizers.includes(h.finalizer)) return;
    const out = await h.finalize(draft(obj), ctx);
    // A reconcile aborted by a stop records nothing: what it saw was cut short.
    ctx?.signal.throwIfAborted();
    if (out.done) {
      const latest = (await store.get(key)) as T | undefined;
      if (latest?.metadata.finalizers?.includes(h.finalizer)) {
        await store.update({
          ...latest,
          metadata: { ...latest.metadata, finalizers: latest.metadata.finalizers.filter((f) => f !== h.finalizer) },
        });
      }
      return finish(out);
    }
    await patchStatus(store, obj, out, undefined);
    return finish(out);
  }

  if (h.finalizer && !finalizers.includes(h.finalizer)) {
    obj = (await store.update({ ...obj, metadata: { ...obj.metadata, finalizers: [...finalizers, h.finalizer] } })) as T;
  }
  const d = draft(obj);
  const out = await h.reconcile(d, ctx);
  ctx?.signal.throwIfAborted();
  await patchStatus(store, obj, out, d.status);
  return finish(out);
}

function draft<T extends Resource>(obj: T): T {
  return structuredClone(obj);
}

/** Writes the new status if it differs from the stored one. */
async function patchStatus<T extends Resource>(store: Store, obj: T, out: Outcome<unknown>, draftStatus: unknown): Promise<void> {
  const next = desiredStatus(obj, out.status !== undefined ? out.status : draftStatus);
  if (statusEqual(obj.status, next)) return;
  await store.updateStatus({ ...obj, status: next });
}

/** The status to store: `status` with observedGeneration stamped, normalised to plain JSON. */
export function desiredStatus(obj: Resource, status: unknown): Record<string, unknown> {
  const base = status === undefined || status === null ? {} : (toJson(status) as Record<string, unknown>);
  if (typeof base !== 'object' || Array.isArray(base)) throw new TypeError('status must be an object');
  const generation = obj.metadata.generation;
  return generation === undefined ? base : { ...base, observedGeneration: generation };
}

/** Deep equality as stored JSON: key order and `undefined` members do not matter. */
export function statusEqual(a: unknown, b: unknown): boolean {
  return jsonEqual(a ?? {}, b ?? {});
}

function toJson(v: unknown): unknown {
  return v === undefined ? undefined : JSON.parse(JSON.stringify(v));
}

function finish(out: Outcome<unknown>): Result {
  if (out.error !== undefined) throw out.error;
  const after = out.requeueAfterMs;
  return after !== undefined && after > 0 ? { requeueAfterMs: after } : undefined;
}
