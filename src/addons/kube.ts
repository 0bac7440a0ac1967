// What the add-on controllers need from a cluster's Kubernetes API, and nothing more: find out
// whether a kind is namespaced (discovery), read an object, server-side apply one, delete one.
// `KubeAddonApi` implements it on Marina's KubeClient; tests substitute their own.
import { isNotFound, KubeClient, KubeError, parseKubeconfig, type KubeObject, type ResourceType } from '../kube/client.js';
import type { LiveObject } from './health.js';
import type { Manifest } from './render.js';

/** Identifies an object in a cluster. */
export interface ObjectRef {
  apiVersion: string;
  kind: string;
  namespace?: string;
  name: string;
}

export interface AddonClusterApi {
  /** Is `kind` of `apiVersion` namespaced? Throws UnknownKindError when the API does not serve it. */
  namespaced(apiVersion: string, kind: string): Promise<boolean>;
  /** undefined when the object does not exist. */
  get(ref: ObjectRef): Promise<LiveObject | undefined>;
  /** Server-side apply with `fieldManager`, forcing conflicts on the fields of `obj` (and only those). */
  apply(obj: Manifest, fieldManager: string): Promise<LiveObject>;
  /** Background deletion; succeeds when the object is already gone. */
  delete(ref: ObjectRef): Promise<void>;
  close(): void;
}

export class UnknownKindError extends Error {
  constructor(readonly apiVersion: string, readonly kind: string) {
    super(`the cluster's API does not serve ${kind} in ${apiVersion}`);
    this.name = 'UnknownKindError';
  }
}

/** `apps/v1` → `apps`; `v1` → `` (the core group). */
export function groupOf(apiVersion: string): string {
  const slash = apiVersion.indexOf('/');
  return slash < 0 ? '' : apiVersion.slice(0, slash);
}

/** Identity across API versions of a kind (policy/v1beta1 and policy/v1 name the same object). */
export function refKey(r: { apiVersion: string; kind: string; namespace?: string; name: string }): string {
  return `${groupOf(r.apiVersion)}/${r.kind}/${r.namespace ?? ''}/${r.name}`;
}

export function showRef(r: { kind: string; namespace?: string; name: string }): string {
  return `${r.kind} ${r.namespace ? `${r.namespace}/` : ''}${r.name}`;
}

interface ApiResourceList {
  resources?: { name: string; kind: string; namespaced: boolean }[];
}

/** A discovery answer is trusted this long; an unknown kind refreshes it sooner (CRDs just applied). */
const DISCOVERY_TTL_MS = 10 * 60_000;
const DISCOVERY_MISS_RETRY_MS = 2_000;

export class KubeAddonApi implements AddonClusterApi {
  private readonly discovery = new Map<string, { at: number; resources: Map<string, ResourceType> }>();

  constructor(private readonly client: KubeClient) {}

  static fromKubeconfig(kubeconfig: string, timeoutMs = 10_000): KubeAddonApi {
    return new KubeAddonApi(new KubeClient(parseKubeconfig(kubeconfig), { timeoutMs, userAgent: 'marina-addons' }));
  }

  private async resource(apiVersion: string, kind: string): Promise<ResourceType> {
    let entry = this.discovery.get(apiVersion);
    const age = entry ? Date.now() - entry.at : Infinity;
    if (!entry || age > DISCOVERY_TTL_MS || (!entry.resources.has(kind) && age > DISCOVERY_MISS_RETRY_MS)) {
      const path = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
      let list: ApiResourceList;
      try {
        list = await this.client.request<ApiResourceList>({ method: 'GET', path });
      } catch (err) {
        if (isNotFound(err)) list = {};
        else throw err;
      }
      const resources = new Map<string, ResourceType>();
      for (const r of list.resources ?? []) {
        if (r.name.includes('/')) continue; // subresources
        resources.set(r.kind, { apiVersion, kind: r.kind, plural: r.name, namespaced: r.namespaced });
      }
      entry = { at: Date.now(), resources };
      this.discovery.set(apiVersion, entry);
    }
    const res = entry.resources.get(kind);
    if (!res) throw new UnknownKindError(apiVersion, kind);
    return res;
  }

  async namespaced(apiVersion: string, kind: string): Promise<boolean> {
    return (await this.resource(apiVersion, kind)).namespaced;
  }

  async get(ref: ObjectRef): Promise<LiveObject | undefined> {
    const res = await this.resource(ref.apiVersion, ref.kind);
    try {
      const obj = await this.client.get<KubeObject>(res, ref.name, { namespace: ref.namespace });
      return { apiVersion: ref.apiVersion, kind: ref.kind, ...obj } as LiveObject;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async apply(obj: Manifest, fieldManager: string): Promise<LiveObject> {
    const res = await this.resource(obj.apiVersion, obj.kind);
    return (await this.client.apply(res, obj as KubeObject, { fieldManager, force: true })) as LiveObject;
  }

  async delete(ref: ObjectRef): Promise<void> {
    const res = await this.resource(ref.apiVersion, ref.kind);
    try {
      await this.client.delete(res, ref.name, { namespace: ref.namespace, propagationPolicy: 'Background' });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  close(): void {
    this.client.close();
  }
}

export function describeKubeError(err: unknown): string {
  if (err instanceof KubeError) return `${err.code ? `HTTP ${err.code} ` : ''}${err.reason}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}
