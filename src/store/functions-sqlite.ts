// The function service's durable tables in Marina's SQLite file: the delivery queue (asynchronous
// invocations and the dead-letter list), activation records, pipeline runs and cron bookkeeping.
//
// Sharing. Everything a worker needs is in these rows, never only in one process's memory: a
// delivery is claimed with a lease (owner + expiry) in one UPDATE ... RETURNING statement, renewed
// while it runs, and completed only by the lease holder (a fenced UPDATE). A process that dies
// leaves leases that expire, and any process then claims the deliveries again — at-least-once.
// Enqueueing is idempotent: (project, target, idempotency key) is unique, so a CloudEvent sent
// twice, or a cron tick computed by two processes, is queued once.
//
// This opens its own connection to the store's file (WAL mode, busy timeout), so it can live next
// to the object store without sharing its statements or transactions.
import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import type { Activation, Delivery, PipelineRun, RetryPolicy, TriggerRef } from '../api/functions.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS fn_deliveries (
  id TEXT PRIMARY KEY,
  project TEXT NOT NULL, target_kind TEXT NOT NULL, target_name TEXT NOT NULL,
  trigger TEXT NOT NULL,          -- JSON TriggerRef
  trigger_key TEXT,               -- project/kind/name/trigger: the scope of a cron concurrency policy
  idempotency_key TEXT NOT NULL,
  event TEXT NOT NULL,            -- JSON payload handed to the target
  state TEXT NOT NULL,            -- queued | running | done | dead | canceled
  attempts INTEGER NOT NULL DEFAULT 0,  -- finished attempts
  max_attempts INTEGER NOT NULL,
  retry TEXT NOT NULL,            -- JSON RetryPolicy
  not_before INTEGER NOT NULL,    -- ms since epoch
  lease_owner TEXT, lease_until INTEGER,
  cancel INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL, finished_at INTEGER,
  last_error TEXT,
  pipeline_run TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS fn_deliveries_idempotency ON fn_deliveries (project, target_kind, target_name, idempotency_key);
