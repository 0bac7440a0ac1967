// A thin Kubernetes REST client over node:https: kubeconfig loading (mTLS, bearer token), CRUD,
// the patch flavours (JSON merge, strategic merge, JSON patch, server-side apply), subresources
// (status, eviction) and a resilient list+watch.
//
// Why our own client instead of @kubernetes/client-node:
// - 2.x depends on undici 8, which needs Node >= 22.19; Marina targets Node 20.
// - 1.x has watch/informer pitfalls we would have to wrap anyway: watches aborted after 30 s in some
//   versions after which the informer stops for good, and long watches that stall silently.
// - Marina runs many clients per process (one per managed cluster in the server, one per machine
//   agent), so each must stay small: one keep-alive Agent, no generated API classes, plain JSON.
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';
import { setTimeout as sleep } from 'node:timers/promises';
import { dirname, isAbsolute, resolve as resolvePath } from 'node:path';
import { parse as parseYaml } from 'yaml';

// ---------------------------------------------------------------------------------------------
// Object shapes (only what the client itself needs; callers bring their own richer types)
// ---------------------------------------------------------------------------------------------

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  finalizers?: string[];
  managedFields?: unknown[];
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
}

export interface KubeList<T extends KubeObject = KubeObject> {
  apiVersion?: string;
  kind?: string;
  metadata: { resourceVersion?: string; continue?: string; remainingItemCount?: number };
  items: T[];
}

export interface StatusCause {
  reason?: string;
  message?: string;
  field?: string;
}

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  uid?: string;
  causes?: StatusCause[];
  retryAfterSeconds?: number;
}

/** The `Status` object the API server returns for errors (and for some deletes). */
export interface KubeStatus {
  apiVersion?: string;
  kind: 'Status';
  status?: 'Success' | 'Failure';
  message?: string;
  reason?: string;
  code?: number;
  details?: StatusDetails;
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/**
 * Any failed call. `code` is the HTTP status (0 when no response arrived: connection refused, reset,
 * TLS failure, client timeout), `reason` the Kubernetes StatusReason (`NotFound`, `AlreadyExists`,
 * `Conflict`, `Forbidden`, `Invalid`, `Expired`/`Gone`, ...) or `NetworkError` / `ClientTimeout` /
 * `WatchStale` for client-side failures.
 */
export class KubeError extends Error {
  readonly code: number;
  readonly reason: string;
  readonly details?: StatusDetails;
  readonly retryAfterSeconds?: number;

  constructor(
    code: number,
    reason: string,
    message: string,
    extra: { details?: StatusDetails; retryAfterSeconds?: number; cause?: unknown } = {},
  ) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = 'KubeError';
    this.code = code;
    this.reason = reason;
    if (extra.details !== undefined) this.details = extra.details;
    if (extra.retryAfterSeconds !== undefined) this.retryAfterSeconds = extra.retryAfterSeconds;
  }

  /** Worth retrying unchanged: no response, throttled, or a server-side/transient failure. */
  get retryable(): boolean {
    return this.code === 0 || this.code === 429 || this.code >= 500;
  }
}

const hasCode = (err: unknown, code: number): boolean => err instanceof KubeError && err.code === code;
export const isNotFound = (err: unknown): boolean => hasCode(err, 404);
export const isConflict = (err: unknown): boolean => hasCode(err, 409) && (err as KubeError).reason !== 'AlreadyExists';
export const isAlreadyExists = (err: unknown): boolean => hasCode(err, 409) && (err as KubeError).reason === 'AlreadyExists';
export const isForbidden = (err: unknown): boolean => hasCode(err, 403);
export const isGone = (err: unknown): boolean => hasCode(err, 410);
/**
 * The apiserver has not reached the resourceVersion asked for (504, cause ResourceVersionTooLarge):
 * a revision from another timeline, e.g. one seen before an etcd restore moved the revisions
 * back. Waiting for the server to catch up would skip everything written until it does, so a
 * watcher must list again, as on 410.
 */
export const isResourceVersionTooLarge = (err: unknown): boolean =>
  hasCode(err, 504) &&
  ((err as KubeError).details?.causes?.some((c) => c.reason === 'ResourceVersionTooLarge') === true || /too large resource version/i.test((err as KubeError).message));

// ---------------------------------------------------------------------------------------------
// Resource types and paths
// ---------------------------------------------------------------------------------------------

/** Identifies a REST resource: `apiVersion` is `v1` for the core group, else `<group>/<version>`. */
export interface ResourceType {
  apiVersion: string;
  kind: string;
  plural: string;
  namespaced: boolean;
}

const rt = (apiVersion: string, kind: string, plural: string, namespaced: boolean): ResourceType => ({
  apiVersion,
  kind,
  plural,
  namespaced,
});

