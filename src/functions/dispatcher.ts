// The worker of the durable queue: claims due deliveries with a lease, runs them (a function
// invocation or a whole pipeline run), renews the lease while they run, and records the outcome:
// done, queued again after the retry policy's backoff, or dead (the dead-letter list). Several
// Marina processes can run a dispatcher on one database; a lease that is not renewed (its process
// died) expires and the delivery runs again elsewhere — at-least-once, with the same idempotency key.
import type { Logger } from 'pino';
import type { ClaimedDelivery, FunctionStore } from '../store/functions-sqlite.js';
import type { Catalog } from './catalog.js';
import type { Executor } from './executor.js';
import type { FunctionMetrics } from './metrics.js';
import type { PipelineRunner } from './pipeline.js';
import { NoCapacityNow } from './pool.js';

/** A delivery whose function has no free instance is due again after this long. */
const BUSY_RETRY_MS = 250;

export interface DispatcherOptions {
  store: FunctionStore;
  catalog: Catalog;
  executor: Executor;
  pipelines: PipelineRunner;
  /** This process's lease owner id. */
  owner: string;
  logger: Logger;
  metrics?: FunctionMetrics;
  /** Deliveries run at once by this process (default 32). */
  concurrency?: number;
  /** Lease length; renewed every third of it (default 15 s). */
  leaseMs?: number;
  /** Look for due deliveries (retries, other processes' work, expired leases) at least this often (default 500 ms). */
  pollMs?: number;
}

export class Dispatcher {
  private readonly active = new Map<string, AbortController>();
  private running = false;
  private wakeUp?: () => void;
  private loopDone?: Promise<void>;

  constructor(private readonly o: DispatcherOptions) {}

  start(): void {
    this.running = true;
    this.loopDone = this.loop();
  }

  /** New work was queued in this process: look now rather than at the next poll. */
  wake(): void {
    this.wakeUp?.();
  }

  /** Stops claiming; running deliveries are aborted and their leases left to expire (another process or the next start runs them). */
  async stop(): Promise<void> {
    this.running = false;
    this.wake();
    await this.loopDone;
  }

  get inFlight(): number {
    return this.active.size;
  }

  private async loop(): Promise<void> {
    const concurrency = this.o.concurrency ?? 32;
    const leaseMs = this.o.leaseMs ?? 15_000;
    while (this.running) {
      const free = concurrency - this.active.size;
      let claimed: ClaimedDelivery[] = [];
      if (free > 0) {
        try {
          claimed = this.o.store.claim(this.o.owner, free, leaseMs);
        } catch (err) {
          this.o.logger.error({ err }, 'claiming deliveries failed');
        }
      }
      for (const d of claimed) void this.run(d, leaseMs);
      if (claimed.length === free && free > 0) continue;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, this.o.pollMs ?? 500);
        this.wakeUp = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wakeUp = undefined;
    }
    for (const c of this.active.values()) c.abort();
  }

  private async run(d: ClaimedDelivery, leaseMs: number): Promise<void> {
    const abort = new AbortController();
    this.active.set(d.id, abort);
    const { store, owner, logger } = this.o;
    // Renew the lease and look for a cancel request (cron Replace) while the delivery runs.
    const keeper = setInterval(() => {
      try {
        if (!store.renew(d.id, owner, leaseMs)) abort.abort(new Error('lease lost'));
        else if (store.cancelRequested(d.id)) abort.abort(new Error('canceled'));
      } catch (err) {
        logger.error({ err, delivery: d.id }, 'renewing a lease failed');
      }
    }, Math.max(100, Math.floor(leaseMs / 3)));
    try {
      let outcome;
      try {
        outcome = await this.execute(d, abort.signal);
      } catch (err) {
        if (!(err instanceof NoCapacityNow)) throw err;
        // The function runs all it may: the delivery waits in the queue, not in memory.
        store.release(d.id, owner, BUSY_RETRY_MS);
        return;
      }
      if (!this.running && abort.signal.aborted) return; // shutting down: the lease expires, the work is redone
      if (outcome.ok) store.succeed(d.id, owner);
      else if (outcome.canceled) store.finishCanceled(d.id, owner);
      else {
        const state = store.fail(d, owner, outcome.error, { final: outcome.final });
        if (state === 'dead') {
          this.o.metrics?.deadLettered.inc({ project: d.project, function: d.target.name, target: d.target.kind });
          logger.warn({ delivery: d.id, target: d.target, attempts: d.attempts + 1, error: outcome.error.slice(0, 500) }, 'delivery moved to the dead-letter list');
        }
      }
    } catch (err) {
      logger.error({ err, delivery: d.id }, 'running a delivery failed');
      store.fail(d, owner, `internal error: ${(err as Error).message}`);
    } finally {
      clearInterval(keeper);
      this.active.delete(d.id);
      this.wake();
    }
  }

  private async execute(d: ClaimedDelivery, signal: AbortSignal): Promise<{ ok: true } | { ok: false; canceled?: boolean; final?: boolean; error: string }> {
    if (d.target.kind === 'Pipeline') {
      const pl = this.o.catalog.pipeline(d.project, d.target.name);
      if (!pl) return { ok: false, final: true, error: `pipeline ${d.target.name} does not exist` };
      const r = await this.o.pipelines.run(pl, d, signal);
      // A failed run goes to the dead-letter list whole, at once: its steps had their own retries.
      return r.ok ? { ok: true } : { ok: false, canceled: signal.aborted, final: true, error: r.error };
    }
    const fn = this.o.catalog.fn(d.project, d.target.name);
    if (!fn) return { ok: false, final: true, error: `function ${d.target.name} does not exist` };
    const { activation } = await this.o.executor.invoke(fn, d.event, {
      noWait: true,
      trigger: d.trigger,
      idempotencyKey: d.idempotencyKey,
      deliveryId: d.id,
      attempt: d.attempts + 1,
      signal,
    });
    if (activation.outcome === 'success') return { ok: true };
    if (activation.outcome === 'canceled') return { ok: false, canceled: true, error: 'canceled' };
    // The message only: the activation it names keeps the whole error with its stack.
    return { ok: false, error: `${activation.outcome}: ${(activation.error ?? '').split('\n')[0]} (activation ${activation.id})` };
  }
}
