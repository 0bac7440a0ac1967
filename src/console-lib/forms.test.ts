import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MarinaApiError, MarinaConnectionError } from '../client/index.js';
import type { Resource } from '../api/meta.js';
import { errorId, formErrors, nearestField, parentPath } from './form-errors.js';
import { SingleFlight } from './single-flight.js';
import { buildCluster, clusterFormFields, defaultClusterForm, newPool, parseReplicas, scalePool, withPoolReplicas } from './cluster-form.js';

const invalid = (causes: { field: string; message: string }[]) =>
  new MarinaApiError({
    kind: 'Status',
    code: 422,
    reason: 'Invalid',
    message: `invalid object: ${causes.map((c) => `${c.field}: ${c.message}`).join('; ')}`,
    ...(causes[0] ? { field: causes[0].field } : {}),
    causes,
  });

test('field paths: parents and the nearest known input', () => {
  assert.equal(parentPath('spec.nodePools[1].replicas'), 'spec.nodePools[1]');
  assert.equal(parentPath('spec.nodePools[1]'), 'spec.nodePools');
  assert.equal(parentPath('spec.network["a.b"]'), 'spec.network');
  assert.equal(parentPath('spec'), undefined);
  const known = new Set(['spec.nodePools', 'spec.nodePools[0].roles', 'metadata.name']);
  assert.equal(nearestField('spec.nodePools[0].roles[1]', known), 'spec.nodePools[0].roles');
  assert.equal(nearestField('spec.nodePools[3].machine.cpu', known), 'spec.nodePools');
  assert.equal(nearestField('spec.provider', known), undefined);
  assert.equal(errorId('create', 'spec.nodePools[1].replicas'), 'create-err-spec_nodePools_1_replicas');
});

test('a 422 puts each cause next to its input; the rest is a general error', () => {
  const fields = clusterFormFields(defaultClusterForm());
  const one = formErrors(invalid([{ field: 'spec.nodePools[1].replicas', message: 'Expected integer to be greater or equal to 0' }]), fields);
  assert.deepEqual(one, { fields: { 'spec.nodePools[1].replicas': 'Expected integer to be greater or equal to 0' } });

  const mixed = formErrors(
    invalid([
      { field: 'spec.network.podCIDR', message: '"x" is not a CIDR' },
      { field: 'spec.network.podCIDR', message: 'second problem' },
      { field: 'spec.nodePools[0].roles[1]', message: 'must be one of "etcd", "controlplane", "worker"' },
      { field: 'spec.provider', message: 'unknown' },
    ]),
    fields,
  );
  assert.equal(mixed.fields['spec.network.podCIDR'], '"x" is not a CIDR; second problem');
  assert.equal(mixed.fields['spec.nodePools[0].roles'], 'spec.nodePools[0].roles[1]: must be one of "etcd", "controlplane", "worker"');
  assert.equal(mixed.general, 'spec.provider: unknown');

  // No cause about a field of the form: the Status message as it is.
  const conflict = new MarinaApiError({ kind: 'Status', code: 409, reason: 'Conflict', message: 'project p is being deleted' });
  assert.deepEqual(formErrors(conflict, fields), { fields: {}, general: 'project p is being deleted' });
  // 409 AlreadyExists names metadata.name.
  const exists = new MarinaApiError({ kind: 'Status', code: 409, reason: 'AlreadyExists', message: 'Cluster "web" already exists', field: 'metadata.name', causes: [{ field: 'metadata.name', message: 'already exists' }] });
  assert.deepEqual(formErrors(exists, fields), { fields: { 'metadata.name': 'already exists' } });
  // A Status with only `field` (no causes) still lands at the field.
  const onlyField = new MarinaApiError({ kind: 'Status', code: 422, reason: 'Invalid', message: 'bad name', field: 'metadata.name' });
  assert.deepEqual(formErrors(onlyField, fields), { fields: { 'metadata.name': 'bad name' } });
  const down = new MarinaConnectionError('http://x', 'ECONNREFUSED', 'cannot reach the Marina server at http://x: refused');
  assert.deepEqual(formErrors(down, fields), { fields: {}, general: 'cannot reach the Marina server at http://x: refused' });
  assert.deepEqual(formErrors(new Error('boom'), fields), { fields: {}, general: 'boom' });
});

