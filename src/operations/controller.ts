// The Operation controller: drives an Operation through Pending → (AwaitingApproval →) Running →
// Succeeded | Failed | Cancelled, one named step after the other. Level-based and restart-safe:
//   - every transition is written with the resourceVersion it was computed from, so the API's
//     approve/reject/cancel and this controller never overwrite each other (a conflict re-reads);
//   - a step is marked Running (written) before it runs, and a disruptive step only once that
//     write went through: a cancel either lands before it (and wins) or is refused after it;
//   - what a step did is in its record; after a crash the step runs again from its record;
//   - a step that keeps failing or waiting past its timeout ends the operation Failed with a
//     message — nothing is retried forever.
import { setCondition } from '../api/conditions.js';
import { needsApproval } from '../api/backup-policy.js';
import type { Cluster } from '../api/kinds.js';
import type { ObjectKey } from '../api/meta.js';
import type { Operation, OperationStatus, OperationStep } from '../api/operations.js';
import { LABEL_CLUSTER, OperationCondition } from '../api/wellknown.js';
import type { ReconcileContext, Reconciler, Result } from '../runtime/controller.js';
import { typed } from '../store/typed.js';
import { operationEvent, type OperationEventType } from '../events/platform.js';
import type { OperationDeps, OperationDefinition, StepScope } from './framework.js';
import { holderOf, isDisruptive, isTerminal } from './rules.js';

const DEFAULT_STEP_TIMEOUT_MS = 15 * 60_000;
const DEFAULT_POLL_MS = 2000;

type Status = OperationStatus;

