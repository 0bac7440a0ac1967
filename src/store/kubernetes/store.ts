// The Store contract on the Kubernetes API of a management cluster: every Marina object is a custom
// resource (see ./objects.ts for the mapping, ./crd.ts for the generated CRDs), so several Marina
// replicas share one consistent state, kept by the engine their users already run.
//
// How the contract maps onto the API:
// - resourceVersion: the API server's own (etcd revisions: global, increasing; see ./cache.ts).
// - create: POST (409 AlreadyExists, also while a namesake is terminating).
// - update / updateStatus: a consistent GET, the contract's checks (shared with the SQLite store:
//   ../admission.ts), then a PUT carrying the stored resourceVersion, so the write applies only to
//   the object the checks saw (409 otherwise, which is right: the caller's resourceVersion is stale).
// - delete: DELETE with uid + resourceVersion preconditions; finalizers and deletionTimestamp are
//   Kubernetes' own. The API answers a removal with a Status, so the removal's revision is taken
//   from the watch cache's DELETED event.
// - get / list: consistent reads from the API server; list pages are snapshots at the first page's
//   revision (later pages are read with resourceVersionMatch=Exact; 410 once etcd compacted it).
// - watch: served from this replica's watch cache (history per kind; 410 below it).
import { pino } from 'pino';
import { ApiError } from '../../api/errors.js';
import type { ObjectKey, Resource } from '../../api/meta.js';
import { KINDS, kindInfo, type KindInfo } from '../../api/registry.js';
import { isConflict, isNotFound, type KubeClient, type KubeStatus } from '../../kube/client.js';
import {
  admit,
  checkDeletePrecondition,
  checkPreconditions,
  compareKeys,
  decodeContinue,
  encodeContinue,
  newObject,
  parseLimit,
  parseRevision,
  planUpdate,
  planUpdateStatus,
  withRevision,
} from '../admission.js';
import { KEY_BYTES } from '../crypto.js';
import { parseLabelSelector } from '../selector.js';
import type {
  AuditLog,
  DeleteOptions,
  DeleteResult,
  ListOptions,
  ListResult,
  SeriesStore,
  Store,
  TokenStore,
  Watch,
  WatchEvent,
  WatchOptions,
} from '../types.js';
import { Dispatcher, KindCache, subscriberWants, type CacheEvent, type CacheLogger, type Subscriber } from './cache.js';
import { ensureCrds, ensureNamespaceAndKey } from './install.js';
import { crName, fromCustomResource, PROJECT_LABEL, resourceType, toApiError, toCustomResource, type CustomResource } from './objects.js';
import { KubernetesAuditLog, KubernetesSeriesStore, KubernetesTokenStore } from './records.js';

export interface KubernetesStoreOptions {
  client: KubeClient;
  /** The namespace every object lives in (created when missing, if Marina may). */
  namespace: string;
  /** 32-byte AES-256-GCM key for sensitive kinds: the same on every replica (checked at open). */
  encryptionKey: Buffer;
  /** Watch events kept per kind for resuming watches (default 2000). */
  historyLimit?: number;
  /** Apply missing or outdated CRDs at open (default true; needs the permission). */
  installCrds?: boolean;
  /** Audit log retention: keep the newest `maxEntries` (default 10000), checked every `pruneEvery` appends (default 200). */
  audit?: { maxEntries?: number; pruneEvery?: number };
  /** How long a delete waits for the watch to report the removal's revision (default 10 s). */
  deletionTimeoutMs?: number;
  /** Close `client` when the store closes (default false). */
  closeClient?: boolean;
  logger?: CacheLogger;
}

export interface KubernetesStore extends Store {
  readonly namespace: string;
  readonly audit: AuditLog;
  readonly tokens: TokenStore;
  readonly series: SeriesStore;
}

/** Installs what is missing, checks the key, fills the watch caches; then the store serves. */
export async function openKubernetesStore(opts: KubernetesStoreOptions): Promise<KubernetesStore> {
  if (!Buffer.isBuffer(opts.encryptionKey) || opts.encryptionKey.length !== KEY_BYTES) {
    throw new Error(`encryptionKey must be a ${KEY_BYTES}-byte Buffer`);
  }
  await ensureCrds(opts.client, { install: opts.installCrds ?? true });
  await ensureNamespaceAndKey(opts.client, opts.namespace, opts.encryptionKey);
  const store = new KubernetesStoreImpl(opts);
  try {
    await store.start();
  } catch (err) {
    await store.close();
    throw err;
  }
  return store;
}

