// What the console's function and pipeline pages show: a function's revision, readiness,
// triggers and limits; the outcome of an activation; the event typed into the invoke form; and a
// pipeline run laid out step by step in the pipeline's order, each step with its attempts'
// activations. Pure: the pages in console/src/pages fetch and render.
import type { Activation, PipelineRunTrace } from '../client/index.js';
import type { Condition, Resource } from '../api/meta.js';
import type { Tone } from './summary.js';

/** Loose shapes of the kinds (every field optional): the console shows what is there. */
export interface RetryView {
  maxAttempts?: number;
}
export interface FunctionSpecView {
  source?: { language?: string; code?: string; files?: Record<string, string>; entry?: string };
  env?: Record<string, string>;
  secretEnv?: { name: string; secret: string; key: string }[];
  network?: boolean;
  limits?: { timeoutSeconds?: number; memoryMiB?: number; concurrency?: number; targetInFlight?: number; minInstances?: number; maxInstances?: number; idleSeconds?: number };
  triggers?: {
    http?: { enabled?: boolean; public?: boolean };
    cron?: { name: string; schedule: string; timeZone?: string; concurrencyPolicy?: string; missedRunPolicy?: string }[];
    events?: { name: string; filter: { types?: string[]; source?: string; subject?: string } }[];
    asyncRetry?: RetryView;
  };
}
export type FunctionView = Resource<FunctionSpecView, { revision?: number; url?: string; conditions?: Condition[]; observedGeneration?: number }>;

export interface PipelineStepView {
  name: string;
  function?: string;
  parallel?: { name: string; function: string }[];
  retry?: RetryView;
}
export type PipelineView = Resource<{ steps?: PipelineStepView[]; deadlineSeconds?: number; triggers?: FunctionSpecView['triggers'] }>;

// Marina's defaults (src/api/functions.ts FUNCTION_DEFAULTS), for showing the limits in effect.
const DEFAULT_LIMITS = { timeoutSeconds: 30, memoryMiB: 128, concurrency: 10, minInstances: 0, maxInstances: 10, idleSeconds: 60 };

export interface FunctionOverview {
  /** The revision that takes new calls (undefined before the service loaded one). */
  revision?: number;
  generation: number;
  ready: 'True' | 'False' | 'Unknown';
  readyReason?: string;
  readyMessage?: string;
  tone: Tone;
  /** The HTTP trigger's path, when it is on. */
  url?: string;
  /** The newest spec is the revision that runs. */
  current: boolean;
}

export function functionOverview(fn: FunctionView): FunctionOverview {
  const generation = fn.metadata.generation ?? 1;
  const cond = fn.status?.conditions?.find((c) => c.type === 'Ready');
  const ready = cond?.status === 'True' || cond?.status === 'False' ? cond.status : 'Unknown';
  const current = fn.status?.revision === generation;
  return {
    revision: fn.status?.revision,
    generation,
    ready,
    ...(cond?.reason ? { readyReason: cond.reason } : {}),
    ...(cond?.message ? { readyMessage: cond.message } : {}),
    tone: ready === 'False' ? 'bad' : ready === 'True' && current ? 'ok' : 'warn',
    ...(fn.status?.url ? { url: fn.status.url } : {}),
    current,
  };
}

export interface TriggerLine {
  kind: 'http' | 'cron' | 'event';
  name: string;
  detail: string;
}

/** Every trigger of a function (or pipeline), one line each; the HTTP trigger only for functions. */
export function triggerLines(spec: FunctionSpecView | undefined, http: { project: string; name: string } | undefined): TriggerLine[] {
  const t = spec?.triggers;
  const out: TriggerLine[] = [];
  if (http && t?.http?.enabled !== false) {
    out.push({ kind: 'http', name: 'HTTP', detail: `/fn/${http.project}/${http.name} (${t?.http?.public ? 'public: no token needed' : 'token of a project member'})` });
  }
  for (const c of t?.cron ?? []) {
    const policies = [c.concurrencyPolicy ?? 'Allow', `missed runs: ${c.missedRunPolicy ?? 'RunOnce'}`].join(', ');
    out.push({ kind: 'cron', name: c.name, detail: `${c.schedule} (${c.timeZone ?? 'UTC'}; ${policies})` });
  }
  for (const e of t?.events ?? []) {
    const f = e.filter ?? {};
    const parts = [f.types?.length ? `types ${f.types.join(', ')}` : 'every type', f.source ? `source ${f.source}*` : undefined, f.subject ? `subject ${f.subject}` : undefined];
    out.push({ kind: 'event', name: e.name, detail: parts.filter(Boolean).join('; ') });
  }
  return out;
}

