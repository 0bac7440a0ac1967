// A small, dependency-free client for Marina's REST API, built on the global `fetch` (Node 20,
// browsers). The CLI uses it; the web console and other tools can too: it imports only types.
//
//   const c = new MarinaClient({ server: 'http://127.0.0.1:7443', token });
//   const list = await c.listAll('Cluster', { project: 'demo' });
//   for await (const ev of c.watchResumable('Machine', { project: 'demo', signal })) ...
import type { ClusterHealth } from '../health/types.js';
import type { FieldCause, Status } from '../api/errors.js';
import type { Resource } from '../api/meta.js';

export const API_PATH = '/api/v1alpha1';
/** `apiVersion` of every Marina object (the same as API_VERSION in src/api/meta.ts). */
export const API_VERSION = 'marina.dev/v1alpha1';

/** Where a kind lives and how it is named in URLs. Mirrors `KINDS` in src/api/registry.ts. */
export interface ResourceRef {
  kind: string;
  plural: string;
  scope: 'global' | 'project';
}

export const RESOURCES: readonly ResourceRef[] = [
  { kind: 'User', plural: 'users', scope: 'global' },
  { kind: 'Project', plural: 'projects', scope: 'global' },
  { kind: 'Secret', plural: 'secrets', scope: 'project' },
  { kind: 'Cluster', plural: 'clusters', scope: 'project' },
  { kind: 'NodePool', plural: 'nodepools', scope: 'project' },
  { kind: 'Machine', plural: 'machines', scope: 'project' },
  { kind: 'Alert', plural: 'alerts', scope: 'project' },
  { kind: 'NotificationChannel', plural: 'notificationchannels', scope: 'project' },
  { kind: 'AddonDefinition', plural: 'addondefinitions', scope: 'global' },
  { kind: 'AddonPolicy', plural: 'addonpolicies', scope: 'global' },
  { kind: 'Addon', plural: 'addons', scope: 'project' },
];

/** A kind name (`Cluster`) or a ref. Unknown kind names are an error. */
export type KindLike = string | ResourceRef;

export function resourceRef(kind: KindLike): ResourceRef {
  if (typeof kind !== 'string') return kind;
  const ref = RESOURCES.find((r) => r.kind === kind);
  if (!ref) throw new Error(`unknown kind ${JSON.stringify(kind)}; known: ${RESOURCES.map((r) => r.kind).join(', ')}`);
  return ref;
}

export interface ResourceList<T extends Resource = Resource> {
  apiVersion: string;
  kind: string;
  metadata: { resourceVersion: string; continue?: string };
  items: T[];
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK';

export interface WatchEvent<T extends Resource = Resource> {
  type: WatchEventType;
  object: T;
}

export interface WhoAmI {
  user: string;
  platformAdmin: boolean;
  projects: { name: string; role: string }[];
}

// Token and audit shapes are the server's own; the CLI reads them as they are.
import type { AuditEntry, IssuedToken, TokenInfo } from '../store/types.js';
export type { AuditEntry, IssuedToken, TokenInfo };

/** An error answer of the API (the server's `Status` body, or one synthesized from the response). */
export class MarinaApiError extends Error {
  readonly code: number;
  readonly reason: string;
  readonly causes: FieldCause[];
  readonly field?: string;