/** The resources Marina talks to; any other one is a `ResourceType` literal away. */
export const Resources = {
  namespaces: rt('v1', 'Namespace', 'namespaces', false),
  nodes: rt('v1', 'Node', 'nodes', false),
  pods: rt('v1', 'Pod', 'pods', true),
  services: rt('v1', 'Service', 'services', true),
  endpoints: rt('v1', 'Endpoints', 'endpoints', true),
  configMaps: rt('v1', 'ConfigMap', 'configmaps', true),
  secrets: rt('v1', 'Secret', 'secrets', true),
  serviceAccounts: rt('v1', 'ServiceAccount', 'serviceaccounts', true),
  events: rt('v1', 'Event', 'events', true),
  persistentVolumeClaims: rt('v1', 'PersistentVolumeClaim', 'persistentvolumeclaims', true),
  leases: rt('coordination.k8s.io/v1', 'Lease', 'leases', true),
  deployments: rt('apps/v1', 'Deployment', 'deployments', true),
  replicaSets: rt('apps/v1', 'ReplicaSet', 'replicasets', true),
  statefulSets: rt('apps/v1', 'StatefulSet', 'statefulsets', true),
  daemonSets: rt('apps/v1', 'DaemonSet', 'daemonsets', true),
  jobs: rt('batch/v1', 'Job', 'jobs', true),
  endpointSlices: rt('discovery.k8s.io/v1', 'EndpointSlice', 'endpointslices', true),
  podDisruptionBudgets: rt('policy/v1', 'PodDisruptionBudget', 'poddisruptionbudgets', true),
  customResourceDefinitions: rt('apiextensions.k8s.io/v1', 'CustomResourceDefinition', 'customresourcedefinitions', false),
  clusterRoles: rt('rbac.authorization.k8s.io/v1', 'ClusterRole', 'clusterroles', false),
  clusterRoleBindings: rt('rbac.authorization.k8s.io/v1', 'ClusterRoleBinding', 'clusterrolebindings', false),
  roles: rt('rbac.authorization.k8s.io/v1', 'Role', 'roles', true),
  roleBindings: rt('rbac.authorization.k8s.io/v1', 'RoleBinding', 'rolebindings', true),
  certificateSigningRequests: rt('certificates.k8s.io/v1', 'CertificateSigningRequest', 'certificatesigningrequests', false),
} as const satisfies Record<string, ResourceType>;

/** `/api/v1/namespaces/ns/pods/name/status` and friends. Name/namespace are URL-escaped. */
export function resourcePath(
  res: ResourceType,
  where: { namespace?: string | undefined; name?: string | undefined; subresource?: string | undefined } = {},
): string {
  const base = res.apiVersion.includes('/') ? `/apis/${res.apiVersion}` : `/api/${res.apiVersion}`;
  let path = base;
  if (res.namespaced && where.namespace) path += `/namespaces/${encodeURIComponent(where.namespace)}`;
  path += `/${res.plural}`;
  if (where.name !== undefined) {
    if (where.name === '') throw new TypeError(`empty ${res.kind} name`);
    path += `/${encodeURIComponent(where.name)}`;
    if (where.subresource) path += `/${where.subresource}`;
  } else if (where.subresource) {
    throw new TypeError(`subresource ${where.subresource} needs a ${res.kind} name`);
  }
  return path;
}

// ---------------------------------------------------------------------------------------------
// Kubeconfig
// ---------------------------------------------------------------------------------------------

/** Everything needed to reach one API server as one identity. */
export interface KubeConnection {
  server: string;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  token?: string;
  /**
   * Where `token` came from: re-read at most once a minute, because projected service-account
   * tokens (in-cluster) are rotated by the kubelet.
   */
  tokenFile?: string;
  insecureSkipTLSVerify?: boolean;
  tlsServerName?: string;
}