test('single flight: a second submit while one is in flight is not sent', async () => {
  const guard = new SingleFlight();
  const states: boolean[] = [];
  guard.onChange((b) => states.push(b));
  let sent = 0;
  let release!: () => void;
  const submit = () =>
    guard.run(async () => {
      sent++;
      await new Promise<void>((r) => (release = r));
      return 'created';
    });
  const first = submit(); // a double click: two clicks before anything re-renders
  const second = submit();
  assert.equal(guard.busy, true);
  assert.deepEqual(await second, { ran: false });
  release();
  assert.deepEqual(await first, { ran: true, value: 'created' });
  assert.equal(sent, 1);
  assert.equal(guard.busy, false);
  assert.deepEqual(states, [true, false]);
  // A failed submit frees the guard for the next try.
  await assert.rejects(guard.run(async () => {
    throw new Error('422');
  }));
  assert.equal(guard.busy, false);
  assert.deepEqual(await guard.run(async () => 1), { ran: true, value: 1 });
});

test('the create form builds the Cluster the API expects, sending bad input as typed', () => {
  const form = defaultClusterForm();
  form.name = ' web ';
  form.pools[1]!.replicas = '-1';
  form.pools.push(newPool('gpu', ['worker'], 0));
  form.pools[2]!.replicas = 'two';
  const c = buildCluster(form, 'default');
  assert.deepEqual(c, {
    apiVersion: 'marina.dev/v1alpha1',
    kind: 'Cluster',
    metadata: { name: 'web', project: 'default' },
    spec: {
      nodePools: [
        { name: 'controlplane', roles: ['etcd', 'controlplane'], replicas: 1 },
        { name: 'workers', roles: ['worker'], replicas: -1 },
        { name: 'gpu', roles: ['worker'], replicas: 'two' },
      ],
    },
  });
  form.podCIDR = '10.200.0.0/16';
  form.kubernetesVersion = 'v1.36.3';
  const c2 = buildCluster(form, 'default');
  assert.deepEqual(c2.spec.network, { podCIDR: '10.200.0.0/16' });
  assert.equal(c2.spec.kubernetesVersion, 'v1.36.3');
  assert.equal(parseReplicas(' 3 '), 3);
  assert.equal(parseReplicas(''), '');
  assert.ok(clusterFormFields(form).includes('spec.nodePools[2].replicas'));
});

test('scaling changes one pool and retries on a conflict with a fresh read', async () => {
  const cluster = (rv: string): Resource => ({
    apiVersion: 'marina.dev/v1alpha1',
    kind: 'Cluster',
    metadata: { name: 'web', project: 'p', resourceVersion: rv },
    spec: { nodePools: [{ name: 'cp', roles: ['etcd', 'controlplane'], replicas: 1 }, { name: 'workers', roles: ['worker'], replicas: 1 }] },
  });
  const scaled = withPoolReplicas(cluster('1'), 'workers', 3);
  assert.deepEqual((scaled.spec as { nodePools: { replicas: number }[] }).nodePools.map((p) => p.replicas), [1, 3]);
  assert.equal(scaled.metadata.resourceVersion, '1');
  assert.throws(() => withPoolReplicas(cluster('1'), 'nope', 3), /no pool "nope"/);

  let rv = 1;
  const puts: string[] = [];
  const api = {
    get: async <T extends Resource>() => cluster(String(rv)) as T,
    replace: async <T extends Resource>(obj: Resource) => {
      puts.push(obj.metadata.resourceVersion!);
      if (puts.length === 1) {
        rv = 2; // someone else wrote in between
        throw new MarinaApiError({ kind: 'Status', code: 409, reason: 'Conflict', message: 'stale' });
      }
      return obj as T;
    },
  };
  const out = await scalePool(api, 'p', 'web', 'workers', 2);
  assert.deepEqual(puts, ['1', '2']);
  assert.equal((out.spec as { nodePools: { replicas: number }[] }).nodePools[1]!.replicas, 2);
  // Other errors are not retried.
  const bad = { ...api, replace: async () => { throw invalid([{ field: 'spec.nodePools[1].replicas', message: 'too many' }]); } };
  await assert.rejects(scalePool(bad, 'p', 'web', 'workers', 999), /too many/);
});
