// A cluster API in memory for the add-on tests (unit and controller tests). It follows the
// published semantics the controller relies on: server-side apply of unchanged fields is a no-op
// that keeps the resourceVersion, other writers' annotations survive an apply, deleting a
// Namespace deletes what is in it, unknown kinds are not served.
import { isDeepStrictEqual } from 'node:util';
import { KubeError } from '../kube/client.js';
import type { LiveObject } from './health.js';
import { refKey, UnknownKindError, type AddonClusterApi, type ObjectRef } from './kube.js';
import type { Manifest } from './render.js';

const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'StorageClass', 'CustomResourceDefinition', 'APIService', 'PersistentVolume', 'PriorityClass']);

export class FakeClusterApi implements AddonClusterApi {
  readonly objects = new Map<string, LiveObject>();
  readonly calls = { get: 0, apply: 0, delete: 0 };
  /** Kinds the fake API does not serve. */
  readonly unserved = new Set<string>();
  /** Make the next calls fail: a KubeError code (0: no answer) or a function deciding per object. */
  failApply?: (obj: Manifest) => KubeError | undefined;
  unreachable = false;
  closed = false;
  private rv = 0;

  private check(): void {
    if (this.unreachable) throw new KubeError(0, 'NetworkError', 'connect ECONNREFUSED');
  }

  async namespaced(apiVersion: string, kind: string): Promise<boolean> {
    this.check();
    if (this.unserved.has(kind)) throw new UnknownKindError(apiVersion, kind);
    return !CLUSTER_SCOPED.has(kind);
  }

  async get(ref: ObjectRef): Promise<LiveObject | undefined> {
    this.check();
    this.calls.get++;
    const o = this.objects.get(refKey(ref));
    return o && structuredClone(o);
  }

  async apply(obj: Manifest, _fieldManager: string): Promise<LiveObject> {
    this.check();
    this.calls.apply++;
    const err = this.failApply?.(obj);
    if (err) throw err;
    const ref = { apiVersion: obj.apiVersion, kind: obj.kind, name: obj.metadata.name, ...(obj.metadata.namespace ? { namespace: obj.metadata.namespace } : {}) };
    const key = refKey(ref);
    const existing = this.objects.get(key);
    const next: LiveObject = structuredClone(obj) as LiveObject;
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
    this.objects.set(key, next);
    return structuredClone(next);
  }

  async delete(ref: ObjectRef): Promise<void> {
    this.check();
    this.calls.delete++;
    this.objects.delete(refKey(ref));
    if (ref.kind === 'Namespace') for (const [k, o] of this.objects) if (o.metadata?.namespace === ref.name) this.objects.delete(k);
  }

  close(): void {
    this.closed = true;
  }

  // ---------- what tests do to the cluster "with kubectl" ----------

  find(kind: string, name: string, namespace?: string): LiveObject | undefined {
    return [...this.objects.values()].find((o) => o.kind === kind && o.metadata?.name === name && (namespace === undefined || o.metadata?.namespace === namespace));
  }

  /** Someone else changes an object (bumps its resourceVersion). */
  edit(kind: string, name: string, change: (o: LiveObject) => void): void {
    const o = this.find(kind, name);
    if (!o) throw new Error(`no ${kind} ${name}`);
    change(o);
    o.metadata!.resourceVersion = String(++this.rv);
  }

  remove(kind: string, name: string): void {
    const o = this.find(kind, name);
    if (!o) throw new Error(`no ${kind} ${name}`);
    for (const [k, v] of this.objects) if (v === o) this.objects.delete(k);
  }

  /** What the workload controllers and kubelets would report once everything runs. */
  settle(): void {
    for (const o of this.objects.values()) {
      const gen = o.metadata?.generation ?? 1;
      const replicas = (o.spec?.replicas as number | undefined) ?? 1;
      if (o.kind === 'Deployment') {
        o.status = { observedGeneration: gen, replicas, updatedReplicas: replicas, availableReplicas: replicas, readyReplicas: replicas, conditions: [{ type: 'Available', status: 'True' }] };
      } else if (o.kind === 'DaemonSet') {
        o.status = { observedGeneration: gen, desiredNumberScheduled: 2, currentNumberScheduled: 2, updatedNumberScheduled: 2, numberReady: 2, numberAvailable: 2 };
      }
    }
  }
}