function findNamed(list: unknown, name: string, what: string): Record<string, unknown> {
  if (!Array.isArray(list)) throw new Error(`kubeconfig: no ${what}s list`);
  const entry = (list as Record<string, unknown>[]).find((e) => e && e.name === name);
  const inner = entry?.[what];
  if (!entry || typeof inner !== 'object' || inner === null) throw new Error(`kubeconfig: ${what} ${JSON.stringify(name)} not found`);
  return inner as Record<string, unknown>;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/**
 * Parses a kubeconfig (YAML or JSON). Uses `context`, else `current-context`, else the only context.
 * File references (`certificate-authority`, `client-certificate`, `client-key`, `tokenFile`) are read
 * relative to `baseDir`. exec / auth-provider plugins are not supported.
 */
export function parseKubeconfig(text: string, opts: { context?: string; baseDir?: string } = {}): KubeConnection {
  const doc = parseYaml(text) as Record<string, unknown> | null;
  if (!doc || typeof doc !== 'object') throw new Error('kubeconfig: not a YAML mapping');
  const contexts = Array.isArray(doc.contexts) ? (doc.contexts as Record<string, unknown>[]) : [];
  const ctxName = opts.context ?? str(doc['current-context']) ?? (contexts.length === 1 ? str(contexts[0]?.name) : undefined);
  if (!ctxName) throw new Error('kubeconfig: no current-context and not exactly one context');
  const ctx = findNamed(doc.contexts, ctxName, 'context');
  const clusterName = str(ctx.cluster);
  if (!clusterName) throw new Error(`kubeconfig: context ${JSON.stringify(ctxName)} names no cluster`);
  const cluster = findNamed(doc.clusters, clusterName, 'cluster');
  const userName = str(ctx.user);
  const user = userName ? findNamed(doc.users, userName, 'user') : {};

  const file = (p: string): Buffer => readFileSync(isAbsolute(p) || !opts.baseDir ? p : resolvePath(opts.baseDir, p));
  const dataOrFile = (data: unknown, path: unknown): Buffer | undefined => {
    const d = str(data);
    if (d) return Buffer.from(d, 'base64');
    const p = str(path);
    return p ? file(p) : undefined;
  };

  const server = str(cluster.server);
  if (!server) throw new Error(`kubeconfig: cluster ${JSON.stringify(clusterName)} has no server`);
  if (user.exec || user['auth-provider']) throw new Error('kubeconfig: exec and auth-provider credentials are not supported');
  const conn: KubeConnection = { server: server.replace(/\/+$/, '') };
  const ca = dataOrFile(cluster['certificate-authority-data'], cluster['certificate-authority']);
  if (ca) conn.ca = ca;
  if (cluster['insecure-skip-tls-verify'] === true) conn.insecureSkipTLSVerify = true;
  const sni = str(cluster['tls-server-name']);
  if (sni) conn.tlsServerName = sni;
  const cert = dataOrFile(user['client-certificate-data'], user['client-certificate']);
  const key = dataOrFile(user['client-key-data'], user['client-key']);
  if (cert) conn.cert = cert;
  if (key) conn.key = key;
  if ((cert === undefined) !== (key === undefined)) throw new Error('kubeconfig: client certificate and key must be given together');
  const tokenFile = str(user.tokenFile);
  const token = str(user.token) ?? (tokenFile ? file(tokenFile).toString('utf8').trim() : undefined);
  if (token) conn.token = token;
  if (!str(user.token) && tokenFile) conn.tokenFile = isAbsolute(tokenFile) || !opts.baseDir ? tokenFile : resolvePath(opts.baseDir, tokenFile);
  return conn;
}

/** Reads and parses a kubeconfig file; relative file references resolve against its directory. */
export async function loadKubeconfig(path: string, opts: { context?: string } = {}): Promise<KubeConnection> {
  const text = await readFile(path, 'utf8');
  return parseKubeconfig(text, { ...opts, baseDir: dirname(path) });
}

// ---------------------------------------------------------------------------------------------
// Call options
// ---------------------------------------------------------------------------------------------

export interface KubeClientOptions {
  /** Per-request timeout (socket inactivity) for non-watch calls. Default 30 s. */
  timeoutMs?: number;
  userAgent?: string;
  /** Cap on concurrent sockets to the server (watches hold one each). Default: unlimited. */
  maxSockets?: number;
}

export type Query = Record<string, string | number | boolean | undefined>;

/** Every call takes an optional AbortSignal: aborting it ends the call at once (a KubeError, code 0). */
export interface CallOptions {
  signal?: AbortSignal;
}

export interface GetOptions extends CallOptions {
  namespace?: string;
  subresource?: string;
  /** `"0"` reads from the API server's watch cache (cheaper, possibly stale). */
  resourceVersion?: string;
}

export interface ListOptions extends CallOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  continue?: string;
  resourceVersion?: string;
  resourceVersionMatch?: 'Exact' | 'NotOlderThan';
}

export interface WriteOptions extends CallOptions {
  namespace?: string;
  fieldManager?: string;
  dryRun?: boolean;
  /** `Strict` makes unknown/duplicate fields an error instead of a warning. */
  fieldValidation?: 'Ignore' | 'Warn' | 'Strict';
}

export type PatchType = 'merge' | 'strategic' | 'json' | 'apply';

export interface PatchOptions extends WriteOptions {
  type: PatchType;
  subresource?: string;
  /** Server-side apply only: take ownership of conflicting fields. */
  force?: boolean;
}

export interface Preconditions {
  uid?: string;
  resourceVersion?: string;
}

export interface DeleteOptions extends CallOptions {
  namespace?: string;
  gracePeriodSeconds?: number;
  propagationPolicy?: 'Orphan' | 'Background' | 'Foreground';
  preconditions?: Preconditions;
  dryRun?: boolean;
}

const PATCH_CONTENT_TYPES: Record<PatchType, string> = {
  merge: 'application/merge-patch+json',
  strategic: 'application/strategic-merge-patch+json',
  json: 'application/json-patch+json',
  apply: 'application/apply-patch+yaml',
};

export interface RawRequest extends CallOptions {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  query?: Query;
  body?: unknown;
  contentType?: string;
  timeoutMs?: number;
}

// ---------------------------------------------------------------------------------------------
// Watch
// ---------------------------------------------------------------------------------------------

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface WatchEvent<T extends KubeObject> {
  type: WatchEventType;
  object: T;
}

