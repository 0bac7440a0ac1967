// A level-based controller in the shape of controller-runtime: watch events only say "look at
// this object again"; the reconciler always reads the current state from the store and drives it
// towards the desired state. Missed or coalesced events are harmless because of the initial list,
// the relist after a broken watch and the periodic resync.
import { setMaxListeners } from 'node:events';
import { pino, type Logger } from 'pino';
import { isApiError } from '../api/errors.js';
import { keyOf, keyString, parseKeyString, type ObjectKey, type Resource } from '../api/meta.js';
import type { KindName, Kinds } from '../store/typed.js';
import type { Store, Watch, WatchEvent } from '../store/types.js';
import type { RuntimeMetrics, ReconcileResult } from './metrics.js';
import { ExponentialBackoff, WorkQueue, type BackoffOptions } from './workqueue.js';

/** What a reconcile asks for: nothing (done until the next change or resync) or a timed requeue. */
export type Result = { requeueAfterMs?: number } | void;

export interface ReconcileContext {
  /** Aborted when the controller stops and this reconcile outlives the stop grace period. */
  signal: AbortSignal;
  /** Child logger bound to `controller` and `key`. */
  log: Logger;
}

export interface Reconciler {
  /**
   * Drive the object named by `key` towards its desired state. Must be idempotent: it may run any
   * number of times for the same state, and the object may be gone. Never runs concurrently for
   * one key.
   *  - resolve (optionally with `requeueAfterMs`): success; the backoff of the key is reset;
   *  - throw `TerminalError`: logged and counted, not retried until the object changes or resync;
   *  - throw anything else: retried with per-key exponential backoff.
   */
  reconcile(key: ObjectKey, ctx: ReconcileContext): Promise<Result>;
}

/** A failure that retrying cannot fix (invalid spec, unsupported provider...). Not retried. */
export class TerminalError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TerminalError';
  }
}

export function isTerminalError(err: unknown): err is TerminalError {
  return err instanceof TerminalError;
}

/** A secondary kind whose changes enqueue other objects, e.g. Machine → its Cluster. */
export type WatchSpec = {
  [K in KindName]: {
    kind: K;
    /** Keys (of the controller's primary kind) to reconcile when `obj` (of `kind`) changes. */
    mapTo: (obj: Kinds[K]) => ObjectKey[];
  };
}[KindName];

export interface ControllerOptions {
  /** Unique name; used in logs and metric labels. */
  name: string;
  /** The primary kind: every change of an object of this kind enqueues that object. */
  kind: string;
  store: Store;
  reconciler: Reconciler;
  /** Concurrent reconciles (of different keys). Default 2. */
  workers?: number;
  /** Every object of the primary kind is enqueued this often. Default 5 min; 0 disables. */
  resyncPeriodMs?: number;
  watches?: WatchSpec[];
  /** Per-key retry backoff after errors. Default 100 ms doubling up to 60 s. */
  backoff?: BackoffOptions;
  /** Backoff between attempts to re-establish a broken watch. Default 200 ms doubling up to 30 s. */
  rewatchBackoff?: BackoffOptions;
  /** How long stop() lets in-flight reconciles finish before aborting their signals. Default 30 s. */
  stopGracePeriodMs?: number;
  logger?: Logger;
  metrics?: RuntimeMetrics;
}

/** A terminal failure remembered for diagnostics until the key next reconciles successfully. */
export interface TerminalFailure {
  key: string;
  message: string;
  at: string;
}

const LIST_PAGE = 500;
interface Stream {
  kind: string;
  handle: (ev: WatchEvent) => void;
  watch?: Watch;
  /** Last revision seen on this stream; a rewatch resumes after it. */
  rv: string;
  /** Pending re-establish timer. */
  timer?: NodeJS.Timeout;
}

export class Controller {
  readonly name: string;
  readonly kind: string;
  private readonly store: Store;
  private readonly reconciler: Reconciler;
  private readonly workers: number;
  private readonly resyncPeriodMs: number;
  private readonly stopGraceMs: number;
  private readonly watches: WatchSpec[];
  private readonly log: Logger;
  private readonly metrics?: RuntimeMetrics;
  private readonly queue: WorkQueue;
  private readonly rewatchBackoff: ExponentialBackoff;
  private readonly abort = new AbortController();
  private readonly streams: Stream[] = [];
  private readonly terminal = new Map<string, TerminalFailure>();
  private workerLoops: Promise<void>[] = [];
  private resyncTimer?: NodeJS.Timeout;
  private relisting?: Promise<void>;
  private state: 'new' | 'starting' | 'running' | 'stopping' | 'stopped' = 'new';
  private stopPromise?: Promise<void>;

