import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { CloudEvent } from '../api/functions.js';
import type { Alert } from '../api/kinds.js';
import { isApiError } from '../api/errors.js';
import { API_VERSION } from '../api/meta.js';
import { validateObject } from '../api/registry.js';
import { memStore } from '../runtime/test-helpers.js';
import type { Store } from '../store/types.js';
import { alertName, fingerprint } from './fingerprint.js';
import { AlertManager, LABEL_ALERT_SOURCE, type AlertInput } from './manager.js';

const node = (n: string, severity: AlertInput['severity'] = 'warning'): AlertInput => ({
  rule: 'NodeConditionUnhealthy',
  severity,
  labels: { node: n, condition: 'Ready' },
  summary: `Node ${n} is NotReady`,
});

async function setup(start = Date.parse('2030-01-01T00:00:00Z')) {
  const store = await memStore();
  await store.create({ apiVersion: API_VERSION, kind: 'Project', metadata: { name: 'p' }, spec: { members: [] } });
  let t = start;
  const manager = new AlertManager({ store, now: () => new Date(t), evaluatedRefreshMs: 60_000 });
  return { store, manager, advance: (ms: number) => (t += ms) };
}

async function alerts(store: Store): Promise<Alert[]> {
  return (await store.list('Alert', { project: 'p' })).items as Alert[];
}

test('sync opens one alert per identity, deduplicated, with a stable name', async () => {
  const { store, manager } = await setup();
  const scope = { project: 'p', cluster: 'c1', source: 'health' };
  const r1 = await manager.sync(scope, [node('w1'), node('w1'), node('w2')]);
  assert.equal(r1.opened.length, 2);
  const rev = await store.currentRevision();
  const r2 = await manager.sync(scope, [node('w2'), node('w1')]);
  assert.deepEqual(r2.opened, []);
  assert.equal(await store.currentRevision(), rev, 'a repeated report writes nothing (within the refresh period)');
  const list = await alerts(store);
  assert.equal(list.length, 2);
  const fp = fingerprint({ project: 'p', cluster: 'c1', rule: 'NodeConditionUnhealthy', labels: { node: 'w1', condition: 'Ready' } });
  const w1 = list.find((a) => a.metadata.name === alertName('NodeConditionUnhealthy', fp))!;
  assert.ok(w1, 'named <rule>-<fingerprint>');
  assert.equal(w1.status?.state, 'firing');
  assert.equal(w1.status?.fingerprint, fp);
  assert.equal(w1.status?.startsAt, '2030-01-01T00:00:00.000Z');
  assert.equal(w1.metadata.labels?.[LABEL_ALERT_SOURCE], 'health');
  // What Marina stores passes the API's own validation.
  for (const a of list) validateObject(a, undefined, { kubernetesVersions: [] });
});

test('alerts not reported any more resolve; reported again they fire as a new episode', async () => {
  const { store, manager, advance } = await setup();
  const scope = { project: 'p', cluster: 'c1', source: 'health' };
  await manager.sync(scope, [node('w1'), node('w2')]);
  advance(30_000);
  const r = await manager.sync(scope, [node('w2')]);
  assert.equal(r.resolved.length, 1);
  let w1 = (await alerts(store)).find((a) => a.spec.labels?.node === 'w1')!;
  assert.equal(w1.status?.state, 'resolved');
  assert.equal(w1.status?.endsAt, '2030-01-01T00:00:30.000Z');
  advance(30_000);
  const again = await manager.sync(scope, [node('w1'), node('w2')]);
  assert.deepEqual(again.opened, [w1.metadata.name]);
  w1 = (await alerts(store)).find((a) => a.spec.labels?.node === 'w1')!;
  assert.equal(w1.status?.state, 'firing');
  assert.equal(w1.status?.startsAt, '2030-01-01T00:01:00.000Z');
  assert.equal(w1.status?.endsAt, undefined);
  assert.equal((await alerts(store)).length, 2, 'the same object fires again');
});

test('sync resolves only its own source and scope', async () => {
  const { store, manager } = await setup();
  await manager.sync({ project: 'p', cluster: 'c1', source: 'health' }, [node('w1')]);
  await manager.sync({ project: 'p', cluster: 'c2', source: 'health' }, [node('w1')]);
  await manager.sync({ project: 'p', cluster: 'c1', source: 'healing' }, [{ rule: 'HealingHeldBack', severity: 'critical', labels: { pool: 'workers' }, summary: 'held back' }]);
  await manager.raise({ project: 'p', rule: 'BackupFailed', severity: 'warning', summary: 'project-level' });
  await manager.sync({ project: 'p', cluster: 'c1', source: 'health' }, []);
  const states = Object.fromEntries((await alerts(store)).map((a) => [`${a.spec.cluster ?? '-'}/${a.spec.rule}`, a.status?.state]));
  assert.deepEqual(states, {
    'c1/NodeConditionUnhealthy': 'resolved',
    'c2/NodeConditionUnhealthy': 'firing',
    'c1/HealingHeldBack': 'firing',
    '-/BackupFailed': 'firing',
  });
  assert.deepEqual(await manager.resolveAll({ project: 'p', cluster: 'c2' }), [(await alerts(store)).find((a) => a.spec.cluster === 'c2')!.metadata.name]);
});

