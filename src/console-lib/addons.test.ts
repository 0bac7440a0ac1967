import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addonRows, type AddonView } from './addons.js';

const a = (name: string, addon: string, status: AddonView['status'], extra: Partial<AddonView['metadata']> = {}): AddonView => ({
  apiVersion: 'marina.dev/v1alpha1',
  kind: 'Addon',
  metadata: { name, project: 'p', ...extra },
  spec: { cluster: name.startsWith('other') ? 'other' : 'demo', addon, version: '2.0.0' },
  status,
});

test('the add-ons of one cluster with a state, a tone and why they are not healthy', () => {
  const rows = addonRows(
    [
      a('demo-b', 'b', { appliedVersion: '2.0.0', inventory: [1, 2, 3], driftCorrections: 2, lastDriftCorrection: { at: 't', objects: [] }, conditions: [{ type: 'Applied', status: 'True' }, { type: 'Healthy', status: 'True' }] }),
      a('demo-a', 'a', { appliedVersion: '1.0.0', unhealthy: ['Deployment x/y: 0/1 replicas available'], conditions: [{ type: 'Applied', status: 'True' }, { type: 'Healthy', status: 'False', reason: 'RollingOut' }] }),
      a('demo-c', 'c', { conditions: [{ type: 'Applied', status: 'False', reason: 'DependencyNotReady', message: 'waiting for a' }] }),
      a('demo-d', 'd', { conditions: [{ type: 'Applied', status: 'False', reason: 'ApplyFailed', message: 'ConfigMap x: Invalid' }] }),
      a('demo-e', 'e', {}, { deletionTimestamp: 'now' }),
      a('other-a', 'a', {}),
    ],
    'demo',
  );
  assert.deepEqual(
    rows.map((r) => [r.addon, r.version, r.state, r.tone, r.detail ?? '', r.objects, r.drift]),
    [
      ['a', '1.0.0 → 2.0.0', 'Rolling out', 'warn', 'Deployment x/y: 0/1 replicas available', 0, 0],
      ['b', '2.0.0', 'Healthy', 'ok', '', 3, 2],
      ['c', '2.0.0', 'Waiting', 'warn', 'DependencyNotReady: waiting for a', 0, 0],
      ['d', '2.0.0', 'Waiting', 'bad', 'ApplyFailed: ConfigMap x: Invalid', 0, 0],
      ['e', '2.0.0', 'Removing', 'warn', '', 0, 0],
    ],
  );
});
