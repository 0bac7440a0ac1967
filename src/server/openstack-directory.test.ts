import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Cluster, Machine, Secret } from '../api/kinds.js';
import { API_VERSION } from '../api/meta.js';
import type { OpenStackCloud } from '../api/openstack.js';
import { ProviderError } from '../providers/contract.js';
import { typed } from '../store/typed.js';
import { openTestStore } from '../store/test-util.js';
import { StoreCloudDirectory } from './openstack-directory.js';

describe('StoreCloudDirectory', () => {
  it("resolves a cluster's cloud with its credential, and a machine's facts", async () => {
    const store = openTestStore();
    const dir = new StoreCloudDirectory(store);
    const meta = (name: string) => ({ name, project: 'p' });
    const cluster = await typed(store, 'Cluster').create({
      apiVersion: API_VERSION,
      kind: 'Cluster',
      metadata: meta('c1'),
      spec: { provider: 'openstack', cloud: 'prod', nodePools: [{ name: 'w', replicas: 1, roles: ['worker'], machine: { image: 'debian-12', flavor: 'm1.small', network: 'pool-net' } }] },
    } as Cluster);

    await assert.rejects(dir.cloudOf('p', 'c1'), (e: unknown) => e instanceof ProviderError && e.reason === 'CloudNotFound' && /OpenStackCloud p\/prod/.test(e.message));
    const cloud = await typed(store, 'OpenStackCloud').create({
      apiVersion: API_VERSION,
      kind: 'OpenStackCloud',
      metadata: meta('prod'),
      spec: { authURL: 'https://keystone.example:5000/v3', credentialsSecret: 'os-cred', network: 'net', managementCIDR: '198.18.0.0/15' },
    } as OpenStackCloud);
    await assert.rejects(dir.cloudOf('p', 'c1'), (e: unknown) => e instanceof ProviderError && e.reason === 'CredentialsMissing' && /Secret p\/os-cred .* does not exist/.test(e.message));
    await typed(store, 'Secret').create({
      apiVersion: API_VERSION,
      kind: 'Secret',
      metadata: meta('os-cred'),
      spec: { type: 'marina.dev/openstack-credentials', data: { applicationCredentialId: 'id1', applicationCredentialSecret: 's3cret' } },
    } as Secret);

    assert.deepEqual(await dir.cloudOf('p', 'c1'), {
      uid: cloud.metadata.uid,
      project: 'p',
      name: 'prod',
      authURL: 'https://keystone.example:5000/v3',
      applicationCredential: { id: 'id1', secret: 's3cret' },
      network: 'net',
      managementCIDR: '198.18.0.0/15',
    });
    assert.deepEqual((await dir.clouds()).map((c) => c.name), ['prod']);

    const machine = await typed(store, 'Machine').create({
      apiVersion: API_VERSION,
      kind: 'Machine',
      metadata: meta('c1-w-abcde'),
      spec: { cluster: 'c1', pool: 'w', roles: ['worker'], provider: 'openstack', kubernetesVersion: 'v1.36.3', machine: { image: 'debian-12', flavor: 'm1.small', network: 'pool-net' } },
    } as Machine);
    const ref = { project: 'p', cluster: 'c1', name: 'c1-w-abcde', uid: machine.metadata.uid! };
    assert.deepEqual(await dir.machine(ref), {
      clusterUid: cluster.metadata.uid,
      pool: 'w',
      roles: ['worker'],
      image: 'debian-12',
      flavor: 'm1.small',
      network: 'pool-net',
      podCIDR: '10.244.0.0/16',
    });
    assert.equal(await dir.machine({ ...ref, uid: '00000000-0000-4000-8000-000000000000' }), undefined, 'another object of the same name');
  });
});