/** The limits in effect, defaults filled in: [label, value]. */
export function limitRows(spec: FunctionSpecView | undefined): [string, string][] {
  const l = { ...DEFAULT_LIMITS, ...spec?.limits };
  const target = l.targetInFlight ?? Math.max(1, Math.floor(l.concurrency * 0.7));
  return [
    ['Timeout', `${l.timeoutSeconds} s`],
    ['Memory', `${l.memoryMiB} MiB`],
    ['Concurrency per instance', `${l.concurrency} (a new instance above ${target} in flight)`],
    ['Instances', `${l.minInstances}–${l.maxInstances}${l.minInstances === 0 ? ' (scales to zero)' : ''}`],
    ['Idle before scale-down', `${l.idleSeconds} s`],
    ['Network', spec?.network ? 'yes' : 'none (loopback only)'],
    ['Asynchronous retries', `${spec?.triggers?.asyncRetry?.maxAttempts ?? 3} attempts`],
  ];
}

export function outcomeTone(outcome: string | undefined): Tone {
  if (outcome === 'success' || outcome === 'succeeded') return 'ok';
  if (outcome === 'canceled' || outcome === 'running' || outcome === 'pending') return 'warn';
  if (outcome === undefined || outcome === 'not run') return 'neutral';
  return 'bad';
}

/** The first line of an error (its message without the stack). */
export function errorHeadline(error: string | undefined): string {
  return (error ?? '').split('\n')[0]!.trim();
}

/**
 * The invoke form's text as the event: empty is no event (the handler gets null), otherwise JSON;
 * a parse error names where.
 */
export function parseEventText(text: string): { ok: true; event: unknown } | { ok: false; error: string } {
  if (text.trim() === '') return { ok: true, event: undefined };
  try {
    return { ok: true, event: JSON.parse(text) };
  } catch (e) {
    return { ok: false, error: `The event is not JSON: ${(e as Error).message}` };
  }
}

/** A value as the page shows it: strings as they are, anything else as indented JSON. */
export function showValue(v: unknown): string {
  if (v === undefined) return '';
  return typeof v === 'string' ? v : JSON.stringify(v, null, 2);
}

export type StepState = 'succeeded' | 'failed' | 'running' | 'pending' | 'not run';

export interface TracedBranch {
  /** The branch name of a parallel step; undefined for a plain step. */
  branch?: string;
  function: string;
  state: StepState;
  attempts: number;
  durationMs?: number;
  error?: string;
  /** Every attempt's activation, oldest first (ids the trace names but no longer has are left out). */
  activations: Activation[];
}

export interface TracedStep {
  index: number;
  name: string;
  parallel: boolean;
  state: StepState;
  branches: TracedBranch[];
}

/**
 * A run laid out in the pipeline's order: finished steps from the run's record, the next one
 * running while the run is, the rest pending (or "not run" after a failure). Uses the run's own
 * step list for steps the pipeline no longer has.
 */
export function traceRun(pipeline: PipelineView | undefined, run: PipelineRunTrace): TracedStep[] {
  const byId = new Map(run.activations.map((a) => [a.id, a]));
  const specSteps: PipelineStepView[] = pipeline?.spec?.steps?.length
    ? pipeline.spec.steps
    : [...new Map(run.steps.map((s) => [s.step, { name: s.step, function: s.branch ? undefined : s.function }])).values()];
  const done = new Map<string, PipelineRunTrace['steps']>();
  for (const s of run.steps) done.set(s.step, [...(done.get(s.step) ?? []), s]);
  let reachedOpen = false;
  return specSteps.map((spec, i) => {
    const records = done.get(spec.name) ?? [];
    const wanted = spec.parallel ? spec.parallel.map((b) => ({ branch: b.name as string | undefined, function: b.function })) : [{ branch: undefined, function: spec.function ?? records[0]?.function ?? '?' }];
    const open: StepState = run.state === 'running' && !reachedOpen ? 'running' : run.state === 'running' ? 'pending' : 'not run';
    const branches: TracedBranch[] = wanted.map((w) => {
      const rec = records.find((r) => (r.branch ?? undefined) === w.branch);
      if (!rec) return { ...(w.branch ? { branch: w.branch } : {}), function: w.function, state: open, attempts: 0, activations: [] };
      return {
        ...(w.branch ? { branch: w.branch } : {}),
        function: rec.function,
        state: rec.outcome === 'success' ? 'succeeded' : 'failed',
        attempts: rec.attempts,
        durationMs: rec.durationMs,
        ...(rec.error ? { error: rec.error } : {}),
        activations: rec.activations.map((id) => byId.get(id)).filter((a): a is Activation => a !== undefined),
      };
    });
    const state: StepState = branches.some((b) => b.state === 'failed')
      ? 'failed'
      : branches.every((b) => b.state === 'succeeded')
        ? 'succeeded'
        : branches.some((b) => b.state === 'running' || b.state === 'succeeded')
          ? 'running'
          : open;
    if (state === 'running' || (records.length === 0 && run.state === 'running')) reachedOpen = true;
    return { index: i + 1, name: spec.name, parallel: spec.parallel !== undefined, state, branches };
  });
}
