import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Activation, PipelineRunTrace } from '../client/index.js';
import { functionOverview, limitRows, outcomeTone, parseEventText, showValue, traceRun, triggerLines, type FunctionView, type PipelineView } from './functions.js';

const fn = (over: Partial<FunctionView> = {}): FunctionView => ({
  apiVersion: 'marina.dev/v1alpha1',
  kind: 'Function',
  metadata: { name: 'hello', project: 'p', generation: 2 },
  spec: { source: { code: 'x' } },
  ...over,
});

const act = (id: string, outcome: Activation['outcome'] = 'success'): Activation => ({
  id,
  project: 'p',
  function: 'f',
  revision: 1,
  trigger: { type: 'pipeline' },
  attempt: 1,
  start: '2026-05-01T00:00:00Z',
  end: '2026-05-01T00:00:01Z',
  durationMs: 1000,
  coldStart: false,
  outcome,
});

describe('function pages', () => {
  it('shows the running revision, Ready and the URL; an older revision running is a warning', () => {
    const ready = { type: 'Ready', status: 'True' as const, reason: 'Compiled', message: 'revision 2 takes new invocations', lastTransitionTime: '2026-05-01T00:00:00Z' };
    const o = functionOverview(fn({ status: { revision: 2, url: '/fn/p/hello', conditions: [ready] } }));
    assert.deepEqual([o.revision, o.ready, o.tone, o.url, o.current], [2, 'True', 'ok', '/fn/p/hello', true]);
    assert.equal(functionOverview(fn({ status: { revision: 1, conditions: [ready] } })).tone, 'warn');
    const failed = functionOverview(fn({ status: { conditions: [{ ...ready, status: 'False' as const, reason: 'CompileFailed', message: 'no' }] } }));
    assert.deepEqual([failed.ready, failed.tone, failed.readyReason], ['False', 'bad', 'CompileFailed']);
    assert.deepEqual([functionOverview(fn()).ready, functionOverview(fn()).tone], ['Unknown', 'warn']);
  });

  it('lists every trigger and the limits in effect', () => {
    const spec: FunctionView['spec'] = {
      triggers: {
        http: { public: true },
        cron: [{ name: 'tick', schedule: '*/5 * * * *', timeZone: 'Europe/Berlin', concurrencyPolicy: 'Forbid' }],
        events: [{ name: 'created', filter: { types: ['dev.marina.cluster.*'], subject: 'prod-*' } }],
        asyncRetry: { maxAttempts: 5 },
      },
      limits: { memoryMiB: 256, minInstances: 1 },
    };
    assert.deepEqual(triggerLines(spec, { project: 'p', name: 'hello' }), [
      { kind: 'http', name: 'HTTP', detail: '/fn/p/hello (public: no token needed)' },
      { kind: 'cron', name: 'tick', detail: '*/5 * * * * (Europe/Berlin; Forbid, missed runs: RunOnce)' },
      { kind: 'event', name: 'created', detail: 'types dev.marina.cluster.*; subject prod-*' },
    ]);
    assert.deepEqual(triggerLines({ triggers: { http: { enabled: false } } }, { project: 'p', name: 'x' }), []);
    assert.equal(triggerLines(undefined, undefined).length, 0, 'pipelines have no HTTP trigger');
    const limits = Object.fromEntries(limitRows(spec));
    assert.equal(limits.Memory, '256 MiB');
    assert.equal(limits.Instances, '1–10');
    assert.equal(limits['Concurrency per instance'], '10 (a new instance above 7 in flight)');
    assert.equal(limits['Asynchronous retries'], '5 attempts');
    assert.equal(Object.fromEntries(limitRows(undefined)).Instances, '0–10 (scales to zero)');
  });

  it('reads the event of the invoke form and shows results', () => {
    assert.deepEqual(parseEventText('  '), { ok: true, event: undefined });
    assert.deepEqual(parseEventText('{"a": [1]}'), { ok: true, event: { a: [1] } });
    const bad = parseEventText('{a');
    assert.equal(bad.ok, false);
    assert.match((bad as { error: string }).error, /^The event is not JSON/);
    assert.equal(showValue('text'), 'text');
    assert.equal(showValue({ a: 1 }), '{\n  "a": 1\n}');
    assert.deepEqual(['success', 'timeout', 'canceled', undefined].map(outcomeTone), ['ok', 'bad', 'warn', 'neutral']);
  });
});

describe('a pipeline run traced step by step', () => {
  const pipeline: PipelineView = {
    apiVersion: 'marina.dev/v1alpha1',
    kind: 'Pipeline',
    metadata: { name: 'etl', project: 'p' },
    spec: {
      steps: [
        { name: 'parse', function: 'parse' },
        { name: 'fan', parallel: [{ name: 'double', function: 'double' }, { name: 'square', function: 'square' }] },
        { name: 'join', function: 'sum' },
      ],
    },
  };
  const run = (over: Partial<PipelineRunTrace>): PipelineRunTrace => ({
    id: 'r',
    project: 'p',
    pipeline: 'etl',
    deliveryId: 'd',
    state: 'running',
    start: '2026-05-01T00:00:00Z',
    deadline: '2026-05-01T00:05:00Z',
    steps: [],
    activations: [],
    ...over,
  });

  it('shows finished steps with their activations, the next one running and the rest pending', () => {
    const t = traceRun(
      pipeline,
      run({
        steps: [
          { step: 'parse', function: 'parse', outcome: 'success', attempts: 2, activations: ['a1', 'a2', 'gone'], durationMs: 20 },
          { step: 'fan', branch: 'double', function: 'double', outcome: 'success', attempts: 1, activations: ['a3'], durationMs: 5 },
        ],
        activations: [act('a1', 'error'), act('a2'), act('a3')],
      }),
    );
    assert.deepEqual(t.map((s) => [s.index, s.name, s.state]), [[1, 'parse', 'succeeded'], [2, 'fan', 'running'], [3, 'join', 'pending']]);
    assert.deepEqual(t[0]!.branches[0]!.activations.map((a) => `${a.id}:${a.outcome}`), ['a1:error', 'a2:success'], 'a pruned activation is left out');
    assert.deepEqual(t[1]!.branches.map((b) => [b.branch, b.state]), [['double', 'succeeded'], ['square', 'running']]);
    assert.equal(t[1]!.parallel, true);
  });

  it('marks the failed step and what was never run', () => {
    const t = traceRun(pipeline, run({ state: 'failed', steps: [{ step: 'parse', function: 'parse', outcome: 'failed', attempts: 3, activations: [], durationMs: 1, error: 'boom' }] }));
    assert.deepEqual(t.map((s) => s.state), ['failed', 'not run', 'not run']);
    assert.equal(t[0]!.branches[0]!.error, 'boom');
  });

  it('follows the run itself when the pipeline is gone', () => {
    const t = traceRun(undefined, run({ state: 'succeeded', steps: [{ step: 'only', function: 'f', outcome: 'success', attempts: 1, activations: [], durationMs: 1 }] }));
    assert.deepEqual(t.map((s) => [s.name, s.state, s.branches[0]!.function]), [['only', 'succeeded', 'f']]);
  });
});
