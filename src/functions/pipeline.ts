// Pipeline runs: steps in order, each step's output the next one's input; a parallel step runs its
// branches at once and hands on {branch: output}. Each step (or branch) is retried per its retry
// policy within the run's deadline; every attempt is an activation linked to the run. The run is
// saved after every step, so a run interrupted by a crash resumes after its last finished step
// when its delivery is claimed again.
import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { PIPELINE_DEFAULT_DEADLINE_SECONDS, RETRY_DEFAULTS, type PipelineRun, type PipelineStep, type RetryPolicy, type StepRun } from '../api/functions.js';
import { backoffMs, type ClaimedDelivery, type FunctionStore } from '../store/functions-sqlite.js';
import type { Catalog, PipelineObject } from './catalog.js';
import type { Executor } from './executor.js';

/** Waits `ms`, or less when `signal` aborts; its abort listener goes when the wait ends either way. */
const sleep = (ms: number, signal: AbortSignal): Promise<void> => delay(ms, undefined, { signal }).catch(() => undefined);

export class PipelineRunner {
  constructor(private readonly deps: { catalog: Catalog; executor: Executor; store: FunctionStore }) {}

  async run(pl: PipelineObject, d: ClaimedDelivery, signal: AbortSignal): Promise<{ ok: true; run: PipelineRun } | { ok: false; error: string; run: PipelineRun }> {
    const { store } = this.deps;
    const project = pl.metadata.project!;
    const previous = store.runOfDelivery(d.id);
    const start = new Date();
    const run: PipelineRun =
      previous?.state === 'running'
        ? previous
        : {
            id: randomUUID(),
            project,
            pipeline: pl.metadata.name,
            deliveryId: d.id,
            state: 'running',
            start: start.toISOString(),
            deadline: new Date(start.getTime() + (pl.spec!.deadlineSeconds ?? PIPELINE_DEFAULT_DEADLINE_SECONDS) * 1000).toISOString(),
            input: d.event,
            steps: [],
          };
    store.setPipelineRun(d.id, run.id);
    store.saveRun(run);
    const deadline = Date.parse(run.deadline);
    let input: unknown = run.input;
    for (const step of pl.spec!.steps) {
      const done = run.steps.filter((s) => s.step === step.name && s.outcome === 'success');
      const expected = step.parallel ? step.parallel.length : 1;
      if (done.length === expected) {
        input = step.parallel ? Object.fromEntries(done.map((s) => [s.branch!, s.output])) : done[0]!.output;
        continue;
      }
      // A step interrupted half-way runs again whole (its branches' earlier records are replaced).
      run.steps = run.steps.filter((s) => s.step !== step.name);
      const results = await Promise.all(this.branches(step).map((b) => this.runStep(run, step.name, b, input, deadline, d, signal)));
      run.steps.push(...results);
      const failed = results.find((r) => r.outcome === 'failed');
      if (failed) {
        return this.finish(run, `step ${step.name}${failed.branch ? ` branch ${failed.branch}` : ''} (${failed.function}) failed after ${failed.attempts} attempt(s): ${failed.error}`);
      }
      input = step.parallel ? Object.fromEntries(results.map((r) => [r.branch!, r.output])) : results[0]!.output;
      store.saveRun(run);
    }
    run.output = input;
    return this.finish(run);
  }

  private finish(run: PipelineRun, error?: string): { ok: true; run: PipelineRun } | { ok: false; error: string; run: PipelineRun } {
    run.state = error ? 'failed' : 'succeeded';
    run.end = new Date().toISOString();
    if (error) run.error = error;
    this.deps.store.saveRun(run);
    return error ? { ok: false, error, run } : { ok: true, run };
  }

  private branches(step: PipelineStep): { branch?: string; function: string; retry?: RetryPolicy }[] {
    if (step.parallel) return step.parallel.map((b) => ({ branch: b.name, function: b.function, retry: b.retry ?? step.retry }));
    return [{ function: step.function!, retry: step.retry }];
  }

  private async runStep(
    run: PipelineRun,
    step: string,
    b: { branch?: string; function: string; retry?: RetryPolicy },
    input: unknown,
    deadline: number,
    d: ClaimedDelivery,
    signal: AbortSignal,
  ): Promise<StepRun> {
    const retry = { ...RETRY_DEFAULTS, ...b.retry };
    const t0 = performance.now();
    const rec: StepRun = { step, function: b.function, outcome: 'failed', attempts: 0, activations: [], durationMs: 0 };
    if (b.branch) rec.branch = b.branch;
    for (let attempt = 1; attempt <= retry.maxAttempts; attempt++) {
      if (signal.aborted) {
        rec.error = 'the run was canceled';
        break;
      }
      if (Date.now() >= deadline) {
        rec.error = `the pipeline's deadline (${run.deadline}) passed`;
        break;
      }
      const fn = this.deps.catalog.fn(run.project, b.function);
      rec.attempts = attempt;
      if (!fn) {
        rec.error = `function ${b.function} does not exist`;
        break;
      }
      const inv = await this.deps.executor.invoke(fn, input, {
        trigger: { type: 'pipeline', name: run.pipeline },
        // Stable per run, step and branch: a resumed or retried step sees the same key.
        idempotencyKey: `${d.idempotencyKey}/${run.id}/${step}${b.branch ? `/${b.branch}` : ''}`,
        deliveryId: d.id,
        attempt,
        pipelineRun: run.id,
        step: b.branch ? `${step}/${b.branch}` : step,
        deadline,
        signal,
      });
      rec.activations.push(inv.activation.id);
      if (inv.activation.outcome === 'success') {
        rec.outcome = 'success';
        rec.output = inv.value ?? null;
        delete rec.error;
        break;
      }
      rec.error = `${inv.activation.outcome}: ${(inv.activation.error ?? '').slice(0, 1000)}`;
      if (attempt < retry.maxAttempts) await sleep(Math.min(backoffMs(retry, attempt), Math.max(0, deadline - Date.now())), signal);
    }
    rec.durationMs = Math.round(performance.now() - t0);
    return rec;
  }
}
