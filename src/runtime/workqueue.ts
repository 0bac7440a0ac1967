// A work queue of string keys, modelled on client-go's workqueue (queue + dirty set + processing
// set, a delaying layer and a per-key rate limiter).
//
// Guarantees:
//   * dedup: a key added any number of times before a worker takes it is handed out once;
//   * one worker per key: a key is never handed out while it is being processed. A key added
//     while it is processed is marked dirty and queued again when `done(key)` is called;
//   * `addAfter(key, ms)`: the key is added after the delay. If the key is already waiting, the
//     earliest ready time wins;
//   * `addRateLimited(key)`: `addAfter` with a per-key exponential backoff (base doubling up to a
//     cap), reset by `forget(key)`;
//   * `shutDown()`: no more keys are handed out (pending `get()`s resolve `undefined`), adds are
//     ignored, all timers are cleared. Keys already handed out may still be finished with
//     `done()`; `drain()` resolves when none is left in flight.

/** Per-key exponential backoff settings. */
export interface BackoffOptions {
  /** Delay of the first retry. Default 100 ms. */
  baseDelayMs?: number;
  /** Upper bound of the delay. Default 60 s. */
  maxDelayMs?: number;
}

/** Decides how long a key waits before its next retry. */
export interface RateLimiter {
  /** Delay for the next retry of `key`; counts the retry. */
  when(key: string): number;
  /** Forget the retry history of `key` (call after success). */
  forget(key: string): void;
  /** How many times `key` was retried since it was last forgotten. */
  numRequeues(key: string): number;
}

export const DEFAULT_BACKOFF: Required<BackoffOptions> = { baseDelayMs: 100, maxDelayMs: 60_000 };

/** delay = base * 2^failures, capped at max (client-go's ItemExponentialFailureRateLimiter). */
export class ExponentialBackoff implements RateLimiter {
  private readonly failures = new Map<string, number>();
  private readonly base: number;
  private readonly max: number;

  constructor(opts: BackoffOptions = {}) {
    this.base = Math.max(0, opts.baseDelayMs ?? DEFAULT_BACKOFF.baseDelayMs);
    this.max = Math.max(this.base, opts.maxDelayMs ?? DEFAULT_BACKOFF.maxDelayMs);
  }

  when(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    // 2^n overflows to Infinity for large n; Math.min keeps the cap.
    return Math.min(this.max, this.base * 2 ** Math.min(n, 1024));
  }

  forget(key: string): void {
    this.failures.delete(key);
  }

  numRequeues(key: string): number {
    return this.failures.get(key) ?? 0;
  }
}

/** Observation hooks, e.g. for Prometheus metrics. All are optional and must not throw. */
export interface WorkQueueHooks {
  /** A key was actually queued (not a duplicate of one already waiting). */
  onAdd?(key: string): void;
  /** The number of ready keys changed. */
  onDepth?(depth: number): void;
  /** A key was scheduled for a rate-limited retry. */
  onRetry?(key: string, delayMs: number): void;
}

export interface WorkQueueOptions {
  /** Settings for the default ExponentialBackoff rate limiter. */
  backoff?: BackoffOptions;
  /** Replaces the default rate limiter entirely (then `backoff` is ignored). */
  rateLimiter?: RateLimiter;
  /**
   * Unref delay timers so a pending delayed key does not keep the process alive. Default true:
   * the owner of the queue (a server) keeps the event loop running.
   */
  unrefTimers?: boolean;
  hooks?: WorkQueueHooks;
}

interface Delayed {
  readyAt: number;
  timer: NodeJS.Timeout;
}

export class WorkQueue {
  /** Ready keys in FIFO order; every element is also in `dirty`. */
  private queue: string[] = [];
  private head = 0;
  /** Keys that need processing (queued, or added while being processed). */
  private readonly dirty = new Set<string>();
  /** Keys handed out and not yet `done()`. */
  private readonly processing = new Set<string>();
  /** Keys waiting for a delay to expire. */
  private readonly delayed = new Map<string, Delayed>();
  /** Pending `get()` calls. */
  private readonly waiters: ((key: string | undefined) => void)[] = [];
  private readonly drainers: (() => void)[] = [];
  private readonly limiter: RateLimiter;
  private readonly unref: boolean;
  private readonly hooks: WorkQueueHooks;
  private shuttingDown = false;

