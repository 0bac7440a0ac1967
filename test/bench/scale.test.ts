// The scale benchmark (bench/scale.ts) at a small size, as a smoke test of what it measures: a
// real `marina server --sim` brings every sim cluster to Ready through the REST API, replaces the
// machines the benchmark kills (each once, within each pool's storm guard), and after a SIGKILL
// resumes on the same data without replacing anything. Behaviour only: no timing is asserted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runScaleBench } from '../../bench/scale.js';

test('the scale benchmark at a small size: Ready, healed within the guard, resumed after SIGKILL without churn', { timeout: 10 * 60_000 }, async () => {
  const r = await runScaleBench({
    clusters: 6,
    projects: 2,
    workers: 2,
    steadySeconds: 2,
    gets: 40,
    watchers: 3,
    // Every cluster loses a machine: 6 clusters × 6 machines, 17 % of them.
    failPercent: 17,
    simTiming: 'etcd=100,controlplane=300,worker=100,learnersync=20,etcdhealth=200',
    phaseTimeoutMs: 4 * 60_000,
    afterRestartMs: 3000,
    log: () => undefined,
  });
  assert.equal(r.machines, 36);
  assert.equal(r.create.readyAfterCreateSeconds.n, 6, 'every cluster became Ready');
  assert.equal(r.api.getMs.n, 40);
  assert.ok(r.api.listPages >= 3, 'the Machine list was read in pages');
  assert.ok(Number.isFinite(r.api.watch.allDeliveredMs), 'every watcher had every event');
  assert.equal(r.heal.killed, 6);
  assert.equal(r.heal.detectSeconds.n, 6, 'every kill was detected');
  assert.equal(r.heal.remediations, 6, 'one replacement per killed machine');
  assert.deepEqual(r.heal.guard.violations, [], 'no pool had more in flight than its storm guard allows');
  assert.equal(r.restart.machinesAfter, r.restart.machinesBefore, 'the restart replaced no machine');
  assert.equal(r.restart.remediationsAfter, 0);
  assert.equal(r.restart.notReadyAfter, 0, 'every cluster stayed Ready');
});