  constructor(opts: ControllerOptions) {
    this.name = opts.name;
    this.kind = opts.kind;
    this.store = opts.store;
    this.reconciler = opts.reconciler;
    this.workers = Math.max(1, Math.floor(opts.workers ?? 2));
    this.resyncPeriodMs = opts.resyncPeriodMs ?? 5 * 60_000;
    this.stopGraceMs = opts.stopGracePeriodMs ?? 30_000;
    this.watches = opts.watches ?? [];
    this.log = (opts.logger ?? pino({ level: 'silent' })).child({ controller: opts.name });
    this.metrics = opts.metrics;
    this.queue = new WorkQueue({ backoff: opts.backoff, hooks: this.metrics?.queueHooks(opts.name) });
    this.rewatchBackoff = new ExponentialBackoff({ baseDelayMs: 200, maxDelayMs: 30_000, ...opts.rewatchBackoff });
    // Every remote call of every in-flight reconcile listens to this one signal: with many
    // clusters that is far more than the default warning threshold of 10, and no leak.
    setMaxListeners(0, this.abort.signal);
  }

  /**
   * Lists the primary kind and enqueues every object, starts the watches from the list's
   * revision, the resync timer and the workers. Resolves once all that is running; rejects (and
   * leaves the controller stopped) if the initial list fails.
   */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error(`controller ${this.name} already started`);
    this.state = 'starting';
    let rv: string;
    try {
      rv = await this.listAndEnqueue();
    } catch (err) {
      this.state = 'stopped';
      this.queue.shutDown();
      throw err;
    }
    if (this.state !== 'starting') return; // stop() was called meanwhile
    this.state = 'running';

    this.streams.push({ kind: this.kind, rv, handle: (ev) => this.queue.add(keyString(keyOf(ev.object))) });
    for (const w of this.watches) {
      this.streams.push({
        kind: w.kind,
        rv,
        handle: (ev) => {
          let keys: ObjectKey[];
          try {
            // The watch is on w.kind: the store delivers objects of that kind only.
            keys = (w.mapTo as (obj: Resource) => ObjectKey[])(ev.object);
          } catch (err) {
            this.log.error({ err, kind: w.kind, name: ev.object.metadata.name }, 'watch mapping failed');
            return;
          }
          for (const k of keys) this.queue.add(keyString(k));
        },
      });
    }
    for (const s of this.streams) this.openStream(s);