CREATE INDEX IF NOT EXISTS fn_deliveries_due ON fn_deliveries (state, not_before);
CREATE INDEX IF NOT EXISTS fn_deliveries_trigger ON fn_deliveries (trigger_key, state);
CREATE INDEX IF NOT EXISTS fn_deliveries_finished ON fn_deliveries (state, finished_at);
CREATE TABLE IF NOT EXISTS fn_activations (
  id TEXT PRIMARY KEY, project TEXT NOT NULL, function TEXT NOT NULL, start INTEGER NOT NULL,
  pipeline_run TEXT, json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS fn_activations_by_function ON fn_activations (project, function, start);
CREATE INDEX IF NOT EXISTS fn_activations_by_run ON fn_activations (pipeline_run);
CREATE INDEX IF NOT EXISTS fn_activations_by_start ON fn_activations (start);
CREATE TABLE IF NOT EXISTS fn_pipeline_runs (
  id TEXT PRIMARY KEY, project TEXT NOT NULL, pipeline TEXT NOT NULL, delivery_id TEXT NOT NULL,
  start INTEGER NOT NULL, json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS fn_pipeline_runs_by_pipeline ON fn_pipeline_runs (project, pipeline, start);
CREATE INDEX IF NOT EXISTS fn_pipeline_runs_by_delivery ON fn_pipeline_runs (delivery_id);
CREATE TABLE IF NOT EXISTS fn_cron (
  trigger_key TEXT PRIMARY KEY,   -- project/kind/name/trigger
  schedule TEXT NOT NULL,         -- schedule + time zone the next run was computed from
  next_run INTEGER NOT NULL
);
`;

export type TargetKind = 'Function' | 'Pipeline';

export interface EnqueueRequest {
  project: string;
  target: { kind: TargetKind; name: string };
  trigger: TriggerRef;
  triggerKey?: string;
  idempotencyKey: string;
  event: unknown;
  retry: Required<RetryPolicy>;
  notBefore?: number;
}

export interface ClaimedDelivery extends Delivery {
  retry: Required<RetryPolicy>;
  leaseUntil: number;
}

interface DeliveryRow {
  id: string;
  project: string;
  target_kind: TargetKind;
  target_name: string;
  trigger: string;
  idempotency_key: string;
  event: string;
  state: Delivery['state'] | 'done' | 'canceled';
  attempts: number;
  max_attempts: number;
  retry: string;
  not_before: number;
  lease_until: number | null;
  created_at: number;
  last_error: string | null;
  pipeline_run: string | null;
}

export interface ActivationQuery {
  project: string;
  function?: string;
  pipelineRun?: string;
  /** Default 50, at most 1000. */
  limit?: number;
}

export interface FunctionStoreOptions {
  /** The object store's database file (or ':memory:' in tests). */
  path: string;
  now?: () => number;
}

export class FunctionStore {
  readonly db: Database.Database;
  private readonly now: () => number;
  private readonly st;
  private readonly pendingActivations: Activation[] = [];
  private flushScheduled?: NodeJS.Immediate;

  constructor(opts: FunctionStoreOptions) {
    this.now = opts.now ?? Date.now;
    this.db = new Database(opts.path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
    const db = this.db;
    this.st = {
      insert: db.prepare(
        `INSERT OR IGNORE INTO fn_deliveries (id, project, target_kind, target_name, trigger, trigger_key, idempotency_key, event, state,
           max_attempts, retry, not_before, created_at, pipeline_run)
         VALUES (@id, @project, @kind, @name, @trigger, @triggerKey, @idempotencyKey, @event, 'queued', @maxAttempts, @retry, @notBefore, @createdAt, NULL)`,
      ),
      byIdempotency: db.prepare<[string, string, string, string], DeliveryRow>(
        'SELECT * FROM fn_deliveries WHERE project = ? AND target_kind = ? AND target_name = ? AND idempotency_key = ?',
      ),
      byId: db.prepare<[string], DeliveryRow>('SELECT * FROM fn_deliveries WHERE id = ?'),
      claim: db.prepare<[{ owner: string; leaseUntil: number; now: number; max: number }], DeliveryRow>(
        `UPDATE fn_deliveries SET state = 'running', lease_owner = @owner, lease_until = @leaseUntil
         WHERE id IN (SELECT id FROM fn_deliveries
                      WHERE (state = 'queued' AND not_before <= @now) OR (state = 'running' AND lease_until < @now)
                      ORDER BY not_before LIMIT @max)
         RETURNING *`,
      ),
      renew: db.prepare<[number, string, string]>(`UPDATE fn_deliveries SET lease_until = ? WHERE id = ? AND lease_owner = ? AND state = 'running'`),
      succeed: db.prepare<[number, string, string]>(
        `UPDATE fn_deliveries SET state = 'done', finished_at = ?, attempts = attempts + 1, lease_owner = NULL, lease_until = NULL, last_error = NULL
         WHERE id = ? AND lease_owner = ? AND state = 'running'`,
      ),
      retryLater: db.prepare<[number, string, string, string]>(
        `UPDATE fn_deliveries SET state = 'queued', attempts = attempts + 1, not_before = ?, last_error = ?, lease_owner = NULL, lease_until = NULL
         WHERE id = ? AND lease_owner = ? AND state = 'running'`,
      ),
      bury: db.prepare<[number, string, string, string]>(
        `UPDATE fn_deliveries SET state = 'dead', attempts = attempts + 1, finished_at = ?, last_error = ?, lease_owner = NULL, lease_until = NULL
         WHERE id = ? AND lease_owner = ? AND state = 'running'`,
      ),
      release: db.prepare<[number, string, string]>(
        `UPDATE fn_deliveries SET state = 'queued', not_before = ?, lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ? AND state = 'running'`,
      ),
      finishCanceled: db.prepare<[number, string, string]>(
        `UPDATE fn_deliveries SET state = 'canceled', finished_at = ?, lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ?`,
      ),
      rawState: db.prepare<[string], { state: string }>('SELECT state FROM fn_deliveries WHERE id = ?'),
      cancelRequested: db.prepare<[string], { cancel: number }>('SELECT cancel FROM fn_deliveries WHERE id = ?'),
      activeForTrigger: db.prepare<[string], DeliveryRow>(`SELECT * FROM fn_deliveries WHERE trigger_key = ? AND state IN ('queued', 'running')`),
      cancelQueued: db.prepare<[number, string]>(`UPDATE fn_deliveries SET state = 'canceled', finished_at = ? WHERE trigger_key = ? AND state = 'queued'`),
      cancelRunning: db.prepare<[string]>(`UPDATE fn_deliveries SET cancel = 1 WHERE trigger_key = ? AND state = 'running'`),
      setPipelineRun: db.prepare<[string, string]>('UPDATE fn_deliveries SET pipeline_run = ? WHERE id = ?'),
      dead: db.prepare<[string, number], DeliveryRow>(`SELECT * FROM fn_deliveries WHERE project = ? AND state = 'dead' ORDER BY finished_at DESC LIMIT ?`),
      replay: db.prepare<[number, string, string]>(
        `UPDATE fn_deliveries SET state = 'queued', attempts = 0, not_before = ?, cancel = 0, finished_at = NULL, last_error = NULL, pipeline_run = NULL
         WHERE id = ? AND project = ? AND state = 'dead'`,
      ),
      depth: db.prepare<[], { state: string; n: number }>(`SELECT state, COUNT(*) AS n FROM fn_deliveries WHERE state IN ('queued', 'running', 'dead') GROUP BY state`),
      pruneDeliveries: db.prepare<[number]>(`DELETE FROM fn_deliveries WHERE state IN ('done', 'canceled') AND finished_at < ?`),
      insertActivation: db.prepare<[string, string, string, number, string | null, string]>(
        'INSERT INTO fn_activations (id, project, function, start, pipeline_run, json) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      activation: db.prepare<[string, string], { json: string }>('SELECT json FROM fn_activations WHERE id = ? AND project = ?'),
      activationsOfFunction: db.prepare<[string, string, number], { json: string }>(
        'SELECT json FROM fn_activations WHERE project = ? AND function = ? ORDER BY start DESC, rowid DESC LIMIT ?',
      ),
      activationsOfProject: db.prepare<[string, number], { json: string }>('SELECT json FROM fn_activations WHERE project = ? ORDER BY start DESC, rowid DESC LIMIT ?'),
      activationsOfRun: db.prepare<[string, string], { json: string }>('SELECT json FROM fn_activations WHERE pipeline_run = ? AND project = ? ORDER BY start, rowid'),
      pruneActivationsAge: db.prepare<[number]>('DELETE FROM fn_activations WHERE start < ?'),
      pruneActivationsCount: db.prepare<[string, string, string, string, number]>(
        `DELETE FROM fn_activations WHERE project = ? AND function = ? AND rowid <=
           (SELECT rowid FROM fn_activations WHERE project = ? AND function = ? ORDER BY rowid DESC LIMIT 1 OFFSET ?)`,
      ),
      crowdedFunctions: db.prepare<[number], { project: string; function: string }>(
        'SELECT project, function FROM fn_activations GROUP BY project, function HAVING COUNT(*) > ?',
      ),
      upsertRun: db.prepare<[string, string, string, string, number, string]>(
        `INSERT INTO fn_pipeline_runs (id, project, pipeline, delivery_id, start, json) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET json = excluded.json`,
      ),
      run: db.prepare<[string, string], { json: string }>('SELECT json FROM fn_pipeline_runs WHERE id = ? AND project = ?'),
      runOfDelivery: db.prepare<[string], { json: string }>('SELECT json FROM fn_pipeline_runs WHERE delivery_id = ? ORDER BY start DESC LIMIT 1'),
      runsOfPipeline: db.prepare<[string, string, number], { json: string }>(
        'SELECT json FROM fn_pipeline_runs WHERE project = ? AND pipeline = ? ORDER BY start DESC, rowid DESC LIMIT ?',
      ),
      pruneRuns: db.prepare<[number]>('DELETE FROM fn_pipeline_runs WHERE start < ?'),
      cronGet: db.prepare<[string], { schedule: string; next_run: number }>('SELECT schedule, next_run FROM fn_cron WHERE trigger_key = ?'),
      cronInit: db.prepare<[string, string, number]>('INSERT OR REPLACE INTO fn_cron (trigger_key, schedule, next_run) VALUES (?, ?, ?)'),
      cronAdvance: db.prepare<[number, string, number]>('UPDATE fn_cron SET next_run = ? WHERE trigger_key = ? AND next_run = ?'),
      cronKeys: db.prepare<[], { trigger_key: string }>('SELECT trigger_key FROM fn_cron'),
      cronDelete: db.prepare<[string]>('DELETE FROM fn_cron WHERE trigger_key = ?'),
    };
  }

  // ----- the queue -----------------------------------------------------------------------------

  /** Queues a delivery unless one with the same idempotency key exists; returns it and whether it is new. */
  enqueue(req: EnqueueRequest): { delivery: Delivery; created: boolean } {
    const id = randomUUID();
    const now = this.now();
    const info = this.st.insert.run({
      id,
      project: req.project,
      kind: req.target.kind,
      name: req.target.name,
      trigger: JSON.stringify(req.trigger),
      triggerKey: req.triggerKey ?? null,
      idempotencyKey: req.idempotencyKey,
      event: JSON.stringify(req.event ?? null),
      maxAttempts: req.retry.maxAttempts,
      retry: JSON.stringify(req.retry),
      notBefore: req.notBefore ?? now,
      createdAt: now,
    });
    const row = this.st.byIdempotency.get(req.project, req.target.kind, req.target.name, req.idempotencyKey)!;
    return { delivery: toDelivery(row), created: info.changes === 1 };
  }

  /** Claims up to `max` due deliveries (or ones whose lease expired) for `owner` until now + leaseMs. */
  claim(owner: string, max: number, leaseMs: number): ClaimedDelivery[] {
    const now = this.now();
    return this.st.claim.all({ owner, leaseUntil: now + leaseMs, now, max }).map((row) => ({
      ...toDelivery(row),
      retry: JSON.parse(row.retry) as Required<RetryPolicy>,
      leaseUntil: now + leaseMs,
    }));
  }

  /** False when the lease was lost (expired and claimed by another worker). */
  renew(id: string, owner: string, leaseMs: number): boolean {
    return this.st.renew.run(this.now() + leaseMs, id, owner).changes === 1;
  }

  succeed(id: string, owner: string): boolean {
    this.flushActivations();
    return this.st.succeed.run(this.now(), id, owner).changes === 1;
  }

  /**
   * Records a failed attempt: queued again after the backoff, or dead after the last attempt (or
   * at once when `final`). Returns the new state, undefined when the lease was lost.
   */
  fail(d: ClaimedDelivery, owner: string, error: string, opts: { final?: boolean; random?: () => number } = {}): 'queued' | 'dead' | undefined {
    this.flushActivations();
    const attempts = d.attempts + 1;
    const msg = error.slice(0, 4096);
    if (opts.final || attempts >= d.maxAttempts) {
      return this.st.bury.run(this.now(), msg, d.id, owner).changes === 1 ? 'dead' : undefined;
    }
    const delay = backoffMs(d.retry, attempts, opts.random);
    return this.st.retryLater.run(this.now() + delay, msg, d.id, owner).changes === 1 ? 'queued' : undefined;
  }

  /** Gives a claimed delivery back untouched (no attempt counted), due again after `delayMs`. */
  release(id: string, owner: string, delayMs: number): void {
    this.st.release.run(this.now() + delayMs, id, owner);
  }

  finishCanceled(id: string, owner: string): void {
    this.flushActivations();
    this.st.finishCanceled.run(this.now(), id, owner);
  }

  cancelRequested(id: string): boolean {
    return this.st.cancelRequested.get(id)?.cancel === 1;
  }

  /** Deliveries of a trigger that are queued or running (cron concurrency policies). */
  activeForTrigger(triggerKey: string): Delivery[] {
    return this.st.activeForTrigger.all(triggerKey).map(toDelivery);
  }

  /** Replace policy: queued deliveries of the trigger are dropped, running ones asked to stop. */
  cancelTrigger(triggerKey: string): void {
    this.db.transaction(() => {
      this.st.cancelQueued.run(this.now(), triggerKey);
      this.st.cancelRunning.run(triggerKey);
    })();
  }

  /** The row's state including the history states (done, canceled) the API folds away. */
  rawState(id: string): string | undefined {
    return this.st.rawState.get(id)?.state;
  }

  get(id: string): Delivery | undefined {
    const row = this.st.byId.get(id);
    return row ? toDelivery(row) : undefined;
  }

  deadLetters(project: string, limit = 100): Delivery[] {
    return this.st.dead.all(project, Math.min(Math.max(1, limit), 1000)).map(toDelivery);
  }

  /** Queues a dead delivery again with fresh attempts; false if there is none with that id in the project. */
  replay(project: string, id: string): boolean {
    return this.st.replay.run(this.now(), id, project).changes === 1;
  }

  setPipelineRun(deliveryId: string, runId: string): void {
    this.st.setPipelineRun.run(runId, deliveryId);
  }

  depth(): { queued: number; running: number; dead: number } {
    const out = { queued: 0, running: 0, dead: 0 };
    for (const r of this.st.depth.all()) out[r.state as keyof typeof out] = r.n;
    return out;
  }

  // ----- activations and pipeline runs ---------------------------------------------------------

  /**
   * Records an activation. The insert is batched: records of one turn of the event loop are
   * written together in one transaction right after it (setImmediate), so a synchronous call's
   * answer does not wait for SQLite and a burst of calls costs one commit. Every read of
   * activations writes what is pending first, so this process always reads its own records, and
   * so does finishing a delivery or saving a pipeline run, so a finished delivery implies its
   * activations. A crash can lose the records of synchronous calls of that one turn.
   */
  recordActivation(a: Activation): void {
    this.pendingActivations.push(a);
    this.flushScheduled ??= setImmediate(() => this.flushActivations());
  }

  /** Writes the activations recorded but not written yet. */
  flushActivations(): void {
    if (this.flushScheduled) clearImmediate(this.flushScheduled);
    this.flushScheduled = undefined;
    if (this.pendingActivations.length === 0 || !this.db.open) return;
    const batch = this.pendingActivations.splice(0);
    this.db.transaction(() => {
      for (const a of batch) this.st.insertActivation.run(a.id, a.project, a.function, Date.parse(a.start), a.pipelineRun ?? null, JSON.stringify(a));
    })();
  }

  activation(project: string, id: string): Activation | undefined {
    this.flushActivations();
    const row = this.st.activation.get(id, project);
    return row ? (JSON.parse(row.json) as Activation) : undefined;
  }

  activations(q: ActivationQuery): Activation[] {
    this.flushActivations();
    const limit = Math.min(Math.max(1, q.limit ?? 50), 1000);
    const rows = q.pipelineRun
      ? this.st.activationsOfRun.all(q.pipelineRun, q.project)
      : q.function
        ? this.st.activationsOfFunction.all(q.project, q.function, limit)
        : this.st.activationsOfProject.all(q.project, limit);
    return rows.map((r) => JSON.parse(r.json) as Activation);
  }

  saveRun(run: PipelineRun): void {
    this.flushActivations();
    this.st.upsertRun.run(run.id, run.project, run.pipeline, run.deliveryId, Date.parse(run.start), JSON.stringify(run));
  }

  run(project: string, id: string): PipelineRun | undefined {
    const row = this.st.run.get(id, project);
    return row ? (JSON.parse(row.json) as PipelineRun) : undefined;
  }

  runOfDelivery(deliveryId: string): PipelineRun | undefined {
    const row = this.st.runOfDelivery.get(deliveryId);
    return row ? (JSON.parse(row.json) as PipelineRun) : undefined;
  }

  runs(project: string, pipeline: string, limit = 50): PipelineRun[] {
    return this.st.runsOfPipeline.all(project, pipeline, Math.min(Math.max(1, limit), 1000)).map((r) => JSON.parse(r.json) as PipelineRun);
  }

  /** Drops activations and runs older than `maxAgeMs`, activations beyond `maxPerFunction`, and finished deliveries. */
  prune(opts: { maxAgeMs: number; maxPerFunction: number; finishedDeliveryAgeMs: number }): void {
    this.flushActivations();
    const now = this.now();
    this.db.transaction(() => {
      this.st.pruneActivationsAge.run(now - opts.maxAgeMs);
      this.st.pruneRuns.run(now - opts.maxAgeMs);
      for (const f of this.st.crowdedFunctions.all(opts.maxPerFunction)) {
        this.st.pruneActivationsCount.run(f.project, f.function, f.project, f.function, opts.maxPerFunction);
      }
      this.st.pruneDeliveries.run(now - opts.finishedDeliveryAgeMs);
    })();
  }

  // ----- cron bookkeeping ----------------------------------------------------------------------

  cronState(triggerKey: string): { schedule: string; nextRun: number } | undefined {
    const row = this.st.cronGet.get(triggerKey);
    return row ? { schedule: row.schedule, nextRun: row.next_run } : undefined;
  }

  cronInit(triggerKey: string, schedule: string, nextRun: number): void {
    this.st.cronInit.run(triggerKey, schedule, nextRun);
  }

  /**
   * Moves a trigger's next run from `expected` to `next` and runs `enqueue` in the same
   * transaction; false (and nothing queued) when another worker advanced it first.
   */
  cronAdvance(triggerKey: string, expected: number, next: number, enqueue: () => void): boolean {
    return this.db.transaction(() => {
      if (this.st.cronAdvance.run(next, triggerKey, expected).changes !== 1) return false;
      enqueue();
      return true;
    })();
  }

  cronKeys(): string[] {
    return this.st.cronKeys.all().map((r) => r.trigger_key);
  }

  cronDelete(triggerKey: string): void {
    this.st.cronDelete.run(triggerKey);
  }

  close(): void {
    this.flushActivations();
    if (this.db.open) this.db.close();
  }
}

/** Wait before attempt `attempt + 1`: backoff × multiplier^(attempt-1), capped, ±20 % jitter. */
export function backoffMs(p: Required<RetryPolicy>, attempt: number, random: () => number = Math.random): number {
  const base = Math.min(p.maxBackoffSeconds, p.backoffSeconds * p.multiplier ** Math.max(0, attempt - 1)) * 1000;
  return Math.round(base * (0.8 + 0.4 * random()));
}

function toDelivery(row: DeliveryRow): Delivery {
  const d: Delivery = {
    id: row.id,
    project: row.project,
    target: { kind: row.target_kind, name: row.target_name },
    trigger: JSON.parse(row.trigger) as TriggerRef,
    idempotencyKey: row.idempotency_key,
    // done and canceled rows are history; they read as what the API exposes.
    state: row.state === 'dead' ? 'dead' : row.state === 'running' ? 'running' : 'queued',
    attempts: row.attempts,
    maxAttempts: row.max_attempts,
    createdAt: new Date(row.created_at).toISOString(),
    notBefore: new Date(row.not_before).toISOString(),
    event: JSON.parse(row.event) as unknown,
  };
  if (row.last_error) d.lastError = row.last_error;
  if (row.pipeline_run) d.pipelineRun = row.pipeline_run;
  return d;
}