  constructor(readonly status: Status, readonly method?: string, readonly url?: string) {
    super(status.message);
    this.name = 'MarinaApiError';
    this.code = status.code;
    this.reason = status.reason;
    this.causes = status.causes ?? (status.field ? [{ field: status.field, message: status.message }] : []);
    this.field = status.field ?? this.causes[0]?.field;
  }
}

/** The server could not be reached at all (refused, DNS, TLS, reset before an answer). */
export class MarinaConnectionError extends Error {
  constructor(readonly server: string, readonly errorCode: string | undefined, message: string) {
    super(message);
    this.name = 'MarinaConnectionError';
  }
}

export function isNotFound(err: unknown): boolean {
  return err instanceof MarinaApiError && err.code === 404;
}

export function isConflict(err: unknown): boolean {
  return err instanceof MarinaApiError && err.code === 409 && err.reason === 'Conflict';
}

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

interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  accept?: string;
  signal?: AbortSignal;
  /** Return the Response untouched (streaming); no timeout is applied. */
  stream?: boolean;
  /** Return the Response untouched; the timeout still applies to reading its body. */
  raw?: boolean;
  /** Return the body as text instead of parsing JSON. */
  text?: boolean;
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
    const ref = resourceRef(kind);
    let p = API_PATH;
    if (ref.scope === 'project' && opts.project) p += `/projects/${encodeURIComponent(opts.project)}`;
    p += `/${ref.plural}`;
    if (opts.name !== undefined) p += `/${encodeURIComponent(opts.name)}`;
    if (opts.subresource) p += `/${opts.subresource}`;
    return p;
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
    const headers: Record<string, string> = { accept: opts.accept ?? 'application/json' };
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
    if (!res.ok) throw await errorFromResponse(res, method, url.toString());
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

function requireProject(kind: KindLike, project: string | undefined): string | undefined {
  const ref = resourceRef(kind);
  if (ref.scope === 'project' && !project) throw new Error(`${ref.kind} lives in a project; give one`);
  return ref.scope === 'project' ? project : undefined;
}

function isStatus(v: unknown): boolean {
  return typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === 'Status';
}

function parseWatchLine(line: string): WatchEvent {
  let ev: unknown;
  try {
    ev = JSON.parse(line);
  } catch {
    throw new MarinaApiError({ kind: 'Status', code: 500, reason: 'InternalError', message: `malformed watch event: ${line.slice(0, 200)}` });
  }
  const e = ev as { type?: string; object?: unknown };
  if (e.type === 'ERROR' && isStatus(e.object)) throw new MarinaApiError(e.object as unknown as Status);
  if (typeof e.type !== 'string' || typeof e.object !== 'object' || e.object === null) {
    throw new MarinaApiError({ kind: 'Status', code: 500, reason: 'InternalError', message: `malformed watch event: ${line.slice(0, 200)}` });
  }
  return e as unknown as WatchEvent;
}

/** Splits a byte stream into lines (NDJSON); a trailing partial line is yielded at the end. */
export async function* ndjsonLines(body: ReadableStream<Uint8Array>, signal?: AbortSignal): AsyncGenerator<string> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const onAbort = () => void reader.cancel().catch(() => undefined);
  signal?.addEventListener('abort', onAbort, { once: true });
  let buf = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (line) yield line;
      }
    }
    buf += decoder.decode();
    if (buf.trim()) yield buf.trim();
  } finally {
    signal?.removeEventListener('abort', onAbort);
    reader.releaseLock();
  }
}

async function errorFromResponse(res: Response, method: string, url: string): Promise<MarinaApiError> {
  const text = await res.text().catch(() => '');
  let status: Status | undefined;
  try {
    const parsed = JSON.parse(text) as Partial<Status>;
    if (parsed && typeof parsed === 'object' && typeof parsed.message === 'string') {
      status = { ...parsed, kind: 'Status', code: parsed.code ?? res.status, reason: parsed.reason ?? reasonFor(res.status) } as Status;
    }
  } catch {
    /* not JSON */
  }
  status ??= {
    kind: 'Status',
    code: res.status,
    reason: reasonFor(res.status),
    message: text.trim().slice(0, 500) || `${method} ${new URL(url).pathname}: HTTP ${res.status} ${res.statusText}`,
  } as Status;
  return new MarinaApiError(status, method, url);
}

function reasonFor(code: number): Status['reason'] {
  switch (code) {
    case 400: return 'BadRequest';
    case 401: return 'Unauthorized';
    case 403: return 'Forbidden';
    case 404: return 'NotFound';
    case 409: return 'Conflict';
    case 410: return 'Gone';
    case 415: return 'UnsupportedMediaType';
    case 422: return 'Invalid';
    default: return 'InternalError';
  }
}

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
