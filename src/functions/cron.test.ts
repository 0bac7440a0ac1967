import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { API_VERSION } from '../api/meta.js';
import type { CronTrigger } from '../api/functions.js';
import { FunctionStore } from '../store/functions-sqlite.js';
import type { Catalog } from './catalog.js';
import { CronScheduler, cronOf, runsBetween } from './cron.js';

const at = (iso: string) => Date.parse(iso);

function setup(trigger: CronTrigger, start: number) {
  let now = start;
  const store = new FunctionStore({ path: ':memory:', now: () => now });
  const fn = { apiVersion: API_VERSION, kind: 'Function', metadata: { name: 'f', project: 'p', generation: 1 }, spec: { source: { code: '' }, triggers: { cron: [trigger] } } };
  const catalog = { functions: () => [fn], pipelines: () => [] } as unknown as Catalog;
  const skipped: string[] = [];
  const cron = new CronScheduler({ store, catalog, now: () => now, onQueued: () => undefined, onSkip: (_k, s) => skipped.push(new Date(s).toISOString()) });
  const queuedTimes = () =>
    (store.db.prepare(`SELECT idempotency_key AS k FROM fn_deliveries WHERE state = 'queued' ORDER BY k`).all() as { k: string }[]).map((r) => r.k.replace(/^cron:[^:]+:/, ''));
  return { store, cron, skipped, queuedTimes, set: (t: number) => (now = t) };
}

describe('cron schedules', () => {
  it('computes runs in a time zone', () => {
    const c = cronOf('0 9 * * 1-5', 'Europe/Berlin');
    // 2026-03-27 is a Friday; Berlin is UTC+1 until the 29th, then UTC+2.
    assert.deepEqual(runsBetween(c, at('2026-03-27T00:00:00Z'), at('2026-03-31T00:00:00Z')).map((t) => new Date(t).toISOString()), [
      '2026-03-27T08:00:00.000Z',
      '2026-03-30T07:00:00.000Z',
    ]);
  });

  it('queues a run when it is due, once, and nothing for the time before the trigger existed', () => {
    const t = setup({ name: 'c', schedule: '*/5 * * * *' }, at('2026-01-01T00:01:00Z'));
    t.cron.tick();
    assert.deepEqual(t.queuedTimes(), []);
    t.set(at('2026-01-01T00:05:00.500Z'));
    t.cron.tick();
    t.cron.tick();
    assert.deepEqual(t.queuedTimes(), ['2026-01-01T00:05:00.000Z']);
  });

  for (const [policy, want] of [
    ['Skip', []],
    ['RunOnce', ['2026-01-01T00:50:00.000Z']],
    ['RunAll', ['2026-01-01T00:10:00.000Z', '2026-01-01T00:20:00.000Z', '2026-01-01T00:30:00.000Z', '2026-01-01T00:40:00.000Z', '2026-01-01T00:50:00.000Z']],
  ] as const) {
    it(`after downtime, missedRunPolicy ${policy} queues ${want.length} missed run(s) plus the one on time`, () => {
      const t = setup({ name: 'c', schedule: '*/10 * * * *', missedRunPolicy: policy, concurrencyPolicy: 'Allow' }, at('2026-01-01T00:05:00Z'));
      t.cron.tick();
      // Marina was down from 00:05 to 01:00:10; 01:00 is on time (within startingDeadlineSeconds).
      t.set(at('2026-01-01T01:00:10Z'));
      t.cron.tick();
      assert.deepEqual(t.queuedTimes(), [...want, '2026-01-01T01:00:00.000Z']);
    });
  }

  it('Forbid skips a run while the previous one is queued; Replace cancels it', () => {
    const forbid = setup({ name: 'c', schedule: '* * * * *', concurrencyPolicy: 'Forbid' }, at('2026-01-01T00:00:30Z'));
    forbid.cron.tick();
    forbid.set(at('2026-01-01T00:01:01Z'));
    forbid.cron.tick();
    forbid.set(at('2026-01-01T00:02:01Z'));
    forbid.cron.tick();
    assert.deepEqual(forbid.queuedTimes(), ['2026-01-01T00:01:00.000Z']);
    assert.deepEqual(forbid.skipped, ['2026-01-01T00:02:00.000Z']);

    const replace = setup({ name: 'c', schedule: '* * * * *', concurrencyPolicy: 'Replace' }, at('2026-01-01T00:00:30Z'));
    replace.cron.tick();
    replace.set(at('2026-01-01T00:01:01Z'));
    replace.cron.tick();
    replace.set(at('2026-01-01T00:02:01Z'));
    replace.cron.tick();
    assert.deepEqual(replace.queuedTimes(), ['2026-01-01T00:02:00.000Z']);
  });

  it('starts over when the schedule changes', () => {
    const t = setup({ name: 'c', schedule: '0 * * * *' }, at('2026-01-01T00:30:00Z'));
    t.cron.tick();
    assert.equal(t.store.cronState('p/Function/f/c')?.nextRun, at('2026-01-01T01:00:00Z'));
  });
});
