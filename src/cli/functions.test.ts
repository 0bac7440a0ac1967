import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Activation, Delivery, PipelineRunTrace } from '../client/index.js';
import { CliError } from './errors.js';
import { activationLogs, activationSummary, activationTable, deadLetterTable, functionFromSource, parseEventData, resultText, runTable, runTrace, stepLine } from './functions.js';

const NOW = Date.parse('2026-05-01T12:00:00Z');
const act = (over: Partial<Activation> = {}): Activation => ({
  id: 'a1',
  project: 'p',
  function: 'f',
  revision: 2,
  trigger: { type: 'http' },
  attempt: 1,
  start: '2026-05-01T11:59:00.000Z',
  end: '2026-05-01T11:59:00.005Z',
  durationMs: 5.2,
  coldStart: false,
  outcome: 'success',
  ...over,
});

describe('marina function', () => {
  it('builds a Function from a source file: name, language, env, HTTP trigger flags', () => {
    const fn = functionFromSource('/src/Hello.ts', 'export default () => 1', 'p', { env: ['A=1', 'B=x=y'], public: true });
    assert.deepEqual(fn.metadata, { name: 'hello', project: 'p' });
    assert.deepEqual(fn.spec, { source: { language: 'typescript', code: 'export default () => 1' }, env: { A: '1', B: 'x=y' }, triggers: { http: { public: true } } });
    const js = functionFromSource('x.mjs', 'c', 'p', { name: 'other', env: [], http: false });
    assert.deepEqual([js.metadata.name, (js.spec as any).source.language, (js.spec as any).triggers], ['other', 'javascript', { http: { enabled: false } }]);
    assert.throws(() => functionFromSource('x.js', 'c', 'p', { env: ['NOVALUE'] }), CliError);
  });

  it('reads the event from --data or a file, as JSON; neither is no event', () => {
    assert.deepEqual(parseEventData('{"a":1}', undefined), { a: 1 });
    assert.equal(parseEventData(undefined, '"text"'), 'text');
    assert.equal(parseEventData(undefined, undefined), undefined);
    assert.throws(() => parseEventData('{', undefined), /--data: not JSON/);
    assert.throws(() => parseEventData('1', '2'), /not both/);
    assert.equal(resultText('hi'), 'hi\n');
    assert.equal(resultText({ a: 1 }), '{\n  "a": 1\n}\n');
  });

  it('summarizes and tabulates activations', () => {
    assert.equal(activationSummary(act({ coldStart: true, coldStartMs: 11.6 })), 'activation a1: success in 5 ms (cold start 12 ms)');
    assert.equal(activationSummary(act({ outcome: 'error', error: 'Error: boom\n    at handler (index.mjs:1:2)' })), 'activation a1: error in 5 ms: Error: boom');
    const table = activationTable([act({ trigger: { type: 'cron', name: 'hourly' }, coldStart: true, coldStartMs: 9 })], NOW);
    assert.match(table, /^ID\s+TRIGGER\s+REVISION\s+OUTCOME\s+COLD-START\s+DURATION\s+STARTED\n/);
    assert.match(table, /a1\s+cron:hourly\s+2\s+success\s+9 ms\s+5 ms\s+60s ago/);
  });

  it('prints logs oldest first, each under its activation', () => {
    const text = activationLogs([
      act({ id: 'new', start: '2026-05-01T11:59:30.000Z', logs: ['info: second'] }),
      act({ id: 'old', logs: ['info: first', 'warn: careful'], logsTruncated: true }),
      act({ id: 'quiet', start: '2026-05-01T11:59:40.000Z', logs: [] }),
    ]);
    assert.deepEqual(text.split('\n').filter((l) => !l.startsWith('==>') && l !== ''), ['info: first', 'warn: careful', '(more lines were dropped: the log is bounded)', 'info: second', '(no log lines)']);
    assert.ok(text.indexOf('activation old') < text.indexOf('activation new'));
  });

  it('tabulates dead letters', () => {
    const d: Delivery = {
      id: 'd1',
      project: 'p',
      target: { kind: 'Pipeline', name: 'etl' },
      trigger: { type: 'event', name: 'created' },
      idempotencyKey: 'k',
      state: 'dead',
      attempts: 3,
      maxAttempts: 3,
      createdAt: '2026-05-01T11:00:00Z',
      notBefore: '2026-05-01T11:00:00Z',
      lastError: 'step x failed',
    };
    assert.match(deadLetterTable([d], NOW), /d1\s+pipeline\/etl\s+event:created\s+3\/3\s+60m ago\s+step x failed/);
  });
});

describe('marina pipeline', () => {
  const run: PipelineRunTrace = {
    id: 'r1',
    project: 'p',
    pipeline: 'etl',
    deliveryId: 'd1',
    state: 'succeeded',
    start: '2026-05-01T11:59:59.000Z',
    end: '2026-05-01T11:59:59.120Z',
    deadline: '2026-05-01T12:04:59.000Z',
    output: 42,
    steps: [
      { step: 'parse', function: 'parse', outcome: 'success', attempts: 1, activations: ['a1'], durationMs: 10 },
      { step: 'fan', branch: 'double', function: 'double', outcome: 'success', attempts: 2, activations: ['a2', 'a3'], durationMs: 30 },
    ],
    activations: [act({ id: 'a1' }), act({ id: 'a2', outcome: 'error' }), act({ id: 'a3' })],
  };

  it('prints each finished step and traces a run with its activations', () => {
    assert.equal(stepLine(run.steps[1]!), 'step fan/double (function double) succeeded: 2 attempts, 30 ms');
    const trace = runTrace(run, NOW);
    assert.match(trace, /^run r1 of pipeline etl: succeeded after 120 ms\n/);
    assert.match(trace, /fan\/double\s+double\s+succeeded\s+2\s+30 ms\s+a2 \(error\), a3 \(success\)/);
    assert.match(runTable([run], NOW), /r1\s+succeeded\s+2\/2\s+1s ago\s+120 ms\s+-/);
  });
});