const CONFLICT_RETRIES = 10;

class KubernetesStoreImpl implements KubernetesStore {
  readonly namespace: string;
  readonly audit: KubernetesAuditLog;
  readonly tokens: TokenStore;
  readonly series: SeriesStore;
  private readonly client: KubeClient;
  private readonly key: Buffer;
  private readonly logger: CacheLogger;
  private readonly dispatcher: Dispatcher;
  private readonly caches = new Map<string, KindCache>();
  private readonly deletionTimeoutMs: number;
  /**
   * The newest revision this replica handed out (written, read or listed at): a watch "from now"
   * starts after it, so it never reports a write the caller already saw acknowledged.
   */
  private seenRv = 0;
  private closed = false;

  constructor(private readonly opts: KubernetesStoreOptions) {
    this.client = opts.client;
    this.namespace = opts.namespace;
    this.key = Buffer.from(opts.encryptionKey);
    this.logger = opts.logger ?? pino({ name: 'store' });
    this.deletionTimeoutMs = opts.deletionTimeoutMs ?? 10_000;
    this.dispatcher = new Dispatcher(this.logger);
    const historyLimit = opts.historyLimit ?? 2000;
    if (!Number.isInteger(historyLimit) || historyLimit < 1) throw new Error('historyLimit must be a positive integer');
    for (const info of KINDS) {
      this.caches.set(
        info.kind,
        new KindCache({ client: this.client, info, namespace: this.namespace, key: this.key, historyLimit, dispatcher: this.dispatcher, logger: this.logger }),
      );
    }
    this.audit = new KubernetesAuditLog(
      this.client,
      this.namespace,
      { maxEntries: opts.audit?.maxEntries ?? 10_000, pruneEvery: opts.audit?.pruneEvery ?? 200 },
      (err) => this.logger.warn({ err }, 'pruning the audit log failed'),
    );
    this.tokens = new KubernetesTokenStore(this.client, this.namespace);
    this.series = new KubernetesSeriesStore(this.client, this.namespace);
  }

  async start(): Promise<void> {
    for (const c of this.caches.values()) c.start();
    await Promise.all([...this.caches.values()].map((c) => c.ready));
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('store is closed');
  }

  private cache(info: KindInfo): KindCache {
    return this.caches.get(info.kind)!;
  }

  /** Notes the revision of something handed to a caller; returns it. */
  private seen<T extends Resource | undefined>(obj: T): T {
    const rv = Number(obj?.metadata.resourceVersion);
    if (rv > this.seenRv) this.seenRv = rv;
    return obj;
  }

  private crOf(info: KindInfo, obj: Resource): CustomResource {
    return toCustomResource(info, obj, this.namespace, this.key);
  }

  private async read(info: KindInfo, key: ObjectKey): Promise<Resource | undefined> {
    try {
      const cr = await this.client.get<CustomResource>(resourceType(info), crName(info, key.project, key.name), { namespace: this.namespace });
      return this.seen(fromCustomResource(info, cr, this.key));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw toApiError(err, key.kind, key.name);
    }
  }

  // ----- reads ---------------------------------------------------------------------------------

  async get(key: ObjectKey): Promise<Resource | undefined> {
    this.assertOpen();
    const info = kindInfo(key.kind);
    return this.read(info, { kind: info.kind, project: key.project ?? '', name: key.name });
  }

