// Objects of any kind over one cluster's KubeClient: the REST resource of a kind comes from the
// API's discovery document of its group version, cached with the client. A cached answer is
// trusted for DISCOVERY_TTL_MS; a kind it lacks is looked up again (at most every
// DISCOVERY_MISS_RETRY_MS), so a CustomResourceDefinition established a moment ago is found.
import { isNotFound, type KubeClient, type ResourceType } from '../kube/client.js';
import { UnknownKindError, type ApplyObject, type CallOptions, type ClusterObject, type ObjectApi, type ObjectRef, type ObjectWatchOptions } from './access.js';

const DISCOVERY_TTL_MS = 10 * 60_000;
const DISCOVERY_MISS_RETRY_MS = 500;

interface ApiResourceList {
  resources?: { name: string; kind: string; namespaced: boolean }[];
}

interface GroupVersion {
  at: number;
  /** By kind; subresources left out. */
  resources: Map<string, ResourceType>;
}

export class DiscoveredObjects implements ObjectApi {
  private readonly discovery = new Map<string, GroupVersion>();
  /** One discovery request per group version at a time. */
  private readonly fetching = new Map<string, Promise<GroupVersion>>();

  constructor(private readonly client: KubeClient) {}

  async namespaced(apiVersion: string, kind: string, opts: CallOptions = {}): Promise<boolean> {
    return (await this.resource(apiVersion, kind, opts)).namespaced;
  }

  async get(ref: ObjectRef, opts: CallOptions = {}): Promise<ClusterObject | undefined> {
    const res = await this.resource(ref.apiVersion, ref.kind, opts);
    try {
      const obj = await this.client.get<ClusterObject>(res, ref.name, { namespace: ref.namespace, signal: opts.signal });
      return { ...obj, apiVersion: ref.apiVersion, kind: ref.kind };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async apply(obj: ApplyObject, fieldManager: string, opts: CallOptions = {}): Promise<ClusterObject> {
    const res = await this.resource(obj.apiVersion, obj.kind, opts);
    return this.client.apply<ClusterObject>(res, obj, { fieldManager, force: true, ...(opts.signal ? { signal: opts.signal } : {}) });
  }

  async delete(ref: ObjectRef, opts: CallOptions = {}): Promise<void> {
    const res = await this.resource(ref.apiVersion, ref.kind, opts);
    try {
      await this.client.delete(res, ref.name, { namespace: ref.namespace, propagationPolicy: 'Background', signal: opts.signal });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  async watch(apiVersion: string, kind: string, opts: ObjectWatchOptions): Promise<{ stop(): void }> {
    const res = await this.resource(apiVersion, kind);
    const w = this.client.watch<ClusterObject>(res, {
      labelSelector: opts.labelSelector,
      backoff: { initialMs: 500, maxMs: 10_000 },
      onEvent: (ev) => opts.onEvent(ev.type, ev.object),
      ...(opts.onError ? { onError: opts.onError } : {}),
    });
    return { stop: () => w.stop() };
  }

  private async resource(apiVersion: string, kind: string, opts: CallOptions = {}): Promise<ResourceType> {
    let gv = this.discovery.get(apiVersion);
    const age = gv ? Date.now() - gv.at : Infinity;
    if (!gv || age > DISCOVERY_TTL_MS || (!gv.resources.has(kind) && age > DISCOVERY_MISS_RETRY_MS)) gv = await this.discover(apiVersion, opts);
    const res = gv.resources.get(kind);
    if (!res) throw new UnknownKindError(apiVersion, kind);
    return res;
  }

  private discover(apiVersion: string, opts: CallOptions): Promise<GroupVersion> {
    let pending = this.fetching.get(apiVersion);
    if (!pending) {
      pending = this.fetchGroupVersion(apiVersion, opts).finally(() => this.fetching.delete(apiVersion));
      this.fetching.set(apiVersion, pending);
    }
    return pending;
  }

  private async fetchGroupVersion(apiVersion: string, opts: CallOptions): Promise<GroupVersion> {
    const path = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    let list: ApiResourceList;
    try {
      list = await this.client.request<ApiResourceList>({ method: 'GET', path, signal: opts.signal });
    } catch (err) {
      // A group version nobody serves (yet): no kinds.
      if (!isNotFound(err)) throw err;
      list = {};
    }
    const resources = new Map<string, ResourceType>();
    for (const r of list.resources ?? []) {
      if (!r.name.includes('/')) resources.set(r.kind, { apiVersion, kind: r.kind, plural: r.name, namespaced: r.namespaced });
    }
    const gv = { at: Date.now(), resources };
    this.discovery.set(apiVersion, gv);
    return gv;
  }
}