export interface WatchOptions<T extends KubeObject> {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  /**
   * Start watching from here without an initial list (the store then starts empty). Without it
   * the watch lists first and reports every existing object as ADDED.
   */
  resourceVersion?: string;
  /** Ask for BOOKMARK events (they advance the resume point; they are not passed to onEvent). Default true. */
  allowWatchBookmarks?: boolean;
  /** Server-side timeout of one watch request; the watch then resumes from the last resourceVersion. Default 300-600 s, random. */
  timeoutSeconds?: number;
  /** Restart a watch that received no bytes (not even a bookmark) for this long. Default 180 s. */
  staleAfterMs?: number;
  /** Reconnect backoff. Defaults 500 ms doubling to 30 s. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Called once per change, serially; the stream waits while it runs. Errors go to onError. */
  onEvent(event: WatchEvent<T>): void | Promise<void>;
  /** Called for every failure the watch recovers from (it never gives up until stop()). */
  onError?(err: unknown): void;
  /** Called after every successful (re)list, once the diff has been delivered. */
  onSynced?(): void;
}

export interface Watcher<T extends KubeObject> {
  /** The current objects by `namespace/name` (or `name`), as last seen. */
  readonly store: ReadonlyMap<string, T>;
  /** Resume point: the resourceVersion of the last event, bookmark or list. */
  readonly resourceVersion: string | undefined;
  /** Resolves after the first successful list (or first connection when started from a resourceVersion). */
  readonly synced: Promise<void>;
  /** Resolves when the watch loop has ended after stop(). */
  readonly done: Promise<void>;
  stop(): void;
}

/** `namespace/name` or `name`. */
export function objectKey(obj: KubeObject): string {
  const m = obj.metadata ?? {};
  return m.namespace ? `${m.namespace}/${m.name ?? ''}` : (m.name ?? '');
}

// ---------------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------------

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** Waits `ms`, or less when `signal` aborts (then it resolves: the caller checks whether it stopped). */
const pause = (ms: number, signal: AbortSignal): Promise<void> => sleep(ms, undefined, { signal }).catch(() => undefined);
/** A watch stream open at least this long was a healthy one, events or not. */
const HEALTHY_STREAM_MS = 5_000;

function errorFromResponse(status: number, headers: http.IncomingHttpHeaders, body: Buffer): KubeError {
  const retryAfterHeader = Number(headers['retry-after']);
  const retryAfter = Number.isFinite(retryAfterHeader) && retryAfterHeader > 0 ? retryAfterHeader : undefined;
  let parsed: Partial<KubeStatus> | undefined;
  try {
    parsed = JSON.parse(body.toString('utf8')) as Partial<KubeStatus>;
  } catch {
    parsed = undefined;
  }
  if (parsed && parsed.kind === 'Status') {
    const extra: { details?: StatusDetails; retryAfterSeconds?: number } = {};
    if (parsed.details) extra.details = parsed.details;
    const ra = parsed.details?.retryAfterSeconds ?? retryAfter;
    if (ra !== undefined) extra.retryAfterSeconds = ra;
    return new KubeError(parsed.code ?? status, parsed.reason || http.STATUS_CODES[status] || 'Unknown', parsed.message || `HTTP ${status}`, extra);
  }
  const text = body.toString('utf8').trim().slice(0, 500);
  const reason = (http.STATUS_CODES[status] ?? 'Unknown').replace(/\s+/g, '');
  return new KubeError(status, reason, text || `HTTP ${status}`, retryAfter === undefined ? {} : { retryAfterSeconds: retryAfter });
}

function networkError(err: unknown, what: string): KubeError {
  if (err instanceof KubeError) return err;
  const e = err as NodeJS.ErrnoException;
  return new KubeError(0, 'NetworkError', `${what}: ${e?.code ? `${e.code} ` : ''}${e?.message ?? String(err)}`, { cause: err });
}

function buildQuery(q: Query | undefined): string {
  if (!q) return '';
  const parts: string[] = [];
  for (const [k, v] of Object.entries(q)) {
    if (v === undefined || v === '') continue;
    parts.push(`${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`);
  }
  return parts.length ? `?${parts.join('&')}` : '';
}

export class KubeClient {
  readonly server: string;
  private readonly url: URL;
  private readonly transport: typeof http | typeof https;
  private readonly agent: http.Agent;
  private token: string | undefined;
  private readonly tokenFile: string | undefined;
  private tokenReadAt = 0;
  private readonly timeoutMs: number;
  private readonly userAgent: string;
  private readonly watchers = new Set<{ stop(): void }>();

  constructor(conn: KubeConnection, opts: KubeClientOptions = {}) {
    this.server = conn.server.replace(/\/+$/, '');
    this.url = new URL(this.server);
    this.token = conn.token;
    this.tokenFile = conn.tokenFile;
    this.tokenReadAt = Date.now();
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.userAgent = opts.userAgent ?? 'marina';
    const common = { keepAlive: true, maxFreeSockets: 4, scheduling: 'lifo' as const, maxSockets: opts.maxSockets ?? Infinity };
    if (this.url.protocol === 'https:') {
      this.transport = https;
      const tls: https.AgentOptions = { ...common, rejectUnauthorized: !conn.insecureSkipTLSVerify };
      if (conn.ca) tls.ca = conn.ca;
      if (conn.cert) tls.cert = conn.cert;
      if (conn.key) tls.key = conn.key;
      if (conn.tlsServerName) tls.servername = conn.tlsServerName;
      this.agent = new https.Agent(tls);
    } else if (this.url.protocol === 'http:') {
      this.transport = http;
      this.agent = new http.Agent(common);
    } else {
      throw new TypeError(`unsupported server URL ${this.server}`);
    }
  }

