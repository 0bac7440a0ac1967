// The watch cache of the Kubernetes-backed store: per kind, one list+watch against the API server
// keeps the current objects (for the labels an object had before a change, which selector watches
// need) and a bounded history of events (to resume watches from a resourceVersion), like
// kube-apiserver's own watch cache. Every Store.watch of a replica is served from here, so a replica
// opens one API watch per kind however many clients watch it.
//
// Revisions are the API server's resourceVersions: etcd revisions, global across every resource
// stored in that etcd and increasing with every write. A client may therefore resume on any replica
// with the last resourceVersion it saw on another one: the cache skips what is at or below it and
// delivers what comes after, in order. What the store relies on: all of Marina's custom resources
// live in one etcd (no --etcd-servers-overrides for group marina.dev) and resourceVersions are
// decimal integers (true of every etcd3-backed API server).
import { StringDecoder } from 'node:string_decoder';
import type { ObjectKey, Resource } from '../../api/meta.js';
import type { KindInfo } from '../../api/registry.js';
import { isGone, isResourceVersionTooLarge, KubeError, resourcePath, type KubeClient, type KubeStatus } from '../../kube/client.js';
import { jsonEqual } from '../../api/json.js';
import { matchesSelector, type Labels } from '../admission.js';
import type { LabelSelector } from '../selector.js';
import type { WatchEvent, WatchEventType } from '../types.js';
import { fromCustomResource, resourceType, type CustomResource } from './objects.js';

