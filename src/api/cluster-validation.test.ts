import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Resource } from './meta.js';
import { validateCluster } from './cluster-validation.js';

const ctx = { kubernetesVersions: ['v1.36.3'] };
const cluster = (pools: unknown[]): Resource =>
  ({
    apiVersion: 'marina.dev/v1alpha1',
    kind: 'Cluster',
    metadata: { name: 'c', project: 'p' },
    spec: { nodePools: [{ name: 'cp', roles: ['etcd', 'controlplane'], replicas: 1 }, ...pools] },
  }) as Resource;
const fields = (r: Resource, old?: Resource) => validateCluster(r, old, ctx).map((c) => c.field);

describe('cluster validation: real workers and imported servers', () => {
  it('accepts worker pools with runtime containerd and import pools', () => {
    assert.deepEqual(fields(cluster([{ name: 'w', roles: ['worker'], replicas: 2, runtime: { type: 'containerd' } }, { name: 'byo', roles: ['worker'], replicas: 1, provider: 'import' }])), []);
  });

  it('refuses real kubelets and imported servers with other roles', () => {
    assert.deepEqual(fields(cluster([{ name: 'w', roles: ['worker', 'controlplane'], replicas: 1, runtime: { type: 'containerd' } }])), ['spec.nodePools[1].runtime.type']);
    assert.deepEqual(fields(cluster([{ name: 'byo', roles: ['controlplane'], replicas: 1, provider: 'import' }])), ['spec.nodePools[1].roles']);
    assert.deepEqual(fields(cluster([{ name: 'byo', roles: ['worker'], replicas: 1, provider: 'import', runtime: { type: 'virtual' } }])), ['spec.nodePools[1].runtime.type']);
  });

  it("keeps a pool's provider immutable", () => {
    const old = cluster([{ name: 'byo', roles: ['worker'], replicas: 1, provider: 'import' }]);
    assert.deepEqual(fields(cluster([{ name: 'byo', roles: ['worker'], replicas: 1 }]), old), ['spec.nodePools[1].provider']);
  });
});
