// A live, client-side copy of one kind's objects in one project, kept current through the API's
// watch: list, then watch from the list's revision; resume from the last revision seen (events
// and BOOKMARKs) when the stream drops, with exponential backoff; list again when the server no
// longer has that history (410 Gone). Framework-free: React reads it through
// useSyncExternalStore (subscribe / getSnapshot), tests drive it with a fake fetch.
import type { Resource } from '../api/meta.js';
import { MarinaApiError, sleep as defaultSleep, type KindLike, type ResourceList, type WatchEvent } from '../client/index.js';

/** What a LiveCollection needs of the API client (MarinaClient has it). */
export interface WatchApi {
  listAll<T extends Resource>(kind: KindLike, opts: { project?: string; signal?: AbortSignal }): Promise<ResourceList<T>>;
  watch<T extends Resource>(kind: KindLike, opts: { project?: string; resourceVersion?: string; signal?: AbortSignal }): AsyncGenerator<WatchEvent<T>>;
}

/** connecting: first list pending; live: in sync; reconnecting: stream dropped, retry due; error: gave up (401/403/404). */
export type LiveState = 'connecting' | 'live' | 'reconnecting' | 'error';

export interface LiveSnapshot<T> {
  /** Sorted by name. */
  items: readonly T[];
  state: LiveState;
  /** True once the first list arrived (before that, an empty `items` means "not known yet"). */
  synced: boolean;
  /** Why the collection is reconnecting or failed. */
  error?: string;
  /** HTTP code of a fatal error. */
  errorCode?: number;
  /** Newest revision seen (list, event or bookmark). */
  resourceVersion?: string;
}

export interface LiveOptions {
  project?: string;
  /** First reconnect delay; doubles up to maxRetryDelayMs. Default 500 ms. */
  retryDelayMs?: number;
  maxRetryDelayMs?: number;
  /**
   * A stream that delivers nothing (not even the server's 15 s BOOKMARK heartbeat) for this long
   * is considered dead and replaced. Default 45 s; 0 disables.
   */
  idleTimeoutMs?: number;
  /**
   * Read the list every this many ms instead of watching (a page beyond the registry's watch
   * budget). Undefined: watch.
   */
  pollIntervalMs?: number;
  /** Called on an error the collection does not retry (e.g. 401: the token expired). */
  onFatal?: (err: MarinaApiError) => void;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

const keyOf = (o: Resource) => `${o.metadata.project ?? ''}/${o.metadata.name}`;
const byName = (a: Resource, b: Resource) => (a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0);

export class LiveCollection<T extends Resource = Resource> {
  private readonly objects = new Map<string, T>();
  private snapshot: LiveSnapshot<T> = { items: [], state: 'connecting', synced: false };
  private readonly listeners = new Set<() => void>();
  private controller?: AbortController;
  private notifyScheduled = false;
  private dirty = false;
  /** Resolves when the run loop has ended (after stop()). */
  done: Promise<void> = Promise.resolve();

  constructor(
    private readonly api: WatchApi,
    readonly kind: KindLike,
    private readonly opts: LiveOptions = {},
  ) {}

  /** Whether the collection follows a watch (else it polls the list). */
  get watching(): boolean {
    return this.opts.pollIntervalMs === undefined;
  }

  get running(): boolean {
    return this.controller !== undefined && !this.controller.signal.aborted;
  }

  start(): void {
    if (this.running) return;
    const controller = new AbortController();
    this.controller = controller;
    this.done = this.run(controller.signal).catch(() => undefined);
  }

  stop(): void {
    this.controller?.abort();
  }

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  getSnapshot = (): LiveSnapshot<T> => {
    if (this.dirty) {
      this.dirty = false;
      this.snapshot = { ...this.snapshot, items: [...this.objects.values()].sort(byName) };
    }
    return this.snapshot;
  };

  /** Applies one watch event (exported for tests and for callers that learn of a change first-hand). */
  apply(ev: WatchEvent<T>): void {
    const rv = ev.object.metadata?.resourceVersion;
    if (rv) this.patchState({ resourceVersion: rv });
    if (ev.type === 'BOOKMARK') return;
    const k = keyOf(ev.object);
    if (ev.type === 'DELETED') {
      if (!this.objects.delete(k)) return;
    } else {
      const old = this.objects.get(k);
      // Never go back in time: a relist may race with an event already applied.
      if (old && rv && old.metadata.resourceVersion && Number(old.metadata.resourceVersion) > Number(rv)) return;
      this.objects.set(k, ev.object);
    }
    this.markDirty();
  }

  /** Replaces the whole content with a fresh list (first sync and after 410 Gone). */
  replaceAll(items: readonly T[], resourceVersion: string): void {
    this.objects.clear();
    for (const item of items) this.objects.set(keyOf(item), item);
    this.patchState({ resourceVersion, synced: true });
    this.markDirty();
  }

