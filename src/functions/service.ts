// The function service: sandbox host, warm pool, instance pools, executor, durable dispatcher,
// cron scheduler and the event bus (the controllers and the AlertManager publish on it), started
// and stopped together.
import { randomUUID } from 'node:crypto';
import { pino, type Logger } from 'pino';
import type { Registry } from 'prom-client';
import { ApiError } from '../api/errors.js';
import { FUNCTION_DEFAULTS, RETRY_DEFAULTS, type CloudEvent, type Delivery, type RetryPolicy, type TriggerRef } from '../api/functions.js';
import { FunctionStore, type TargetKind } from '../store/functions-sqlite.js';
import { jsonEqual } from '../api/json.js';
import type { Store } from '../store/types.js';
import type { Condition } from '../api/meta.js';
import { setCondition, type ConditionInput } from '../api/conditions.js';
import { Catalog, type FunctionObject } from './catalog.js';
import { CronScheduler } from './cron.js';
import { Dispatcher } from './dispatcher.js';
import { PROJECT_ATTRIBUTE, type EventBus } from '../events/bus.js';
import { matchesFilter } from './events.js';
import { Executor, type InvokeMeta, type Invocation } from './executor.js';
import { FunctionMetrics } from './metrics.js';
import { PipelineRunner } from './pipeline.js';
import { InstancePool } from './pool.js';
import { detectSandboxHost, type SandboxHost } from './sandbox/host.js';
import { profileKey, WarmPool } from './warm-pool.js';
import type { SandboxProfile } from './sandbox/command.js';

export interface FunctionServiceOptions {
  store: Store;
  /** Marina's database file (the queue and records live beside the objects); ':memory:' in unit tests. */
  dbPath: string;
  metrics?: Registry;
  logger?: Logger;
  /** Default: detected (bubblewrap required). */
  host?: SandboxHost;
  /** Warm spares per sandbox profile (default 2). */
  spares?: number;
  dispatcher?: { concurrency?: number; leaseMs?: number; pollMs?: number };
  /** Cron check interval (default 1000 ms). */
  cronTickMs?: number;
  /** Activation and pipeline-run retention. */
  retention?: { maxAgeMs?: number; maxPerFunction?: number };
}

const RETENTION = { maxAgeMs: 7 * 24 * 3600_000, maxPerFunction: 1000, finishedDeliveryAgeMs: 24 * 3600_000 };

export class FunctionService implements EventBus {
  readonly records: FunctionStore;
  readonly catalog: Catalog;
  readonly pool?: InstancePool;
  readonly warm?: WarmPool;
  /** Set when this host cannot sandbox; every invocation then fails with it. */
  readonly unavailable?: string;
  private readonly executor: Executor;
  private readonly dispatcher: Dispatcher;
  private readonly cron: CronScheduler;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly logger: Logger;
  private readonly host?: SandboxHost;

  private constructor(
    private readonly opts: FunctionServiceOptions,
    catalog: Catalog,
  ) {
    this.logger = opts.logger ?? pino({ level: 'info' });
    this.catalog = catalog;
    this.records = new FunctionStore({ path: opts.dbPath });
    let host = opts.host;
    if (!host) {
      try {
        host = detectSandboxHost();
      } catch (err) {
        this.unavailable = (err as Error).message;
        this.logger.error({ err }, 'functions cannot run on this host');
      }
    }
    this.host = host;
    if (host) {
      host.cgroups?.cleanupStale();
      for (const note of host.notes) this.logger.warn(`function sandbox: ${note}`);
      this.warm = new WarmPool({ host, spares: opts.spares, onError: (err) => this.logger.error({ err }, 'starting a warm sandbox failed') });
      this.pool = new InstancePool(this.warm, { onInstanceError: (spec, err) => this.logger.warn({ fn: `${spec.project}/${spec.name}`, err: err.message }, 'function instance failed to load') });
    }
    const metrics = opts.metrics
      ? new FunctionMetrics(opts.metrics, {
          instances: () => this.pool?.instanceCounts() ?? new Map(),
          spares: () => this.warm?.size() ?? 0,
          queue: () => this.records.depth(),
        })
      : undefined;
    this.executor = new Executor({ catalog, pool: this.pool, unavailable: this.unavailable, store: this.records, metrics });
    const pipelines = new PipelineRunner({ catalog, executor: this.executor, store: this.records });
    this.dispatcher = new Dispatcher({
      store: this.records,
      catalog,
      executor: this.executor,
      pipelines,
      owner: `marina-${process.pid}-${randomUUID().slice(0, 8)}`,
      logger: this.logger,
      ...(metrics ? { metrics } : {}),
      ...opts.dispatcher,
    });
    this.cron = new CronScheduler({
      store: this.records,
      catalog,
      onQueued: () => this.dispatcher.wake(),
      onSkip: (key, scheduled, why) => this.logger.info({ trigger: key, scheduled: new Date(scheduled).toISOString() }, `cron run skipped: ${why}`),
    });
  }

