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

  it('simulates whole clusters only: no sim pool in a real cluster, no real pool in a sim cluster, no real kubelet on a sim pool', () => {
    const sim = (pools: unknown[]): Resource => {
      const r = cluster(pools);
      (r.spec as { provider?: string }).provider = 'sim';
      return r;
    };
    assert.deepEqual(fields(sim([{ name: 'w', roles: ['worker'], replicas: 2 }])), []);
    assert.deepEqual(fields(cluster([{ name: 'w', roles: ['worker'], replicas: 1, provider: 'sim' }])), ['spec.nodePools[1].provider']);
    assert.deepEqual(fields(sim([{ name: 'byo', roles: ['worker'], replicas: 1, provider: 'import' }])), ['spec.nodePools[1].provider']);
    assert.deepEqual(fields(sim([{ name: 'w', roles: ['worker'], replicas: 1, runtime: { type: 'containerd' } }])), ['spec.nodePools[1].runtime.type']);
  });

  it("keeps a pool's provider immutable", () => {
    const old = cluster([{ name: 'byo', roles: ['worker'], replicas: 1, provider: 'import' }]);
    assert.deepEqual(fields(cluster([{ name: 'byo', roles: ['worker'], replicas: 1 }]), old), ['spec.nodePools[1].provider']);
  });
});

describe('cluster validation: provider openstack', () => {
  const os = (spec: Record<string, unknown>, pools: unknown[]): Resource =>
    ({ apiVersion: 'marina.dev/v1alpha1', kind: 'Cluster', metadata: { name: 'c', project: 'p' }, spec: { provider: 'openstack', nodePools: pools, ...spec } }) as Resource;
  const vm = { image: 'debian-12', flavor: 'm1.small' };

  it('needs a cloud, and an image and a flavor for every pool of VMs (not for imported servers)', () => {
    assert.deepEqual(fields(os({ cloud: 'prod' }, [{ name: 'cp', roles: ['etcd', 'controlplane'], replicas: 3, machine: vm }, { name: 'byo', roles: ['worker'], replicas: 1, provider: 'import' }])), []);
    assert.deepEqual(fields(os({}, [{ name: 'cp', roles: ['etcd', 'controlplane'], replicas: 3, machine: { image: 'debian-12' } }])), ['spec.cloud', 'spec.nodePools[0].machine.flavor']);
    assert.deepEqual(fields({ ...cluster([]), spec: { ...(cluster([]).spec as object), cloud: 'prod' } } as Resource), ['spec.cloud'], 'a cloud only for provider openstack');
  });

  it('keeps the cloud immutable', () => {
    const old = os({ cloud: 'prod' }, [{ name: 'cp', roles: ['etcd', 'controlplane'], replicas: 3, machine: vm }]);
    assert.deepEqual(fields(os({ cloud: 'other' }, [{ name: 'cp', roles: ['etcd', 'controlplane'], replicas: 3, machine: vm }]), old), ['spec.cloud']);
  });
});