  async list(kind: string, opts: ListOptions = {}): Promise<ListResult> {
    this.assertOpen();
    const info = kindInfo(kind);
    const limit = parseLimit(opts.limit);
    const selector = opts.labelSelector ? parseLabelSelector(opts.labelSelector) : undefined;
    const tok = opts.continue ? decodeContinue(opts.continue, info.kind, Number.MAX_SAFE_INTEGER) : undefined;
    // Global objects have no project; a project kind's objects always have one.
    if (opts.project !== undefined && (info.scope === 'global' ? opts.project !== '' : opts.project === '')) {
      return { items: [], resourceVersion: tok ? String(tok.rv) : await this.currentRevision() };
    }
    let page;
    try {
      page = await this.client.listAll<CustomResource>(resourceType(info), {
        namespace: this.namespace,
        labelSelector: info.scope === 'project' && opts.project !== undefined ? `${PROJECT_LABEL}=${opts.project}` : undefined,
        resourceVersion: tok ? String(tok.rv) : undefined,
        resourceVersionMatch: tok ? 'Exact' : undefined,
      });
    } catch (err) {
      const e = toApiError(err, info.kind, '');
      if (tok && e instanceof ApiError && e.code === 410) {
        throw ApiError.gone(`continue token is too old (revision ${tok.rv} was compacted); start the list again`);
      }
      throw e;
    }
    const listRv = tok ? tok.rv : Number(page.metadata.resourceVersion);
    if (listRv > this.seenRv) this.seenRv = listRv;
    let items = page.items
      .map((cr) => fromCustomResource(info, cr, this.key))
      .filter((o) => !selector || selector.matches(o.metadata.labels))
      .map((o) => ({ o, k: { p: o.metadata.project ?? '', n: o.metadata.name } }))
      .sort((a, b) => compareKeys(a.k, b.k));
    if (tok) items = items.filter((i) => compareKeys(i.k, { p: tok.p, n: tok.n }) > 0);
    const result: ListResult = { items: [], resourceVersion: String(listRv) };
    const more = limit > 0 && items.length > limit;
    if (more) items = items.slice(0, limit);
    result.items = items.map((i) => i.o);
    if (more) {
      const last = items[items.length - 1]!.k;
      result.continue = encodeContinue({ k: info.kind, p: last.p, n: last.n, rv: listRv });
    }
    return result;
  }

  async currentRevision(): Promise<string> {
    this.assertOpen();
    // A consistent list answers with the store's current revision, whatever it holds.
    const list = await this.client.list(resourceType(kindInfo('User')), { namespace: this.namespace, limit: 1 });
    const rv = Number(list.metadata.resourceVersion);
    if (rv > this.seenRv) this.seenRv = rv;
    return String(rv);
  }

  // ----- mutations -----------------------------------------------------------------------------

  async create(obj: Resource): Promise<Resource> {
    this.assertOpen();
    const a = admit(obj);
    const fresh = newObject(a, { uid: '', resourceVersion: '', creationTimestamp: '' });
    try {
      const cr = await this.client.create(resourceType(a.info), this.crOf(a.info, fresh), { fieldValidation: 'Strict' });
      return this.seen(fromCustomResource(a.info, cr, this.key));
    } catch (err) {
      throw toApiError(err, a.key.kind, a.key.name);
    }
  }

  async update(obj: Resource): Promise<Resource> {
    this.assertOpen();
    const { info, key, inc } = admit(obj);
    const cur = checkPreconditions(key, inc, await this.read(info, key));
    const plan = planUpdate(cur, inc);
    if (!plan) return cur;
    const written = await this.replace(info, key, plan.next);
    if (plan.type !== 'DELETED') return written;
    // The API removed the object instead of writing it (its last finalizer went).
    return this.seen(withRevision(plan.next, await this.removalRevision(info, cur.metadata.uid!)));
  }

  async updateStatus(obj: Resource): Promise<Resource> {
    this.assertOpen();
    const { info, key, inc } = admit(obj);
    const cur = checkPreconditions(key, inc, await this.read(info, key));
    const next = planUpdateStatus(cur, inc);
    if (!next) return cur;
    return this.replace(info, key, next);
  }

  /** PUT of `next`, which carries the stored resourceVersion and uid as preconditions. */
  private async replace(info: KindInfo, key: ObjectKey, next: Resource): Promise<Resource> {
    try {
      const cr = await this.client.replace(resourceType(info), this.crOf(info, next), { fieldValidation: 'Strict' });
      return this.seen(fromCustomResource(info, cr, this.key));
    } catch (err) {
      throw toApiError(err, key.kind, key.name);
    }
  }

