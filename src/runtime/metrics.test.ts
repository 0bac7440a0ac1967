import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { RuntimeMetrics } from './metrics.js';
import { WorkQueue } from './workqueue.js';

test('RuntimeMetrics registers the runtime metrics once per registry and feeds them', async () => {
  const registry = new Registry();
  const m1 = new RuntimeMetrics(registry);
  const m2 = new RuntimeMetrics(registry); // second construction reuses, does not throw
  assert.equal(m1.reconcileTotal, m2.reconcileTotal);

  const q = new WorkQueue({ hooks: m1.queueHooks('clusters'), backoff: { baseDelayMs: 60_000 } });
  q.add('a');
  q.add('a');
  q.add('b');
  q.addRateLimited('c');
  m2.observeReconcile('clusters', 'success', 0.02);
  m2.observeReconcile('clusters', 'terminal', 0.5);
  const text = await registry.metrics();
  assert.match(text, /marina_workqueue_depth\{controller="clusters"\} 2/);
  assert.match(text, /marina_workqueue_adds_total\{controller="clusters"\} 2/);
  assert.match(text, /marina_workqueue_retries_total\{controller="clusters"\} 1/);
  assert.match(text, /marina_reconcile_total\{controller="clusters",result="success"\} 1/);
  assert.match(text, /marina_reconcile_total\{controller="clusters",result="terminal"\} 1/);
  assert.match(text, /marina_reconcile_duration_seconds_count\{controller="clusters"\} 2/);
  q.shutDown();
  assert.match(await registry.metrics(), /marina_workqueue_depth\{controller="clusters"\} 0/);
});
