import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Cluster } from '../api/kinds.js';
import type { Operation, Snapshot } from '../api/operations.js';
import { cancelVerdict, decisionVerdict, holderOf } from './rules.js';
import { backupAlerts, dueSlot, expiredSnapshots, scheduledName } from './schedule.js';
import { versionProblem } from './restore.js';
import { snapshotName } from './snapshot.js';

function op(name: string, type: Operation['spec']['type'], status: Operation['status'] = {}, created = '2026-12-01T00:00:00Z'): Operation {
  return { apiVersion: 'marina.dev/v1alpha1', kind: 'Operation', metadata: { name, project: 'p', creationTimestamp: created }, spec: { cluster: 'c', type }, status };
}

test('one disruptive operation per cluster: the oldest unfinished one holds it', () => {
  const a = op('a', 'Restore', { phase: 'Running' }, '2026-12-01T00:00:01Z');
  const b = op('b', 'ReplaceMachine', { phase: 'Pending' }, '2026-12-01T00:00:02Z');
  const s = op('s', 'Snapshot', { phase: 'Running' }, '2026-12-01T00:00:00Z');
  const done = op('d', 'Restore', { phase: 'Failed' }, '2026-11-01T00:00:00Z');
  assert.equal(holderOf([b, a, s, done], 'c')?.metadata.name, 'a');
  assert.equal(holderOf([b, a, s, done], 'c', a), undefined, 'the holder itself may go on');
  assert.equal(holderOf([b, a], 'c', b)?.metadata.name, 'a', 'the younger of two that raced is refused');
  assert.equal(holderOf([s, done], 'c'), undefined, 'snapshots and finished operations hold nothing');
  assert.equal(holderOf([a], 'other'), undefined);
});

test('cancel only before the first disruptive step', () => {
  const steps = (state: 'Pending' | 'Running' | 'Succeeded') => [
    { name: 'preflight', state: 'Succeeded' as const },
    { name: 'stopControlPlane', state, disruptive: true },
  ];
  assert.deepEqual(cancelVerdict(op('x', 'Restore', { phase: 'Running', steps: steps('Pending') })), { ok: true });
  const refused = cancelVerdict(op('x', 'Restore', { phase: 'Running', steps: steps('Running') }));
  assert.equal(refused.ok, false);
  assert.match(!refused.ok ? refused.reason : '', /passed its first disruptive step \(stopControlPlane, Running\)/);
  assert.equal(cancelVerdict(op('x', 'Restore', { phase: 'Succeeded' })).ok, false);
  assert.deepEqual(cancelVerdict(op('x', 'Restore', { phase: 'AwaitingApproval' })), { ok: true });
});

test('four-eyes: the requester may not approve; decided or unneeded approvals are refused', () => {
  const waiting = op('x', 'Restore', { phase: 'AwaitingApproval', approvalRequired: true, requestedBy: 'bob' });
  const own = decisionVerdict(waiting, 'bob', 'approve');
  assert.equal(own.ok, false);
  assert.match(!own.ok ? own.reason : '', /four-eyes rule: bob requested/);
  assert.deepEqual(decisionVerdict(waiting, 'alice', 'approve'), { ok: true });
  assert.equal(decisionVerdict({ ...waiting, status: { ...waiting.status, approvedBy: { user: 'carol', at: 'now' } } }, 'alice', 'reject').ok, false);
  assert.equal(decisionVerdict(op('y', 'Restore', { phase: 'Running', requestedBy: 'bob' }), 'alice', 'approve').ok, false);
  assert.equal(decisionVerdict(op('z', 'Restore', { phase: 'Pending', requestedBy: 'bob' }), 'alice', 'approve').ok, false, 'no approval needed');
});

test('schedule slots, names and retention', () => {
  const since = new Date('2026-12-06T01:00:00Z');
  assert.equal(dueSlot('0 */6 * * *', since, new Date('2026-12-06T05:59:00Z')), undefined, 'no slot since the cluster came');
  assert.equal(dueSlot('0 */6 * * *', since, new Date('2026-12-06T13:10:00Z'))?.toISOString(), '2026-12-06T12:00:00.000Z', 'the newest missed slot only');
  assert.equal(scheduledName('demo', new Date('2026-12-06T12:00:00Z')), 'demo-sched-202612061200');
  assert.equal(snapshotName('demo', new Date('2026-12-06T12:34:56Z'), 'ab12-cd'), 'demo-20261206-123456-ab12');
  assert.ok(scheduledName('x'.repeat(63), new Date()).length <= 63);
  const snap = (name: string, created: string, scheduled = true, phase = 'Completed'): Snapshot => ({
    apiVersion: 'marina.dev/v1alpha1',
    kind: 'Snapshot',
    metadata: { name, project: 'p', creationTimestamp: created, labels: scheduled ? { 'marina.dev/scheduled': 'true' } : {} },
    spec: { cluster: 'c' },
    status: { phase: phase as 'Completed' },
  });
  const snaps = [snap('s1', '2026-12-01T00:00:00Z'), snap('s2', '2026-12-02T00:00:00Z'), snap('s3', '2026-12-03T00:00:00Z'), snap('manual', '2026-11-01T00:00:00Z', false), snap('running', '2026-11-01T00:00:00Z', true, 'Pending')];
  assert.deepEqual(expiredSnapshots(snaps, 2).map((s) => s.metadata.name), ['s1'], 'only finished scheduled snapshots beyond the newest two');
});

test('backup alerts: failed newest snapshot, none within twice the interval, failed restore', () => {
  const cluster = { metadata: { name: 'c', creationTimestamp: '2026-12-06T00:00:00Z' }, spec: { nodePools: [] } } as unknown as Cluster;
  const now = Date.parse('2026-12-06T13:00:00Z');
  const failed = op('s2', 'Snapshot', { phase: 'Failed', completionTime: '2026-12-06T12:00:05Z', message: 'take: no etcd member is running' });
  const ok = op('s1', 'Snapshot', { phase: 'Succeeded', completionTime: '2026-12-06T06:00:05Z' });
  const rules = backupAlerts(cluster, [ok, failed], [], now).map((a) => a.rule);
  assert.deepEqual(rules, ['BackupFailed', 'BackupMissing'], 'no completed Snapshot for 13 h with a 6 h schedule');
  const completed = { metadata: { name: 'x' }, spec: { cluster: 'c' }, status: { phase: 'Completed', completionTime: '2026-12-06T06:00:05Z' } } as Snapshot;
  assert.deepEqual(backupAlerts(cluster, [failed, ok], [completed], now).map((a) => a.rule), ['BackupFailed']);
  const later = op('s3', 'Snapshot', { phase: 'Succeeded', completionTime: '2026-12-06T12:30:00Z' });
  assert.deepEqual(backupAlerts(cluster, [failed, later, op('r', 'Restore', { phase: 'Failed', completionTime: '2026-12-06T12:40:00Z' })], [completed], now).map((a) => a.rule), ['RestoreFailed']);
});

test('restore version rules: not newer than the cluster, at most one minor older', () => {
  assert.equal(versionProblem('v1.36.3', 'v1.36.3'), undefined);
  assert.equal(versionProblem('v1.35.4', 'v1.36.3'), undefined);
  assert.match(versionProblem('v1.36.3', 'v1.35.4') ?? '', /newer than the cluster/);
  assert.match(versionProblem('v1.34.0', 'v1.36.3') ?? '', /more than one minor older/);
});