const now = () => new Date().toISOString();

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class OperationReconciler implements Reconciler {
  private readonly ops;
  private readonly clusters;
  private readonly projects;

  constructor(
    private readonly deps: OperationDeps,
    private readonly definitions: ReadonlyMap<string, OperationDefinition>,
  ) {
    this.ops = typed(deps.store, 'Operation');
    this.clusters = typed(deps.store, 'Cluster');
    this.projects = typed(deps.store, 'Project');
  }

  async reconcile(key: ObjectKey, ctx: ReconcileContext): Promise<Result> {
    const op = await this.ops.get(key.project, key.name);
    if (!op || op.metadata.deletionTimestamp || isTerminal(op)) return;
    const def = this.definitions.get(op.spec.type);
    if (!def) return this.finish(op, 'Failed', `Marina has no operation type ${op.spec.type}`, ctx);
    const cluster = await this.clusters.get(key.project, op.spec.cluster);
    const st = op.status ?? {};
    if (st.cancelledBy) return this.end(op, def, cluster, 'Cancelled', `cancelled by ${st.cancelledBy.user}`, ctx);
    if (st.rejectedBy) return this.end(op, def, cluster, 'Cancelled', `rejected by ${st.rejectedBy.user}${st.rejectedBy.comment ? `: ${st.rejectedBy.comment}` : ''}`, ctx);
    if (!cluster || cluster.metadata.deletionTimestamp) return this.end(op, def, cluster, 'Failed', `cluster ${op.spec.cluster} ${cluster ? 'is being deleted' : 'does not exist'}`, ctx);

    const phase = st.phase ?? 'Pending';
    if (phase === 'Pending' || phase === 'AwaitingApproval') {
      const project = await this.projects.get('', key.project);
      const required = needsApproval(op.spec.type, cluster.spec, project?.spec);
      if (required && !st.approvedBy) {
        if (phase !== 'AwaitingApproval' || !st.approvalRequired) {
          await this.write(op, { ...st, phase: 'AwaitingApproval', approvalRequired: true, message: 'waiting for another operator to approve it' }, ctx);
        }
        return;
      }
      return this.start(op, def, cluster, required, ctx);
    }
    return this.advance(op, def, cluster, ctx);
  }

  /** Pending → Running: the cluster is ours (one disruptive operation at a time), the steps laid out. */
  private async start(op: Operation, def: OperationDefinition, cluster: Cluster, approvalRequired: boolean, ctx: ReconcileContext): Promise<Result> {
    const siblings = await this.ops.list({ project: op.metadata.project ?? '', labelSelector: `${LABEL_CLUSTER}=${op.spec.cluster}` });
    const holder = holderOf(siblings, op.spec.cluster, op);
    if (holder && isDisruptive(op)) {
      return this.finish(op, 'Failed', `another disruptive operation runs on cluster ${op.spec.cluster}: ${holder.metadata.name} (${holder.spec.type}); run this one again after it`, ctx);
    }
    const steps: OperationStep[] = def.steps.map((s) => ({ name: s.name, state: 'Pending', ...(s.disruptive ? { disruptive: true } : {}) }));
    const status: Status = {
      ...op.status,
      phase: 'Running',
      approvalRequired,
      steps,
      progress: 0,
      startTime: now(),
      clusterGeneration: cluster.metadata.generation ?? 0,
      clusterUID: cluster.metadata.uid ?? '',
      message: `running ${def.steps[0]?.name ?? ''}`,
    };
    const written = await this.write(op, status, ctx);
    await this.publish(written, 'dev.marina.operation.phase-changed');
    return this.advance(written, def, cluster, ctx);
  }

  /** Runs steps from the first unfinished one until one waits, fails, or all are done. */
  private async advance(start: Operation, def: OperationDefinition, cluster: Cluster, ctx: ReconcileContext): Promise<Result> {
    let op = start;
    const pollMs = this.deps.pollMs ?? DEFAULT_POLL_MS;
    for (;;) {
      const steps = op.status?.steps ?? [];
      const i = steps.findIndex((s) => s.state !== 'Succeeded' && s.state !== 'Skipped');
      if (i < 0) return this.finish(op, 'Succeeded', op.status?.message ?? 'done', ctx);
      const step = steps[i]!;
      const stepDef = def.steps.find((s) => s.name === step.name);
      if (!stepDef) return this.end(op, def, cluster, 'Failed', `step ${step.name} is unknown to this Marina`, ctx);
      if (step.state === 'Pending') {
        // Written before the step runs: for a disruptive step, this is the point of no cancel.
        op = await this.write(op, withStep(op.status!, i, { ...step, state: 'Running', startedAt: now() }, `running ${step.name}`), ctx);
        continue;
      }
      const record = { ...(step.record ?? {}) };
      const result: Record<string, string> = { ...(op.status?.result ?? {}) };
      const records = Object.fromEntries(steps.slice(0, i).map((s) => [s.name, s.record ?? {}]));
      const sc: StepScope = {
        op,
        cluster,
        deps: this.deps,
        signal: ctx.signal,
        log: ctx.log.child({ step: step.name }),
        record,
        records,
        result: (k, v) => void (result[k] = v),
      };
      const timeoutMs = stepDef.timeoutMs ?? this.deps.stepTimeoutMs ?? DEFAULT_STEP_TIMEOUT_MS;
      const overdue = Date.now() - Date.parse(step.startedAt ?? now()) > timeoutMs;
      let outcome;
      try {
        outcome = await stepDef.run(sc);
      } catch (err) {
        ctx.signal.throwIfAborted();
        const attempts = Number(record.attempts ?? 0) + 1;
        record.attempts = attempts;
        const message = `${step.name}: ${errorMessage(err)}`;
        if (overdue) return this.end(op, def, cluster, 'Failed', `${message} (gave up after ${Math.round(timeoutMs / 1000)} s)`, ctx, { ...step, record, state: 'Failed', finishedAt: now(), message });
        const next: Status = withStep(op.status!, i, { ...step, record, message: `retrying (attempt ${attempts}): ${errorMessage(err)}`.slice(0, 4096) });
        if (Object.keys(result).length > 0) next.result = result;
        await this.write(op, next, ctx);
        return { requeueAfterMs: Math.min(pollMs * 2 ** Math.min(attempts, 4), 30_000) };
      }
      ctx.signal.throwIfAborted();
      if ('fail' in outcome) {
        return this.end(op, def, cluster, 'Failed', `${step.name}: ${outcome.fail}`, ctx, { ...step, record, state: 'Failed', finishedAt: now(), message: outcome.fail.slice(0, 4096) });
      }
      if ('wait' in outcome) {
        if (overdue) {
          const message = `${step.name}: still ${outcome.message} after ${Math.round(timeoutMs / 1000)} s`;
          return this.end(op, def, cluster, 'Failed', message, ctx, { ...step, record, state: 'Failed', finishedAt: now(), message: message.slice(0, 4096) });
        }
        const next: Status = withStep(op.status!, i, { ...step, record, message: outcome.message.slice(0, 4096) }, `${step.name}: ${outcome.message}`);
        if (Object.keys(result).length > 0) next.result = result;
        await this.write(op, next, ctx);
        return { requeueAfterMs: outcome.afterMs ?? pollMs };
      }
      const message = 'skip' in outcome ? outcome.skip : outcome.message;
      const finished: OperationStep = { ...step, record, state: 'skip' in outcome ? 'Skipped' : 'Succeeded', finishedAt: now(), ...(message ? { message: message.slice(0, 4096) } : {}) };
      const next = withStep(op.status!, i, finished, message ?? `${step.name} done`);
      if (Object.keys(result).length > 0) next.result = result;
      op = await this.write(op, next, ctx);
    }
  }

  /** Ends the operation after running its type's cleanup; the message says what state the cluster is in. */
  private async end(
    op: Operation,
    def: OperationDefinition,
    cluster: Cluster | undefined,
    phase: 'Failed' | 'Cancelled',
    message: string,
    ctx: ReconcileContext,
    failedStep?: OperationStep,
  ): Promise<Result> {
    let status = op.status ?? {};
    if (failedStep) {
      const i = (status.steps ?? []).findIndex((s) => s.name === failedStep.name);
      if (i >= 0) status = withStep(status, i, failedStep);
    }
    let tail: string | undefined;
    if (def.cleanup && cluster && (status.steps ?? []).some((s) => s.state !== 'Pending')) {
      tail = await def
        .cleanup({ op: { ...op, status }, cluster, deps: this.deps, signal: ctx.signal, log: ctx.log, records: Object.fromEntries((status.steps ?? []).map((s) => [s.name, s.record ?? {}])) }, phase === 'Failed' ? 'failed' : 'cancelled')
        .catch((err: unknown) => `cleanup failed: ${errorMessage(err)}`);
    }
    return this.finish({ ...op, status }, phase, tail ? `${message}; ${tail}` : message, ctx);
  }

  private async finish(op: Operation, phase: 'Succeeded' | 'Failed' | 'Cancelled', message: string, ctx: ReconcileContext): Promise<Result> {
    const st = op.status ?? {};
    const steps = (st.steps ?? []).map((s) => (phase !== 'Succeeded' && s.state === 'Pending' ? { ...s, state: 'Skipped' as const } : s));
    const status: Status = { ...st, phase, steps, completionTime: now(), message: message.slice(0, 8192), progress: progressOf(steps, phase) };
    status.conditions = setCondition(st.conditions, { type: OperationCondition.Complete, status: 'True', reason: phase, message: message.slice(0, 32768) }, op.metadata.generation);
    const written = await this.write(op, status, ctx);
    ctx.log.info({ phase, message }, 'operation ended');
    await this.publish(written, 'dev.marina.operation.finished');
    if (phase === 'Failed' && op.spec.type === 'Snapshot') await this.publish(written, 'dev.marina.backup.failed');
    return;
  }

  private async publish(op: Operation, type: OperationEventType): Promise<void> {
    try {
      await this.deps.events.publish(operationEvent(op, type));
    } catch {
      /* the event sink's failure is not the operation's */
    }
  }

  /** Writes status with the resourceVersion read; a conflict propagates (the controller retries against fresh state). */
  private async write(op: Operation, status: Status, ctx: ReconcileContext): Promise<Operation> {
    ctx.signal.throwIfAborted();
    const progress = progressOf(status.steps ?? [], status.phase ?? 'Pending');
    return this.ops.updateStatus({ ...op, status: { ...status, progress, observedGeneration: op.metadata.generation } });
  }
}

function withStep(status: Status, i: number, step: OperationStep, message?: string): Status {
  const steps = [...(status.steps ?? [])];
  steps[i] = step;
  return { ...status, steps, ...(message ? { message: message.slice(0, 8192) } : {}) };
}

function progressOf(steps: readonly OperationStep[], phase: string): number {
  if (phase === 'Succeeded') return 100;
  if (steps.length === 0) return 0;
  return Math.floor((100 * steps.filter((s) => s.state === 'Succeeded' || s.state === 'Skipped').length) / steps.length);
}
