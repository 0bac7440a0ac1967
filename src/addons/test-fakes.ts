// A cluster's ObjectApi in memory for the add-on tests (unit and controller tests). It follows the
// published semantics the controller relies on: server-side apply of unchanged fields is a no-op
// that keeps the resourceVersion, other writers' annotations survive an apply, deleting a
// Namespace deletes what is in it, unknown kinds are not served, a CustomResourceDefinition is
// established (and its kind served) a moment after it is applied, and label-selected watches see
// every change a moment after it is made, an object that stops matching as DELETED.
import { isDeepStrictEqual } from 'node:util';
import { UnknownKindError, type ApplyObject, type ClusterObject, type ObjectApi, type ObjectRef, type ObjectWatchOptions } from '../clusteraccess/access.js';
import { KubeError, type WatchEventType } from '../kube/client.js';
import { refKey } from './refs.js';

const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'StorageClass', 'CustomResourceDefinition', 'APIService', 'PersistentVolume', 'PriorityClass']);

interface FakeWatch {
  kind: string;
  selector: [string, string][];
  opts: ObjectWatchOptions;
}

/** `a=b,c=d` only: what the add-on controllers ask for. */
function parseSelector(s: string): [string, string][] {
  return s.split(',').map((term) => {
    const [k, v] = term.split('=');
    if (!k || v === undefined) throw new Error(`the fake API supports a=b selectors only, got ${JSON.stringify(s)}`);
    return [k, v];
  });
}

const matches = (w: FakeWatch, o: ClusterObject | undefined) => !!o && o.kind === w.kind && w.selector.every(([k, v]) => o.metadata?.labels?.[k] === v);

export class FakeClusterApi implements ObjectApi {
  readonly objects = new Map<string, ClusterObject>();
  readonly calls = { get: 0, apply: 0, delete: 0 };
  /** Kinds the fake API does not serve. */
  readonly unserved = new Set<string>();
  /** How long after its apply a CRD is established and its kind served. */
  crdEstablishMs = 50;
  /** CRDs are refused instead (NamesAccepted False: a name conflict), their kinds never served. */
  refuseCrdNames = false;
  /** Make the next calls fail: a KubeError code (0: no answer) or a function deciding per object. */
  failApply?: (obj: ApplyObject) => KubeError | undefined;
  unreachable = false;
  private readonly watches = new Set<FakeWatch>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private rv = 0;

  private check(): void {
    if (this.unreachable) throw new KubeError(0, 'NetworkError', 'connect ECONNREFUSED');
  }

  async namespaced(apiVersion: string, kind: string): Promise<boolean> {
    this.check();
    if (this.unserved.has(kind)) throw new UnknownKindError(apiVersion, kind);
    return !CLUSTER_SCOPED.has(kind);
  }

  async get(ref: ObjectRef): Promise<ClusterObject | undefined> {
    this.check();
    this.calls.get++;
    const o = this.objects.get(refKey(ref));
    return o && structuredClone(o);
  }

  async apply(obj: ApplyObject, _fieldManager: string): Promise<ClusterObject> {
    this.check();
    if (this.unserved.has(obj.kind)) throw new UnknownKindError(obj.apiVersion, obj.kind);
    this.calls.apply++;
    const err = this.failApply?.(obj);
    if (err) throw err;
    const ref = { apiVersion: obj.apiVersion, kind: obj.kind, name: obj.metadata.name, ...(obj.metadata.namespace ? { namespace: obj.metadata.namespace } : {}) };
    const key = refKey(ref);
    const existing = this.objects.get(key);
    const next: ClusterObject = structuredClone(obj);
    next.metadata = {
      ...existing?.metadata,
      ...structuredClone(obj.metadata),
      annotations: { ...existing?.metadata?.annotations, ...obj.metadata.annotations },
    };
    if (Object.keys(next.metadata.annotations ?? {}).length === 0) delete next.metadata.annotations;
    if (existing?.status) next.status = existing.status;
    if (existing && isDeepStrictEqual(existing, next)) return structuredClone(existing);
    next.metadata.resourceVersion = String(++this.rv);
    next.metadata.generation = (existing?.metadata?.generation ?? 0) + (isDeepStrictEqual(existing?.spec, next.spec) ? 0 : 1);
    this.put(key, next, existing);
    if (obj.kind === 'CustomResourceDefinition' && !existing) this.establishLater(key);
    return structuredClone(next);
  }

  async delete(ref: ObjectRef): Promise<void> {
    this.check();
    this.calls.delete++;
    this.drop(refKey(ref));
    if (ref.kind === 'Namespace') for (const [k, o] of this.objects) if (o.metadata?.namespace === ref.name) this.drop(k);
  }