export interface CacheLogger {
  error(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

/** One change as the cache keeps it. */
export interface CacheEvent {
  rv: number;
  type: WatchEventType;
  key: ObjectKey;
  labels: Labels | undefined;
  /** Labels before the change, when it altered them. */
  oldLabels?: Labels;
  /** The plaintext Marina object (metadata.resourceVersion === String(rv)). */
  json: string;
}

/** One Store.watch: filters, a queue, and per kind the newest revision it was given or skipped. */
export interface Subscriber {
  kind?: string;
  project?: string;
  selector?: LabelSelector;
  handler: (event: WatchEvent) => void;
  lastRv: Map<string, number>;
  pending: { type: WatchEventType; json: string }[];
  head: number;
  queued: boolean;
  stopped: boolean;
}

export function subscriberWants(sub: Subscriber, ev: CacheEvent): boolean {
  if (sub.project !== undefined && sub.project !== ev.key.project) return false;
  return !sub.selector || matchesSelector(sub.selector, ev.labels, ev.oldLabels);
}

/**
 * Delivers events to subscribers: each handler in order, exactly once per change, never
 * concurrently (one drain loop for the whole store), a throwing handler logged and kept.
 */
export class Dispatcher {
  readonly subscribers = new Set<Subscriber>();
  private ready: Subscriber[] = [];
  private draining = false;

  constructor(private readonly logger: CacheLogger) {}

  enqueue(sub: Subscriber, ev: CacheEvent): void {
    sub.pending.push({ type: ev.type, json: ev.json });
    if (!sub.queued) {
      sub.queued = true;
      this.ready.push(sub);
    }
  }

  /** A live event of `kind`: to every subscriber that has not seen its revision yet. */
  publish(kind: string, ev: CacheEvent): void {
    for (const sub of this.subscribers) {
      if (sub.stopped || (sub.kind !== undefined && sub.kind !== kind)) continue;
      const last = sub.lastRv.get(kind) ?? 0;
      if (ev.rv <= last) continue;
      sub.lastRv.set(kind, ev.rv);
      if (subscriberWants(sub, ev)) this.enqueue(sub, ev);
    }
    this.drain();
  }

  /**
   * After a relist that left a gap in the history (the API server compacted it during a long
   * disconnection): the difference, ordered by revision, to every subscriber that was behind the
   * list's revision. Exactly-once cannot hold across the gap; upserts and removals still rebuild
   * the state.
   */
  publishResync(kind: string, events: CacheEvent[], listRv: number): void {
    for (const sub of this.subscribers) {
      if (sub.stopped || (sub.kind !== undefined && sub.kind !== kind)) continue;
      const last = sub.lastRv.get(kind) ?? 0;
      if (last >= listRv) continue;
      for (const ev of events) if (subscriberWants(sub, ev)) this.enqueue(sub, ev);
      sub.lastRv.set(kind, listRv);
    }
    this.drain();
  }

  /** Schedules delivery of queued replays after watch() has returned. */
  later(): void {
    if (!this.draining) queueMicrotask(() => this.drain());
  }

  drain(): void {
    if (this.draining) return;
    this.draining = true;
    try {
      for (let i = 0; i < this.ready.length; i++) {
        const sub = this.ready[i]!;
        while (!sub.stopped && sub.head < sub.pending.length) {
          const ev = sub.pending[sub.head]!;
          sub.head++;
          try {
            sub.handler({ type: ev.type, object: JSON.parse(ev.json) as Resource });
          } catch (err) {
            try {
              this.logger.error({ err, type: ev.type }, 'watch handler threw; event skipped for this watcher');
            } catch {
              /* a broken logger must not break the store either */
            }
          }
        }
        sub.pending = [];
        sub.head = 0;
        sub.queued = false;
      }
    } finally {
      this.ready = [];
      this.draining = false;
    }
  }
}

export interface KindCacheOptions {
  client: KubeClient;
  info: KindInfo;
  namespace: string;
  key: Buffer;
  /** Events kept for resuming watches (at least this many of the newest). */
  historyLimit: number;
  dispatcher: Dispatcher;
  logger: CacheLogger;
  /** Restart a watch that received nothing (not even a bookmark) for this long. Default 180 s. */
  staleAfterMs?: number;
}

const RECENT_DELETIONS = 10_000;

export class KindCache {
  /** Every event with a revision above this one is in `history`. */
  historyStart = 0;
  /** The newest revision seen: an event, a bookmark or a list. */
  rv = 0;
  readonly ready: Promise<void>;
  private markReady!: () => void;
  private failReady!: (err: unknown) => void;
  private readonly objects = new Map<string, Resource>();
  private history: CacheEvent[] = [];
  private readonly deletions = new Map<string, number>();
  private readonly deletionWaiters = new Map<string, ((rv: number) => void)[]>();
  private readonly abort = new AbortController();
  private current: { destroy(): void } | undefined;
  private loop: Promise<void> | undefined;
  private readonly path: string;

  constructor(private readonly o: KindCacheOptions) {
    this.path = resourcePath(resourceType(o.info), { namespace: o.namespace });
    this.ready = new Promise((resolve, reject) => {
      this.markReady = resolve;
      this.failReady = reject;
    });
    // A start that fails is reported through `ready`; nobody else awaits it.
    this.ready.catch(() => undefined);
  }

  get kind(): string {
    return this.o.info.kind;
  }

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    this.current?.destroy();
    this.failReady(new Error('store closed'));
    for (const waiters of this.deletionWaiters.values()) for (const w of waiters) w(0);
    this.deletionWaiters.clear();
    await this.loop;
  }

  /** History events after `from`, oldest first (the caller checked from >= historyStart). */
  replay(from: number): CacheEvent[] {
    let lo = 0;
    let hi = this.history.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.history[mid]!.rv <= from) lo = mid + 1;
      else hi = mid;
    }
    return this.history.slice(lo);
  }

  /**
   * The revision at which the object with this uid was removed, once this cache has seen its
   * DELETED event (Kubernetes answers a delete with a Status, without that revision); 0 when the
   * cache stops or `timeoutMs` passes first.
   */
  awaitDeletion(uid: string, timeoutMs: number): Promise<number> {
    const seen = this.deletions.get(uid);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve) => {
      const done = (rv: number) => {
        clearTimeout(timer);
        const list = this.deletionWaiters.get(uid)?.filter((w) => w !== done);
        if (list && list.length > 0) this.deletionWaiters.set(uid, list);
        else this.deletionWaiters.delete(uid);
        resolve(rv);
      };
      const timer = setTimeout(() => done(0), timeoutMs);
      timer.unref();
      const list = this.deletionWaiters.get(uid) ?? [];
      list.push(done);
      this.deletionWaiters.set(uid, list);
    });
  }

  private get stopped(): boolean {
    return this.abort.signal.aborted;
  }

  private async run(): Promise<void> {
    let delay = 250;
    let listed = false;
    while (!this.stopped) {
      try {
        if (!listed) {
          await this.relist();
          listed = true;
        }
        if (this.stopped) break;
        await this.stream();
        delay = 250;
      } catch (err) {
        if (this.stopped) break;
        if (isGone(err) || isResourceVersionTooLarge(err)) {
          this.o.logger.warn({ kind: this.kind, resourceVersion: this.rv }, 'watch history compacted while disconnected (or the revisions moved back); relisting');
          listed = false;
          continue;
        }
        this.o.logger.warn({ err, kind: this.kind, resourceVersion: this.rv, retryInMs: delay }, 'watch cache: API watch failed; resuming');
        await sleep(delay * (0.75 + Math.random() / 2), this.abort.signal);
        delay = Math.min(delay * 2, 10_000);
      }
    }
  }

  private decode(cr: CustomResource): Resource {
    try {
      return fromCustomResource(this.o.info, cr, this.o.key);
    } catch (err) {
      // Only a wrong key gets here (the store checks the key at open): keep the ciphertext.
      this.o.logger.error({ err, kind: this.kind, name: cr.metadata.name }, 'cannot decrypt a stored object');
      return fromCustomResource({ ...this.o.info, sensitive: false }, cr, this.o.key);
    }
  }

  private async relist(): Promise<void> {
    const list = await this.o.client.listAll<CustomResource>(resourceType(this.o.info), { namespace: this.o.namespace });
    if (this.stopped) return;
    const listRv = Number(list.metadata.resourceVersion);
    const fresh = new Map<string, Resource>();
    for (const cr of list.items) fresh.set(cr.metadata.name, this.decode(cr));
    const first = this.rv === 0;
    const events: CacheEvent[] = [];
    if (!first) {
      for (const [name, obj] of fresh) {
        const old = this.objects.get(name);
        if (old && old.metadata.resourceVersion === obj.metadata.resourceVersion) continue;
        events.push(this.event(old ? 'MODIFIED' : 'ADDED', obj, old));
      }
      for (const [name, old] of this.objects) {
        if (fresh.has(name)) continue;
        const gone: Resource = { ...old, metadata: { ...old.metadata, resourceVersion: String(listRv) } };
        events.push(this.event('DELETED', gone, old));
      }
      events.sort((a, b) => a.rv - b.rv);
    }
    this.objects.clear();
    for (const [name, obj] of fresh) this.objects.set(name, obj);
    // The history has a gap up to the list: resuming from below it must relist (410).
    this.history = [];
    this.historyStart = listRv;
    this.rv = listRv;
    if (first) this.markReady();
    else this.o.dispatcher.publishResync(this.kind, events, listRv);
  }

  private event(type: WatchEventType, obj: Resource, old: Resource | undefined): CacheEvent {
    const labels = obj.metadata.labels;
    const ev: CacheEvent = {
      rv: Number(obj.metadata.resourceVersion),
      type,
      key: { kind: this.kind, project: obj.metadata.project ?? '', name: obj.metadata.name },
      labels,
      json: JSON.stringify(obj),
    };
    if (old && !jsonEqual(old.metadata.labels, labels)) ev.oldLabels = old.metadata.labels ?? {};
    return ev;
  }

  private apply(type: WatchEventType, cr: CustomResource): void {
    const rv = Number(cr.metadata.resourceVersion);
    if (!Number.isSafeInteger(rv) || rv <= this.rv) return;
    const obj = this.decode(cr);
    const name = cr.metadata.name;
    const ev = this.event(type, obj, this.objects.get(name));
    if (type === 'DELETED') {
      this.objects.delete(name);
      this.noteDeletion(cr.metadata.uid ?? '', rv);
    } else {
      this.objects.set(name, obj);
    }
    this.history.push(ev);
    const excess = this.history.length - this.o.historyLimit;
    // Trim in batches of 1%, so that the array is not shifted on every event.
    if (excess > Math.max(1, Math.floor(this.o.historyLimit / 100))) {
      this.historyStart = this.history[excess - 1]!.rv;
      this.history = this.history.slice(excess);
    }
    this.rv = rv;
    this.o.dispatcher.publish(this.kind, ev);
  }

  private noteDeletion(uid: string, rv: number): void {
    this.deletions.set(uid, rv);
    if (this.deletions.size > RECENT_DELETIONS) this.deletions.delete(this.deletions.keys().next().value!);
    for (const w of this.deletionWaiters.get(uid) ?? []) w(rv);
  }

  /** One watch request from `rv`; returns when the server ends it, throws on errors (410 included). */
  private async stream(): Promise<void> {
    const staleAfter = this.o.staleAfterMs ?? 180_000;
    const { request, response } = this.o.client.openStream(this.path, {
      watch: 1,
      resourceVersion: String(this.rv),
      allowWatchBookmarks: true,
      timeoutSeconds: 300 + Math.floor(Math.random() * 300),
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
    try {
      const res = await response;
      if (res.statusCode !== 200) {
        const chunks: Buffer[] = [];
        for await (const c of res) chunks.push(c as Buffer);
        let status: Partial<KubeStatus> = {};
        try {
          status = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Partial<KubeStatus>;
        } catch {
          /* not a Status */
        }
        throw new KubeError(status.code ?? res.statusCode ?? 0, status.reason ?? 'Unknown', status.message ?? `HTTP ${res.statusCode}`);
      }
      const decoder = new StringDecoder('utf8');
      let buffered = '';
      for await (const chunk of res) {
        arm();
        buffered += decoder.write(chunk as Buffer);
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl).trim();
          buffered = buffered.slice(nl + 1);
          if (line) this.handleLine(line);
          if (this.stopped) return;
        }
      }
      if (stale) this.o.logger.warn({ kind: this.kind, staleAfterMs: staleAfter }, 'watch cache: API watch went silent; restarting');
    } catch (err) {
      if (this.stopped || stale) return;
      throw err instanceof KubeError ? err : new KubeError(0, 'NetworkError', `watch ${this.o.info.plural}: ${(err as Error).message}`, { cause: err });
    } finally {
      clearTimeout(timer);
      this.current = undefined;
    }
  }

  private handleLine(line: string): void {
    const ev = JSON.parse(line) as { type?: string; object?: unknown };
    if (ev.type === 'ERROR') {
      const s = (ev.object ?? {}) as Partial<KubeStatus>;
      throw new KubeError(s.code ?? 500, s.reason ?? 'InternalError', s.message ?? 'watch error');
    }
    const cr = ev.object as CustomResource | undefined;
    if (!cr?.metadata) return;
    if (ev.type === 'BOOKMARK') {
      const rv = Number(cr.metadata.resourceVersion);
      if (Number.isSafeInteger(rv) && rv > this.rv) this.rv = rv;
      return;
    }
    if (ev.type === 'ADDED' || ev.type === 'MODIFIED' || ev.type === 'DELETED') this.apply(ev.type, cr);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
