import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AppliedObject } from '../api/addons.js';
import { ANNOTATION_ADDON_IGNORE as ANNOTATION_IGNORE, ANNOTATION_ADDON_KEEP as ANNOTATION_KEEP } from '../api/wellknown.js';
import { KubeError } from '../kube/client.js';
import type { Manifest } from './render.js';
import { covers, removeObjects, syncAddon, type SyncOptions } from './sync.js';
import { FakeClusterApi } from './test-fakes.js';

const m = (kind: string, name: string, extra: Record<string, unknown> = {}, apiVersion = 'v1'): Manifest =>
  ({ apiVersion, kind, metadata: { name, labels: { 'addons.marina.dev/addon': 'x' } }, ...extra }) as Manifest;

const v1 = [
  m('Namespace', 'mon'),
  m('ConfigMap', 'cfg', { data: { a: '1' } }),
  m('Service', 'svc', { spec: { ports: [{ port: 80 }] } }),
  m('Deployment', 'app', { spec: { replicas: 2 } }, 'apps/v1'),
];

function opts(api: FakeClusterApi, objects: Manifest[], inventory: AppliedObject[], unchanged: boolean, more: Partial<SyncOptions> = {}): SyncOptions {
  return { api, fieldManager: 'marina-addons/x', objects, defaultNamespace: 'mon', inventory, unchanged, ...more };
}

test('covers: our fields only; extra live fields, defaults and dropped empty structs are fine', () => {
  const want = { spec: { replicas: 2, template: { spec: { securityContext: {}, containers: [{ name: 'a', args: ['x'] }] } } } };
  const live = { spec: { replicas: 2, revisionHistoryLimit: 10, template: { spec: { containers: [{ name: 'a', args: ['x'], imagePullPolicy: 'Always' }] } } } };
  assert.ok(covers(live, want));
  assert.ok(!covers({ ...live, spec: { ...live.spec, replicas: 5 } }, want));
  assert.ok(!covers({ spec: { replicas: 2, template: { spec: { containers: [{ name: 'a', args: ['x', 'y'] }] } } } }, want), 'lists compare element by element');
});

test('the first pass applies everything; a steady pass writes nothing; drift is put back and counted', async () => {
  const api = new FakeClusterApi();
  const first = await syncAddon(opts(api, v1, [], false));
  assert.equal(first.applied, 4);
  assert.deepEqual(first.drifted, []);
  assert.deepEqual(first.inventory.map((r) => `${r.kind}/${r.namespace ?? ''}/${r.name}`), ['Namespace//mon', 'ConfigMap/mon/cfg', 'Service/mon/svc', 'Deployment/mon/app']);
  assert.equal(api.find('Deployment', 'app')?.metadata?.namespace, 'mon', 'namespaced objects get the add-on namespace');

  const steady = await syncAddon(opts(api, v1, first.inventory, true));
  assert.equal(steady.applied, 0, 'nothing differs: no write');
  assert.deepEqual(steady.drifted, []);

  api.remove('ConfigMap', 'cfg');
  api.edit('Deployment', 'app', (o) => (o.spec!.replicas = 5));
  api.edit('Service', 'svc', (o) => (o.metadata!.annotations = { 'someone/else': 'yes' }));
  const fixed = await syncAddon(opts(api, v1, first.inventory, true));
  assert.deepEqual(fixed.drifted, ['ConfigMap mon/cfg (deleted)', 'Deployment mon/app (changed)']);
  assert.equal(api.find('Deployment', 'app')?.spec?.replicas, 2);
  assert.deepEqual((api.find('ConfigMap', 'cfg') as { data?: unknown }).data, { a: '1' });
  assert.equal(api.find('Service', 'svc')?.metadata?.annotations?.['someone/else'], 'yes', 'fields we do not own are left alone');
});

test('objects annotated ignore are left alone; unhealthy objects are named', async () => {
  const api = new FakeClusterApi();
  const first = await syncAddon(opts(api, v1, [], false));
  api.edit('Deployment', 'app', (o) => {
    o.metadata!.annotations = { [ANNOTATION_IGNORE]: 'true' };
    o.spec!.replicas = 7;
  });
  api.remove('ConfigMap', 'cfg');
  const r = await syncAddon(opts(api, v1, first.inventory, true));
  assert.deepEqual(r.ignored, ['Deployment mon/app']);
  assert.equal(api.find('Deployment', 'app')?.spec?.replicas, 7);
  assert.deepEqual(r.drifted, ['ConfigMap mon/cfg (deleted)']);
  assert.equal(r.inventory.length, 4, 'an ignored object stays in the inventory');

  api.edit('Deployment', 'app', (o) => delete o.metadata!.annotations);
  const judged = await syncAddon(opts(api, v1, r.inventory, true));
  assert.match(judged.unhealthy.join(), /Deployment mon\/app: waiting for the controller/);
  assert.equal(judged.progressing, true);
  api.settle();
  assert.deepEqual((await syncAddon(opts(api, v1, judged.inventory, true))).unhealthy, []);
});