  constructor(opts: WorkQueueOptions = {}) {
    this.limiter = opts.rateLimiter ?? new ExponentialBackoff(opts.backoff);
    this.unref = opts.unrefTimers ?? true;
    this.hooks = opts.hooks ?? {};
  }

  /** Queue `key` now, unless it is already queued. Ignored after shutDown(). */
  add(key: string): void {
    if (this.shuttingDown) return;
    if (this.dirty.has(key)) return;
    this.dirty.add(key);
    this.hooks.onAdd?.(key);
    if (this.processing.has(key)) return; // re-queued by done()
    this.enqueue(key);
  }

  /** Queue `key` after `ms`. If it already waits, the earlier ready time wins. */
  addAfter(key: string, ms: number): void {
    if (this.shuttingDown) return;
    if (!(ms > 0)) {
      this.add(key);
      return;
    }
    const readyAt = Date.now() + ms;
    const existing = this.delayed.get(key);
    if (existing) {
      if (existing.readyAt <= readyAt) return;
      clearTimeout(existing.timer);
    }
    const timer = setTimeout(() => {
      const cur = this.delayed.get(key);
      if (cur?.timer !== timer) return;
      this.delayed.delete(key);
      this.add(key);
    }, ms);
    if (this.unref) timer.unref();
    this.delayed.set(key, { readyAt, timer });
  }

  /** Queue `key` after its next backoff delay; returns the delay chosen. */
  addRateLimited(key: string): number {
    if (this.shuttingDown) return 0;
    const delay = this.limiter.when(key);
    this.hooks.onRetry?.(key, delay);
    this.addAfter(key, delay);
    return delay;
  }

  /** Reset the backoff of `key` (after a successful or terminal attempt). */
  forget(key: string): void {
    this.limiter.forget(key);
  }

  numRequeues(key: string): number {
    return this.limiter.numRequeues(key);
  }

  /**
   * The next key to process, waiting until one is ready. Resolves `undefined` once the queue is
   * shut down. The caller must call `done(key)` when finished with it.
   */
  get(): Promise<string | undefined> {
    if (this.shuttingDown) return Promise.resolve(undefined);
    const key = this.dequeue();
    if (key !== undefined) return Promise.resolve(key);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Mark `key` finished; if it was added meanwhile, queue it again. */
  done(key: string): void {
    if (!this.processing.delete(key)) return;
    if (this.shuttingDown) {
      this.dirty.delete(key);
      if (this.processing.size === 0) this.resolveDrainers();
      return;
    }
    if (this.dirty.has(key)) this.enqueue(key);
  }

  /** Number of keys ready to be handed out (not counting delayed or in-flight ones). */
  len(): number {
    return this.queue.length - this.head;
  }

  /** A snapshot of the queue's state, for diagnostics and tests. */
  stats(): { ready: number; delayed: number; processing: number; shuttingDown: boolean } {
    return { ready: this.len(), delayed: this.delayed.size, processing: this.processing.size, shuttingDown: this.shuttingDown };
  }

  isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  /** Stop handing out keys, drop waiting and delayed ones, clear every timer. Idempotent. */
  shutDown(): void {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    for (const d of this.delayed.values()) clearTimeout(d.timer);
    this.delayed.clear();
    for (let i = this.head; i < this.queue.length; i++) this.dirty.delete(this.queue[i]!);
    this.queue = [];
    this.head = 0;
    this.hooks.onDepth?.(0);
    for (const w of this.waiters.splice(0)) w(undefined);
    if (this.processing.size === 0) this.resolveDrainers();
  }

  /** Resolves once the queue is shut down and no key is in flight. */
  drain(): Promise<void> {
    if (this.shuttingDown && this.processing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainers.push(resolve));
  }

  private enqueue(key: string): void {
    const waiter = this.waiters.shift();
    if (waiter) {
      // Hand the key straight to a waiting worker.
      this.dirty.delete(key);
      this.processing.add(key);
      waiter(key);
      return;
    }
    this.queue.push(key);
    this.hooks.onDepth?.(this.len());
  }

  private dequeue(): string | undefined {
    if (this.head >= this.queue.length) return undefined;
    const key = this.queue[this.head++]!;
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    this.dirty.delete(key);
    this.processing.add(key);
    this.hooks.onDepth?.(this.len());
    return key;
  }

  private resolveDrainers(): void {
    for (const d of this.drainers.splice(0)) d();
  }
}