  static async fromKubeconfigFile(path: string, opts: KubeClientOptions & { context?: string } = {}): Promise<KubeClient> {
    const ctx: { context?: string } = {};
    if (opts.context !== undefined) ctx.context = opts.context;
    return new KubeClient(await loadKubeconfig(path, ctx), opts);
  }

  /** Stops every watch and closes idle sockets. In-flight requests finish or fail. */
  close(): void {
    for (const w of [...this.watchers]) w.stop();
    this.agent.destroy();
  }

  // -------------------------------------------------------------------------------------------
  // transport

  private requestOptions(method: string, pathAndQuery: string, headers: http.OutgoingHttpHeaders, signal?: AbortSignal): http.RequestOptions {
    const basePath = this.url.pathname.replace(/\/+$/, '');
    const h: http.OutgoingHttpHeaders = { 'user-agent': this.userAgent, accept: 'application/json', ...headers };
    if (this.tokenFile && Date.now() - this.tokenReadAt > 60_000) {
      this.tokenReadAt = Date.now();
      try {
        this.token = readFileSync(this.tokenFile, 'utf8').trim() || this.token;
      } catch {
        /* keep the last token; the server says when it is no longer good */
      }
    }
    if (this.token) h.authorization = `Bearer ${this.token}`;
    return {
      method,
      protocol: this.url.protocol,
      hostname: this.url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: this.url.port || (this.url.protocol === 'https:' ? 443 : 80),
      path: basePath + pathAndQuery,
      agent: this.agent,
      headers: h,
      // An aborted signal destroys the request at once, whatever stage it is in.
      ...(signal ? { signal } : {}),
    };
  }

