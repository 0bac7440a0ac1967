import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clusterOperations, operationActions, operationEntries, operationSummary, type OperationView } from './operations.js';

const op = (name: string, status: OperationView['status'], created = '2026-12-06T10:00:00Z', cluster = 'demo'): OperationView => ({
  apiVersion: 'marina.dev/v1alpha1',
  kind: 'Operation',
  metadata: { name, creationTimestamp: created },
  spec: { cluster, type: 'Restore', restore: { snapshot: 's1' } },
  status,
});

test('unfinished operations first, then newest; other clusters left out', () => {
  const list = clusterOperations(
    [op('old', { phase: 'Succeeded' }, '2026-12-06T09:00:00Z'), op('new', { phase: 'Failed' }, '2026-12-06T11:00:00Z'), op('run', { phase: 'Running' }, '2026-12-06T08:00:00Z'), op('x', {}, '2026-12-06T12:00:00Z', 'other')],
    'demo',
  );
  assert.deepEqual(list.map((o) => o.metadata.name), ['run', 'new', 'old']);
});

test('the summary names the step at hand', () => {
  const s = operationSummary(op('r', { phase: 'Running', progress: 33, steps: [{ name: 'preflight', state: 'Succeeded' }, { name: 'stopEtcd', state: 'Running', message: 'holding etcd' }] }));
  assert.deepEqual(s, { title: 'Restore from s1', phase: 'Running', progress: 33, current: 'stopEtcd: holding etcd', tone: 'neutral' });
});

test('four-eyes in the console: the requester gets no approve button, another operator does; viewers get nothing', () => {
  const waiting = op('w', { phase: 'AwaitingApproval', approvalRequired: true, requestedBy: 'bob' });
  assert.deepEqual(operationActions(waiting, 'bob', 'operator'), { approve: false, reject: false, cancel: true, note: 'you requested it: another operator must approve it (four-eyes rule)' });
  assert.deepEqual(operationActions(waiting, 'alice', 'operator'), { approve: true, reject: true, cancel: true });
  assert.deepEqual(operationActions(waiting, 'carol', 'member'), { approve: false, reject: false, cancel: false });
  assert.deepEqual(operationActions(waiting, 'root', undefined, true), { approve: true, reject: true, cancel: true });
  const past = op('p', { phase: 'Running', steps: [{ name: 'stopEtcd', state: 'Running', disruptive: true }] });
  assert.deepEqual(operationActions(past, 'alice', 'admin'), { approve: false, reject: false, cancel: false }, 'no cancel after a disruptive step started');
  assert.deepEqual(operationActions(op('d', { phase: 'Succeeded' }), 'alice', 'admin'), { approve: false, reject: false, cancel: false });
});

test('operations become timeline entries: request, approval, end', () => {
  const e = operationEntries([op('r', { phase: 'Failed', requestedBy: 'bob', approvedBy: { user: 'alice', at: '2026-12-06T10:01:00Z' }, completionTime: '2026-12-06T10:05:00Z', message: 'preflight: corrupted' })]);
  assert.deepEqual(e.map((x) => [x.title, x.tone]), [
    ['bob requested Restore from s1 (r)', 'neutral'],
    ['alice approved r', 'ok'],
    ['Restore from s1 Failed (r)', 'bad'],
  ]);
});