test('severity and summary changes update the alert in place', async () => {
  const { store, manager } = await setup();
  const scope = { project: 'p', cluster: 'c1', source: 'health' };
  await manager.sync(scope, [node('w1', 'warning')]);
  await manager.sync(scope, [{ ...node('w1', 'critical'), summary: 'Node w1 NotReady for 10m' }]);
  const list = await alerts(store);
  assert.equal(list.length, 1);
  assert.equal(list[0]!.spec.severity, 'critical');
  assert.equal(list[0]!.spec.annotations.summary, 'Node w1 NotReady for 10m');
  assert.equal(list[0]!.metadata.generation, 2);
  assert.equal(list[0]!.status?.startsAt, '2030-01-01T00:00:00.000Z', 'still the same episode');
});

test('raise and resolve are the edge-triggered forms', async () => {
  const { store, manager, advance } = await setup();
  const a = await manager.raise({ project: 'p', cluster: 'c1', rule: 'CertificateNearExpiry', severity: 'warning', labels: { certificate: 'apiserver' }, summary: 'expires in 20d' });
  const b = await manager.raise({ project: 'p', cluster: 'c1', rule: 'CertificateNearExpiry', severity: 'warning', labels: { certificate: 'apiserver' }, summary: 'expires in 20d' });
  assert.equal(a.metadata.name, b.metadata.name);
  assert.equal((await alerts(store)).length, 1);
  advance(1000);
  const r = await manager.resolve({ project: 'p', cluster: 'c1', rule: 'CertificateNearExpiry', labels: { certificate: 'apiserver' } });
  assert.equal(r?.status?.state, 'resolved');
  assert.equal(await manager.resolve({ project: 'p', rule: 'Nothing' }), undefined);
});

test('the lastEvaluatedAt heartbeat is throttled', async () => {
  const { store, manager, advance } = await setup();
  const scope = { project: 'p', cluster: 'c1', source: 'health' };
  await manager.sync(scope, [node('w1')]);
  advance(59_000);
  await manager.sync(scope, [node('w1')]);
  assert.equal((await alerts(store))[0]!.status?.lastEvaluatedAt, '2030-01-01T00:00:00.000Z');
  advance(2_000);
  await manager.sync(scope, [node('w1')]);
  assert.equal((await alerts(store))[0]!.status?.lastEvaluatedAt, '2030-01-01T00:01:01.000Z');
});

test('invalid input is refused before anything is written', async () => {
  const { store, manager } = await setup();
  const rev = await store.currentRevision();
  const bad: [AlertInput, string][] = [
    [{ rule: 'lower-case', severity: 'info', summary: 's' }, 'spec.rule'],
    [{ rule: 'X', severity: 'info', labels: { 'bad-name': 'v' }, summary: 's' }, 'spec.labels["bad-name"]'],
    [{ rule: 'X', severity: 'info', labels: { severity: 'v' }, summary: 's' }, 'spec.labels.severity'],
    [{ rule: 'X', severity: 'info', summary: '' }, 'spec.annotations.summary'],
    [{ rule: 'X', severity: 'fatal' as 'info', summary: 's' }, 'spec.severity'],
  ];
  for (const [input, field] of bad) {
    await assert.rejects(manager.sync({ project: 'p', source: 'health' }, [node('ok'), input]), (e: unknown) => isApiError(e) && e.code === 422 && e.causes[0]?.field === field);
  }
  await assert.rejects(manager.sync({ project: 'p', source: 'Bad Source' }, []), TypeError);
  assert.equal(await store.currentRevision(), rev);
});

test('concurrent writers converge without losing the delivery log', async () => {
  const { store, manager } = await setup();
  const scope = { project: 'p', cluster: 'c1', source: 'health' };
  await manager.sync(scope, [node('w1')]);
  const [a] = await alerts(store);
  // Another writer (the notifier) appends to the log between the manager's read and write.
  await store.updateStatus({ ...a!, status: { ...a!.status, notifications: [{ channel: 'x', state: 'firing', startsAt: a!.status!.startsAt!, outcome: 'delivered', attempts: 1, at: '2030-01-01T00:00:01Z' }] } });
  await Promise.all([manager.sync(scope, []), manager.sync(scope, [])]);
  const [after] = await alerts(store);
  assert.equal(after!.status?.state, 'resolved');
  assert.equal(after!.status?.notifications?.length, 1);
});

test('every transition is published once as a platform event: fired, resolved, fired again', async () => {
  const store = await memStore();
  await store.create({ apiVersion: API_VERSION, kind: 'Project', metadata: { name: 'p' }, spec: { members: [] } });
  const published: CloudEvent[] = [];
  const manager = new AlertManager({ store, evaluatedRefreshMs: 0, events: { publish: async (ev) => void published.push(ev) } });
  const scope = { project: 'p', cluster: 'c1', source: 'health' };
  await manager.sync(scope, [node('w1')]);
  await manager.sync(scope, [node('w1')]);
  await manager.sync(scope, []);
  await manager.sync(scope, []);
  await manager.sync(scope, [node('w1', 'critical')]);
  assert.deepEqual(published.map((e) => e.type), ['dev.marina.alert.fired', 'dev.marina.alert.resolved', 'dev.marina.alert.fired']);
  assert.equal(new Set(published.map((e) => e.id)).size, 3, 'each transition has its own id');
  const [fired, resolved, again] = published as [any, any, any];
  assert.deepEqual([fired.data.rule, fired.data.cluster, fired.data.labels], ['NodeConditionUnhealthy', 'c1', { node: 'w1', condition: 'Ready' }]);
  assert.ok(resolved.data.endsAt, 'a resolved alert says when');
  assert.equal(again.data.severity, 'critical');
  assert.equal(fired.subject, again.subject, 'the same alert');
});
