import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeProviderConformance } from '../conformance.js';
import { sqlitePersistence } from '../../sim/persist.js';
import { SimWorld } from '../../sim/world.js';
import { SimProvider, simSpecOf } from './index.js';

const dir = mkdtempSync(join(tmpdir(), 'marina-sim-provider-'));
const file = join(dir, 'world.db');
const worlds: SimWorld[] = [];
// A new provider is a restarted Marina: a new world loaded from the same state file.
const newProvider = () => {
  const world = new SimWorld({ persistence: sqlitePersistence(file) });
  worlds.push(world);
  return new SimProvider(world);
};

describeProviderConformance('sim', {
  newProvider,
  minimalBootstrap: () => ({ kubernetesVersion: 'v1.36.3', roles: [], files: [{ path: 'hello.txt', content: 'hi', mode: 0o600 }], services: [] }),
  async assertMachineGone(machine, last) {
    for (const world of [worlds[0]!, new SimWorld({ persistence: sqlitePersistence(file) })]) {
      assert.equal(world.machine(machine), undefined, 'the world still has the machine');
      assert.equal(world.machineAt(last.address!), undefined, 'its address is still taken');
      if (world !== worlds[0]) world.close();
    }
  },
  async assertEndpointGone(cluster) {
    const fresh = new SimWorld({ persistence: sqlitePersistence(file) });
    try {
      for (const world of [worlds[0]!, fresh]) assert.equal(world.findCluster(cluster.project, cluster.name)?.state.endpoint, undefined, 'endpoint left behind');
    } finally {
      fresh.close();
    }
  },
  cleanup: async () => {
    for (const w of worlds) w.close();
    rmSync(dir, { recursive: true, force: true });
  },
});

describe('sim provider: bootstrap data', () => {
  it('reads what a machine runs from its services and kubelet, and refuses what it cannot run', () => {
    const spec = simSpecOf({
      kubernetesVersion: 'v1.36.3',
      roles: ['etcd', 'controlplane'],
      files: [],
      services: [
        {
          name: 'etcd',
          binary: 'etcd',
          args: [
            '--name=m1',
            '--initial-advertise-peer-urls=https://198.18.0.1:2380',
            '--advertise-client-urls=https://198.18.0.1:2379',
            '--initial-cluster=m0=https://198.18.0.9:2380,m1=https://198.18.0.1:2380',
            '--initial-cluster-state=existing',
          ],
        },
        { name: 'kube-apiserver', binary: 'kube-apiserver', args: ['--etcd-servers=https://198.18.0.9:2379,https://198.18.0.1:2379'] },
      ],
      kubelet: { nodeName: 'm1', kubeconfig: 'k', labels: { a: 'b' }, taints: [], capacity: { cpu: '4', memory: '8Gi', pods: '110' }, kubeletVersion: 'v1.36.3' },
    });
    assert.deepEqual(spec.etcd, {
      name: 'm1',
      peerURL: 'https://198.18.0.1:2380',
      clientURL: 'https://198.18.0.1:2379',
      state: 'existing',
      initialCluster: [
        { name: 'm0', peerURL: 'https://198.18.0.9:2380' },
        { name: 'm1', peerURL: 'https://198.18.0.1:2380' },
      ],
      maxLearners: 1,
    });
    assert.deepEqual(spec.apiserver, { etcdServers: ['https://198.18.0.9:2379', 'https://198.18.0.1:2379'] });
    assert.equal(spec.kubelet?.nodeName, 'm1');
    const bad = (services: { name: string; binary: string; args: string[] }[], files: { path: string; content: string; mode: number }[] = []) => () =>
      simSpecOf({ kubernetesVersion: 'v1.36.3', roles: [], files, services });
    assert.throws(bad([{ name: 'x', binary: 'containerd', args: [] }]), (e: Error & { reason?: string; terminal?: boolean }) => e.reason === 'UnknownBinary' && e.terminal === true);
    assert.throws(bad([{ name: 'etcd', binary: 'etcd', args: ['--name=x'] }]), /initial-cluster-state/);
    assert.throws(bad([], [{ path: '../x', content: '', mode: 0o600 }]), /leaves the machine directory/);
  });

  it('lists what it runs with the uid of each Machine', async () => {
    const world = new SimWorld();
    const provider = new SimProvider(world);
    try {
      const a = { project: 'p', cluster: 'c', name: 'a', uid: randomUUID() };
      const b = { project: 'p', cluster: 'c', name: 'b', uid: randomUUID() };
      await provider.prepareMachine(a);
      await provider.prepareMachine(b);
      await provider.deleteMachine(a);
      assert.deepEqual(await provider.listMachines(), [{ ref: b, providerID: 'sim:///p/c/b', state: 'Provisioning' }]);
    } finally {
      world.close();
    }
  });
});

