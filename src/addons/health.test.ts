import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ClusterObject } from '../clusteraccess/access.js';
import { judge } from './health.js';

const obj = (kind: string, spec: Record<string, unknown>, status: Record<string, unknown>, generation = 1): ClusterObject => ({
  kind,
  metadata: { name: 'x', generation },
  spec,
  status,
});
const cond = (type: string, status: string, extra: Record<string, string> = {}) => ({ type, status, ...extra });

test('Deployment: available and updated, else rolling out with counts; a blown deadline is a failure', () => {
  const ok = obj('Deployment', { replicas: 2 }, { observedGeneration: 1, replicas: 2, updatedReplicas: 2, availableReplicas: 2, conditions: [cond('Available', 'True')] });
  assert.deepEqual(judge(ok), { healthy: true, progressing: false });
  assert.deepEqual(judge({ ...ok, metadata: { name: 'x', generation: 2 } }), { healthy: false, progressing: true, message: 'waiting for the controller to observe the newest spec' });
  assert.equal(judge(obj('Deployment', { replicas: 2 }, { observedGeneration: 1, replicas: 2, updatedReplicas: 1 }))?.message, '1/2 replicas updated');
  assert.equal(judge(obj('Deployment', { replicas: 2 }, { observedGeneration: 1, replicas: 2, updatedReplicas: 2, availableReplicas: 1 }))?.message, '1/2 replicas available');
  const stuck = judge(obj('Deployment', {}, { observedGeneration: 1, conditions: [cond('Progressing', 'False', { reason: 'ProgressDeadlineExceeded', message: 'too slow' })] }));
  assert.deepEqual(stuck, { healthy: false, progressing: false, message: 'rollout exceeded its progress deadline: too slow' });
});

test('DaemonSet: scheduled, updated and ready on every node', () => {
  const base = { observedGeneration: 1, desiredNumberScheduled: 3, currentNumberScheduled: 3, updatedNumberScheduled: 3, numberReady: 3, numberAvailable: 3 };
  assert.equal(judge(obj('DaemonSet', {}, base))?.healthy, true);
  assert.equal(judge(obj('DaemonSet', {}, { ...base, currentNumberScheduled: 2 }))?.message, '2/3 pods scheduled');
  assert.equal(judge(obj('DaemonSet', {}, { ...base, numberReady: 1 }))?.message, '1/3 pods ready');
  assert.equal(judge(obj('DaemonSet', {}, { ...base, numberMisscheduled: 1 }))?.progressing, false);
});

test('StatefulSet ready and on its update revision; Job complete or failed; CRD established; APIService available', () => {
  assert.equal(judge(obj('StatefulSet', { replicas: 2 }, { observedGeneration: 1, readyReplicas: 2, currentRevision: 'a', updateRevision: 'a' }))?.healthy, true);
  assert.equal(judge(obj('StatefulSet', { replicas: 2 }, { observedGeneration: 1, readyReplicas: 2, currentRevision: 'a', updateRevision: 'b', updatedReplicas: 1 }))?.message, '1/2 replicas updated');
  assert.equal(judge(obj('Job', {}, { conditions: [cond('Complete', 'True')] }))?.healthy, true);
  assert.deepEqual(judge(obj('Job', {}, { conditions: [cond('Failed', 'True', { message: 'BackoffLimitExceeded' })] })), { healthy: false, progressing: false, message: 'failed: BackoffLimitExceeded' });
  assert.equal(judge(obj('Job', {}, {}))?.progressing, true);
  assert.equal(judge(obj('CustomResourceDefinition', {}, { conditions: [cond('NamesAccepted', 'True'), cond('Established', 'True')] }))?.healthy, true);
  assert.equal(judge(obj('CustomResourceDefinition', {}, { conditions: [cond('NamesAccepted', 'True')] }))?.progressing, true);
  assert.match(judge(obj('APIService', {}, { conditions: [cond('Available', 'False', { reason: 'MissingEndpoints' })] }))?.message ?? '', /Available is False \(MissingEndpoints/);
  assert.deepEqual(judge(obj('ConfigMap', {}, {})), { healthy: true, progressing: false });
});

test('definition rules: ignore an object, or judge any kind by one condition; named rules win', () => {
  const failed = obj('Job', {}, { conditions: [cond('Failed', 'True')] });
  assert.equal(judge(failed, [{ kind: 'Job', ignore: true }]), undefined);
  assert.equal(judge(failed, [{ kind: 'Job', ignore: true }, { kind: 'Job', name: 'x' }])?.healthy, false);
  const cr = { kind: 'Certificate', metadata: { name: 'x' }, status: { conditions: [cond('Ready', 'False')] } };
  assert.equal(judge(cr)?.healthy, true, 'unknown kinds are healthy when they exist');
  assert.equal(judge(cr, [{ kind: 'Certificate', condition: 'Ready' }])?.healthy, false);
});
