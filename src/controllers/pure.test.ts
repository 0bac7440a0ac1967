// The pure pieces of the controllers: names, scale-in order, Node label/taint sync, drain filter.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Machine } from '../api/kinds.js';
import { API_VERSION, NAME_MAX } from '../api/meta.js';
import { boundedName, ClusterIndex, machineName, nodePoolName } from './common.js';
import { ANNOTATION_MANAGED_LABELS, ANNOTATION_MANAGED_TAINTS } from '../api/wellknown.js';
import type { Node as KubeNode, Pod as KubePod, Taint as KubeTaint } from '../kube/objects.js';
import { nodeSyncPatch, podsToEvict } from './node.js';
import { failureReplacedWhileNotReady, scaleInOrder } from './nodepool.js';

function machine(name: string, created: string, phase?: 'Running' | 'Pending', nodeReady?: boolean): Machine {
  return {
    apiVersion: API_VERSION,
    kind: 'Machine',
    metadata: { name, project: 'p', creationTimestamp: created },
    spec: { cluster: 'c', pool: 'w', roles: ['worker'], provider: 'local', kubernetesVersion: 'v1.36.3' },
    ...(phase ? { status: { phase, ...(nodeReady !== undefined ? { nodeReady } : {}) } } : {}),
  };
}

test('names: <cluster>-<pool>[-xxxxx], bounded to 63 characters and still distinct', () => {
  assert.equal(nodePoolName('demo', 'workers'), 'demo-workers');
  assert.match(machineName('demo', 'workers'), /^demo-workers-[a-z0-9]{5}$/);
  const long = 'c'.repeat(60);
  const a = nodePoolName(long, 'pool-a');
  const b = nodePoolName(long, 'pool-b');
  assert.ok(a.length <= NAME_MAX && b.length <= NAME_MAX);
  assert.notEqual(a, b);
  assert.match(a, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
  const m = machineName(long, 'pool-a');
  assert.ok(m.length <= NAME_MAX, m);
  assert.equal(boundedName('short', 63), 'short');
});

test('scale-in order: machines that are not ready first, then the newest', () => {
  const ms = [
    machine('old', '2030-01-01T00:00:00Z', 'Running', true),
    machine('new', '2030-01-03T00:00:00Z', 'Running', true),
    machine('mid', '2030-01-02T00:00:00Z', 'Running', true),
    machine('broken', '2030-01-01T00:00:00Z', 'Running', false),
    machine('pending', '2029-01-01T00:00:00Z', 'Pending'),
  ];
  assert.deepEqual(scaleInOrder(ms).map((m) => m.metadata.name), ['broken', 'pending', 'new', 'mid', 'old']);
});

function node(labels: Record<string, string>, taints: KubeTaint[], annotations: Record<string, string> = {}): KubeNode {
  return { metadata: { name: 'n', resourceVersion: '7', labels, annotations }, spec: { taints } };
}

test('nodeSyncPatch adds what is missing and keeps what others own', () => {
  const n = node({ 'kubernetes.io/hostname': 'n', tier: 'web' }, [{ key: 'node.kubernetes.io/not-ready', effect: 'NoSchedule' }]);
  const patch = nodeSyncPatch(n, { tier: 'web', 'node-role.kubernetes.io/worker': '' }, [{ key: 'gpu', value: 'yes', effect: 'NoSchedule' }]);
  assert.deepEqual(patch, {
    metadata: {
      resourceVersion: '7',
      labels: { 'node-role.kubernetes.io/worker': '' },
      annotations: { [ANNOTATION_MANAGED_LABELS]: 'node-role.kubernetes.io/worker,tier', [ANNOTATION_MANAGED_TAINTS]: '["gpu:NoSchedule"]' },
    },
    spec: {
      taints: [
        { key: 'node.kubernetes.io/not-ready', effect: 'NoSchedule' },
        { key: 'gpu', value: 'yes', effect: 'NoSchedule' },
      ],
    },
  });
});

test('nodeSyncPatch removes only what Marina set before, and is a no-op when in sync', () => {
  const synced = node(
    { tier: 'web', old: 'x', foreign: 'y' },
    [
      { key: 'gpu', value: 'yes', effect: 'NoSchedule' },
      { key: 'node.kubernetes.io/unreachable', effect: 'NoExecute', timeAdded: '2030-01-01T00:00:00Z' },
    ],
    { [ANNOTATION_MANAGED_LABELS]: 'old,tier', [ANNOTATION_MANAGED_TAINTS]: '["gpu:NoSchedule"]' },
  );
  const patch = nodeSyncPatch(synced, { tier: 'api' }, []);
  assert.deepEqual(patch?.metadata, {
    resourceVersion: '7',
    labels: { tier: 'api', old: null },
    annotations: { [ANNOTATION_MANAGED_LABELS]: 'tier', [ANNOTATION_MANAGED_TAINTS]: '[]' },
  });
  assert.deepEqual(patch?.spec, { taints: [{ key: 'node.kubernetes.io/unreachable', effect: 'NoExecute', timeAdded: '2030-01-01T00:00:00Z' }] });

  const inSync = node({ tier: 'api' }, [{ key: 'gpu', value: 'no', effect: 'NoSchedule' }], {
    [ANNOTATION_MANAGED_LABELS]: 'tier',
    [ANNOTATION_MANAGED_TAINTS]: '["gpu:NoSchedule"]',
  });
  assert.equal(nodeSyncPatch(inSync, { tier: 'api' }, [{ key: 'gpu', value: 'no', effect: 'NoSchedule' }]), undefined);
  // A changed taint value is updated in place.
  const changed = nodeSyncPatch(inSync, { tier: 'api' }, [{ key: 'gpu', value: 'yes', effect: 'NoSchedule' }]);
  assert.deepEqual(changed?.spec, { taints: [{ key: 'gpu', value: 'yes', effect: 'NoSchedule' }] });
});

test('podsToEvict skips DaemonSet, mirror and finished pods', () => {
  const pod = (name: string, extra: Partial<KubePod['metadata']> = {}, phase = 'Running'): KubePod => ({
    metadata: { name, namespace: 'ns', ...extra },
    status: { phase },
  });
  const pods = [
    pod('app'),
    pod('ds', { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'DaemonSet', name: 'x', uid: 'u' }] }),
    pod('static', { annotations: { 'kubernetes.io/config.mirror': 'abc' } }),
    pod('done', {}, 'Succeeded'),
    pod('rs', { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'x', uid: 'u' }] }),
  ];
  assert.deepEqual(podsToEvict(pods).map((p) => p.metadata.name), ['app', 'rs']);
});

