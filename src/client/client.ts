// A small, dependency-free client for Marina's REST API, built on the global `fetch` (Node 20,
// browsers): the CLI, the web console, the benchmarks and the tests all use it. Browser-safe by
// rule: no `node:` import and nothing from outside src/client but types (resources.test.ts checks).
//
//   const c = new MarinaClient({ server: 'http://127.0.0.1:7443', token });
//   const list = await c.listAll('Cluster', { project: 'demo' });
//   for await (const ev of c.watchResumable('Machine', { project: 'demo', signal })) ...
import type { Status } from '../api/errors.js';
import type { Resource } from '../api/meta.js';
import type { ClusterHealth } from '../health/types.js';
import type { AuditEntry, IssuedToken, TokenInfo } from '../store/types.js';
import type { WhoAmI } from '../server/schemas.js';
import type { CreateJoinTokenRequest, JoinTokenCreated, JoinTokenInfo } from '../server/join-schemas.js';
import { MarinaApiError, MarinaConnectionError, errorFromResponse, isNotFound, isStatus } from './errors.js';
import { ndjsonLines, parseWatchLine, type WatchEvent } from './ndjson.js';
import { API_PATH, requireProject, resourcePath, resourceRef, type KindLike, type ResourceList, type ResourceRef } from './resources.js';

export type { AuditEntry, CreateJoinTokenRequest, IssuedToken, JoinTokenCreated, JoinTokenInfo, TokenInfo, WhoAmI };

export interface ClientOptions {
  /** Base URL, e.g. `http://127.0.0.1:7443`. */
  server: string;
  token?: string;
  /** Per-request timeout for non-streaming calls; default 30 s. */
  timeoutMs?: number;
  userAgent?: string;
  fetch?: typeof fetch;
}

export interface ListOptions {
  /** Project of a project kind; omitted: every project the caller may see. Ignored for global kinds. */
  project?: string;
  labelSelector?: string;
  limit?: number;
  continue?: string;
  signal?: AbortSignal;
}

export interface WatchOptions {
  project?: string;
  labelSelector?: string;
  /** Deliver changes after this revision; omitted: only changes from now on. */
  resourceVersion?: string;
  signal?: AbortSignal;
}

export interface ResumableWatchOptions extends Omit<WatchOptions, 'resourceVersion'> {
  /**
   * Start after this revision (no initial list). Without it the watcher lists first and, if
   * `initial` is true, reports every listed object as ADDED.
   */
  resourceVersion?: string;
  initial?: boolean;
  /** Delay before reconnecting after a dropped stream; doubles up to 5 s. Default 200 ms. */
  retryDelayMs?: number;
  /** Called when the stream dropped and a reconnect is due, or when history expired (410). */
  onReconnect?: (info: { reason: string; resourceVersion: string; relist: boolean }) => void;
  /** Report BOOKMARK events to the consumer too (default: swallowed). */
  bookmarks?: boolean;
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  accept?: string;
  /** More request headers (e.g. Idempotency-Key). */
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Return the Response untouched (streaming); no timeout is applied. */
  stream?: boolean;
  /** Return the Response untouched; the timeout still applies to reading its body. */
  raw?: boolean;
  /** Return the body as text instead of parsing JSON. */
  text?: boolean;
  /** Answer an HTTP error status like any other (the Response is returned with `raw`). */
  anyStatus?: boolean;
}

/** What `call` answers: the status and the body as the server sent it. */
export interface ApiResponse {
  status: number;
  headers: Headers;
  text: string;
  /** The body parsed as JSON; undefined when it is not JSON. Shapes are the caller's to check. */
  json: any;
}

export class MarinaClient {
  readonly server: string;
  private readonly token?: string;
  private readonly timeoutMs: number;
  private readonly userAgent?: string;
  private readonly fetchImpl: typeof fetch;

  constructor(opts: ClientOptions) {
    this.server = opts.server.replace(/\/+$/, '');
    this.token = opts.token;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.userAgent = opts.userAgent;
    this.fetchImpl = opts.fetch ?? globalThis.fetch.bind(globalThis);
  }

  // ---------- paths ----------

  /** `/api/v1alpha1/projects/p/clusters/demo` and friends. */
  path(kind: KindLike, opts: { project?: string; name?: string; subresource?: string } = {}): string {
    return resourcePath(kind, opts);
  }

