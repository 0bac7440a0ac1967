import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { setImmediate as tick } from 'node:timers/promises';
import { DriftWatch } from './drift-watch.js';
import type { Manifest } from './render.js';
import { syncAddon } from './sync.js';
import { FakeClusterApi } from './test-fakes.js';

const managed = { 'app.kubernetes.io/managed-by': 'marina-addons' };
const m = (kind: string, name: string, extra: Record<string, unknown> = {}, apiVersion = 'v1'): Manifest =>
  ({ apiVersion, kind, metadata: { name, labels: { ...managed } }, ...extra }) as Manifest;
const objects = [m('ConfigMap', 'cfg', { data: { a: '1' } }), m('Deployment', 'app', { spec: { replicas: 2 } }, 'apps/v1')];

/** A pass of add-on `x` that tells the watch what it saw, then tracks its inventory. */
async function pass(api: FakeClusterApi, watch: DriftWatch, unchanged: boolean) {
  const r = await syncAddon({ api, fieldManager: 'marina-addons/x', objects, defaultNamespace: 'ns', inventory: [], unchanged, observed: (ref, o) => watch.observed(ref, o) });
  watch.track(api, 'x', r.inventory);
  await tick(); // the watches start
  return r;
}

test('one watch per managed kind; changes by others wake the add-on, its own writes do not', async () => {
  const api = new FakeClusterApi();
  const woken: string[] = [];
  const watch = new DriftWatch({ onChange: (a) => woken.push(a), log: pino({ level: 'silent' }) });
  await pass(api, watch, false);
  assert.deepEqual(api.watching(), ['ConfigMap', 'Deployment']);
  assert.deepEqual(watch.kinds(), ['/ConfigMap', 'apps/Deployment']);
  assert.deepEqual(woken, [], 'the initial list holds what the pass just wrote');

  api.edit('Deployment', 'app', (o) => (o.spec!.replicas = 5));
  await tick();
  assert.deepEqual(woken, ['x'], 'a scale by someone else');
  api.remove('ConfigMap', 'cfg');
  await tick();
  assert.deepEqual(woken, ['x', 'x'], 'a deletion');
  api.edit('Deployment', 'app', (o) => (o.metadata!.labels = {}));
  await tick();
  assert.deepEqual(woken, ['x', 'x', 'x'], 'an object that lost the managed-by label leaves the selection: DELETED');

  woken.length = 0;
  await pass(api, watch, true); // puts both back
  assert.deepEqual(woken, [], 'the events of the pass\'s own writes carry versions it observed');

  watch.forget('x');
  await tick();
  assert.deepEqual(api.watching(), [], 'nothing managed: no watch');
  api.close();
});

test('a new connection replaces every watch; clear and stop end them', async () => {
  const first = new FakeClusterApi();
  const watch = new DriftWatch({ onChange: () => undefined, log: pino({ level: 'silent' }) });
  await pass(first, watch, false);
  const second = new FakeClusterApi();
  await pass(second, watch, false);
  assert.deepEqual(first.watching(), []);
  assert.deepEqual(second.watching(), ['ConfigMap', 'Deployment']);
  watch.clear();
  await tick();
  assert.deepEqual(second.watching(), []);
  await pass(second, watch, true);
  assert.deepEqual(second.watching(), ['ConfigMap', 'Deployment'], 'tracking again after clear');
  watch.stop();
  await tick();
  assert.deepEqual(second.watching(), []);
  watch.track(second, 'x', [{ apiVersion: 'v1', kind: 'ConfigMap', namespace: 'ns', name: 'cfg' }]);
  await tick();
  assert.deepEqual(second.watching(), [], 'stopped for good');
});