test('ClusterIndex groups children by cluster and forgets removed ones', () => {
  const idx = new ClusterIndex();
  const m1 = machine('m1', '2030-01-01T00:00:00Z');
  const m2 = machine('m2', '2030-01-01T00:00:00Z');
  idx.note(m1);
  idx.note(m2);
  idx.note(m1);
  assert.deepEqual(idx.keys('p', 'c').map((k) => k.name).sort(), ['m1', 'm2']);
  idx.note({ ...m1, metadata: { ...m1.metadata, deletionTimestamp: '2030-01-02T00:00:00Z', finalizers: ['marina.dev/machine'] } });
  assert.equal(idx.keys('p', 'c').length, 2, 'still terminating');
  idx.note({ ...m1, metadata: { ...m1.metadata, deletionTimestamp: '2030-01-02T00:00:00Z' } });
  assert.deepEqual(idx.keys('p', 'c').map((k) => k.name), ['m2']);
  assert.deepEqual(idx.keys('p', 'other'), []);
});

test("a pool that is not ready keeps naming the failure healing replaced during this episode, not an older one", () => {
  const at = (s: number) => new Date(Date.parse('2026-01-01T00:10:00Z') + s * 1000).toISOString();
  const remediation = (machine: string, s: number, message = 'ImageNotFound: image "x" not found in Glance') => ({ machine, reason: 'MachineFailed', message, at: at(s) });
  const notReadySince = (s: number) => [{ type: 'Ready', status: 'False' as const, reason: 'ImageNotFound', message: '', lastTransitionTime: at(s) }];
  const none = new Set<string>();
  // Replaced in the pass that turned the pool not ready (moments before the transition), and later.
  assert.deepEqual(failureReplacedWhileNotReady({ conditions: notReadySince(0), remediations: [remediation('w-a', -1)] }, new Set(['w-b']), none), {
    machine: 'w-a',
    reason: 'ImageNotFound',
    message: 'ImageNotFound: image "x" not found in Glance',
  });
  assert.equal(
    failureReplacedWhileNotReady({ conditions: notReadySince(0), remediations: [remediation('w-a', -1), remediation('w-b', 30, 'ServerError: server s is in ERROR')] }, none, none)?.reason,
    'ServerError',
    'the newest',
  );
  // Long before the pool turned not ready: another episode.
  assert.equal(failureReplacedWhileNotReady({ conditions: notReadySince(0), remediations: [remediation('w-a', -3600)] }, none, none), undefined);
  // A pool still Ready: only what this pass replaced.
  const readyNow = [{ type: 'Ready', status: 'True' as const, reason: 'Ready', message: '', lastTransitionTime: at(-7200) }];
  assert.equal(failureReplacedWhileNotReady({ conditions: readyNow, remediations: [remediation('w-a', -3600)] }, none, none), undefined);
  assert.equal(failureReplacedWhileNotReady({ conditions: readyNow, remediations: [remediation('w-a', 0)] }, none, new Set(['w-a']))?.machine, 'w-a');
  // Unhealthy replacements (no provider failure) and machines still there are not it.
  assert.equal(failureReplacedWhileNotReady({ conditions: notReadySince(0), remediations: [{ ...remediation('w-a', 5), reason: 'Unhealthy' }, remediation('w-c', 5)] }, new Set(['w-c']), none), undefined);
});