test('an upgrade applies every object (no drift counted) and prunes what the new revision dropped, except kept ones', async () => {
  const api = new FakeClusterApi();
  const first = await syncAddon(opts(api, [...v1, m('ConfigMap', 'old-a'), m('ConfigMap', 'old-b')], [], false));
  api.edit('ConfigMap', 'old-b', (o) => (o.metadata!.annotations = { [ANNOTATION_KEEP]: 'true' }));
  const v2 = [...v1.slice(0, 3), m('Deployment', 'app', { spec: { replicas: 3 } }, 'apps/v1'), m('ConfigMap', 'new')];
  const up = await syncAddon(opts(api, v2, first.inventory, false));
  assert.equal(up.applied, 5);
  assert.deepEqual(up.drifted, []);
  assert.deepEqual(up.pruned, ['ConfigMap mon/old-a']);
  assert.deepEqual(up.kept, ['ConfigMap mon/old-b (annotated)']);
  assert.ok(!api.find('ConfigMap', 'old-a'));
  assert.ok(api.find('ConfigMap', 'old-b'));
  assert.ok(api.find('ConfigMap', 'new'));
  assert.deepEqual(up.inventory.map((r) => r.name).sort(), ['app', 'cfg', 'mon', 'new', 'old-a', 'svc'], 'old-a stays listed until it is seen gone');
  const next = await syncAddon(opts(api, v2, up.inventory, true));
  assert.deepEqual(next.inventory.map((r) => r.name).sort(), ['app', 'cfg', 'mon', 'new', 'svc']);
});

test('a failed apply keeps the old inventory and prunes nothing; an unreachable API fails the pass', async () => {
  const api = new FakeClusterApi();
  const first = await syncAddon(opts(api, [...v1, m('ConfigMap', 'old')], [], false));
  api.failApply = (o) => (o.metadata.name === 'new' ? new KubeError(422, 'Invalid', 'ConfigMap "new" is invalid: data: bad') : undefined);
  const r = await syncAddon(opts(api, [...v1, m('ConfigMap', 'new')], first.inventory, false));
  assert.deepEqual(r.failed, ['ConfigMap mon/new: Invalid: ConfigMap "new" is invalid: data: bad']);
  assert.ok(api.find('ConfigMap', 'old'), 'nothing pruned while the new revision is not in');
  assert.ok(r.inventory.some((x) => x.name === 'old'));
  api.unreachable = true;
  await assert.rejects(syncAddon(opts(api, v1, r.inventory, true)), (e: unknown) => e instanceof KubeError && e.code === 0);
});

test('kinds the API does not serve fail that object only', async () => {
  const api = new FakeClusterApi();
  api.unserved.add('Widget');
  const r = await syncAddon(opts(api, [...v1, m('Widget', 'w', {}, 'example.com/v1')], [], false));
  assert.equal(r.applied, 4);
  assert.match(r.failed.join(), /Widget w: the cluster's API does not serve Widget in example.com\/v1/);
});

test('removal: reverse order, shared objects and namespaces holding kept objects stay, pending until gone', async () => {
  const api = new FakeClusterApi();
  const first = await syncAddon(opts(api, v1, [], false));
  const all = await removeObjects(api, first.inventory);
  assert.deepEqual(all.deleted, ['Deployment mon/app', 'Service mon/svc', 'ConfigMap mon/cfg', 'Namespace mon']);
  assert.equal(all.pending.length, 4, 'deleted in this pass, confirmed gone in the next');
  const again = await removeObjects(api, all.pending);
  assert.deepEqual([again.pending, again.gone.length], [[], 4]);

  const api2 = new FakeClusterApi();
  const inv = (await syncAddon(opts(api2, v1, [], false))).inventory;
  api2.edit('ConfigMap', 'cfg', (o) => (o.metadata!.annotations = { [ANNOTATION_KEEP]: 'true' }));
  const r = await removeObjects(api2, inv, { shared: (key) => key.includes('/Service/') });
  assert.deepEqual(r.kept, ['Service mon/svc (shared with another add-on)', 'ConfigMap mon/cfg (annotated)', 'Namespace mon (holds kept objects)']);
  assert.deepEqual(r.deleted, ['Deployment mon/app']);
  assert.ok(api2.find('ConfigMap', 'cfg') && api2.find('Namespace', 'mon'));
});

test('a CRD and its custom resources in one add-on: the CRD is applied and established first, its resources in the same pass', async () => {
  const api = new FakeClusterApi();
  api.crdEstablishMs = 150;
  const crd = m('CustomResourceDefinition', 'widgets.example.dev', {
    spec: { group: 'example.dev', names: { kind: 'Widget', plural: 'widgets' }, scope: 'Namespaced', versions: [{ name: 'v1', served: true, storage: true }] },
  }, 'apiextensions.k8s.io/v1');
  const widget = m('Widget', 'w1', { spec: { size: 3 } }, 'example.dev/v1');
  // As rendered: in install order, the CRD leads.
  const r = await syncAddon(opts(api, [crd, ...v1, widget], [], false));
  assert.deepEqual(r.failed, []);
  assert.equal(api.find('Widget', 'w1')?.metadata?.namespace, 'mon');
  assert.ok(!r.unhealthy.some((u) => u.startsWith('CustomResourceDefinition')), 'the CRD is judged as it is after the wait: established');
  assert.equal(r.inventory[0]?.kind, 'CustomResourceDefinition');

  // A CRD whose names the API refuses is waited for no longer: its resources fail, the rest applies.
  const refused = new FakeClusterApi();
  refused.refuseCrdNames = true;
  const names = m('CustomResourceDefinition', 'gadgets.example.dev', {
    spec: { group: 'example.dev', names: { kind: 'Gadget' }, versions: [{ name: 'v1' }] },
  }, 'apiextensions.k8s.io/v1');
  // Were the pass to wait out its timeout, the test would time out instead.
  const r2 = await syncAddon(opts(refused, [names, ...v1, m('Gadget', 'g', {}, 'example.dev/v1')], [], false, { crdTimeoutMs: 3_600_000 }));
  assert.match(r2.failed.join(), /Gadget g: the cluster's API does not serve Gadget/);
  assert.equal(r2.applied, 5, 'the CRD and the other objects');
  refused.close();
  api.close();
});