  async watch(_apiVersion: string, kind: string, opts: ObjectWatchOptions): Promise<{ stop(): void }> {
    this.check();
    const w: FakeWatch = { kind, selector: parseSelector(opts.labelSelector), opts };
    this.watches.add(w);
    for (const o of this.objects.values()) if (matches(w, o)) opts.onEvent('ADDED', structuredClone(o));
    return { stop: () => this.watches.delete(w) };
  }

  /** Watches open now, as `kind` (for assertions). */
  watching(): string[] {
    return [...this.watches].map((w) => w.kind).sort();
  }

  /** Stops the pending CRD timers (the end of a test). */
  close(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.watches.clear();
  }

  // ---------- what tests do to the cluster "with kubectl" ----------

  find(kind: string, name: string, namespace?: string): ClusterObject | undefined {
    return [...this.objects.values()].find((o) => o.kind === kind && o.metadata?.name === name && (namespace === undefined || o.metadata?.namespace === namespace));
  }

  /** Someone else changes an object (bumps its resourceVersion). */
  edit(kind: string, name: string, change: (o: ClusterObject) => void): void {
    const [key, o] = this.entry(kind, name);
    const next = structuredClone(o);
    change(next);
    next.metadata!.resourceVersion = String(++this.rv);
    this.put(key, next, o);
  }

  remove(kind: string, name: string): void {
    this.drop(this.entry(kind, name)[0]);
  }

  /** What the workload controllers and kubelets would report once everything runs. */
  settle(): void {
    for (const [key, o] of this.objects) {
      const gen = o.metadata?.generation ?? 1;
      const replicas = (o.spec?.replicas as number | undefined) ?? 1;
      let status: ClusterObject['status'];
      if (o.kind === 'Deployment') {
        status = { observedGeneration: gen, replicas, updatedReplicas: replicas, availableReplicas: replicas, readyReplicas: replicas, conditions: [{ type: 'Available', status: 'True' }] };
      } else if (o.kind === 'DaemonSet') {
        status = { observedGeneration: gen, desiredNumberScheduled: 2, currentNumberScheduled: 2, updatedNumberScheduled: 2, numberReady: 2, numberAvailable: 2 };
      }
      if (status && !isDeepStrictEqual(status, o.status)) this.put(key, { ...o, status, metadata: { ...o.metadata, resourceVersion: String(++this.rv) } }, o);
    }
  }

  private entry(kind: string, name: string): [string, ClusterObject] {
    const hit = [...this.objects].find(([, o]) => o.kind === kind && o.metadata?.name === name);
    if (!hit) throw new Error(`no ${kind} ${name}`);
    return hit;
  }

  private put(key: string, next: ClusterObject, previous: ClusterObject | undefined): void {
    this.objects.set(key, next);
    for (const w of this.watches) {
      const was = matches(w, previous);
      const is = matches(w, next);
      if (is) this.emit(w, was ? 'MODIFIED' : 'ADDED', next);
      else if (was) this.emit(w, 'DELETED', next);
    }
  }

  private drop(key: string): void {
    const o = this.objects.get(key);
    if (!o) return;
    this.objects.delete(key);
    for (const w of this.watches) if (matches(w, o)) this.emit(w, 'DELETED', o);
  }

  /** Delivered a moment later, as over the network: after the response of the call that caused it. */
  private emit(w: FakeWatch, type: WatchEventType, o: ClusterObject): void {
    const copy = structuredClone(o);
    setImmediate(() => {
      if (this.watches.has(w)) w.opts.onEvent(type, copy);
    });
  }

  /** The apiextensions controller: names accepted and the kind served (or the names refused), a moment later. */
  private establishLater(key: string): void {
    const kind = (this.objects.get(key)?.spec as { names?: { kind?: string } } | undefined)?.names?.kind;
    if (kind) this.unserved.add(kind);
    const t = setTimeout(() => {
      this.timers.delete(t);
      const o = this.objects.get(key);
      if (!o) return;
      if (kind && !this.refuseCrdNames) this.unserved.delete(kind);
      const conditions = this.refuseCrdNames
        ? [{ type: 'NamesAccepted', status: 'False', reason: 'NameConflict' }]
        : [{ type: 'NamesAccepted', status: 'True' }, { type: 'Established', status: 'True' }];
      this.put(key, { ...o, status: { conditions }, metadata: { ...o.metadata, resourceVersion: String(++this.rv) } }, o);
    }, this.crdEstablishMs);
    this.timers.add(t);
  }
}