  private sendOnce(req: RawRequest, payload: Buffer | undefined): Promise<RawResponse & { reused: boolean }> {
    return new Promise((resolve, reject) => {
      const headers: http.OutgoingHttpHeaders = {};
      if (payload) {
        headers['content-type'] = req.contentType ?? 'application/json';
        headers['content-length'] = payload.length;
      }
      const r = this.transport.request(this.requestOptions(req.method, req.path + buildQuery(req.query), headers, req.signal), (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), reused: r.reusedSocket }));
        res.on('error', (e) => reject(Object.assign(e, { reused: r.reusedSocket })));
      });
      const timeout = req.timeoutMs ?? this.timeoutMs;
      r.setTimeout(timeout, () =>
        r.destroy(new KubeError(0, 'ClientTimeout', `${req.method} ${req.path}: no response within ${timeout} ms`)),
      );
      // setTimeout above watches the socket only once it is connected: bound the connect too (a
      // peer whose accept queue is full leaves a connect hanging for seconds).
      const connecting = setTimeout(
        () => r.destroy(new KubeError(0, 'ClientTimeout', `${req.method} ${req.path}: no connection within ${timeout} ms`)),
        timeout,
      );
      r.on('socket', (sock) => {
        if (!sock.connecting) clearTimeout(connecting);
        else sock.once('connect', () => clearTimeout(connecting));
      });
      r.on('close', () => clearTimeout(connecting));
      r.on('error', (e) => reject(Object.assign(e, { reused: r.reusedSocket })));
      r.end(payload);
    });
  }

  /** One HTTP call; JSON in, JSON out; non-2xx becomes a KubeError. */
  async request<T = unknown>(req: RawRequest): Promise<T> {
    const payload =
      req.body === undefined ? undefined : Buffer.isBuffer(req.body) ? req.body : Buffer.from(typeof req.body === 'string' ? req.body : JSON.stringify(req.body));
    let res: RawResponse;
    try {
      res = await this.sendOnce(req, payload);
    } catch (err) {
      // A keep-alive socket the server closed just as we reused it: the request never reached the
      // server, so one retry is safe (except for POST, where we cannot be sure).
      const e = err as NodeJS.ErrnoException & { reused?: boolean };
      const retry = !(err instanceof KubeError) && e.reused && req.method !== 'POST' && (e.code === 'ECONNRESET' || e.code === 'EPIPE');
      if (retry && !req.signal?.aborted) {
        try {
          res = await this.sendOnce(req, payload);
        } catch (err2) {
          throw networkError(err2, `${req.method} ${this.server}${req.path}`);
        }
      } else {
        throw networkError(err, `${req.method} ${this.server}${req.path}`);
      }
    }
    if (res.status < 200 || res.status >= 300) throw errorFromResponse(res.status, res.headers, res.body);
    if (res.body.length === 0) return undefined as T;
    const type = String(res.headers['content-type'] ?? '');
    const text = res.body.toString('utf8');
    if (type.includes('json') || /^\s*[[{]/.test(text)) return JSON.parse(text) as T;
    return text as T;
  }

  // -------------------------------------------------------------------------------------------
  // CRUD

  private ns(res: ResourceType, namespace: string | undefined, op: string): string | undefined {
    if (!res.namespaced) return undefined;
    if (!namespace) throw new TypeError(`${op} ${res.kind}: namespace is required`);
    return namespace;
  }

  async get<T extends KubeObject = KubeObject>(res: ResourceType, name: string, opts: GetOptions = {}): Promise<T> {
    const path = resourcePath(res, { namespace: this.ns(res, opts.namespace, 'get'), name, subresource: opts.subresource });
    return this.request<T>({ method: 'GET', path, query: { resourceVersion: opts.resourceVersion }, signal: opts.signal });
  }

  /** One page; follow `metadata.continue` yourself or use listAll. Without `namespace`, all namespaces. */
  async list<T extends KubeObject = KubeObject>(res: ResourceType, opts: ListOptions = {}): Promise<KubeList<T>> {
    const path = resourcePath(res, { namespace: opts.namespace });
    return this.request<KubeList<T>>({
      method: 'GET',
      path,
      query: {
        labelSelector: opts.labelSelector,
        fieldSelector: opts.fieldSelector,
        limit: opts.limit,
        continue: opts.continue,
        resourceVersion: opts.resourceVersion,
        resourceVersionMatch: opts.resourceVersionMatch,
      },
      signal: opts.signal,
    });
  }

  /** Every page of a list (pages of `limit`, default 500); resourceVersion is the first page's. */
  async listAll<T extends KubeObject = KubeObject>(res: ResourceType, opts: Omit<ListOptions, 'continue'> = {}): Promise<KubeList<T>> {
    const first = await this.list<T>(res, { limit: 500, ...opts });
    const items = [...first.items];
    let cont = first.metadata.continue;
    while (cont) {
      const page = await this.list<T>(res, { limit: 500, ...opts, continue: cont, resourceVersion: undefined, resourceVersionMatch: undefined });
      items.push(...page.items);
      cont = page.metadata.continue;
    }
    const metadata: KubeList<T>['metadata'] = {};
    if (first.metadata.resourceVersion !== undefined) metadata.resourceVersion = first.metadata.resourceVersion;
    return { ...first, metadata, items };
  }

  private writeQuery(opts: WriteOptions): Query {
    return { fieldManager: opts.fieldManager, dryRun: opts.dryRun ? 'All' : undefined, fieldValidation: opts.fieldValidation };
  }

  /** POST. The namespace defaults to `obj.metadata.namespace`. */
  async create<T extends KubeObject>(res: ResourceType, obj: T, opts: WriteOptions = {}): Promise<T> {
    const path = resourcePath(res, { namespace: this.ns(res, opts.namespace ?? obj.metadata?.namespace, 'create') });
    return this.request<T>({ method: 'POST', path, query: this.writeQuery(opts), body: obj, signal: opts.signal });
  }

  /** PUT of the whole object (or a subresource such as `status`); name and namespace come from obj. */
  async replace<T extends KubeObject>(res: ResourceType, obj: T, opts: WriteOptions & { subresource?: string } = {}): Promise<T> {
    const name = obj.metadata?.name;
    if (!name) throw new TypeError(`replace ${res.kind}: metadata.name is required`);
    const path = resourcePath(res, {
      namespace: this.ns(res, opts.namespace ?? obj.metadata?.namespace, 'replace'),
      name,
      subresource: opts.subresource,
    });
    return this.request<T>({ method: 'PUT', path, query: this.writeQuery(opts), body: obj, signal: opts.signal });
  }

  /**
   * PATCH. `type`: `merge` (RFC 7386), `strategic` (built-in kinds only), `json` (RFC 6902 array),
   * `apply` (server-side apply: `fieldManager` required, `force` to take over conflicting fields).
   */
  async patch<T extends KubeObject = KubeObject>(res: ResourceType, name: string, patch: unknown, opts: PatchOptions): Promise<T> {
    if (opts.type === 'apply' && !opts.fieldManager) throw new TypeError('server-side apply needs a fieldManager');
    if (opts.type === 'json' && !Array.isArray(patch)) throw new TypeError('a JSON patch is an array of operations');
    const path = resourcePath(res, { namespace: this.ns(res, opts.namespace, 'patch'), name, subresource: opts.subresource });
    const query = this.writeQuery(opts);
    if (opts.type === 'apply' && opts.force) query.force = true;
    return this.request<T>({ method: 'PATCH', path, query, body: patch, contentType: PATCH_CONTENT_TYPES[opts.type], signal: opts.signal });
  }

  /** Server-side apply of a whole (partial) object: name/namespace from obj. */
  async apply<T extends KubeObject>(
    res: ResourceType,
    obj: T,
    opts: CallOptions & { fieldManager: string; force?: boolean; namespace?: string; subresource?: string; dryRun?: boolean },
  ): Promise<T> {
    const name = obj.metadata?.name;
    if (!name) throw new TypeError(`apply ${res.kind}: metadata.name is required`);
    const body = { apiVersion: res.apiVersion, kind: res.kind, ...obj };
    return this.patch<T>(res, name, body, { ...opts, type: 'apply', namespace: opts.namespace ?? obj.metadata?.namespace });
  }

  /**
   * DELETE. Returns the object (when deletion is deferred by finalizers or a grace period) or a
   * Status. Preconditions make it fail with 409 if the uid/resourceVersion no longer match.
   */
  async delete(res: ResourceType, name: string, opts: DeleteOptions = {}): Promise<KubeObject | KubeStatus> {
    const path = resourcePath(res, { namespace: this.ns(res, opts.namespace, 'delete'), name });
    const body: Record<string, unknown> = { apiVersion: 'v1', kind: 'DeleteOptions' };
    if (opts.gracePeriodSeconds !== undefined) body.gracePeriodSeconds = opts.gracePeriodSeconds;
    if (opts.propagationPolicy) body.propagationPolicy = opts.propagationPolicy;
    if (opts.preconditions) body.preconditions = opts.preconditions;
    if (opts.dryRun) body.dryRun = ['All'];
    return this.request({ method: 'DELETE', path, body, signal: opts.signal });
  }

  /**
   * Evicts a pod through the policy/v1 Eviction subresource, so PodDisruptionBudgets hold. A PDB
   * refusing fails with 429 (reason TooManyRequests); retry later.
   */
  async evict(
    namespace: string,
    name: string,
    opts: CallOptions & { gracePeriodSeconds?: number; preconditions?: Preconditions; dryRun?: boolean } = {},
  ): Promise<void> {
    const deleteOptions: Record<string, unknown> = {};
    if (opts.gracePeriodSeconds !== undefined) deleteOptions.gracePeriodSeconds = opts.gracePeriodSeconds;
    if (opts.preconditions) deleteOptions.preconditions = opts.preconditions;
    if (opts.dryRun) deleteOptions.dryRun = ['All'];
    await this.request({
      method: 'POST',
      path: resourcePath(Resources.pods, { namespace, name, subresource: 'eviction' }),
      body: { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name, namespace }, deleteOptions },
      signal: opts.signal,
    });
  }

  // -------------------------------------------------------------------------------------------
  // watch

  /**
   * A list+watch that never gives up until stop(): resumes from the last resourceVersion when the
   * stream ends, relists (delivering the difference as ADDED/MODIFIED/DELETED) on 410 Gone, restarts
   * a stream that stayed silent longer than `staleAfterMs`, and backs off on errors.
   */
  watch<T extends KubeObject>(res: ResourceType, opts: WatchOptions<T>): Watcher<T> {
    const w = new ListWatch<T>(this, res, opts, (o) => this.watchers.delete(o));
    this.watchers.add(w);
    w.start();
    return w;
  }

  /** @internal Opens one watch stream; resolves with the response once headers arrive. */
  openStream(path: string, query: Query): { request: http.ClientRequest; response: Promise<http.IncomingMessage> } {
    let request!: http.ClientRequest;
    const response = new Promise<http.IncomingMessage>((resolve, reject) => {
      request = this.transport.request(this.requestOptions('GET', path + buildQuery(query), {}), resolve);
      request.on('error', reject);
      request.end();
    });
    return { request, response };
  }
}