  private projectFor(ref: ResourceRef, obj: Resource, project?: string): string | undefined {
    if (ref.scope !== 'project') return undefined;
    const p = obj.metadata?.project ?? project;
    if (!p) throw new Error(`${ref.kind} "${obj.metadata?.name ?? ''}" needs a project (metadata.project)`);
    return p;
  }

  // ---------- raw request ----------

  async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) {
      if (v !== undefined && v !== '') url.searchParams.set(k, String(v));
    }
    const headers: Record<string, string> = { ...opts.headers, accept: opts.accept ?? 'application/json' };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (this.userAgent) headers['user-agent'] = this.userAgent;
    let body: string | undefined;
    if (opts.body !== undefined) {
      body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
      headers['content-type'] = opts.contentType ?? 'application/json';
    }
    const signals: AbortSignal[] = [];
    if (opts.signal) signals.push(opts.signal);
    if (!opts.stream && this.timeoutMs > 0) signals.push(AbortSignal.timeout(this.timeoutMs));
    const signal = signals.length === 0 ? undefined : signals.length === 1 ? signals[0] : anySignal(signals);

    let res: Response;
    try {
      res = await this.fetchImpl(url, { method, headers, body, signal });
    } catch (err) {
      throw this.connectionError(err, opts.signal);
    }
    if (!res.ok && !opts.anyStatus) throw await errorFromResponse(res, method, url.toString());
    if (opts.stream || opts.raw) return res as T;
    const text = await res.text();
    if (opts.text) return text as T;
    if (text === '') return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new MarinaApiError(
        { kind: 'Status', code: res.status, reason: 'InternalError', message: `the server answered ${method} ${url.pathname} with a body that is not JSON` },
        method,
        url.toString(),
      );
    }
  }

  private connectionError(err: unknown, userSignal?: AbortSignal): Error {
    const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
    if (userSignal?.aborted) return err as Error;
    if (e.name === 'TimeoutError' || e.name === 'AbortError') {
      return new MarinaConnectionError(this.server, 'ETIMEDOUT', `the Marina server at ${this.server} did not answer within ${Math.round(this.timeoutMs / 1000)}s`);
    }
    const code = e.cause?.code;
    const detail = e.cause?.message ?? e.message ?? String(err);
    return new MarinaConnectionError(this.server, code, `cannot reach the Marina server at ${this.server}: ${detail}`);
  }

  /**
   * One request that answers whatever status the server sent instead of throwing on an error
   * (connection failures still throw): for tests and tools that look at status codes.
   */
  async call(method: string, path: string, opts: Omit<RequestOptions, 'raw' | 'stream' | 'text' | 'anyStatus'> = {}): Promise<ApiResponse> {
    const res = await this.request<Response>(method, path, { ...opts, raw: true, anyStatus: true });
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, headers: res.headers, text, json };
  }

  // ---------- resources ----------

  /** One page of a list. */
  list<T extends Resource = Resource>(kind: KindLike, opts: ListOptions = {}): Promise<ResourceList<T>> {
    return this.request('GET', this.path(kind, { project: opts.project }), {
      query: { labelSelector: opts.labelSelector, limit: opts.limit, continue: opts.continue },
      signal: opts.signal,
    });
  }

  /** Every page of a list, following `continue`; the revision is that of the first page. */
  async listAll<T extends Resource = Resource>(kind: KindLike, opts: Omit<ListOptions, 'continue'> = {}): Promise<ResourceList<T>> {
    const first = await this.list<T>(kind, opts);
    const items = [...first.items];
    let cont = first.metadata.continue;
    while (cont) {
      const page = await this.list<T>(kind, { ...opts, continue: cont });
      items.push(...page.items);
      cont = page.metadata.continue;
    }
    return { ...first, metadata: { resourceVersion: first.metadata.resourceVersion }, items };
  }

  get<T extends Resource = Resource>(kind: KindLike, name: string, project?: string): Promise<T> {
    return this.request('GET', this.path(kind, { project: requireProject(kind, project), name }));
  }

  /** GET that answers undefined on 404. */
  async getOptional<T extends Resource = Resource>(kind: KindLike, name: string, project?: string): Promise<T | undefined> {
    try {
      return await this.get<T>(kind, name, project);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** POST; the project is `obj.metadata.project` or `project`. */
  create<T extends Resource = Resource>(obj: Resource, project?: string): Promise<T> {
    const ref = resourceRef(obj.kind);
    return this.request('POST', this.path(ref, { project: this.projectFor(ref, obj, project) }), { body: obj });
  }

  /** PUT; `obj.metadata.resourceVersion` is required by the server (409 when stale). */
  replace<T extends Resource = Resource>(obj: Resource, project?: string): Promise<T> {
    const ref = resourceRef(obj.kind);
    return this.request('PUT', this.path(ref, { project: this.projectFor(ref, obj, project), name: obj.metadata.name }), { body: obj });
  }

  /** JSON merge patch (RFC 7386): objects merge, arrays and scalars replace, null deletes. */
  patch<T extends Resource = Resource>(kind: KindLike, name: string, project: string | undefined, patch: unknown): Promise<T> {
    return this.request('PATCH', this.path(kind, { project: requireProject(kind, project), name }), {
      body: patch,
      contentType: 'application/merge-patch+json',
    });
  }

  /** DELETE; `removed` is false while finalizers hold the object (HTTP 202). */
  async delete<T extends Resource = Resource>(kind: KindLike, name: string, project?: string): Promise<{ object: T; removed: boolean }> {
    const res = await this.request<Response>('DELETE', this.path(kind, { project: requireProject(kind, project), name }), { raw: true });
    const object = (await res.json()) as T;
    return { object, removed: res.status !== 202 };
  }

  // ---------- watch ----------

  /**
   * One watch connection: yields events until the server closes the stream or `signal` aborts
   * (then it simply ends). Throws MarinaApiError (e.g. 410 Gone) or MarinaConnectionError.
   */
  async *watch<T extends Resource = Resource>(kind: KindLike, opts: WatchOptions = {}): AsyncGenerator<WatchEvent<T>> {
    let res: Response;
    try {
      res = await this.request<Response>('GET', this.path(kind, { project: opts.project }), {
        query: { watch: 'true', labelSelector: opts.labelSelector, resourceVersion: opts.resourceVersion },
        accept: 'application/x-ndjson',
        signal: opts.signal,
        stream: true,
      });
    } catch (err) {
      if (opts.signal?.aborted) return;
      throw err;
    }
    if (!res.body) return;
    try {
      for await (const line of ndjsonLines(res.body, opts.signal)) {
        const ev = parseWatchLine(line);
        if (isStatus(ev.object)) throw new MarinaApiError(ev.object as unknown as Status);
        yield ev as WatchEvent<T>;
      }
    } catch (err) {
      if (opts.signal?.aborted) return;
      if (err instanceof MarinaApiError) throw err;
      throw this.connectionError(err, opts.signal);
    }
  }

  /**
   * A watch that survives: reconnects from the last seen resourceVersion when the stream drops,
   * and when the server no longer has that history (410 Gone) lists again and reports the
   * difference as synthetic ADDED / MODIFIED / DELETED events, like a Kubernetes informer.
   * Ends only when `signal` aborts; other errors (401, 403, 404) are thrown.
   */
  async *watchResumable<T extends Resource = Resource>(kind: KindLike, opts: ResumableWatchOptions = {}): AsyncGenerator<WatchEvent<T>> {
    const known = new Map<string, T>();
    const keyOf = (o: Resource) => `${o.metadata.project ?? ''}/${o.metadata.name}`;
    let rv = opts.resourceVersion;
    let delay = opts.retryDelayMs ?? 200;
    const baseDelay = delay;

    const client = this;
    async function* relist(report: boolean): AsyncGenerator<WatchEvent<T>> {
      const list = await client.listAll<T>(kind, { project: opts.project, labelSelector: opts.labelSelector, signal: opts.signal });
      const seen = new Set<string>();
      for (const item of list.items) {
        const k = keyOf(item);
        seen.add(k);
        const old = known.get(k);
        known.set(k, item);
        if (!report) continue;
        if (!old) yield { type: 'ADDED', object: item };
        else if (old.metadata.resourceVersion !== item.metadata.resourceVersion) yield { type: 'MODIFIED', object: item };
      }
      for (const [k, old] of known) {
        if (seen.has(k)) continue;
        known.delete(k);
        if (report) yield { type: 'DELETED', object: old };
      }
      rv = list.metadata.resourceVersion;
    }

    if (rv === undefined) yield* relist(opts.initial ?? false);

    while (!opts.signal?.aborted) {
      let reason = 'the server closed the watch';
      try {
        for await (const ev of this.watch<T>(kind, { project: opts.project, labelSelector: opts.labelSelector, resourceVersion: rv, signal: opts.signal })) {
          delay = baseDelay;
          rv = ev.object.metadata?.resourceVersion ?? rv;
          if (ev.type === 'BOOKMARK') {
            if (opts.bookmarks) yield ev;
            continue;
          }
          if (ev.type === 'DELETED') known.delete(keyOf(ev.object));
          else known.set(keyOf(ev.object), ev.object);
          yield ev;
        }
      } catch (err) {
        if (opts.signal?.aborted) return;
        if (err instanceof MarinaApiError && err.code === 410) {
          opts.onReconnect?.({ reason: 'watch history expired (410 Gone)', resourceVersion: rv ?? '', relist: true });
          yield* relist(true);
          continue;
        }
        if (!(err instanceof MarinaConnectionError) && !(err instanceof MarinaApiError && err.code >= 500)) throw err;
        reason = err.message;
      }
      if (opts.signal?.aborted) return;
      opts.onReconnect?.({ reason, resourceVersion: rv ?? '', relist: false });
      await sleep(delay, opts.signal);
      delay = Math.min(delay * 2, 5000);
    }
  }

  // ---------- other endpoints ----------

  whoami(): Promise<WhoAmI> {
    return this.request('GET', `${API_PATH}/whoami`);
  }

  /** The Kubernetes versions this Marina accepts, and the one clusters get by default. */
  kubernetesVersions(): Promise<{ kind: 'KubernetesVersionList'; default: string | null; versions: string[] }> {
    return this.request('GET', `${API_PATH}/kubernetesversions`);
  }

  /** The newest health report and the last 24 hours of samples of a cluster. */
  clusterHealth(project: string, cluster: string, since?: string): Promise<ClusterHealth> {
    const q = since ? `?since=${encodeURIComponent(since)}` : '';
    return this.request('GET', `${this.path('Cluster', { project, name: cluster, subresource: 'health' })}${q}`);
  }

  kubeconfig(project: string, cluster: string): Promise<string> {
    return this.request('GET', this.path('Cluster', { project, name: cluster, subresource: 'kubeconfig' }), {
      accept: 'application/yaml',
      text: true,
    });
  }

  /** A join token for an import pool; the answer (token, command) is the only time the token is shown. */
  createJoinToken(project: string, cluster: string, opts: CreateJoinTokenRequest): Promise<JoinTokenCreated> {
    return this.request('POST', this.path('Cluster', { project, name: cluster, subresource: 'jointokens' }), { body: opts });
  }

  async listJoinTokens(project: string, cluster: string): Promise<JoinTokenInfo[]> {
    return (await this.request<{ items: JoinTokenInfo[] }>('GET', this.path('Cluster', { project, name: cluster, subresource: 'jointokens' }))).items;
  }

  revokeJoinToken(project: string, cluster: string, id: string): Promise<JoinTokenInfo> {
    return this.request('DELETE', `${this.path('Cluster', { project, name: cluster, subresource: 'jointokens' })}/${encodeURIComponent(id)}`);
  }

  createToken(opts: { user?: string; description?: string; expiresAt?: string } = {}): Promise<IssuedToken> {
    return this.request('POST', `${API_PATH}/tokens`, { body: opts });
  }

  async listTokens(): Promise<TokenInfo[]> {
    const res = await this.request<{ items: TokenInfo[] } | TokenInfo[]>('GET', `${API_PATH}/tokens`);
    return Array.isArray(res) ? res : res.items;
  }

  async revokeToken(id: string): Promise<void> {
    await this.request('DELETE', `${API_PATH}/tokens/${encodeURIComponent(id)}`);
  }

  async audit(query: { project?: string; user?: string; kind?: string; limit?: number } = {}): Promise<AuditEntry[]> {
    const res = await this.request<{ items: AuditEntry[] }>('GET', `${API_PATH}/audit`, { query });
    return res.items;
  }

  healthz(): Promise<unknown> {
    return this.request('GET', '/healthz');
  }
}

// ---------- helpers ----------

function anySignal(signals: AbortSignal[]): AbortSignal {
  const any = (AbortSignal as unknown as { any?: (s: AbortSignal[]) => AbortSignal }).any;
  if (any) return any(signals);
  const ctl = new AbortController();
  for (const s of signals) {
    if (s.aborted) ctl.abort(s.reason);
    else s.addEventListener('abort', () => ctl.abort(s.reason), { once: true });
  }
  return ctl.signal;
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

