// The kubelets and the DNS add-on agree on the cluster DNS address: the machine bootstrap gives
// every kubelet the 10th address of the service CIDR, the agent accepts it, and CoreDNS's kube-dns
// Service renders at that same address.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clusterDnsIP } from '../../src/api/cluster-dns.js';
import type { Cluster, Machine } from '../../src/api/kinds.js';
import { API_VERSION } from '../../src/api/meta.js';
import { AgentConfigError, validateAgentConfig } from '../../src/agent/config.js';
import { generateClusterPki } from '../../src/bootstrap/clusterPki.js';
import { buildMachineBootstrap } from '../../src/bootstrap/machine.js';
import { prepareDefinition } from '../../src/addons/definitions.js';
import { readCatalog } from '../../src/addons/catalog.js';
import { clusterContext, renderAddon } from '../../src/addons/render.js';

test('clusterDnsIP is the 10th address of the service CIDR', () => {
  assert.equal(clusterDnsIP('10.96.0.0/16'), '10.96.0.10');
  assert.equal(clusterDnsIP('172.20.128.0/20'), '172.20.128.10');
  assert.throws(() => clusterDnsIP('10.0.0.0/29'), /too small/);
});

test('a worker\'s kubelet is configured with the address kube-dns renders at', async () => {
  const cluster: Cluster = {
    apiVersion: API_VERSION,
    kind: 'Cluster',
    metadata: { name: 'demo', project: 'p', uid: 'u' },
    spec: { nodePools: [{ name: 'w', roles: ['worker'], replicas: 1 }], network: { serviceCIDR: '10.100.0.0/16' } },
  };
  const machine: Machine = {
    apiVersion: API_VERSION,
    kind: 'Machine',
    metadata: { name: 'demo-w-abcde', project: 'p' },
    spec: { cluster: 'demo', pool: 'w', roles: ['worker'], provider: 'local', kubernetesVersion: 'v1.36.3' },
  };
  const b = await buildMachineBootstrap({
    cluster,
    machine,
    address: '127.0.20.9',
    endpoint: { url: 'https://127.0.20.1:6443', host: '127.0.20.1', port: 6443 },
    pki: await generateClusterPki({ clusterName: 'demo' }),
    kubernetesVersion: 'v1.36.3',
  });
  assert.deepEqual(b.kubelet?.clusterDNS, ['10.100.0.10']);
  assert.equal(b.kubelet?.clusterDomain, 'cluster.local');

  const coredns = readCatalog().definitions.find((d) => d.spec.addon === 'coredns')!;
  const { prepared } = prepareDefinition(coredns.spec);
  const svc = renderAddon({ ...prepared!, definition: coredns }, {}, clusterContext(cluster)).objects.find((o) => o.metadata.name === 'kube-dns') as unknown as {
    spec: { clusterIP: string };
  };
  assert.equal(svc.spec.clusterIP, b.kubelet?.clusterDNS?.[0]);
});

test('the agent config accepts clusterDNS and clusterDomain and refuses garbage', () => {
  const base = {
    machine: 'm',
    nodeName: 'm',
    address: '127.0.0.5',
    dataDir: '/tmp/x',
    agentPort: 10250,
    processes: [],
    kubelet: { kubeconfigPath: '/tmp/k', capacity: { cpu: '1', memory: '1Gi', pods: '10' }, kubeletVersion: 'v1.36.3', clusterDNS: ['10.96.0.10'], clusterDomain: 'cluster.local' },
  };
  assert.deepEqual(validateAgentConfig(base).kubelet?.clusterDNS, ['10.96.0.10']);
  assert.throws(
    () => validateAgentConfig({ ...base, kubelet: { ...base.kubelet, clusterDNS: ['ten'], clusterDomain: 'Bad_Domain' } }),
    (e: unknown) => e instanceof AgentConfigError && e.problems.some((p) => p.startsWith('kubelet.clusterDNS')) && e.problems.some((p) => p.startsWith('kubelet.clusterDomain')),
  );
});
