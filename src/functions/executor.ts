// One invocation of one function: an instance from the pool, the handler call bounded by the
// deadline, and the activation record (always written, whatever happened).
import { randomUUID } from 'node:crypto';
import type { Activation, TriggerRef } from '../api/functions.js';
import { isApiError } from '../api/errors.js';
import type { FunctionStore } from '../store/functions-sqlite.js';
import { timeoutMs, type Catalog, type FunctionObject } from './catalog.js';
import type { FunctionMetrics } from './metrics.js';
import { CapacityError, NoCapacityNow, type InstancePool } from './pool.js';
import type { InvokeResult } from './sandbox/instance.js';

export interface InvokeMeta {
  trigger: TriggerRef;
  /** Default: the invocation id (a synchronous call that is not retried). */
  idempotencyKey?: string;
  deliveryId?: string;
  attempt?: number;
  pipelineRun?: string;
  step?: string;
  /** An earlier deadline than the function's timeout (a pipeline's). */
  deadline?: number;
  /** Aborting kills the invocation's instance (cron Replace policy, shutdown). */
  signal?: AbortSignal;
  /** Throw NoCapacityNow (and record nothing) instead of waiting for a free instance. */
  noWait?: boolean;
}

export interface Invocation {
  activation: Activation;
  /** The full result (the activation keeps a bounded copy). */
  value?: unknown;
}

/** Results kept in an activation record above this size are replaced by a note. */
const MAX_RECORDED_RESULT = 64 * 1024;

export class Executor {
  constructor(
    private readonly deps: { catalog: Catalog; pool?: InstancePool; unavailable?: string; store: FunctionStore; metrics?: FunctionMetrics },
  ) {}

  async invoke(fn: FunctionObject, event: unknown, meta: InvokeMeta): Promise<Invocation> {
    const id = randomUUID();
    const startWall = new Date();
    const t0 = performance.now();
    const deadline = Math.min(Date.now() + timeoutMs(fn), meta.deadline ?? Infinity);
    let revision = fn.metadata.generation ?? 1;
    let result: InvokeResult;
    let cold = false;
    let coldStartMs: number | undefined;
    try {
      const spec = this.deps.catalog.revision(fn);
      revision = spec.revision;
      if (!this.deps.pool) throw new CapacityError(`functions cannot run on this host: ${this.deps.unavailable ?? 'no sandbox'}`);
      const lease = await this.deps.pool.acquire(spec, deadline, meta.noWait);
      cold = lease.cold;
      coldStartMs = lease.coldStartMs;
      const onAbort = () => lease.instance.kill({ outcome: 'canceled', message: 'the invocation was canceled', culprit: id });
      if (meta.signal?.aborted) onAbort();
      meta.signal?.addEventListener('abort', onAbort, { once: true });
      try {
        result = await lease.instance.invoke(event, {
          invocationId: id,
          idempotencyKey: meta.idempotencyKey ?? id,
          deadline,
          attempt: meta.attempt ?? 1,
          function: fn.metadata.name,
          project: fn.metadata.project!,
          revision,
          trigger: meta.trigger,
        });
      } finally {
        meta.signal?.removeEventListener('abort', onAbort);
        lease.release();
      }
    } catch (err) {
      if (err instanceof NoCapacityNow) throw err;
      const message = isApiError(err) ? `the function does not compile: ${err.message}` : err instanceof CapacityError ? err.message : `the instance could not start: ${(err as Error).message}`;
      result = { outcome: 'error', error: message, logs: [], logsTruncated: false };
    }
    const activation: Activation = {
      id,
      project: fn.metadata.project!,
      function: fn.metadata.name,
      revision,
      trigger: meta.trigger,
      attempt: meta.attempt ?? 1,
      start: startWall.toISOString(),
      end: new Date().toISOString(),
      durationMs: Math.round((performance.now() - t0) * 1000) / 1000,
      coldStart: cold,
      outcome: result.outcome,
    };
    if (meta.idempotencyKey) activation.idempotencyKey = meta.idempotencyKey;
    if (meta.deliveryId) activation.deliveryId = meta.deliveryId;
    if (meta.pipelineRun) activation.pipelineRun = meta.pipelineRun;
    if (meta.step) activation.step = meta.step;
    if (coldStartMs !== undefined) activation.coldStartMs = Math.round(coldStartMs * 1000) / 1000;
    if (result.outcome === 'success') activation.result = boundedResult(result.value);
    if (result.error !== undefined) activation.error = result.error;
    if (result.logs.length) activation.logs = result.logs;
    if (result.logsTruncated) activation.logsTruncated = true;
    this.deps.store.recordActivation(activation);
    this.deps.metrics?.observe(activation);
    return result.outcome === 'success' ? { activation, value: result.value } : { activation };
  }
}

function boundedResult(value: unknown): unknown {
  const text = JSON.stringify(value) ?? 'null';
  return text.length <= MAX_RECORDED_RESULT ? value : { truncated: true, bytes: text.length, head: text.slice(0, 1024) };
}