  async delete(key: ObjectKey, opts: DeleteOptions = {}): Promise<DeleteResult> {
    this.assertOpen();
    const info = kindInfo(key.kind);
    const k: ObjectKey = { kind: info.kind, project: key.project ?? '', name: key.name };
    for (let attempt = 0; ; attempt++) {
      const cur = await this.read(info, k);
      if (!cur) throw ApiError.notFound(k.kind, k.name);
      checkDeletePrecondition(k, cur, opts.resourceVersion);
      if (cur.metadata.deletionTimestamp) return { object: cur, removed: false };
      let answer: CustomResource | KubeStatus;
      try {
        answer = (await this.client.delete(resourceType(info), crName(info, k.project, k.name), {
          namespace: this.namespace,
          preconditions: { uid: cur.metadata.uid!, resourceVersion: cur.metadata.resourceVersion! },
        })) as CustomResource | KubeStatus;
      } catch (err) {
        // Changed or gone since the read: without a caller precondition, decide again.
        if ((isConflict(err) || isNotFound(err)) && opts.resourceVersion === undefined && attempt < CONFLICT_RETRIES) continue;
        throw toApiError(err, k.kind, k.name);
      }
      if (answer.kind === 'Status') {
        return { object: this.seen(withRevision(cur, await this.removalRevision(info, cur.metadata.uid!))), removed: true };
      }
      return { object: this.seen(fromCustomResource(info, answer as CustomResource, this.key)), removed: false };
    }
  }

  /** The revision of a removal, from the DELETED event the watch cache sees for it. */
  private async removalRevision(info: KindInfo, uid: string): Promise<string> {
    const rv = await this.cache(info).awaitDeletion(uid, this.deletionTimeoutMs);
    if (rv > 0) return String(rv);
    // The watch is down: a revision at or after the removal is the best answer left.
    this.logger.warn({ kind: info.kind, uid }, 'no DELETED event within the deletion timeout; answering with the current revision');
    return this.currentRevision();
  }

  // ----- watch ---------------------------------------------------------------------------------

  watch(opts: WatchOptions, handler: (event: WatchEvent) => void): Watch {
    this.assertOpen();
    const caches = opts.kind !== undefined ? [this.cache(kindInfo(opts.kind))] : [...this.caches.values()];
    const sub: Subscriber = {
      kind: opts.kind !== undefined ? kindInfo(opts.kind).kind : undefined,
      project: opts.project,
      selector: opts.labelSelector ? parseLabelSelector(opts.labelSelector) : undefined,
      handler,
      lastRv: new Map(),
      pending: [],
      head: 0,
      queued: false,
      stopped: false,
    };
    const from = parseRevision(opts.resourceVersion);
    const replay: CacheEvent[] = [];
    for (const c of caches) {
      if (from === undefined || from === 0) {
        sub.lastRv.set(c.kind, Math.max(c.rv, this.seenRv));
        continue;
      }
      if (from < c.historyStart) {
        throw ApiError.gone(
          `resourceVersion ${from} is too old: this replica's ${c.kind} history starts after ${c.historyStart}; list again and watch from the list's resourceVersion`,
        );
      }
      // A revision this replica has not reached yet (another replica's, a moment ahead): events up
      // to it are skipped, later ones delivered.
      sub.lastRv.set(c.kind, Math.max(from, c.rv));
      for (const ev of c.replay(from)) if (subscriberWants(sub, ev)) replay.push(ev);
    }
    replay.sort((a, b) => a.rv - b.rv);
    for (const ev of replay) this.dispatcher.enqueue(sub, ev);
    this.dispatcher.subscribers.add(sub);
    if (replay.length > 0) this.dispatcher.later();
    return {
      stop: () => {
        sub.stopped = true;
        sub.pending = [];
        sub.head = 0;
        this.dispatcher.subscribers.delete(sub);
      },
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const sub of this.dispatcher.subscribers) sub.stopped = true;
    this.dispatcher.subscribers.clear();
    await Promise.all([...this.caches.values()].map((c) => c.stop()));
    await this.audit.settle();
    if (this.opts.closeClient) this.client.close();
  }
}