  private async run(signal: AbortSignal): Promise<void> {
    const sleep = this.opts.sleep ?? defaultSleep;
    const base = this.opts.retryDelayMs ?? 500;
    const max = this.opts.maxRetryDelayMs ?? 10_000;
    const idle = this.opts.idleTimeoutMs ?? 45_000;
    let delay = base;
    let rv: string | undefined;
    while (!signal.aborted) {
      let reason = 'the server closed the watch';
      // One connection: its own abort (idle timeout), chained to the collection's.
      const conn = new AbortController();
      const onAbort = () => conn.abort();
      signal.addEventListener('abort', onAbort, { once: true });
      let idleTimer: ReturnType<typeof setTimeout> | undefined;
      let idled = false;
      const armIdle = () => {
        if (idle <= 0) return;
        if (idleTimer) clearTimeout(idleTimer);
        idleTimer = setTimeout(() => {
          idled = true;
          conn.abort();
        }, idle);
      };
      try {
        if (this.opts.pollIntervalMs !== undefined) {
          const list = await this.api.listAll<T>(this.kind, { project: this.opts.project, signal: conn.signal });
          if (signal.aborted) return;
          this.replaceAll(list.items, list.metadata.resourceVersion);
          this.patchState({ state: 'live', error: undefined, errorCode: undefined });
          delay = base;
          await sleep(this.opts.pollIntervalMs, signal);
          continue;
        }
        if (rv === undefined) {
          const list = await this.api.listAll<T>(this.kind, { project: this.opts.project, signal: conn.signal });
          if (signal.aborted) return;
          rv = list.metadata.resourceVersion;
          this.replaceAll(list.items, rv);
        }
        this.patchState({ state: 'live', error: undefined, errorCode: undefined });
        armIdle();
        for await (const ev of this.api.watch<T>(this.kind, { project: this.opts.project, resourceVersion: rv, signal: conn.signal })) {
          armIdle();
          delay = base;
          rv = ev.object.metadata?.resourceVersion ?? rv;
          this.apply(ev);
          if (this.snapshot.state !== 'live') this.patchState({ state: 'live', error: undefined });
        }
        if (idled) reason = `no data for ${Math.round(idle / 1000)} s`;
      } catch (err) {
        if (signal.aborted) return;
        if (err instanceof MarinaApiError && err.code === 410) {
          rv = undefined; // history expired: list again, right away
          continue;
        }
        if (err instanceof MarinaApiError && err.code < 500 && err.code !== 408 && err.code !== 429) {
          this.patchState({ state: 'error', error: err.message, errorCode: err.code });
          this.opts.onFatal?.(err);
          return;
        }
        reason = idled ? `no data for ${Math.round(idle / 1000)} s` : (err as Error).message;
      } finally {
        if (idleTimer) clearTimeout(idleTimer);
        signal.removeEventListener('abort', onAbort);
      }
      if (signal.aborted) return;
      this.patchState({ state: 'reconnecting', error: reason });
      await sleep(delay, signal);
      delay = Math.min(delay * 2, max);
    }
  }

  private patchState(patch: Partial<LiveSnapshot<T>>): void {
    let changed = false;
    for (const [k, v] of Object.entries(patch) as [keyof LiveSnapshot<T>, unknown][]) {
      if (this.snapshot[k] !== v) changed = true;
    }
    if (!changed) return;
    this.snapshot = { ...this.snapshot, ...patch };
    this.scheduleNotify();
  }

  private markDirty(): void {
    this.dirty = true;
    this.scheduleNotify();
  }

  /** Bursts of events (a list, a relist) produce one notification. */
  private scheduleNotify(): void {
    if (this.notifyScheduled) return;
    this.notifyScheduled = true;
    queueMicrotask(() => {
      this.notifyScheduled = false;
      for (const l of [...this.listeners]) l();
    });
  }
}

/**
 * Shares one LiveCollection per (kind, project) between every view that needs it, so a page with
 * several panels opens each watch once. A collection nobody uses any more is stopped after
 * `lingerMs`, so that moving between pages does not reconnect.
 *
 * Browsers open at most six HTTP/1.1 connections per origin, and each watch holds one for good: a
 * page with six watches starves every other request (the cluster page's health fetches waited
 * forever). So at most `maxWatches` collections watch at once; the ones created beyond that poll
 * their list every `pollIntervalMs`.
 */
export class LiveRegistry {
  private readonly entries = new Map<string, { collection: LiveCollection<Resource>; refs: number; timer?: ReturnType<typeof setTimeout> }>();

  constructor(
    private readonly create: (kind: string, project: string | undefined, pollIntervalMs: number | undefined) => LiveCollection<Resource>,
    private readonly lingerMs = 5_000,
    private readonly maxWatches = 4,
    private readonly pollIntervalMs = 2_000,
  ) {}

  acquire<T extends Resource>(kind: string, project: string | undefined): LiveCollection<T> {
    const key = `${kind}/${project ?? ''}`;
    let entry = this.entries.get(key);
    if (!entry) {
      const watching = [...this.entries.values()].filter((e) => e.collection.watching).length;
      entry = { collection: this.create(kind, project, watching < this.maxWatches ? undefined : this.pollIntervalMs), refs: 0 };
      this.entries.set(key, entry);
    }
    if (entry.timer) {
      clearTimeout(entry.timer);
      entry.timer = undefined;
    }
    entry.refs++;
    entry.collection.start();
    return entry.collection as unknown as LiveCollection<T>;
  }

  release(collection: LiveCollection<Resource> | LiveCollection<never>): void {
    for (const [key, entry] of this.entries) {
      if (entry.collection !== (collection as unknown)) continue;
      entry.refs = Math.max(0, entry.refs - 1);
      if (entry.refs === 0 && !entry.timer) {
        entry.timer = setTimeout(() => {
          entry.collection.stop();
          this.entries.delete(key);
        }, this.lingerMs);
      }
      return;
    }
  }

  /** Number of collections (watching or polling). */
  get size(): number {
    return this.entries.size;
  }

  stopAll(): void {
    for (const entry of this.entries.values()) {
      if (entry.timer) clearTimeout(entry.timer);
      entry.collection.stop();
    }
    this.entries.clear();
  }
}