class ListWatch<T extends KubeObject> implements Watcher<T> {
  readonly store = new Map<string, T>();
  resourceVersion: string | undefined;
  readonly synced: Promise<void>;
  readonly done: Promise<void>;
  private markSynced!: () => void;
  private finish!: () => void;
  private readonly abort = new AbortController();
  private current: http.ClientRequest | undefined;
  private started = false;

  constructor(
    private readonly client: KubeClient,
    private readonly res: ResourceType,
    private readonly opts: WatchOptions<T>,
    private readonly onStop: (w: ListWatch<T>) => void,
  ) {
    this.resourceVersion = opts.resourceVersion;
    this.synced = new Promise((r) => (this.markSynced = r));
    this.done = new Promise((r) => (this.finish = r));
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    void this.loop().finally(() => this.finish());
  }

  stop(): void {
    if (this.abort.signal.aborted) return;
    this.abort.abort();
    this.current?.destroy();
    this.onStop(this);
  }

  private get stopped(): boolean {
    return this.abort.signal.aborted;
  }

  private report(err: unknown): void {
    if (this.stopped) return;
    try {
      this.opts.onError?.(err);
    } catch {
      /* a failing error handler must not kill the watch */
    }
  }

  private async emit(event: WatchEvent<T>): Promise<void> {
    try {
      await this.opts.onEvent(event);
    } catch (err) {
      this.report(err);
    }
  }

  private async loop(): Promise<void> {
    const initial = this.opts.backoff?.initialMs ?? 500;
    const max = this.opts.backoff?.maxMs ?? 30_000;
    let delay = initial;
    while (!this.stopped) {
      try {
        if (this.resourceVersion === undefined) await this.relist();
        if (this.stopped) break;
        const opened = Date.now();
        const progressed = await this.streamOnce();
        // A stream that ended cleanly after delivering something, or after staying open a while (a
        // quiet watch whose apiserver went away), resumes at once; one that ended at once without
        // anything (a flapping server) backs off like an error. Backing off after quiet streams
        // too let a node's pod watch fall 30 s behind after a few control-plane restarts.
        if (progressed || Date.now() - opened >= HEALTHY_STREAM_MS) {
          delay = initial;
          continue;
        }
        await pause(delay, this.abort.signal);
        delay = Math.min(delay * 2, max);
      } catch (err) {
        if (this.stopped) break;
        if (isGone(err) || isResourceVersionTooLarge(err)) {
          // Our resourceVersion is too old (or, after an etcd restore, too new) for the server:
          // list again and deliver the difference.
          this.resourceVersion = undefined;
          continue;
        }
        this.report(err);
        await pause(delay * (0.75 + Math.random() / 2), this.abort.signal);
        delay = Math.min(delay * 2, max);
      }
    }
  }