    if (this.resyncPeriodMs > 0) {
      this.resyncTimer = setInterval(() => void this.resync(), this.resyncPeriodMs);
      this.resyncTimer.unref();
    }
    for (let i = 0; i < this.workers; i++) this.workerLoops.push(this.runWorker());
    this.log.info({ kind: this.kind, workers: this.workers, watches: this.watches.map((w) => w.kind) }, 'controller started');
  }

  /**
   * Graceful stop: stops watches and timers, shuts the queue down (queued keys are dropped; the
   * next start relists), waits for in-flight reconciles. Those still running after the grace
   * period get their AbortSignal aborted, and are then awaited. Idempotent.
   */
  stop(): Promise<void> {
    this.stopPromise ??= this.doStop();
    return this.stopPromise;
  }

  /** Enqueue a key by hand (tests, admin "reconcile now"). */
  enqueue(key: ObjectKey): void {
    this.queue.add(keyString(key));
  }

  /** Keys whose last reconcile failed terminally. */
  terminalFailures(): TerminalFailure[] {
    return [...this.terminal.values()];
  }

  /** Queue state for diagnostics. */
  queueStats(): ReturnType<WorkQueue['stats']> {
    return this.queue.stats();
  }

  isRunning(): boolean {
    return this.state === 'running';
  }

  private async doStop(): Promise<void> {
    const wasStarted = this.state === 'running' || this.state === 'starting';
    this.state = 'stopping';
    for (const s of this.streams) this.closeStream(s);
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    this.resyncTimer = undefined;
    this.queue.shutDown();
    const drained = this.queue.drain();
    let grace: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      drained.then(() => false),
      new Promise<boolean>((resolve) => {
        grace = setTimeout(() => resolve(true), this.stopGraceMs);
      }),
    ]);
    if (grace) clearTimeout(grace);
    if (timedOut) {
      this.log.warn({ inFlight: this.queue.stats().processing }, 'reconciles outlived the stop grace period; aborting them');
      this.abort.abort(new Error(`controller ${this.name} stopped`));
      await drained;
    }
    await Promise.all(this.workerLoops);
    await this.relisting?.catch(() => undefined);
    this.state = 'stopped';
    if (wasStarted) this.log.info('controller stopped');
  }

  // ---------- watching ----------

  private openStream(s: Stream): void {
    if (this.state !== 'running') return;
    try {
      s.watch = this.store.watch({ kind: s.kind, resourceVersion: s.rv }, (ev) => {
        const rv = ev.object.metadata.resourceVersion;
        if (rv !== undefined) s.rv = rv;
        s.handle(ev);
      });
      this.rewatchBackoff.forget(s.kind);
    } catch (err) {
      this.onStreamError(s, err);
    }
  }

  private closeStream(s: Stream): void {
    if (s.timer) clearTimeout(s.timer);
    s.timer = undefined;
    try {
      s.watch?.stop();
    } catch (err) {
      this.log.warn({ err, kind: s.kind }, 'stopping watch failed');
    }
    s.watch = undefined;
  }

  /**
   * A watch could not be (re-)established. Resuming from the last revision is tried first; when
   * that revision is gone (410), the primary kind is relisted (every object enqueued) and the
   * stream restarts from the fresh revision, so nothing is missed.
   */
  private onStreamError(s: Stream, err: unknown): void {
    this.closeStream(s);
    if (this.state !== 'running') return;
    const gone = isApiError(err) && err.code === 410;
    const delay = this.rewatchBackoff.when(s.kind);
    this.log.warn({ err, kind: s.kind, resourceVersion: s.rv, gone, retryInMs: delay }, 'watch failed; re-establishing');
    s.timer = setTimeout(() => {
      s.timer = undefined;
      if (this.state !== 'running') return;
      if (!gone) {
        this.openStream(s);
        return;
      }
      this.listAndEnqueue().then(
        (rv) => {
          s.rv = rv;
          this.openStream(s);
        },
        (listErr) => this.onStreamError(s, listErr),
      );
    }, delay);
    s.timer.unref();
  }

  /**
   * Lists every object of the primary kind (all pages) and enqueues it. Returns the revision of
   * the first page: watching from it misses nothing, even if later pages were read later.
   */
  private async listAndEnqueue(): Promise<string> {
    let rv: string | undefined;
    let cont: string | undefined;
    let n = 0;
    do {
      // A page is read in one go (tens of ms for 500 objects); between pages the event loop gets
      // its turn, so that a relist of 10,000 objects does not hold up API requests for a second.
      if (cont) await new Promise((resolve) => setImmediate(resolve));
      const page = await this.store.list(this.kind, { limit: LIST_PAGE, continue: cont });
      rv ??= page.resourceVersion;
      for (const obj of page.items) this.queue.add(keyString(keyOf(obj)));
      n += page.items.length;
      cont = page.continue;
    } while (cont);
    this.log.debug({ kind: this.kind, count: n, resourceVersion: rv }, 'listed');
    return rv;
  }

  private async resync(): Promise<void> {
    if (this.state !== 'running' || this.relisting) return;
    this.relisting = this.listAndEnqueue().then(
      () => undefined,
      (err) => {
        this.log.warn({ err }, 'resync list failed');
      },
    );
    await this.relisting;
    this.relisting = undefined;
  }

  // ---------- working ----------

  private async runWorker(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      try {
        await this.processKey(key);
      } finally {
        this.queue.done(key);
      }
    }
  }

  private async processKey(key: string): Promise<void> {
    const log = this.log.child({ key });
    const started = process.hrtime.bigint();
    let outcome: ReconcileResult;
    try {
      let objectKey: ObjectKey;
      try {
        objectKey = parseKeyString(key);
      } catch (err) {
        throw new TerminalError(`cannot reconcile malformed key ${JSON.stringify(key)}`, { cause: err });
      }
      const res = await this.reconciler.reconcile(objectKey, { signal: this.abort.signal, log });
      this.queue.forget(key);
      this.terminal.delete(key);
      const after = res?.requeueAfterMs;
      if (after !== undefined && after > 0 && Number.isFinite(after)) {
        this.queue.addAfter(key, after);
        outcome = 'requeue';
      } else {
        outcome = 'success';
      }
    } catch (err) {
      if (isTerminalError(err)) {
        this.queue.forget(key);
        this.terminal.set(key, { key, message: err.message, at: new Date().toISOString() });
        log.error({ err }, 'reconcile failed terminally; not retrying until the object changes');
        outcome = 'terminal';
      } else if (this.abort.signal.aborted) {
        log.warn({ err }, 'reconcile aborted by stop');
        outcome = 'error';
      } else {
        const delay = this.queue.addRateLimited(key);
        const conflict = isApiError(err) && err.code === 409;
        const fields = { err, retryInMs: delay, retries: this.queue.numRequeues(key) };
        // Optimistic-concurrency conflicts are routine: the newer state is reconciled anyway.
        if (conflict) log.debug(fields, 'reconcile conflicted; retrying');
        else log.warn(fields, 'reconcile failed; retrying');
        outcome = 'error';
      }
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    this.metrics?.observeReconcile(this.name, outcome, seconds);
  }
}