  static async start(opts: FunctionServiceOptions): Promise<FunctionService> {
    const svc = new FunctionService(opts, await Catalog.start(opts.store));
    svc.catalog.onChange((ev) => {
      if (ev.object.kind !== 'Function') return;
      svc.onFunctionChanged(ev.type === 'DELETED' ? undefined : (ev.object as FunctionObject), ev.object.metadata.project!, ev.object.metadata.name);
    });
    for (const fn of svc.catalog.functions()) svc.onFunctionChanged(fn, fn.metadata.project!, fn.metadata.name);
    svc.dispatcher.start();
    const tick = () => {
      try {
        svc.cron.tick();
      } catch (err) {
        svc.logger.error({ err }, 'cron tick failed');
      }
    };
    tick();
    svc.timers.push(setInterval(tick, opts.cronTickMs ?? 1000));
    const retention = { ...RETENTION, ...opts.retention };
    svc.timers.push(setInterval(() => svc.records.prune(retention), 60_000));
    return svc;
  }

  /** A synchronous invocation (HTTP trigger, API invoke): the activation and the handler's result. */
  invoke(fn: FunctionObject, event: unknown, meta: InvokeMeta): Promise<Invocation> {
    return this.executor.invoke(fn, event, meta);
  }

  /** Queues an asynchronous invocation of a Function or a run of a Pipeline. */
  enqueue(o: { project: string; kind: TargetKind; name: string; event: unknown; trigger: TriggerRef; idempotencyKey?: string; retry?: RetryPolicy }): { delivery: Delivery; created: boolean } {
    const r = this.records.enqueue({
      project: o.project,
      target: { kind: o.kind, name: o.name },
      trigger: o.trigger,
      idempotencyKey: o.idempotencyKey ?? randomUUID(),
      event: o.event,
      retry: { ...RETRY_DEFAULTS, ...o.retry },
    });
    if (r.created) this.dispatcher.wake();
    return r;
  }

  replay(project: string, id: string): void {
    if (!this.records.replay(project, id)) throw new ApiError(404, 'NotFound', `dead letter ${JSON.stringify(id)} not found`);
    this.dispatcher.wake();
  }

  /** The EventBus: queues a delivery for every subscription in the event's project whose filter matches. */
  async publish(event: CloudEvent): Promise<void> {
    const project = event[PROJECT_ATTRIBUTE];
    if (typeof project !== 'string') throw new Error(`event ${event.id} has no ${PROJECT_ATTRIBUTE} attribute`);
    const subscribers = [
      ...this.catalog.functions().map((f) => ({ kind: 'Function' as const, obj: f, triggers: f.spec?.triggers?.events ?? [] })),
      ...this.catalog.pipelines().map((p) => ({ kind: 'Pipeline' as const, obj: p, triggers: p.spec?.triggers?.events ?? [] })),
    ].filter((s) => s.obj.metadata.project === project);
    for (const s of subscribers) {
      for (const t of s.triggers) {
        if (!matchesFilter(t.filter, event)) continue;
        this.enqueue({
          project,
          kind: s.kind,
          name: s.obj.metadata.name,
          event,
          trigger: { type: 'event', name: t.name },
          idempotencyKey: `event:${t.name}:${event.source}:${event.id}`,
          ...(t.retry ? { retry: t.retry } : {}),
        });
      }
    }
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.catalog.stop();
    await this.dispatcher.stop();
    await this.pool?.close();
    await this.warm?.close();
    this.host?.cgroups?.close();
    this.records.close();
  }

  /** Status: the revision that takes new invocations, its HTTP path, Ready. Unchanged status writes nothing. */
  private writeStatus(fn: FunctionObject, ready: ConditionInput, revision?: number): void {
    const gen = fn.metadata.generation ?? 1;
    const old = (fn.status ?? {}) as { revision?: number; url?: string; conditions?: Condition[] };
    const status: Record<string, unknown> = { ...old, observedGeneration: gen, conditions: setCondition(old.conditions, ready, gen) };
    if (revision !== undefined) status.revision = revision;
    if (fn.spec?.triggers?.http?.enabled !== false) status.url = `/fn/${fn.metadata.project}/${fn.metadata.name}`;
    else delete status.url;
    if (jsonEqual(status, fn.status ?? {})) return;
    // A conflict means a newer version exists; its watch event writes the status again.
    this.opts.store.updateStatus({ ...fn, status }).catch(() => undefined);
  }

  /** A new revision drains the old ones; warm spares follow the profiles in use; minInstances are started. */
  private onFunctionChanged(fn: FunctionObject | undefined, project: string, name: string): void {
    if (!this.pool || !this.warm) return;
    let revision: number | undefined;
    if (fn) {
      try {
        const spec = this.catalog.revision(fn);
        revision = spec.revision;
        if (spec.minInstances > 0) this.pool.ensureMin(spec);
        this.writeStatus(fn, { type: 'Ready', status: 'True', reason: 'Compiled', message: `revision ${revision} takes new invocations` }, revision);
      } catch (err) {
        this.logger.warn({ fn: `${project}/${name}`, err: (err as Error).message }, 'function does not compile');
        this.writeStatus(fn, { type: 'Ready', status: 'False', reason: 'CompileFailed', message: (err as Error).message.slice(0, 4096) });
      }
    }
    this.pool.drainOthers(project, name, revision);
    // Spares for every profile in use, and always for the default one (the likeliest next function).
    const profiles = new Map<string, SandboxProfile>();
    for (const p of [{ memoryMiB: FUNCTION_DEFAULTS.memoryMiB, network: false }, ...this.catalog.functions().map((f) => ({ memoryMiB: f.spec?.limits?.memoryMiB ?? FUNCTION_DEFAULTS.memoryMiB, network: f.spec?.network === true }))]) {
      profiles.set(profileKey(p), p);
    }
    this.warm.setProfiles([...profiles.values()]);
  }
}