  private async relist(): Promise<void> {
    const list = await this.client.listAll<T>(this.res, {
      namespace: this.opts.namespace,
      labelSelector: this.opts.labelSelector,
      fieldSelector: this.opts.fieldSelector,
    });
    if (this.stopped) return;
    const fresh = new Map<string, T>();
    for (const item of list.items) {
      // Items in a list carry no apiVersion/kind; fill them in like a watch event would.
      fresh.set(objectKey(item), { apiVersion: this.res.apiVersion, kind: this.res.kind, ...item });
    }
    const previous = new Map(this.store);
    this.store.clear();
    for (const [k, v] of fresh) this.store.set(k, v);
    this.resourceVersion = list.metadata.resourceVersion;
    for (const [k, obj] of fresh) {
      const old = previous.get(k);
      if (!old) await this.emit({ type: 'ADDED', object: obj });
      else if (old.metadata?.resourceVersion !== obj.metadata?.resourceVersion || old.metadata?.uid !== obj.metadata?.uid) {
        await this.emit({ type: 'MODIFIED', object: obj });
      }
    }
    for (const [k, obj] of previous) if (!fresh.has(k)) await this.emit({ type: 'DELETED', object: obj });
    this.markSynced();
    try {
      this.opts.onSynced?.();
    } catch (err) {
      this.report(err);
    }
  }

  /** One watch request. Resolves true if it delivered anything; throws on errors (410 included). */
  private async streamOnce(): Promise<boolean> {
    const timeoutSeconds = this.opts.timeoutSeconds ?? 300 + Math.floor(Math.random() * 300);
    const staleAfter = this.opts.staleAfterMs ?? 180_000;
    const { request, response } = this.client.openStream(resourcePath(this.res, { namespace: this.opts.namespace }), {
      watch: 1,
      resourceVersion: this.resourceVersion,
      allowWatchBookmarks: this.opts.allowWatchBookmarks ?? true,
      labelSelector: this.opts.labelSelector,
      fieldSelector: this.opts.fieldSelector,
      timeoutSeconds,
    });
    this.current = request;
    let stale = false;
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        stale = true;
        request.destroy();
      }, staleAfter);
    };
    arm();
    let progressed = false;
    try {
      const res = await response;
      if (res.statusCode !== 200) {
        const chunks: Buffer[] = [];
        for await (const c of res) chunks.push(c as Buffer);
        throw errorFromResponse(res.statusCode ?? 0, res.headers, Buffer.concat(chunks));
      }
      this.markSynced();
      const decoder = new StringDecoder('utf8');
      let buffered = '';
      for await (const chunk of res) {
        arm();
        buffered += decoder.write(chunk as Buffer);
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl).trim();
          buffered = buffered.slice(nl + 1);
          if (!line) continue;
          if (await this.handleLine(line)) progressed = true;
          if (this.stopped) return progressed;
        }
      }
      if (stale) throw new KubeError(0, 'WatchStale', `watch ${this.res.plural} sent nothing for ${staleAfter} ms; restarting`);
      return progressed;
    } catch (err) {
      if (this.stopped) return progressed;
      if (stale) {
        // Not an outage: just restart from the last resourceVersion, reporting it once.
        this.report(new KubeError(0, 'WatchStale', `watch ${this.res.plural} sent nothing for ${staleAfter} ms; restarting`));
        return true;
      }
      throw err instanceof KubeError ? err : networkError(err, `watch ${this.res.plural}`);
    } finally {
      clearTimeout(timer);
      this.current = undefined;
    }
  }

  /** Applies one watch line; true if it was a real event or bookmark. */
  private async handleLine(line: string): Promise<boolean> {
    let ev: { type?: string; object?: unknown };
    try {
      ev = JSON.parse(line) as { type?: string; object?: unknown };
    } catch (err) {
      throw new KubeError(0, 'NetworkError', `watch ${this.res.plural}: undecodable event: ${line.slice(0, 200)}`, { cause: err });
    }
    const obj = ev.object as T | undefined;
    if (ev.type === 'ERROR') {
      const s = (ev.object ?? {}) as Partial<KubeStatus>;
      throw new KubeError(s.code ?? 500, s.reason ?? 'InternalError', s.message ?? 'watch error', s.details ? { details: s.details } : {});
    }
    if (!obj || typeof obj !== 'object') return false;
    const rv = obj.metadata?.resourceVersion;
    if (ev.type === 'BOOKMARK') {
      if (rv) this.resourceVersion = rv;
      return true;
    }
    if (ev.type !== 'ADDED' && ev.type !== 'MODIFIED' && ev.type !== 'DELETED') return false;
    const key = objectKey(obj);
    if (ev.type === 'DELETED') this.store.delete(key);
    else this.store.set(key, obj);
    if (rv) this.resourceVersion = rv;
    await this.emit({ type: ev.type, object: obj });
    return true;
  }
}
